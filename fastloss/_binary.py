"""Elementwise binary and probabilistic losses: binary cross-entropy on probabilities and on logits,
sigmoid focal loss, binary hinge loss and pointwise KL divergence.

Each function validates and converts its arguments, then calls the one entry of
``fastloss/_kernels/elementwise.pyx`` with its loss ``Kind`` and parameters (``fastloss/_elementwise.py``);
the arithmetic lives there.
"""
from __future__ import annotations

from typing import Literal, overload

import numpy as np

from . import _elementwise as E
from . import _validate as V
from ._elementwise import Kind
from ._errors import BadValue, raise_first_bad
from ._losses import loss_info
from ._threads import resolve_num_threads
from ._typing import ArrayLike, FloatArray, Loss, LossGrad

__all__ = ["binary_cross_entropy", "binary_cross_entropy_with_logits", "sigmoid_focal_loss", "hinge_loss",
           "kl_div"]


def _reject_legacy(size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")


def _pair(input, target, input_name="input", target_name="target", broadcast=False):
    """Prediction and target as C-contiguous arrays of the prediction's float dtype and the same shape;
    with ``broadcast`` (where the reference broadcasts them silently: kl_div) the broadcast shape.
    Returns (x, y, the prediction's own shape)."""
    if V.plain_pair(input, target):       # the usual call: nothing to convert, one shape
        return input, target, input.shape
    x = V.prediction(input, input_name)
    y = V.float_array(target, target_name, dtype=x.dtype)
    shape = x.shape
    if broadcast and x.shape != y.shape:
        (x, y), _ = V.broadcast_together([x, y], [input_name, target_name])
    V.check_same_shape(x, y, input_name, target_name)
    return x, y, shape


def _finish(kernel_result, reduction, dtype, out, grad, count):
    """The public result of a run (``count``: the mean's divisor)."""
    value = out if reduction == "none" else V.reduced(kernel_result[0], count, reduction, dtype)
    return (value, grad) if grad is not None else value


@overload
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                         size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                         num_threads: int | None = ..., out: FloatArray | None = ...,
                         return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                         size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                         num_threads: int | None = ..., out: FloatArray | None = ...,
                         return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                         size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                         num_threads: int | None = ..., out: FloatArray | None = ...,
                         return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="binary")
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean", *, num_threads: int | None = None,
                         out: FloatArray | None = None, return_grad: bool = False,
                         grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Binary cross-entropy between probabilities and targets, mirroring
    :func:`torch.nn.functional.binary_cross_entropy`.

    .. math::

        \ell = -w \bigl(y \max(\log p, -100) + (1 - y) \max(\log(1 - p), -100)\bigr)

    The logs are clamped at -100 as torch does, so :math:`p` exactly 0 or 1 gives a finite loss (at
    most :math:`100 w`).  ``"mean"`` divides by the number of elements (nan for empty input).
    With ``return_grad=True`` the gradient is torch's autograd formula
    :math:`w (p - y) / \max((1 - p) p,\ 10^{-12})` (times :math:`1/n` for ``"mean"``), so it is
    :math:`\pm 10^{12} w` at :math:`p \in \{0, 1\}` with :math:`y \ne p`.

    Parameters
    ----------
    input : array_like
        Probabilities :math:`p` in [0, 1], any shape, floating point.
    target : array_like
        Targets :math:`y` in [0, 1] of ``input``'s shape (soft targets allowed).
    weight : array_like, optional
        Per-element weight broadcastable to ``input``'s shape (scalars and last-axis vectors are
        read in place).  None: 1.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default) over the elements.
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
        An element of ``input`` or ``target`` outside [0, 1] (nan included): the message names the
        argument, the first such position and its value (torch raises ``RuntimeError`` there).
        Also mismatched shapes, a bad ``reduction`` or ``weight``.

    See Also
    --------
    binary_cross_entropy_with_logits : the same loss on logits, stable for any logit.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> p = np.array([0.9, 0.2, 0.0, 1.0])
    >>> y = np.array([1.0, 0.0, 1.0, 1.0])
    >>> with np.errstate(divide="ignore"):
    ...     ref = -(y * np.maximum(np.log(p), -100) + (1 - y) * np.maximum(np.log(1 - p), -100))
    >>> print(ref.round(4) + 0.0)
    [  0.1054   0.2231 100.       0.    ]
    >>> bool(np.allclose(fl.binary_cross_entropy(p, y, reduction="none"), ref))
    True
    """
    _reject_legacy(size_average, reduce)
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    nt = resolve_num_threads(num_threads)
    x, y, _ = _pair(input, target)
    w = E.operand(weight, x, "weight")
    o, grad, scale = E.buffers(x, reduction, out, return_grad, x.size, grad_out,
                               (y, w, input, target, weight))
    res = E.K.elementwise(Kind.BCE, x, y, w, o, grad, scale, nt, reused=E.reused(out, grad_out))
    raise_first_bad(res[2], BadValue(
        "binary_cross_entropy: all elements of {name} should be between 0 and 1; got {value!r} at position "
        "{position}", (("input", x, lambda v: not 0 <= v <= 1), ("target", y, None))))
    return _finish(res, reduction, x.dtype, o, grad, x.size)


@overload
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                                     size_average: bool | None = ..., reduce: bool | None = ...,
                                     reduction: str = ..., pos_weight: ArrayLike | None = ..., *,
                                     num_threads: int | None = ..., out: FloatArray | None = ...,
                                     return_grad: Literal[False] = ...,
                                     grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                                     size_average: bool | None = ..., reduce: bool | None = ...,
                                     reduction: str = ..., pos_weight: ArrayLike | None = ..., *,
                                     num_threads: int | None = ..., out: FloatArray | None = ...,
                                     return_grad: Literal[True],
                                     grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                                     size_average: bool | None = ..., reduce: bool | None = ...,
                                     reduction: str = ..., pos_weight: ArrayLike | None = ..., *,
                                     num_threads: int | None = ..., out: FloatArray | None = ...,
                                     return_grad: bool = ...,
                                     grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="binary")
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: ArrayLike | None = None, *,
                                     num_threads: int | None = None, out: FloatArray | None = None,
                                     return_grad: bool = False,
                                     grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Binary cross-entropy on logits, mirroring
    :func:`torch.nn.functional.binary_cross_entropy_with_logits`.

    With :math:`\sigma` the sigmoid, weight :math:`w` and positive weight :math:`p_w`,

    .. math::

        \ell = -w \bigl(p_w\, y \log \sigma(x) + (1 - y) \log(1 - \sigma(x))\bigr)
             = w \bigl((1 - y)\, x + l\, (\max(-x, 0) + \operatorname{log1p}(e^{-|x|}))\bigr),
        \quad l = 1 + (p_w - 1)\, y

    The second (stable) form is the one computed: no overflow for any finite :math:`x`.
    ``"mean"`` divides by the number of elements (weights do not enter the denominator, as torch).
    Targets may be soft (any value; torch does not check them either).

    Parameters
    ----------
    input : array_like
        Logits of any shape, floating point.
    target : array_like
        Targets of ``input``'s shape (any numeric dtype).
    weight : array_like, optional
        Per-element weight broadcastable to ``input``'s shape.  Scalars and last-axis vectors are
        read in place; any other broadcast shape is materialised once.  None: 1.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default) over the elements.
    pos_weight : array_like, optional
        :math:`p_w`, broadcast along the last axis: shape (C,) for (N, C) input (as torch), or a
        scalar.  None: 1.
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
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise
        losses for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a ``weight`` / ``pos_weight`` that does not broadcast, a bad
        ``reduction`` or ``out``, or ``size_average`` / ``reduce`` given.

    See Also
    --------
    binary_cross_entropy : the same loss on probabilities.
    sigmoid_focal_loss : with a focusing term.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x = np.array([[3.0, -1.0], [0.5, -40.0]])
    >>> y = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> sig = 1 / (1 + np.exp(-x))
    >>> ref = -(y * np.log(sig) + (1 - y) * np.log(1 - sig))
    >>> bool(np.allclose(fl.binary_cross_entropy_with_logits(x, y, reduction="none"), ref))
    True
    >>> loss = fl.binary_cross_entropy_with_logits(x, y, pos_weight=np.array([2.0, 1.0]))
    >>> bool(np.isclose(loss, np.mean(ref * np.where(y == 1, [2.0, 1.0], 1.0))))
    True
    """
    _reject_legacy(size_average, reduce)
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    nt = resolve_num_threads(num_threads)
    x, y, _ = _pair(input, target)
    w = 1.0 if weight is None else E.operand(weight, x, "weight")
    pw = None if pos_weight is None else E.operand(pos_weight, x, "pos_weight")   # None: torch's l = 1
    o, grad, scale = E.buffers(x, reduction, out, return_grad, x.size, grad_out,
                               (y, w, pw, input, target, weight, pos_weight))
    res = E.K.elementwise(Kind.BCE_LOGITS, x, y, w, o, grad, scale, nt, pos_weight=pw,
                          reused=E.reused(out, grad_out))
    return _finish(res, reduction, x.dtype, o, grad, x.size)


