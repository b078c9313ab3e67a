"""Regression and probabilistic losses: the torch.nn.functional ones (mse, l1, huber, smooth_l1,
poisson_nll, gaussian_nll), log-cosh, quantile (pinball), MAPE, sMAPE and MSLE, plus the VAE Gaussian
KL term.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/elementwise.pyx`` (the one elementwise loop, specialised per loss ``Kind``, or the KL
row loop); the arithmetic lives there.

Shapes: the torch losses broadcast ``target`` against ``input`` as torch does -- mse_loss, l1_loss,
huber_loss and smooth_l1_loss with torch's UserWarning ("Using a target size ... that is different to
the input size"), poisson_nll_loss and gaussian_nll_loss silently -- and return the broadcast shape
(an operand of another shape is materialised once; the gradient is summed back to ``input``'s shape).
The losses without a torch function (log_cosh, quantile, mape, smape, msle) take equal shapes (else ``ValueError``).
Keyword-only ``weight`` is a per-element sample weight broadcastable to ``input`` (scalars and
last-axis vectors are read in place, other shapes materialised once); with a weight, ``mean`` is
sum(w * l) / sum(w) -- torch's rule for mse_loss / l1_loss -- except for ``huber_loss``, where torch
divides the weighted sum by the element count and so do we.  (With a broadcast target torch wants the
weight of ``input``'s shape and sums it unbroadcast for that mean; so do we.)
``return_grad=True`` returns (loss, grad) with grad = d(result)/d(input) (of the sum for "none").
"""
from __future__ import annotations

import math
import numbers
from typing import Literal, overload
import warnings

import numpy as np

from . import _elementwise as E
from . import _validate as V
from ._elementwise import Kind
from ._errors import BadValue, raise_first_bad
from ._losses import loss_info
from ._threads import resolve_num_threads
from ._typing import ArrayLike, FloatArray, GradOut2, Loss, LossGrad, LossGrads2

__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "poisson_nll_loss", "gaussian_nll_loss",
           "log_cosh_loss", "quantile_loss", "mape_loss", "smape_loss", "msle_loss", "gaussian_kl_loss"]


