"""Classification losses: the cross-entropy family, focal, multi-class margin and distillation.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/classification.pyx``; the arithmetic lives there.
"""
from __future__ import annotations

import math
from typing import Any, Literal, cast, overload

import numpy as np

from . import _validate as V
from ._errors import BadLabel, raise_first_bad
from ._kernels import load
from ._losses import loss_info
from ._threads import resolve_num_threads
from ._typing import ArrayLike, FloatArray, Loss, LossGrad, NDArray

_K = load("classification")

__all__ = ["cross_entropy", "nll_loss", "softmax_focal_loss", "multi_margin_loss", "distillation_loss",
           "class_balanced_weights"]


_IGNORE_HINT = " (a label value to skip; -100 by default, as torch; any value no label takes skips none)"


def _finish(kernel_result, reduction, dtype, out, grad, count=None, labels=None, n_classes=None,
            ignore_index=None, label_name="target"):
    """Turn a kernel's (loss_sum, denom_sum, first_bad) into the public result."""
    loss_sum, denom_sum, first_bad = kernel_result
    if first_bad >= 0:
        raise_first_bad(first_bad, BadLabel(labels, n_classes, ignore_index, label_name))
    if reduction == "none":
        value = out
    else:
        value = V.reduced(loss_sum, denom_sum if count is None else count, reduction, dtype)
        if count is None and denom_sum == 0 and reduction == "mean":
            # every target weighs 0 (or is ignored): torch's weighted mean is nan -- its 0 / 0, to which label
            # smoothing's terms (a sum that is not 0, over the same 0) add nothing but nan.  (After reduced():
            # fl.partial's sink takes the sums themselves.)
            value = type(value)(np.nan)
    return (value, grad) if grad is not None else value