@overload
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="binary", grad=("inputs",))
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none", *, num_threads: int | None = None,
                       out: FloatArray | None = None, return_grad: bool = False,
                       grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Sigmoid (binary) focal loss on logits, mirroring :func:`torchvision.ops.sigmoid_focal_loss`.

    With :math:`p = \sigma(x)`, :math:`\operatorname{ce}` the binary cross-entropy with logits,
    :math:`p_t = p\, t + (1 - p)(1 - t)` and :math:`\alpha_t = \alpha t + (1 - \alpha)(1 - t)`,

    .. math::

        \ell = \alpha_t \operatorname{ce}(x, t)\, (1 - p_t)^{\gamma}

    ``alpha < 0`` disables the weighting (:math:`\alpha_t = 1`); ``gamma = 0`` gives plain binary
    cross-entropy with logits (:math:`0^0 = 1` as ``torch.pow``).  The default ``reduction`` is
    ``"none"``, as in torchvision.  Computed stably from the logits: :math:`p` and :math:`1 - p`
    both come from :math:`e^{-|x|}`, and :math:`1 - p_t` is formed as :math:`p (1 - t) + (1 - p) t`,
    and the gradient's :math:`p - t` as :math:`p (1 - t) - (1 - p) t`, so logits of :math:`\pm 10^4`
    neither overflow nor cancel and confident inputs (:math:`x = 40, t = 1`) keep the relative
    precision of their tiny loss and gradient (torchvision's literal formula loses
    :math:`1 - p_t` to rounding for large :math:`|x|`; elsewhere the values agree within rounding).
    The gradient is autograd's through torchvision's formula, except that the
    :math:`(1 - p_t)^{\gamma - 1}` term is taken at its limit 0 where :math:`1 - p_t` is exactly 0
    (autograd gives nan there when :math:`0 < \gamma < 1`).

    Parameters
    ----------
    inputs : array_like
        Logits of any shape, floating point (torchvision's argument name).
    targets : array_like
        Binary (or soft) targets :math:`t` of ``inputs``' shape.
    alpha : float, optional
        Weight of the positive class in [0, 1], or negative to disable; default 0.25 (torchvision's;
        some libraries default to no weighting, see the "Switching from" guide).
    gamma : float, optional
        Focusing exponent; default 2.
    reduction : {"none", "mean", "sum"}, optional
        ``"none"`` (default): the elementwise losses; ``"mean"`` over the elements; ``"sum"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``inputs``,
        computed in the same pass (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        The elementwise losses for ``"none"``; a NumPy scalar of the computation dtype otherwise.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(inputs), of ``inputs``' shape.

    Raises
    ------
    ValueError
        Mismatched shapes or a bad ``reduction``.
    TypeError
        ``alpha`` or ``gamma`` that is not a real number.

    See Also
    --------
    softmax_focal_loss : the multi-class (softmax) focal loss.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x = np.array([2.0, -1.0, 0.5, -3.0])
    >>> t = np.array([1.0, 0.0, 0.0, 1.0])
    >>> p = 1 / (1 + np.exp(-x))
    >>> ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    >>> p_t = p * t + (1 - p) * (1 - t)
    >>> ref = (0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t) ** 2
    >>> bool(np.allclose(fl.sigmoid_focal_loss(x, t), ref))
    True
    >>> bool(np.isclose(fl.sigmoid_focal_loss(x, t, alpha=-1, reduction="sum"), np.sum(ce * (1 - p_t) ** 2)))
    True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    a = alpha if type(alpha) is float else V.check_real(alpha, "alpha")    # (inline: the usual floats)
    g = gamma if type(gamma) is float else V.check_real(gamma, "gamma")
    nt = resolve_num_threads(num_threads)
    x, y, _ = _pair(inputs, targets, "inputs", "targets")     # (torchvision's BCE-with-logits: same shape)
    o, grad, scale = E.buffers(x, reduction, out, return_grad, x.size, grad_out, (y, inputs, targets))
    res = E.K.elementwise(Kind.FOCAL, x, y, 1.0, o, grad, scale, nt, alpha=a, gamma=g,
                          reused=E.reused(out, grad_out))
    return _finish(res, reduction, x.dtype, o, grad, x.size)


@overload
def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., squared: bool = ...,
               reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., squared: bool = ...,
               reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = ..., squared: bool = ...,
               reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
               return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="binary")
def hinge_loss(input: ArrayLike, target: ArrayLike, margin: float = 1.0, squared: bool = False,
               reduction: str = "mean", *, num_threads: int | None = None, out: FloatArray | None = None,
               return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Binary SVM hinge loss on scores (no torch function).

    .. math::

        \ell = \max(0,\ m - y s)

    for targets :math:`y \in \{-1, +1\}`, or its square with ``squared=True``.  The gradient is
    :math:`-y` where :math:`m - y s > 0`
    and 0 elsewhere (the subgradient at the hinge is 0, like ``relu``'s in torch); squared:
    :math:`-2 y \max(0, m - y s)`.  A nan score gives a nan loss and gradient.

    Parameters
    ----------
    input : array_like
        Scores :math:`s` of any shape, floating point.
    target : array_like
        Labels -1 or +1 of ``input``'s shape (any numeric dtype).
    margin : float, optional
        :math:`m`; default 1.
    squared : bool, optional
        Square the hinge (the L2-SVM loss); default False.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default) over the elements.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses).
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
        A target other than -1 or +1 (nan included), naming its first position and value; also
        mismatched shapes or a bad ``reduction``.
    TypeError
        ``squared`` that is not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> s = np.array([2.0, 0.3, -0.5, 0.1])
    >>> y = np.array([1, 1, -1, -1])
    >>> print(np.maximum(0, 1 - y * s))
    [0.  0.7 0.5 1.1]
    >>> bool(np.allclose(fl.hinge_loss(s, y, reduction="none"), np.maximum(0, 1 - y * s)))
    True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    m = V.check_real(margin, "margin")
    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"squared must be a bool, got {squared!r}")
    nt = resolve_num_threads(num_threads)
    x, y, _ = _pair(input, target)
    o, grad, scale = E.buffers(x, reduction, out, return_grad, x.size, grad_out, (y, input, target))
    res = E.K.elementwise(Kind.HINGE, x, y, 1.0, o, grad, scale, nt, margin=m, squared=squared,
                          reused=E.reused(out, grad_out))
    raise_first_bad(res[2], BadValue("hinge_loss: target must be -1 or +1; got {value!r} at position {position}",
                                     (("target", y, None),)))
    return _finish(res, reduction, x.dtype, o, grad, x.size)