def _no_legacy(size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")


# torch broadcasts target against input in these losses; the first four warn that it does
_BROADCAST_WARN = ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss")
_BROADCAST_SILENT = ("poisson_nll_loss", "gaussian_nll_loss")


def _inputs(input, target, reduction, num_threads, out, return_grad, grad_out, loss=None, weight=None):
    """The converted prediction and target -- broadcast to one shape where ``loss``'s reference does --
    as ``args = (x, y, num_threads, input's own shape, repeat, grad_out, the arguments as given)``;
    ``repeat``: how many broadcast elements each input element stands for (torch's weighted mean sums the
    weights of input's shape)."""
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    nt = resolve_num_threads(num_threads)
    if V.plain_pair(input, target):       # the usual call: nothing to convert, one shape
        return input, target, nt, input.shape, 1, grad_out, (input, target, weight)
    x = V.prediction(input, "input")
    y = V.float_array(target, "target", dtype=x.dtype)
    shape, repeat = x.shape, 1
    if x.shape != y.shape:
        if loss not in _BROADCAST_WARN and loss not in _BROADCAST_SILENT:
            V.check_same_shape(x, y, "input", "target")
        if loss in _BROADCAST_WARN:
            warnings.warn(f"Using a target size ({y.shape}) that is different to the input size "
                          f"({x.shape}). This will likely lead to incorrect results due to broadcasting. "
                          "Please ensure they have the same size.", UserWarning, stacklevel=3)
        (x, y), full = V.broadcast_together([x, y], ["input", "target"])
        if weight is not None and np.shape(weight) != shape:
            raise ValueError(f"weight shape {np.shape(weight)} must be input's shape {shape} when target "
                             f"is broadcast against it (torch's rule)")
        repeat = math.prod(full) // math.prod(shape) if math.prod(shape) else 1
    return x, y, nt, shape, repeat, grad_out, (input, target, weight)


def _elementwise(kind, args, reduction, weight, out, return_grad, weighted_mean=True, delta=1.0, beta=1.0, q=0.5,
                 **config):
    """Run the kernel of ``kind`` with its keyword ``config`` (``elementwise.pyx``'s entry) on ``_inputs``'s
    ``args``: (value, grad of input's shape, first_bad).  (``delta``, ``beta`` and ``q``, the parameters
    of one kind each, are passed by name, not in ``config``: a ``**config`` call costs ~0.3 us more; only
    the kind that has one reads it.)"""
    x, y, nt, shape, repeat, grad_out, given = args
    if weight is None and reduction != "none" and not return_grad and not config:   # the usual call
        loss_sum, _, bad = E.K.elementwise(kind, x, y, 1.0, None, None, 1.0, nt, delta=delta, beta=beta, q=q)
        return V.reduced(loss_sum, x.size, reduction, x.dtype), None, bad
    if weight is not None and repeat != 1:     # (input's shape: _inputs checked it) broadcast like input
        weight = np.broadcast_to(V.float_array(weight, "weight", dtype=x.dtype), x.shape)
    w = E.operand(weight, x, "weight")
    weighted_mean = weighted_mean and weight is not None and reduction == "mean"
    n = x.size
    kernel_grad_out = grad_out if x.shape == shape else None
    if grad_out is None:
        o, grad, scale = E.buffers(x, reduction, out, return_grad, n)
    else:   # a broadcast gradient is summed back to input's shape, then delivered into grad_out
        o, grad, scale = E.buffers(x, reduction, out, return_grad, n, kernel_grad_out, (y, w, *given))
    loss_sum, denom, bad = E.K.elementwise(kind, x, y, w, o, grad, scale, nt, weighted_mean=weighted_mean,
                                           delta=delta, beta=beta, q=q, reused=E.reused(out, kernel_grad_out),
                                           **config)
    if reduction == "none":
        value = o
    else:   # torch's weighted mean divides by the weights of input's shape: each stands for `repeat` items
        value = V.reduced(loss_sum, denom / repeat if weighted_mean else n, reduction, x.dtype)
    if grad is not None and x.shape != shape:
        grad = V.deliver_grad(grad_out, V.unbroadcast(grad * repeat if weighted_mean else grad, shape),
                              (x, y, w, o, *given))
    return value, grad, bad


def _result(value, grad):
    return (value, grad) if grad is not None else value


@overload
def mse_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
             reduction: str = ..., weight: ArrayLike | None = ..., *, num_threads: int | None = ...,
             out: FloatArray | None = ..., return_grad: Literal[False] = ...,
             grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def mse_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
             reduction: str = ..., weight: ArrayLike | None = ..., *, num_threads: int | None = ...,
             out: FloatArray | None = ..., return_grad: Literal[True],
             grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def mse_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
             reduction: str = ..., weight: ArrayLike | None = ..., *, num_threads: int | None = ...,
             out: FloatArray | None = ..., return_grad: bool = ...,
             grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def mse_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = None,
             reduce: bool | None = None, reduction: str = "mean", weight: ArrayLike | None = None, *,
             num_threads: int | None = None, out: FloatArray | None = None,
             return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Mean squared error, mirroring :func:`torch.nn.functional.mse_loss`.

    .. math::

        \ell = w\, (x - y)^2, \qquad
        \text{mean} = \sum \ell \Big/ \sum w \quad (\text{the element count without } w)

    Parameters
    ----------
    input : array_like
        Predictions :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape; a shape that broadcasts with it is broadcast as torch
        does, with torch's ``UserWarning``.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default) as above.
    weight : array_like, optional
        Per-element weight :math:`w` broadcastable to ``input``'s shape (torch's optional
        ``weight``); scalars and last-axis vectors are read in place.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a ``weight`` that does not broadcast, a bad ``reduction`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 2.0])
    >>> loss, grad = fl.mse_loss(x, y, return_grad=True)
    >>> print(np.mean((x - y) ** 2), bool(np.isclose(loss, np.mean((x - y) ** 2))))
    1.4166666666666667 True
    >>> bool(np.allclose(grad, 2 * (x - y) / 3))
    True
    >>> w = np.array([1.0, 1.0, 2.0])
    >>> bool(np.isclose(fl.mse_loss(x, y, weight=w), np.sum(w * (x - y) ** 2) / w.sum()))
    True
    """
    _no_legacy(size_average, reduce)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out, "mse_loss", weight)
    value, grad, _ = _elementwise(Kind.MSE, args, reduction, weight, out, return_grad)
    return _result(value, grad)


@overload
def l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
            reduction: str = ..., weight: ArrayLike | None = ..., *, num_threads: int | None = ...,
            out: FloatArray | None = ..., return_grad: Literal[False] = ...,
            grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
            reduction: str = ..., weight: ArrayLike | None = ..., *, num_threads: int | None = ...,
            out: FloatArray | None = ..., return_grad: Literal[True],
            grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
            reduction: str = ..., weight: ArrayLike | None = ..., *, num_threads: int | None = ...,
            out: FloatArray | None = ..., return_grad: bool = ...,
            grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: ArrayLike | None = None, *, num_threads: int | None = None,
            out: FloatArray | None = None, return_grad: bool = False,
            grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Mean absolute error, mirroring :func:`torch.nn.functional.l1_loss`.

    .. math::

        \ell = w\, |x - y|, \qquad
        \text{mean} = \sum \ell \Big/ \sum w \quad (\text{the element count without } w)

    The gradient is :math:`w \operatorname{sign}(x - y)` (0 where :math:`x = y`, as torch).

    Parameters
    ----------
    input : array_like
        Predictions :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape; a shape that broadcasts with it is broadcast as torch
        does, with torch's ``UserWarning``.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default) as above.
    weight : array_like, optional
        Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a ``weight`` that does not broadcast, a bad ``reduction`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 2.0])
    >>> loss, grad = fl.l1_loss(x, y, return_grad=True)
    >>> print(np.mean(np.abs(x - y)), bool(np.isclose(loss, np.mean(np.abs(x - y)))))
    0.8333333333333334 True
    >>> print(grad * 3)
    [-1.  0.  1.]
    """
    _no_legacy(size_average, reduce)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out, "l1_loss", weight)
    value, grad, _ = _elementwise(Kind.L1, args, reduction, weight, out, return_grad)
    return _result(value, grad)


@overload
def huber_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., delta: float = ...,
               weight: ArrayLike | None = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def huber_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., delta: float = ...,
               weight: ArrayLike | None = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def huber_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., delta: float = ...,
               weight: ArrayLike | None = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def huber_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean", delta: float = 1.0,
               weight: ArrayLike | None = None, *, num_threads: int | None = None,
               out: FloatArray | None = None, return_grad: bool = False,
               grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Huber loss, mirroring :func:`torch.nn.functional.huber_loss`.

    With :math:`d = x - y`,

    .. math::

        \ell = w \begin{cases} d^2 / 2 & |d| < \delta \\
                               \delta\, (|d| - \delta / 2) & \text{otherwise} \end{cases}

    With a ``weight``, ``"mean"`` divides the weighted sum by the element count, not by
    :math:`\sum w` (torch's rule for this loss, unlike its ``mse_loss``); fastloss matches torch.

    Parameters
    ----------
    input : array_like
        Predictions :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape; a shape that broadcasts with it is broadcast as torch
        does, with torch's ``UserWarning``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default) over the elements.
    delta : float, optional
        :math:`\delta > 0`, where the loss turns from quadratic to linear; default 1.
    weight : array_like, optional
        Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        ``delta <= 0``, mismatched shapes, a ``weight`` that does not broadcast, a bad
        ``reduction`` or ``out``.

    See Also
    --------
    smooth_l1_loss : the Huber loss divided by its threshold.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> d = np.array([0.5, -2.0, 3.0])
    >>> ref = np.where(np.abs(d) < 1.5, d ** 2 / 2, 1.5 * (np.abs(d) - 0.75))
    >>> print(ref)
    [0.125 1.875 3.375]
    >>> bool(np.allclose(fl.huber_loss(d, np.zeros(3), reduction="none", delta=1.5), ref))
    True
    """
    delta = V.check_real(delta, "delta", low=0.0, low_open=True)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out, "huber_loss", weight)
    value, grad, _ = _elementwise(Kind.HUBER, args, reduction, weight, out, return_grad, delta=delta,
                                  weighted_mean=False)
    return _result(value, grad)


