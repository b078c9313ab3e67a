"""Classification losses: cross-entropy family, binary (sigmoid) losses, focal, margins, distillation.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/classification.pyx``; the arithmetic lives there.
"""
import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads

_K = load("classification")

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits"]


def _finish(kernel_result, reduction, dtype, out, grad, count=None, labels=None, n_classes=None,
            ignore_index=None, label_name="target"):
    """Turn a kernel's (loss_sum, denom_sum, first_bad) into the public result."""
    loss_sum, denom_sum, first_bad = kernel_result
    if first_bad >= 0:
        V.raise_bad_label(labels, first_bad, n_classes, ignore_index, label_name)
    if reduction == "none":
        value = out
    else:
        value = V.reduced(loss_sum, denom_sum if count is None else count, reduction, dtype)
    return (value, grad) if grad is not None else value


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0, *, num_threads=None, out=None, return_grad=False):
    """Softmax cross-entropy between logits and class indices or class probabilities.

    Mirrors ``torch.nn.functional.cross_entropy``.  ``input`` is (N, C), (C,) or (N, C, d1, ...),
    read in place (no transposing copy); ``target`` is class indices of shape (N,) / () / (N, d1, ...)
    (any integer dtype; int32/int64 without a copy) or class probabilities of ``input``'s shape.

    With lse = log sum_j exp(x_j), weights w (1 if None) and smoothing eps over C classes::

        loss_i = (1 - eps) * w_y * (lse - x_y) + eps / C * sum_j w_j * (lse - x_j)

    ``mean`` divides by sum of w_y over non-ignored targets (torch's rule; nan if there are none).
    Log-sum-exp is shifted by the row max (an infinite max by 0, as torch does), so -inf logits
    (masked classes) are fine.  ``return_grad=True`` also returns d(result)/d(input), computed in the
    same pass.  ``size_average`` / ``reduce`` are torch's deprecated aliases and are rejected.
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction)
    eps = V.check_real(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    nt = resolve_num_threads(num_threads)
    x = V.prediction(input, "input")
    if x.ndim == 0:
        raise ValueError("input must have at least 1 dimension (C,) or (N, C, ...), got a 0-d array")
    unbatched = x.ndim == 1
    xb = x[None, :] if unbatched else x
    N, C = xb.shape[0], xb.shape[1]
    S = int(np.prod(xb.shape[2:], dtype=np.int64))
    w = None
    if weight is not None:
        w = V.float_array(weight, "weight", dtype=x.dtype)
        if w.shape != (C,):
            raise ValueError(f"weight must have shape ({C},) (one per class), got {w.shape}")
    t_arr = V._to_numpy(target, "target")
    if t_arr.dtype.kind == "f":
        return _cross_entropy_probs(x, xb, t_arr, w, reduction, eps, nt, out, return_grad, unbatched)
    labels = V.labels_array(t_arr, "target")
    expected = (N,) + xb.shape[2:]
    if labels.shape != (expected[1:] if unbatched else expected):
        raise ValueError(f"target shape {labels.shape} does not match input shape {x.shape}: expected "
                         f"{expected[1:] if unbatched else expected}")
    grad = np.empty_like(x) if return_grad else None
    out_shape = labels.shape
    o = V.output_array(out, out_shape, x.dtype) if reduction == "none" else None
    res = _K.cross_entropy_index(xb, labels.reshape(-1), w, C, S, int(ignore_index), eps, reduction,
                                 None if o is None else o.reshape(-1), grad, nt)
    return _finish(res, reduction, x.dtype, o, grad, labels=labels, n_classes=C, ignore_index=ignore_index)


def _cross_entropy_probs(x, xb, target, w, reduction, eps, nt, out, return_grad, unbatched):
    raise NotImplementedError("probability targets: coming in this change")


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None, *, num_threads=None, out=None,
                                     return_grad=False):
    """Binary cross-entropy on logits, mirroring ``torch.nn.functional.binary_cross_entropy_with_logits``.

    With l = 1 + (pos_weight - 1) * y, the stable form (no overflow for any x)::

        loss = w * ((1 - y) * x + l * (max(-x, 0) + log1p(exp(-|x|))))

    ``weight`` broadcasts to ``input``'s shape; ``pos_weight`` broadcasts along the last axis (shape
    (C,) for (N, C) input, as in torch).  Scalars and last-axis vectors are read in place; any other
    broadcast shape is materialised once.  ``mean`` divides by the number of elements.
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction)
    nt = resolve_num_threads(num_threads)
    x = V.prediction(input, "input")
    y = V.float_array(target, "target", dtype=x.dtype)
    V.check_same_shape(x, y, "input", "target")
    K = x.shape[-1] if x.ndim else 1
    w = _elementwise_operand(weight, x, "weight")
    pw = _elementwise_operand(pos_weight, x, "pos_weight")
    n = x.size
    grad = np.empty_like(x) if return_grad else None
    o = V.output_array(out, x.shape, x.dtype) if reduction == "none" else None
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    res = _K.bce_with_logits(x.reshape(-1), y.reshape(-1), w, pw, K, reduction,
                             None if o is None else o.reshape(-1), grad, scale, nt)
    return _finish(res, reduction, x.dtype, o, grad, count=n)


def _elementwise_operand(value, x, name, default=1.0):
    """A broadcastable per-element operand as a kernel operand: a float (scalar), a last-axis vector
    read in place (period = x.shape[-1]), or a full-shape array (materialised only if it must be)."""
    if value is None:
        return default
    a = V.float_array(value, name, dtype=x.dtype)
    if a.size == 1 and a.ndim <= max(x.ndim, 1):
        return float(a.reshape(()))
    if x.ndim >= 1 and a.ndim >= 1 and a.shape[-1] == x.shape[-1] and a.size == x.shape[-1] \
            and a.ndim <= x.ndim:
        return a.reshape(-1)
    return V.broadcast_weight(a, x.shape, x.dtype, name).reshape(-1)