@overload
def kl_div(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
           reduction: str = ..., log_target: bool = ..., *, num_threads: int | None = ...,
           out: FloatArray | None = ..., return_grad: Literal[False] = ...,
           grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def kl_div(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
           reduction: str = ..., log_target: bool = ..., *, num_threads: int | None = ...,
           out: FloatArray | None = ..., return_grad: Literal[True],
           grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def kl_div(input: ArrayLike, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
           reduction: str = ..., log_target: bool = ..., *, num_threads: int | None = ...,
           out: FloatArray | None = ..., return_grad: bool = ...,
           grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="binary", batchmean=True)
def kl_div(input: ArrayLike, target: ArrayLike, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False, *, num_threads: int | None = None,
           out: FloatArray | None = None, return_grad: bool = False,
           grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Pointwise Kullback-Leibler divergence, mirroring :func:`torch.nn.functional.kl_div`.

    ``input`` holds log-probabilities :math:`x`; the target :math:`t` holds probabilities, or
    log-probabilities with ``log_target=True``:

    .. math::

        \ell = t (\log t - x) \quad (0 \text{ where } t = 0), \qquad
        \ell = e^{t} (t - x) \quad (\texttt{log\_target=True})

    Reductions: ``"none"``, ``"sum"``, ``"mean"`` (over all elements: torch warns that this is
    not the true KL divergence; fastloss does not warn) and ``"batchmean"`` (the sum divided by
    ``input.shape[0]``: the KL divergence per sample; just the sum for 0-d input, as torch).
    The gradient with respect to ``input`` is :math:`-t` (or :math:`-e^{t}`) times the reduction's
    scale.

    Parameters
    ----------
    input : array_like
        Log-probabilities, any shape, floating point.
    target : array_like
        Probabilities (or log-probabilities) broadcastable with ``input`` (silently, as torch); the
        result has the broadcast shape, ``"batchmean"`` divides by ``input.shape[0]`` and the
        gradient is summed to ``input``'s shape.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "batchmean", "sum", "none"}, optional
        Default ``"mean"``, as torch (``"batchmean"`` is the mathematically correct choice).
    log_target : bool, optional
        Whether ``target`` holds log-probabilities; default False.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype, or the elementwise losses for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a bad ``reduction``, or ``size_average`` / ``reduce`` given.
    TypeError
        ``log_target`` that is not a bool.

    See Also
    --------
    distillation_loss : KL divergence between two softmax distributions of logits.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> q = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])      # target distributions
    >>> logp = np.log(np.array([[0.4, 0.4, 0.2], [0.3, 0.3, 0.4]]))
    >>> terms = np.where(q > 0, q * (np.log(np.where(q > 0, q, 1)) - logp), 0.0)
    >>> bool(np.isclose(fl.kl_div(logp, q, reduction="batchmean"), terms.sum() / 2))
    True
    """
    _reject_legacy(size_average, reduce)
    V.check_reduction(reduction, ("none", "batchmean", "sum", "mean"), out=out, return_grad=return_grad,
                      grad_out=grad_out)
    if not isinstance(log_target, (bool, np.bool_)):
        raise TypeError(f"log_target must be a bool, got {log_target!r}")
    nt = resolve_num_threads(num_threads)
    x, y, shape = _pair(input, target, broadcast=True)
    count = x.size
    if reduction == "batchmean":       # torch divides by input.size(0): input's own first axis
        if len(shape) == 0:
            reduction = "sum"
        else:
            count = shape[0]
    broadcast = x.shape != shape       # (the gradient is summed back to input's shape, then delivered)
    o, grad, scale = E.buffers(x, reduction, out, return_grad, count, None if broadcast else grad_out,
                               (y, input, target))
    res = E.K.elementwise(Kind.KL, x, y, 1.0, o, grad, scale, nt, log_target=log_target,
                          reused=E.reused(out, None if broadcast else grad_out))
    if grad is not None and broadcast:
        grad = V.deliver_grad(grad_out, V.unbroadcast(grad, shape), (x, y, o, input, target))
    return _finish(res, reduction, x.dtype, o, grad, count)