@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ...,
                   reduce: bool | None = ..., reduction: str = ..., beta: float = ..., *,
                   weight: ArrayLike | None = ..., num_threads: int | None = ...,
                   out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                   grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ...,
                   reduce: bool | None = ..., reduction: str = ..., beta: float = ..., *,
                   weight: ArrayLike | None = ..., num_threads: int | None = ...,
                   out: FloatArray | None = ..., return_grad: Literal[True],
                   grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = ...,
                   reduce: bool | None = ..., reduction: str = ..., beta: float = ..., *,
                   weight: ArrayLike | None = ..., num_threads: int | None = ...,
                   out: FloatArray | None = ..., return_grad: bool = ...,
                   grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def smooth_l1_loss(input: ArrayLike, target: ArrayLike, size_average: bool | None = None,
                   reduce: bool | None = None, reduction: str = "mean", beta: float = 1.0, *,
                   weight: ArrayLike | None = None, num_threads: int | None = None,
                   out: FloatArray | None = None, return_grad: bool = False,
                   grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Smooth L1 loss, mirroring :func:`torch.nn.functional.smooth_l1_loss`.

    With :math:`d = x - y`,

    .. math::

        \ell = w \begin{cases} d^2 / (2 \beta) & |d| < \beta \\
                               |d| - \beta / 2 & \text{otherwise} \end{cases}

    ``beta = 0`` is exactly :func:`l1_loss` (as torch).  With a ``weight``, ``"mean"`` is
    :math:`\sum \ell / \sum w` (torch's ``smooth_l1_loss`` has no weight).

    Parameters
    ----------
    input : array_like
        Predictions :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape; a shape that broadcasts with it is broadcast as torch
        does, with torch's ``UserWarning``.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    beta : float, optional
        :math:`\beta \ge 0`; default 1.
    weight : array_like, optional
        Keyword-only.  Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        ``beta < 0``, mismatched shapes, a ``weight`` that does not broadcast, a bad ``reduction``
        or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> d = np.array([0.5, -2.0, 3.0])
    >>> ref = np.where(np.abs(d) < 1.5, d ** 2 / 3, np.abs(d) - 0.75)
    >>> bool(np.allclose(fl.smooth_l1_loss(d, np.zeros(3), reduction="none", beta=1.5), ref))
    True
    >>> bool(np.allclose(fl.smooth_l1_loss(d, np.zeros(3), reduction="none", beta=0.0), np.abs(d)))
    True
    """
    _no_legacy(size_average, reduce)
    beta = V.check_real(beta, "beta", low=0.0)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out, "smooth_l1_loss",
                   weight)
    value, grad, _ = _elementwise(Kind.SMOOTH_L1, args, reduction, weight, out, return_grad, beta=beta)
    return _result(value, grad)


@overload
def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = ..., full: bool = ...,
                     size_average: bool | None = ..., eps: float = ..., reduce: bool | None = ...,
                     reduction: str = ..., *, weight: ArrayLike | None = ..., num_threads: int | None = ...,
                     out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                     grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = ..., full: bool = ...,
                     size_average: bool | None = ..., eps: float = ..., reduce: bool | None = ...,
                     reduction: str = ..., *, weight: ArrayLike | None = ..., num_threads: int | None = ...,
                     out: FloatArray | None = ..., return_grad: Literal[True],
                     grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = ..., full: bool = ...,
                     size_average: bool | None = ..., eps: float = ..., reduce: bool | None = ...,
                     reduction: str = ..., *, weight: ArrayLike | None = ..., num_threads: int | None = ...,
                     out: FloatArray | None = ..., return_grad: bool = ...,
                     grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def poisson_nll_loss(input: ArrayLike, target: ArrayLike, log_input: bool = True, full: bool = False,
                     size_average: bool | None = None, eps: float = 1e-8, reduce: bool | None = None,
                     reduction: str = "mean", *, weight: ArrayLike | None = None,
                     num_threads: int | None = None, out: FloatArray | None = None,
                     return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Poisson negative log-likelihood, mirroring :func:`torch.nn.functional.poisson_nll_loss`.

    .. math::

        \ell = e^{x} - y\, x \quad (\texttt{log\_input=True}), \qquad
        \ell = x - y \log(x + \epsilon) \quad (\texttt{log\_input=False})

    With ``full=True`` the Stirling term :math:`y \log y - y + \tfrac12 \log(2 \pi y)` is added
    where :math:`y > 1` (as torch).  With a ``weight`` (a fastloss extension), ``"mean"`` is
    :math:`\sum w \ell / \sum w`.

    Parameters
    ----------
    input : array_like
        The predicted rate (or its log with ``log_input=True``), any shape, floating point.
    target : array_like
        Observed counts :math:`y` of ``input``'s shape.
    log_input : bool, optional
        Whether ``input`` is the log-rate; default True.
    full : bool, optional
        Add the Stirling approximation term; default False.
    size_average : None
        torch's deprecated alias of ``reduction``; anything but None raises ``ValueError``.
    eps : float, optional
        :math:`\epsilon`, used with ``log_input=False``; default 1e-8.
    reduce : None
        torch's deprecated alias of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    weight : array_like, optional
        Keyword-only.  Per-element weight broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a bad ``reduction``, ``weight`` or ``out``, or ``size_average`` /
        ``reduce`` given.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> log_rate, k = np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 10.0])
    >>> bool(np.isclose(fl.poisson_nll_loss(log_rate, k), np.mean(np.exp(log_rate) - k * log_rate)))
    True
    """
    _no_legacy(size_average, reduce)
    eps = V.check_real(eps, "eps")
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out, "poisson_nll_loss",
                   weight)
    kind = Kind.POISSON_LOG if V.check_bool(log_input, "log_input") else Kind.POISSON
    value, grad, _ = _elementwise(kind, args, reduction, weight, out, return_grad, eps=eps,
                                  full=V.check_bool(full, "full"))
    return _result(value, grad)


def _gaussian_var(var, shape, dtype):
    """torch's var rules for an input of ``shape`` -> (operand, var_rows, var array or None).

    A real number is used for every element; an array of input's shape is heteroscedastic; one of shape
    input.shape[:-1] or input.shape[:-1] + (1,) holds one variance per row (read in place); any other
    shape torch accepts (same ndim, exactly one mismatched dimension, of size 1) is materialised once.
    """
    if isinstance(var, numbers.Real) and not isinstance(var, (bool, np.ndarray)):
        v = V.check_real(var, "var")
        if v < 0:
            raise ValueError(f"var has negative entry/entries: {var!r}")
        return v, False, None
    v = V.float_array(var, "var", dtype=dtype)
    ndim = len(shape)
    if v.shape == shape:
        return v.reshape(-1), False, v
    if ndim >= 1 and (v.shape == shape[:-1] or (v.ndim == ndim and v.shape == shape[:-1] + (1,))):
        return v.reshape(-1), True, v
    if v.ndim == ndim and sum(b for a, b in zip(shape, v.shape) if a != b) == 1:
        return np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(-1), False, v
    raise ValueError(f"var is of incorrect size: var shape {v.shape} for input shape {shape} (expected the "
                     f"input's shape, or it with the last dimension removed or set to 1)")


@overload
def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = ..., eps: float = ...,
                      reduction: str = ..., *, weight: ArrayLike | None = ..., num_threads: int | None = ...,
                      out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                      grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = ..., eps: float = ...,
                      reduction: str = ..., *, weight: ArrayLike | None = ..., num_threads: int | None = ...,
                      out: FloatArray | None = ..., return_grad: Literal[True],
                      grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = ..., eps: float = ...,
                      reduction: str = ..., *, weight: ArrayLike | None = ..., num_threads: int | None = ...,
                      out: FloatArray | None = ..., return_grad: bool = ...,
                      grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="regression", grad=("input", "var"))