@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
                  reduction: str = ..., label_smoothing: float = ..., *, num_threads: int | None = ...,
                  out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                  grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
                  reduction: str = ..., label_smoothing: float = ..., *, num_threads: int | None = ...,
                  out: FloatArray | None = ..., return_grad: Literal[True],
                  grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
                  reduction: str = ..., label_smoothing: float = ..., *, num_threads: int | None = ...,
                  out: FloatArray | None = ..., return_grad: bool = ...,
                  grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="classification", items="class")
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  size_average: bool | None = None, ignore_index: int = -100, reduce: bool | None = None,
                  reduction: str = "mean", label_smoothing: float = 0.0, *, num_threads: int | None = None,
                  out: FloatArray | None = None, return_grad: bool = False,
                  grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Softmax cross-entropy between logits and class indices or class probabilities.

    Mirrors :func:`torch.nn.functional.cross_entropy`.  With
    :math:`\operatorname{lse}(x_i) = \log \sum_j e^{x_{ij}}`, class weights :math:`w` (all 1 when
    ``weight`` is None) and label smoothing :math:`\varepsilon` over :math:`C` classes, the loss of
    item :math:`i` with class index :math:`y_i` is

    .. math::

        \ell_i = (1 - \varepsilon)\, w_{y_i} \bigl(\operatorname{lse}(x_i) - x_{i y_i}\bigr)
                 + \frac{\varepsilon}{C} \sum_{j=1}^{C} w_j \bigl(\operatorname{lse}(x_i) - x_{ij}\bigr)

    and ``"mean"`` is :math:`\sum_i \ell_i / \sum_{i:\, y_i \ne \text{ignore\_index}} w_{y_i}`
    (torch's rule: the summed weights of the non-ignored targets, not the item count).  With class
    probabilities :math:`t_i` as target,
    :math:`\ell_i = -\sum_j w_j t'_{ij} \log \operatorname{softmax}(x_i)_j` with
    :math:`t' = (1 - \varepsilon) t + \varepsilon / C`, and ``"mean"`` divides by the number of
    items.

    The log-sum-exp is shifted by the row maximum and every term is formed from shifted logits, so
    float32 stays accurate for logits of magnitude :math:`10^4`.  Edge cases, as in torch: ``-inf``
    logits (masked classes) are fine; a row with a ``+inf`` logit or with only ``-inf`` logits gives
    nan; ``"mean"`` over no non-ignored target is nan; an ignored item has loss 0 and gradient 0.

    Parameters
    ----------
    input : array_like
        Logits of shape (N, C), (C,) (one unbatched item) or (N, C, d1, d2, ...) (class axis 1,
        read in place without a transposing copy).  float32 or float64 (float16/bfloat16 compute in
        float32); a NumPy array, a CPU torch tensor or any array-like.
    target : array_like
        Class indices of shape (N,), () or (N, d1, d2, ...), any integer dtype (int32/int64 are
        read without a copy); or class probabilities of ``input``'s shape (a floating dtype).
    weight : array_like, optional
        Class weights of shape (C,).  None (default): all 1.
    size_average : None
        torch's deprecated alias of ``reduction``; anything but None raises ``ValueError``.
    ignore_index : int, optional
        Class index whose items are skipped (loss 0, no gradient, not counted by ``"mean"``).
        Default -100, as torch.  Applies to class-index targets only; with probability targets a
        value >= 0 raises ``ValueError`` (torch's check).
    reduce : None
        torch's deprecated alias of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: one loss per item, shape (N, d1, ...) (``()`` for a (C,) input); ``"sum"``;
        ``"mean"`` (default) as above.
    label_smoothing : float, optional
        :math:`\varepsilon` in [0, 1]; default 0.
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
        A NumPy scalar of the computation dtype (float32 or float64) for ``"mean"`` / ``"sum"``;
        the per-item losses for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a bad ``reduction``, ``label_smoothing`` outside [0, 1], a wrong
        ``weight`` or ``out`` shape, ``ignore_index >= 0`` with probability targets, or
        ``size_average`` / ``reduce`` given.
    IndexError
        A class index outside [0, C) that is not ``ignore_index``; the message names ``target``,
        the position and the value.
    TypeError
        ``input`` that is not floating point, or ``target`` that is neither integer nor floating.

    See Also
    --------
    nll_loss : the same loss on log-probabilities.
    softmax_focal_loss : cross-entropy with a focusing term.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> y = np.array([0, 2])
    >>> loss, grad = fl.cross_entropy(x, y, return_grad=True)
    >>> lse = np.log(np.exp(x).sum(axis=1))
    >>> print(f"{np.mean(lse - x[[0, 1], y]):.6f}", bool(np.isclose(loss, np.mean(lse - x[[0, 1], y]))))
    0.175456 True
    >>> softmax = np.exp(x - lse[:, None])
    >>> bool(np.allclose(grad, (softmax - np.eye(3)[y]) / 2))      # the mean's gradient
    True
    >>> fl.cross_entropy(x, np.array([0, -100]), reduction="none")  # the ignored item has loss 0
    array([0.2413113, 0.       ])
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    # (the usual values are recognised inline: a validator's call costs 0.1-0.3 us of a small call)
    if type(label_smoothing) is float and 0.0 <= label_smoothing <= 1.0:
        eps = label_smoothing
    else:
        eps = V.check_real(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    if type(ignore_index) is not int or not V.INT64_MIN <= ignore_index <= V.INT64_MAX:
        ignore_index = V.check_int(ignore_index, "ignore_index", _IGNORE_HINT)
    nt = resolve_num_threads(num_threads)
    C = _K.plain_index_rows(input, target)
    # (N, C) logits, (N,) int32/int64 labels, read in place: the usual call, recognised from the array structs
    plain = C >= 0
    if plain:
        x = xb = cast("NDArray[Any]", input)     # (a string: NumPy builds NDArray[Any] in ~7 us)
        labels = cast("NDArray[Any]", target)
        S = 1
    else:
        x, xb, N, C, S, unbatched = _class_layout(input)
    w = None if weight is None else _class_weight(weight, x, C)
    if not plain:
        t_arr = target
        if type(target) is not np.ndarray or (target.dtype is not V._I64 and target.dtype is not V._I32):
            t_arr = V._to_numpy(target, "target")       # (not an int32/int64 array of class indices)
            if t_arr.dtype.kind == "f":
                if t_arr.shape != x.shape and t_arr.shape == _label_shape(xb, unbatched):
                    # torch: "expected scalar type Long": float targets are probabilities of input's shape
                    raise TypeError(f"target has the shape of class indices {t_arr.shape} but is not "
                                    f"integer: {V.label_hint(t_arr, target)} (float targets are class "
                                    f"probabilities, of input's shape {x.shape})")
                if ignore_index >= 0:       # torch: "ignore_index is not supported for floating point target"
                    raise ValueError(f"ignore_index={ignore_index} names a class, which probability targets "
                                     f"do not have: leave it at its default (a negative value is ignored)")
                return _cross_entropy_probs(x, xb, t_arr, w, C, S, reduction, eps, nt, out, return_grad,
                                            grad_out, (input, target, weight))
        labels = _class_labels(t_arr, xb, unbatched, source=target)
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    if not return_grad:
        grad = None
    elif grad_out is None:      # (a fresh gradient: no tuple of inputs to build for the overlap check)
        grad = np.empty(x.shape, dtype=x.dtype)
    else:
        grad = V.grad_buffer(grad_out, x.shape, x.dtype, (input, target, weight, x, labels, w, o))
    flat = labels if labels.ndim == 1 else labels.reshape(-1)      # (a new view costs ~0.1 us)
    res = _K.cross_entropy_index(xb, flat, None if o is None else o.reshape(-1), grad, weight=w,
                                 C=C, S=S, ignore_index=ignore_index, smoothing=eps, mean=reduction == "mean",
                                 num_threads=nt)
    if o is None and grad is None and res[2] < 0 and res[1] != 0:  # reduced, every label valid: the usual end
        return V.reduced(res[0], res[1], reduction, x.dtype)
    return _finish(res, reduction, x.dtype, o, grad, labels=labels, n_classes=C, ignore_index=ignore_index)


def _class_layout(input):
    """The prediction as (N, C, S...) logits: returns x, its batched view, N, C, S = prod(spatial)."""
    if type(input) is np.ndarray and input.ndim == 2:   # (N, C), the usual call: no view, no spatial product
        dt = input.dtype        # (V.prediction's fast path, inlined)
        if (dt is V._F32 or dt is V._F64) and input.flags.num & V._C_ALIGNED == V._C_ALIGNED:
            shape = input.shape
            return input, input, shape[0], shape[1], 1, False
    x = V.prediction(input, "input")
    shape = x.shape
    if len(shape) == 2:
        return x, x, shape[0], shape[1], 1, False
    if x.ndim == 0:
        raise ValueError("input must have at least 1 dimension (C,) or (N, C, ...), got a 0-d array")
    unbatched = x.ndim == 1
    xb = x[None, :] if unbatched else x
    return x, xb, xb.shape[0], xb.shape[1], math.prod(xb.shape[2:]), unbatched


def _class_weight(weight, x, C, name="weight"):
    if weight is None:
        return None
    w = V.float_array(weight, name, dtype=x.dtype)
    if w.shape != (C,):
        raise ValueError(f"{name} must have shape ({C},) (one per class), got {w.shape}")
    return w


def _label_shape(xb, unbatched):
    """The shape of class-index targets for the batched logits ``xb``: (N, d1, ...), or () unbatched."""
    return () if unbatched else (xb.shape[0],) + xb.shape[2:]


def _class_labels(target, xb, unbatched, source=None):
    if type(target) is np.ndarray and target.ndim == 1 and xb.ndim == 2 and not unbatched:
        dt = target.dtype   # (N, C) logits, (N,) int32/int64 labels: the usual call (V.labels_array, inlined)
        if (dt is V._I64 or dt is V._I32) and target.flags.num & V._C_ALIGNED == V._C_ALIGNED and \
                target.shape[0] == xb.shape[0]:
            return target
    labels = V.labels_array(target, "target", source)
    if not unbatched and xb.ndim == 2 and labels.ndim == 1 and labels.shape[0] == xb.shape[0]:
        return labels
    expected = () if unbatched else (xb.shape[0],) + xb.shape[2:]     # (_label_shape, inlined: every call)
    if labels.shape != expected:
        if unbatched:
            raise ValueError(f"target shape {labels.shape} does not match input shape {xb.shape[1:]}: a 1-d "
                             f"input is ONE sample's {xb.shape[1]} class scores (unbatched) and takes a 0-d "
                             f"target; for a batch of N samples pass input of shape (N, C)")
        raise ValueError(f"target shape {labels.shape} does not match input shape {xb.shape}: expected "
                         f"{expected} (input (N, C, d1, ...) takes class indices of shape (N, d1, ...))")
    return labels


def _cross_entropy_probs(x, xb, target, w, C, S, reduction, eps, nt, out, return_grad, grad_out, args):
    """Probability targets (torch: float target of input's shape); mean divides by N * prod(spatial)."""
    t = V.float_array(target, "target", dtype=x.dtype)
    V.check_same_shape(x, t, "input", "target")
    n_items = xb.shape[0] * S
    out_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    o = V.output_array(out, out_shape, x.dtype) if reduction == "none" else None
    grad = V.grad_buffer(grad_out, x.shape, x.dtype, (*args, x, t, w, o)) if return_grad else None
    if C == 0:
        # torch: each item sums over no classes, -0.0; mean divides by numel / C = 0 / 0 (nan)
        if o is not None:
            o.fill(-0.0)
        return _finish((-0.0, 0.0, -1), reduction, x.dtype, o, grad, count=0)
    scale = 1.0 / n_items if (reduction == "mean" and n_items) else 1.0
    res = _K.ce_probs(xb, t, None if o is None else o.reshape(-1), grad, weight=w, C=C, S=S, smoothing=eps,
                      grad_scale=scale, num_threads=nt)
    return _finish(res, reduction, x.dtype, o, grad, count=n_items)


@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
             reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
             return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
             reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
             return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
             reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
             return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="classification", items="class")
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
             size_average: bool | None = None, ignore_index: int = -100, reduce: bool | None = None,
             reduction: str = "mean", *, num_threads: int | None = None, out: FloatArray | None = None,
             return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Negative log-likelihood on log-probabilities, mirroring :func:`torch.nn.functional.nll_loss`.

    .. math::

        \ell_i = -w_{y_i}\, x_{i y_i}, \qquad
        \text{mean} = \sum_i \ell_i \Big/ \sum_{i:\, y_i \ne \text{ignore\_index}} w_{y_i}

    ``input`` is used as given (normally ``log_softmax`` output; it is not checked).  Layouts,
    labels, ``weight``, ``ignore_index`` and the edge cases follow :func:`cross_entropy`.

    Parameters
    ----------
    input : array_like
        Log-probabilities of shape (N, C), (C,) or (N, C, d1, ...), floating point.
    target : array_like
        Class indices of shape (N,), () or (N, d1, ...), any integer dtype.
    weight : array_like, optional
        Class weights of shape (C,).  None (default): all 1.
    size_average : None
        torch's deprecated alias of ``reduction``; anything but None raises ``ValueError``.
    ignore_index : int, optional
        Class index whose items are skipped (loss 0, not counted by ``"mean"``).  Default -100.
    reduce : None
        torch's deprecated alias of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: one loss per item; ``"sum"``; ``"mean"`` (default) as above.
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
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the per-item losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, a bad ``reduction``, ``weight`` or ``out``, or ``size_average`` /
        ``reduce`` given.
    IndexError
        A class index outside [0, C) that is not ``ignore_index``.

    See Also
    --------
    cross_entropy : the same loss on logits.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> logp = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    >>> loss = fl.nll_loss(logp, np.array([0, 2]), weight=np.array([1.0, 1.0, 3.0]))
    >>> ref = (-np.log(0.7) - 3 * np.log(0.8)) / (1 + 3)
    >>> print(f"{ref:.6f}", bool(np.isclose(loss, ref)))
    0.256526 True
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    ignore_index = V.check_int(ignore_index, "ignore_index", _IGNORE_HINT)
    nt = resolve_num_threads(num_threads)
    x, xb, N, C, S, unbatched = _class_layout(input)
    w = _class_weight(weight, x, C)
    labels = _class_labels(target, xb, unbatched)
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    grad = V.grad_buffer(grad_out, x.shape, x.dtype, (input, target, weight, x, labels, w, o), zero=True) \
        if return_grad else None
    if C == 0:
        # no class: every label must be ignore_index (torch: "Target 0 is out of bounds"); ignored items give
        # 0 and the mean divides by their summed weight, 0 (nan)
        bad = np.flatnonzero(labels.reshape(-1) != ignore_index)
        if bad.size:
            raise_first_bad(bad[0], BadLabel(labels, C, ignore_index))
        if o is not None:
            o.fill(0.0)
        return _finish((0.0, 0.0, -1), reduction, x.dtype, o, grad)
    res = _K.nll(xb, labels.reshape(-1), None if o is None else o.reshape(-1), grad, weight=w, C=C, S=S,
                 ignore_index=ignore_index, mean=reduction == "mean", num_threads=nt)
    return _finish(res, reduction, x.dtype, o, grad, labels=labels, n_classes=C, ignore_index=ignore_index)


@overload
def softmax_focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = ..., gamma: float = ...,
                       weight: ArrayLike | None = ..., ignore_index: int = ..., reduction: str = ..., *,
                       num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def softmax_focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = ..., gamma: float = ...,
                       weight: ArrayLike | None = ..., ignore_index: int = ..., reduction: str = ..., *,
                       num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def softmax_focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = ..., gamma: float = ...,
                       weight: ArrayLike | None = ..., ignore_index: int = ..., reduction: str = ..., *,
                       num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="classification", items="class")
def softmax_focal_loss(input: ArrayLike, target: ArrayLike, alpha: ArrayLike | None = None,
                       gamma: float = 2.0, weight: ArrayLike | None = None, ignore_index: int = -100,
                       reduction: str = "mean", *, num_threads: int | None = None,
                       out: FloatArray | None = None, return_grad: bool = False,
                       grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Softmax (multi-class) focal loss on logits (Lin et al., 2017).

    There is no torch function; this is the usual multi-class form.  With
    :math:`p_i = \operatorname{softmax}(x_i)` and :math:`y_i` the class index,

    .. math::

        \ell_i = -\alpha_{y_i}\, w_{y_i}\, (1 - p_{i y_i})^{\gamma} \log p_{i y_i}

    :math:`\alpha_c = 1` when ``alpha`` is None and :math:`w_c = 1` when ``weight`` is None.
    ``"mean"`` divides by the summed ``weight`` of the non-ignored targets (as :func:`cross_entropy`;
    ``alpha`` does not enter the denominator).  ``gamma=0`` with ``alpha=None`` is exactly
    :func:`cross_entropy`.  :math:`\log p` is the max-shifted log-softmax, so large logits neither
    overflow nor lose the focusing term.

    Parameters
    ----------
    input : array_like
        Logits of shape (N, C), (C,) or (N, C, d1, ...), floating point.
    target : array_like
        Class indices of shape (N,), () or (N, d1, ...), any integer dtype.
    alpha : array_like, optional
        Per-class balancing factors of shape (C,); None (default): 1 for every class.  (A scalar
        ``alpha`` of other libraries is a vector here: see the "Switching from" guide.)
    gamma : float, optional
        Focusing parameter :math:`\gamma \ge 0`; default 2.
    weight : array_like, optional
        Class weights of shape (C,), also used by the ``"mean"`` denominator.  None: all 1.
    ignore_index : int, optional
        Class index whose items are skipped.  Default -100.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: one loss per item; ``"sum"``; ``"mean"`` (default) as above.
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
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the per-item losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Mismatched shapes, ``gamma < 0``, a bad ``reduction``, ``alpha``, ``weight`` or ``out``.
    IndexError
        A class index outside [0, C) that is not ``ignore_index``.

    See Also
    --------
    sigmoid_focal_loss : the binary (per-logit sigmoid) focal loss.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    >>> y = np.array([0, 2])
    >>> p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    >>> py = p[[0, 1], y]
    >>> ref = np.mean(-(1 - py) ** 2 * np.log(py))
    >>> print(f"{ref:.6f}", bool(np.isclose(fl.softmax_focal_loss(x, y, gamma=2.0), ref)))
    0.006137 True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    g = V.check_real(gamma, "gamma", low=0.0)
    ignore_index = V.check_int(ignore_index, "ignore_index", _IGNORE_HINT)
    nt = resolve_num_threads(num_threads)
    x, xb, N, C, S, unbatched = _class_layout(input)
    w = _class_weight(weight, x, C)
    a = _class_weight(alpha, x, C, "alpha")
    labels = _class_labels(target, xb, unbatched)
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    grad = V.grad_buffer(grad_out, x.shape, x.dtype, (input, target, weight, alpha, x, labels, w, a, o)) \
        if return_grad else None
    res = _K.cross_entropy_index(xb, labels.reshape(-1), None if o is None else o.reshape(-1), grad, weight=w,
                                 C=C, S=S, ignore_index=ignore_index, mean=reduction == "mean", focal_gamma=g,
                                 focal_alpha=a, num_threads=nt)
    return _finish(res, reduction, x.dtype, o, grad, labels=labels, n_classes=C, ignore_index=ignore_index)


@overload
def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: int = ..., margin: float = ...,
                      weight: ArrayLike | None = ..., size_average: bool | None = ...,
                      reduce: bool | None = ..., reduction: str = ..., *, num_threads: int | None = ...,
                      out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                      grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: int = ..., margin: float = ...,
                      weight: ArrayLike | None = ..., size_average: bool | None = ...,
                      reduce: bool | None = ..., reduction: str = ..., *, num_threads: int | None = ...,
                      out: FloatArray | None = ..., return_grad: Literal[True],
                      grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: int = ..., margin: float = ...,
                      weight: ArrayLike | None = ..., size_average: bool | None = ...,
                      reduce: bool | None = ..., reduction: str = ..., *, num_threads: int | None = ...,
                      out: FloatArray | None = ..., return_grad: bool = ...,
                      grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="classification", items="rows")
def multi_margin_loss(input: ArrayLike, target: ArrayLike, p: int = 1, margin: float = 1.0,
                      weight: ArrayLike | None = None, size_average: bool | None = None,
                      reduce: bool | None = None, reduction: str = "mean", *, num_threads: int | None = None,
                      out: FloatArray | None = None, return_grad: bool = False,
                      grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Multi-class hinge loss, mirroring :func:`torch.nn.functional.multi_margin_loss`.

    .. math::

        \ell_i = \frac{1}{C} \sum_{j \ne y_i} w_{y_i} \max(0,\ m - x_{i y_i} + x_{ij})^{p},
        \qquad p \in \{1, 2\}

    ``"mean"`` divides by N (weights do not enter the denominator, as torch).  At the hinge
    (:math:`m - x_{iy} + x_{ij} = 0`) the gradient is 0.

    Parameters
    ----------
    input : array_like
        Scores of shape (N, C), (C,) or 0-d (one sample of one class), floating point, C >= 1.
    target : array_like
        Class indices, one per sample: (N,), or 0-d when there is one sample ((C,) or 0-d input, or
        a (1, C) batch); any integer dtype, in [0, C).  ``"none"`` returns shape (N,) for a 1-d
        target and a 0-d array for a 0-d target, as torch.
    p : {1, 2}, optional
        Exponent of the hinge; default 1.
    margin : float, optional
        :math:`m`; default 1.
    weight : array_like, optional
        Class weights of shape (C,) (or 0-d when C = 1), applied by the target class.  None: all 1.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: one loss per row; ``"sum"``; ``"mean"`` (default) over the N rows.
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
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (N,) row losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        ``p`` not 1 or 2, input that is not (N, C), (C,) or 0-d, mismatched shapes or a bad
        ``reduction``.
    IndexError
        A class index outside [0, C).

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x = np.array([[0.1, 0.2, 0.4, 0.8]])
    >>> ref = (max(0, 1 - 0.2 + 0.1) + max(0, 1 - 0.2 + 0.4) + max(0, 1 - 0.2 + 0.8)) / 4
    >>> print(f"{ref:.4f}", bool(np.isclose(fl.multi_margin_loss(x, np.array([1])), ref)))
    0.9250 True
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {V.short_repr(p)}")
    m = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    x = V.prediction(input, "input")
    if x.ndim > 2 or x.ndim >= 1 and x.shape[-1] == 0:
        # torch: "Expected non-empty vector or matrix with optional 0-dim batch size"
        raise ValueError(f"input must be (N, C) or (C,) with C >= 1 classes (or 0-d: one class), got shape "
                         f"{x.shape}")
    xb = x.reshape(1, 1) if x.ndim == 0 else (x[None, :] if x.ndim == 1 else x)
    N, C = xb.shape
    w = None
    if weight is not None:
        w = V.float_array(weight, "weight", dtype=x.dtype)
        if w.ndim > 1 or w.size != C:
            raise ValueError(f"weight must have shape ({C},) (one per class), got {w.shape}")
        w = w.reshape(C)
    labels = V.labels_array(target, "target")
    if labels.ndim > 1 or labels.size != N:
        raise ValueError(f"target must hold one class index per sample: shape ({N},)"
                         + (" or ()" if N == 1 else "") + f" for input shape {x.shape}, got {labels.shape}")
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    grad = V.grad_buffer(grad_out, x.shape, x.dtype, (input, target, weight, x, labels, w, o)) \
        if return_grad else None
    scale = 1.0 / N if (reduction == "mean" and N) else 1.0
    res = _K.multi_margin(xb, labels.reshape(-1), None if o is None else o.reshape(-1),
                          None if grad is None else grad.reshape(xb.shape), weight=w, C=C, margin=m, power=int(p),
                          grad_scale=scale, num_threads=nt)
    return _finish(res, reduction, x.dtype, o, grad, count=N, labels=labels, n_classes=C)


@overload
def distillation_loss(student_logits: ArrayLike, teacher_logits: ArrayLike, temperature: float = ...,
                      reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                      return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def distillation_loss(student_logits: ArrayLike, teacher_logits: ArrayLike, temperature: float = ...,
                      reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                      return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def distillation_loss(student_logits: ArrayLike, teacher_logits: ArrayLike, temperature: float = ...,
                      reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                      return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="classification", grad=("student_logits",), items="rows", batchmean=True)
def distillation_loss(student_logits: ArrayLike, teacher_logits: ArrayLike, temperature: float = 1.0,
                      reduction: str = "batchmean", *, num_threads: int | None = None,
                      out: FloatArray | None = None, return_grad: bool = False,
                      grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Knowledge-distillation loss between student and teacher logits (Hinton et al., 2015).

    One pass over both logit rows computes, with temperature :math:`T`,

    .. math::

        \ell_i = T^2 \operatorname{KL}\bigl(\operatorname{softmax}(t_i / T)
                 \,\big\|\, \operatorname{softmax}(s_i / T)\bigr)
               = T^2 \sum_j q_{ij} (\log q_{ij} - \log p_{ij})

    equal to ``T**2 * torch.nn.functional.kl_div(log_softmax(s / T), log_softmax(t / T),
    log_target=True, reduction=...)``.  ``"batchmean"`` (default) divides the sum by N, ``"mean"``
    by N * C (as ``kl_div``).  For an unbatched (C,) row the formula is followed literally:
    ``kl_div``'s ``"batchmean"`` divides by ``input.size(0)``, which is C for 1-d input, so both
    ``"batchmean"`` and ``"mean"`` divide the row's loss by C, and ``"none"`` returns a 0-d array.

    Parameters
    ----------
    student_logits : array_like
        Student logits :math:`s`, shape (N, C) or (C,), floating point.
    teacher_logits : array_like
        Teacher logits :math:`t` of the same shape (converted to the student's dtype).
    temperature : float, optional
        :math:`T > 0`; default 1.
    reduction : {"batchmean", "mean", "sum", "none"}, optional
        ``"none"``: the (N,) row losses; ``"sum"``; ``"mean"``; ``"batchmean"`` (default).
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to
        ``student_logits`` (the teacher gets none), computed in the same pass.
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype, or the row losses for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(student_logits).

    Raises
    ------
    ValueError
        Mismatched shapes, input that is not (N, C) or (C,), ``temperature <= 0`` or a bad
        ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> s = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    >>> t = np.array([[2.0, 0.0, -2.0], [0.0, 1.0, 1.0]])
    >>> def log_softmax(z):
    ...     return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    >>> q = np.exp(log_softmax(t / 2))
    >>> ref = 4 * np.sum(q * (log_softmax(t / 2) - log_softmax(s / 2))) / 2
    >>> bool(np.isclose(fl.distillation_loss(s, t, temperature=2.0), ref))
    True
    """
    V.check_reduction(reduction, ("none", "mean", "sum", "batchmean"), out=out, return_grad=return_grad,
                      grad_out=grad_out)
    T = V.check_real(temperature, "temperature", low=0.0, low_open=True)
    nt = resolve_num_threads(num_threads)
    s = V.prediction(student_logits, "student_logits")
    t = V.float_array(teacher_logits, "teacher_logits", dtype=s.dtype)
    V.check_same_shape(s, t, "student_logits", "teacher_logits")
    if s.ndim not in (1, 2):
        raise ValueError(f"student_logits must be (N, C) or (C,), got shape {s.shape}")
    sb, tb = (s[None, :], t[None, :]) if s.ndim == 1 else (s, t)
    N, C = sb.shape
    # batchmean divides by input.size(0) as kl_div does: N, or C for unbatched (C,) input (SPEC §6's formula)
    count = {"batchmean": s.shape[0], "mean": N * C, "sum": None, "none": None}[reduction]
    o = V.output_array(out, s.shape[:-1], s.dtype) if reduction == "none" else None
    grad = V.grad_buffer(grad_out, s.shape, s.dtype, (student_logits, teacher_logits, s, t, o)) \
        if return_grad else None
    scale = 1.0 / count if count else 1.0
    if C == 0:          # KL over no classes: 0 per row (and no item for the kernel)
        if o is not None:
            o.fill(0.0)
        res = (0.0, 0.0, -1)
    else:
        o_flat = None if o is None else o.reshape(-1)
        res = _K.distillation(sb, tb, o_flat, grad, C=C, temperature=T, grad_scale=scale, num_threads=nt)
    red = "mean" if count is not None else reduction
    return _finish(res, red, s.dtype, o, grad, count=count)


def class_balanced_weights(counts: ArrayLike, beta: float = 0.9999) -> NDArray[np.float64]:
    r"""Class weights from per-class sample counts, by the "effective number" (Cui et al., 2019).

    .. math::

        w_c \propto \frac{1 - \beta}{1 - \beta^{n_c}}, \qquad \text{normalised so that } \sum_c w_c = C

    (:math:`1 - \beta^{n}` is computed as ``-expm1(n * log(beta))``, accurate for :math:`\beta`
    close to 1).  A class with zero samples gets weight 0 (it has no effective number); with
    ``beta=0`` every class with samples gets the same weight.  The result is ready for ``weight=``
    of :func:`cross_entropy`, :func:`nll_loss` and :func:`softmax_focal_loss`.

    Parameters
    ----------
    counts : array_like
        Samples per class, a 1-d array of C finite non-negative numbers.
    beta : float, optional
        :math:`\beta` in [0, 1); default 0.9999.

    Returns
    -------
    numpy.ndarray
        float64 weights of shape (C,).

    Raises
    ------
    ValueError
        ``counts`` that is not 1-d, has negative or non-finite entries, or ``beta`` outside [0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> w = fl.class_balanced_weights([1000, 100, 0], beta=0.99)
    >>> raw = (1 - 0.99) / (1 - 0.99 ** np.array([1000.0, 100.0]))
    >>> bool(np.allclose(w, np.r_[raw * 3 / raw.sum(), 0.0]))
    True
    """
    b = V.check_real(beta, "beta", low=0.0, high=1.0, high_open=True)
    n = V._to_numpy(counts, "counts")
    if n.dtype.kind not in "iuf" or n.ndim != 1:
        raise ValueError(f"counts must be a 1-D array of class counts, got {n.dtype} shape {n.shape}")
    n = n.astype(np.float64)
    if np.any(n < 0) or not np.all(np.isfinite(n)):
        raise ValueError("counts must be finite and >= 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        eff = -np.expm1(n * np.log(b)) if b > 0 else (n > 0).astype(np.float64)  # 1 - beta**n, accurately
        w = np.where(n > 0, (1.0 - b) / np.where(eff > 0, eff, 1.0), 0.0) if b > 0 else eff
    total = w.sum()
    return w * (len(n) / total) if total > 0 else w