def gaussian_nll_loss(input: ArrayLike, target: ArrayLike, var: ArrayLike, full: bool = False,
                      eps: float = 1e-6, reduction: str = "mean", *, weight: ArrayLike | None = None,
                      num_threads: int | None = None, out: FloatArray | None = None,
                      return_grad: bool = False, grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""Gaussian negative log-likelihood, mirroring :func:`torch.nn.functional.gaussian_nll_loss`.

    .. math::

        v = \max(\mathrm{var}, \epsilon), \qquad
        \ell = \tfrac12 \bigl(\log v + (x - y)^2 / v\bigr)
               \ \bigl[+\ \tfrac12 \log(2\pi) \text{ if full}\bigr]

    As in torch, the gradient with respect to ``var`` passes through the :math:`\epsilon` clamp
    unchanged.  With a ``weight`` (a fastloss extension), ``"mean"`` is :math:`\sum w \ell / \sum w`.

    Parameters
    ----------
    input : array_like
        Predicted means :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape.
    var : float or array_like
        Variances: a real number for every element; an array of ``input``'s shape
        (heteroscedastic); one variance per row of the last axis (shape ``input.shape[:-1]`` or
        ``input.shape[:-1] + (1,)``, read in place); or any shape torch accepts (same ndim, one
        mismatched dimension of size 1).
    full : bool, optional
        Add the constant :math:`\tfrac12 \log 2\pi`; default False.
    eps : float, optional
        :math:`\epsilon`, the variance clamp; default 1e-6.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    weight : array_like, optional
        Keyword-only.  Per-element weight broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (grad_input, grad_var))``; ``grad_var`` has
        ``var``'s shape, and is None when ``var`` is a Python number.
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: ``(d loss / d input, d loss / d var)``.

    Raises
    ------
    ValueError
        A negative variance (naming its position, as torch), a ``var`` of an incompatible shape,
        mismatched shapes or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y, var = np.array([0.0, 1.0]), np.array([0.5, -1.0]), np.array([0.25, 2.0])
    >>> ref = 0.5 * (np.log(var) + (x - y) ** 2 / var)
    >>> bool(np.allclose(fl.gaussian_nll_loss(x, y, var, reduction="none"), ref))
    True
    """
    eps = V.check_real(eps, "eps")
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    g_in, g_var = V.grad_outs(grad_out, 2)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, g_in, "gaussian_nll_loss",
                   weight)
    x, shape = args[0], args[3]
    # var's shape rules refer to input's own shape (torch checks var against input before broadcasting)
    op, var_rows, varr = _gaussian_var(var, shape, x.dtype)
    var_shape = None if varr is None else (shape[:-1] + (1,) if var_rows else varr.shape)
    if varr is not None and x.shape != shape:      # a broadcast target: var follows input's broadcast
        op = np.ascontiguousarray(np.broadcast_to(varr.reshape(var_shape), x.shape)).reshape(-1)
        var_rows = False
    if var_rows and x.size == 0:    # no items (an empty last axis): no rows to give one variance each
        op, var_rows = np.zeros(0, x.dtype), False
    if g_var is not None and varr is None:
        raise ValueError("grad_out[1] must be None: var is a number, which gets no gradient")
    # var's gradient is computed per element of x, then summed to var's shape (in place when it has x's)
    own = g_var if varr is not None and varr.shape == x.shape else None
    gv_full = V.grad_buffer(own, x.shape, x.dtype, (x, op, input, target, var, weight, out, g_in),
                            name="grad_out[1]") if (return_grad and varr is not None) else None
    value, grad, bad = _elementwise(Kind.GAUSSIAN_NLL, args, reduction, weight, out, return_grad, eps=eps,
                                    full=V.check_bool(full, "full"), var=op, var_rows=var_rows,
                                    grad_var=gv_full)
    raise_first_bad(bad, BadValue(
        "var has negative entry/entries: var = {value} for the input element at position {position}",
        (("var", op, None),), shape=x.shape, locate=(lambda i: i // x.shape[-1]) if var_rows else None))
    if not return_grad:
        return value
    # grad_var: of var's shape, summed over the elements each variance served (grad_var passes the clamp)
    gvar = gv_full
    if gv_full is not None and gv_full is not own:
        gvar = V.unbroadcast(gv_full, var_shape).reshape(varr.shape)
        gvar = V.deliver_grad(g_var, gvar, (x, op, input, target, var, weight, out, grad), "grad_out[1]")
    return value, (grad, gvar)


@overload
def log_cosh_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *,
                  weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def log_cosh_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *,
                  weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def log_cosh_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *,
                  weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def log_cosh_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean", *,
                  weight: ArrayLike | None = None, num_threads: int | None = None,
                  out: FloatArray | None = None, return_grad: bool = False,
                  grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Log-cosh loss (no torch function).

    .. math::

        \ell = w \log\cosh(x - y) = w \bigl(|d| + \operatorname{log1p}(e^{-2|d|}) - \log 2\bigr),
        \quad d = x - y

    Computed without cancellation, so any finite :math:`d` (:math:`10^{30}` included) gives a
    finite loss, to full relative precision down to the smallest :math:`d` (where the stable form
    above would be the difference of terms near 0.7): for :math:`a = |d| < 1`,
    :math:`\log\cosh d = a^2 P(a^2)` and :math:`\tanh a = a R(a^2)`; for :math:`a \ge 1`, from
    :math:`t = e^{-2a}`, :math:`(a - \log 2) + t Q(t)` and :math:`1 - t S(t)` -- fitted polynomials
    (``src_c/fl_math.h``), within ~1 ulp (float32) / ~2 ulp (float64).  The gradient is
    :math:`w \tanh(d)`.  With a ``weight``, ``"mean"`` is :math:`\sum \ell / \sum w`.

    Parameters
    ----------
    input : array_like
        Predictions :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    weight : array_like, optional
        Keyword-only.  Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a ``weight`` that does not broadcast, a bad ``reduction`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> d = np.array([0.1, -2.0, 3.0])
    >>> bool(np.allclose(fl.log_cosh_loss(d, np.zeros(3), reduction="none"), np.log(np.cosh(d))))
    True
    >>> print(fl.log_cosh_loss(np.array([1e30]), np.zeros(1)))      # cosh(1e30) overflows; this does not
    1e+30
    """
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out)
    value, grad, _ = _elementwise(Kind.LOG_COSH, args, reduction, weight, out, return_grad)
    return _result(value, grad)


@overload
def quantile_loss(input: ArrayLike, target: ArrayLike, q: float = ..., reduction: str = ..., *,
                  weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def quantile_loss(input: ArrayLike, target: ArrayLike, q: float = ..., reduction: str = ..., *,
                  weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def quantile_loss(input: ArrayLike, target: ArrayLike, q: float = ..., reduction: str = ..., *,
                  weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def quantile_loss(input: ArrayLike, target: ArrayLike, q: float = 0.5, reduction: str = "mean", *,
                  weight: ArrayLike | None = None, num_threads: int | None = None,
                  out: FloatArray | None = None, return_grad: bool = False,
                  grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Quantile (pinball) loss (no torch function).

    With :math:`u = y - x` and quantile level :math:`q`,

    .. math::

        \ell = w \max\bigl(q\, u,\ (q - 1)\, u\bigr), \qquad 0 < q < 1

    The gradient at :math:`u = 0` is :math:`\tfrac12 - q` (the middle of the subgradient, what
    autograd through ``torch.maximum`` gives).  With a ``weight``, ``"mean"`` is
    :math:`\sum \ell / \sum w`.

    Parameters
    ----------
    input : array_like
        Predicted quantiles :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape.
    q : float, optional
        Quantile level in (0, 1); default 0.5 (half the absolute error).
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    weight : array_like, optional
        Keyword-only.  Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        ``q`` outside (0, 1), mismatched shapes, a bad ``reduction``, ``weight`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 1.0])
    >>> u = y - x
    >>> ref = np.maximum(0.9 * u, (0.9 - 1) * u)
    >>> print(ref.round(6) + 0.0)
    [0.9 0.  0.2]
    >>> bool(np.allclose(fl.quantile_loss(x, y, q=0.9, reduction="none"), ref))
    True
    """
    q = V.check_real(q, "q", low=0.0, high=1.0, low_open=True, high_open=True)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out)
    value, grad, _ = _elementwise(Kind.QUANTILE, args, reduction, weight, out, return_grad, q=q)
    return _result(value, grad)


@overload
def mape_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, eps: float | None = ...,
              weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def mape_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, eps: float | None = ...,
              weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def mape_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, eps: float | None = ...,
              weight: ArrayLike | None = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def mape_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean", *, eps: float | None = None,
              weight: ArrayLike | None = None, num_threads: int | None = None, out: FloatArray | None = None,
              return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Mean absolute percentage error, as a fraction (no torch function).

    .. math::

        \ell = w\, \frac{|y - x|}{|y|} \qquad
        \Bigl(\frac{|y - x|}{\max(|y|, \epsilon)} \text{ when } \epsilon \text{ is given}\Bigr)

    A zero target is an error unless ``eps`` is given; with it, the denominator is that of
    scikit-learn's ``mean_absolute_percentage_error``.  With a ``weight``, ``"mean"`` is
    :math:`\sum \ell / \sum w`.

    Parameters
    ----------
    input : array_like
        Predictions :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    eps : float, optional
        Keyword-only.  :math:`\epsilon > 0`, the smallest denominator; None (default): a zero
        target raises ``ValueError``.
    weight : array_like, optional
        Keyword-only.  Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        A zero target without ``eps`` (naming its position), ``eps <= 0``, mismatched shapes, a
        bad ``reduction``, ``weight`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y = np.array([110.0, 45.0]), np.array([100.0, 50.0])
    >>> print(np.mean(np.abs(y - x) / np.abs(y)), bool(np.isclose(fl.mape_loss(x, y), 0.1)))
    0.1 True
    """
    e = 0.0 if eps is None else V.check_real(eps, "eps", low=0.0, low_open=True)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out)
    value, grad, bad = _elementwise(Kind.MAPE, args, reduction, weight, out, return_grad, eps=e)
    raise_first_bad(bad, BadValue("mape_loss: target is 0 at position {position}; pass eps= to divide by "
                                  "max(|target|, eps)", (("target", args[1], None),)))
    return _result(value, grad)


@overload
def smape_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, weight: ArrayLike | None = ...,
               num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def smape_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, weight: ArrayLike | None = ...,
               num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def smape_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, weight: ArrayLike | None = ...,
               num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def smape_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean", *,
               weight: ArrayLike | None = None, num_threads: int | None = None, out: FloatArray | None = None,
               return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Symmetric mean absolute percentage error (no torch function).

    .. math::

        \ell = w\, \frac{2 |y - x|}{|y| + |x|} \qquad (0, \text{ with gradient 0, where } x = y = 0)

    With a ``weight``, ``"mean"`` is :math:`\sum \ell / \sum w`.

    Parameters
    ----------
    input : array_like
        Predictions :math:`x`, any shape, floating point.
    target : array_like
        Targets :math:`y` of ``input``'s shape.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    weight : array_like, optional
        Keyword-only.  Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a ``weight`` that does not broadcast, a bad ``reduction`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y = np.array([110.0, 0.0, 1.0]), np.array([100.0, 0.0, -1.0])
    >>> loss = fl.smape_loss(x, y, reduction="none")
    >>> both_zero = (x == 0) & (y == 0)
    >>> ref = np.where(both_zero, 0.0, 2 * np.abs(y - x) / np.where(both_zero, 1.0, np.abs(y) + np.abs(x)))
    >>> print(ref.round(6), bool(np.allclose(loss, ref)))
    [0.095238 0.       2.      ] True
    """
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out)
    value, grad, _ = _elementwise(Kind.SMAPE, args, reduction, weight, out, return_grad)
    return _result(value, grad)


@overload
def msle_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, weight: ArrayLike | None = ...,
              num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def msle_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, weight: ArrayLike | None = ...,
              num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def msle_loss(input: ArrayLike, target: ArrayLike, reduction: str = ..., *, weight: ArrayLike | None = ...,
              num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="regression")
def msle_loss(input: ArrayLike, target: ArrayLike, reduction: str = "mean", *,
              weight: ArrayLike | None = None, num_threads: int | None = None, out: FloatArray | None = None,
              return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Mean squared logarithmic error (no torch function).

    .. math::

        \ell = w \bigl(\operatorname{log1p}(x) - \operatorname{log1p}(y)\bigr)^2

    With a ``weight``, ``"mean"`` is :math:`\sum \ell / \sum w`.

    Parameters
    ----------
    input : array_like
        Predictions :math:`x > -1`, any shape, floating point.
    target : array_like
        Targets :math:`y > -1` of ``input``'s shape.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    weight : array_like, optional
        Keyword-only.  Per-element weight :math:`w` broadcastable to ``input``'s shape.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        A value of ``input`` or ``target`` <= -1 (naming the argument and its first position),
        mismatched shapes, a bad ``reduction``, ``weight`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y = np.array([0.0, 3.0, 9.0]), np.array([1.0, 3.0, 99.0])
    >>> bool(np.isclose(fl.msle_loss(x, y), np.mean((np.log1p(x) - np.log1p(y)) ** 2)))
    True
    """
    args = _inputs(input, target, reduction, num_threads, out, return_grad, grad_out)
    value, grad, bad = _elementwise(Kind.MSLE, args, reduction, weight, out, return_grad)
    raise_first_bad(bad, BadValue("msle_loss: {name} has value {value} <= -1 at position {position} (log1p "
                                  "needs values > -1)", (("input", args[0], lambda v: v <= -1), ("target", args[1], None))))
    return _result(value, grad)


@overload
def gaussian_kl_loss(mu: ArrayLike, logvar: ArrayLike, reduction: str = ..., *,
                     weight: ArrayLike | None = ..., num_threads: int | None = ...,
                     out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                     grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def gaussian_kl_loss(mu: ArrayLike, logvar: ArrayLike, reduction: str = ..., *,
                     weight: ArrayLike | None = ..., num_threads: int | None = ...,
                     out: FloatArray | None = ..., return_grad: Literal[True],
                     grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def gaussian_kl_loss(mu: ArrayLike, logvar: ArrayLike, reduction: str = ..., *,
                     weight: ArrayLike | None = ..., num_threads: int | None = ...,
                     out: FloatArray | None = ..., return_grad: bool = ...,
                     grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="regression", grad=("mu", "logvar"), items="rows")
def gaussian_kl_loss(mu: ArrayLike, logvar: ArrayLike, reduction: str = "mean", *,
                     weight: ArrayLike | None = None, num_threads: int | None = None,
                     out: FloatArray | None = None, return_grad: bool = False,
                     grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""KL divergence of a diagonal Gaussian from the standard normal: the VAE latent term.

    For each row (the last axis is the latent dimension :math:`D`),

    .. math::

        \ell = \operatorname{KL}\bigl(\mathcal N(\mu, e^{\lambda}) \,\|\, \mathcal N(0, I)\bigr)
             = -\tfrac12 \sum_{j=1}^{D} \bigl(1 + \lambda_j - \mu_j^2 - e^{\lambda_j}\bigr)

    with :math:`\lambda` the log-variance, computed as
    :math:`\tfrac12 \sum_j \bigl(\mu_j^2 + (e^{\lambda_j} - 1 - \lambda_j)\bigr)`, two terms :math:`\ge 0`, so that
    a latent near the prior (:math:`\lambda, \mu \to 0`) keeps its relative precision (the form above cancels
    there).  ``"mean"`` averages over the rows
    (:math:`\sum w \ell / \sum w` with ``weight``), ``"sum"`` sums them.

    Parameters
    ----------
    mu : array_like
        Means, shape (..., D), floating point.
    logvar : array_like
        Log-variances :math:`\lambda` of ``mu``'s shape.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: one value per row, shape ``mu.shape[:-1]``; ``"sum"``; ``"mean"`` (default).
    weight : array_like, optional
        Keyword-only.  Per-row weight broadcastable to ``mu.shape[:-1]``.  None: 1.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (grad_mu, grad_logvar))``.
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the row losses for
        ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: ``(d loss / d mu, d loss / d logvar)``.

    Raises
    ------
    ValueError
        Mismatched shapes, 0-d input, a bad ``reduction``, ``weight`` or ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> mu = np.array([[0.0, 1.0], [0.5, -0.5]])
    >>> logvar = np.array([[0.0, 0.0], [-1.0, 1.0]])
    >>> ref = -0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1)
    >>> bool(np.allclose(fl.gaussian_kl_loss(mu, logvar, reduction="none"), ref))
    True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    nt = resolve_num_threads(num_threads)
    m = V.prediction(mu, "mu")
    lv = V.float_array(logvar, "logvar", dtype=m.dtype)
    V.check_same_shape(m, lv, "mu", "logvar")
    if m.ndim == 0:
        raise ValueError("mu must have at least 1 dimension (the latent axis), got a 0-d array")
    batch, D = m.shape[:-1], m.shape[-1]
    rows = int(np.prod(batch, dtype=np.int64))
    w = V.broadcast_weight(weight, batch, m.dtype, "weight")
    w = 1.0 if w is None else (w if isinstance(w, float) else w.reshape(-1))
    weighted_mean = weight is not None and reduction == "mean"
    o = V.output_array(out, batch, m.dtype) if reduction == "none" else None
    gm, gl = V.grad_buffers(grad_out, (m.shape, m.shape), m.dtype, (mu, logvar, weight, m, lv, w, o)) \
        if return_grad else (None, None)
    scale = 1.0 / rows if (reduction == "mean" and rows) else 1.0
    loss_sum, denom, _ = E.K.gaussian_kl(m.reshape(-1), lv.reshape(-1), w, rows, D, None if o is None else
                                         o.reshape(-1), gm, gl, scale, nt, weighted_mean=weighted_mean)
    value = o if reduction == "none" else V.reduced(loss_sum, denom if weighted_mean else rows, reduction,
                                                    m.dtype)
    return (value, (gm, gl)) if return_grad else value
