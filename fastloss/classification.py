"""Classification losses: cross-entropy family, binary (sigmoid) losses, focal, margins, distillation.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/classification.pyx``; the arithmetic lives there.
"""
import math

import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads

_K = load("classification")

__all__ = ["cross_entropy", "nll_loss", "softmax_focal_loss", "multi_margin_loss", "distillation_loss",
           "class_balanced_weights", "binary_cross_entropy_with_logits"]


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
    Log-sum-exp is shifted by the row max and every term is formed from shifted logits (accurate in
    float32 at |logits| ~ 1e4); -inf logits (masked classes) are fine, and a row with a +inf logit or
    with only -inf logits gives nan, as in torch.  ``return_grad=True`` also returns d(result)/d(input), computed in the
    same pass.  ``size_average`` / ``reduce`` are torch's deprecated aliases and are rejected.
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction)
    eps = V.check_real(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    nt = resolve_num_threads(num_threads)
    x, xb, N, C, S, unbatched = _class_layout(input)
    w = _class_weight(weight, x, C)
    t_arr = V._to_numpy(target, "target")
    if t_arr.dtype.kind == "f":
        return _cross_entropy_probs(x, xb, t_arr, w, C, S, reduction, eps, nt, out, return_grad)
    labels = _class_labels(t_arr, xb, unbatched)
    grad = np.empty_like(x) if return_grad else None
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    res = _K.cross_entropy_index(xb, labels.reshape(-1), w, C, S, int(ignore_index), eps, reduction,
                                 None if o is None else o.reshape(-1), grad, nt)
    return _finish(res, reduction, x.dtype, o, grad, labels=labels, n_classes=C, ignore_index=ignore_index)


def _class_layout(input):
    """The prediction as (N, C, S...) logits: returns x, its batched view, N, C, S = prod(spatial)."""
    x = V.prediction(input, "input")
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


def _class_labels(target, xb, unbatched):
    labels = V.labels_array(target, "target")
    expected = (xb.shape[0],) + xb.shape[2:]
    if unbatched:
        expected = expected[1:]
    if labels.shape != expected:
        raise ValueError(f"target shape {labels.shape} does not match input: expected {expected}")
    return labels


def _cross_entropy_probs(x, xb, target, w, C, S, reduction, eps, nt, out, return_grad):
    """Probability targets (torch: float target of input's shape); mean divides by N * prod(spatial)."""
    t = V.float_array(target, "target", dtype=x.dtype)
    V.check_same_shape(x, t, "input", "target")
    n_items = xb.shape[0] * S
    out_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    o = V.output_array(out, out_shape, x.dtype) if reduction == "none" else None
    grad = np.empty_like(x) if return_grad else None
    scale = 1.0 / n_items if (reduction == "mean" and n_items) else 1.0
    res = _K.row_loss("ce_probs", xb, t, None, w, C, S, 0, eps, 0, reduction,
                      None if o is None else o.reshape(-1), grad, scale, nt)
    return _finish(res, reduction, x.dtype, o, grad, count=n_items)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Negative log-likelihood on log-probabilities, mirroring ``torch.nn.functional.nll_loss``.

    ``loss_i = -w_{y_i} * input[i, y_i]``; ``mean`` divides by the summed weights of non-ignored
    targets.  Layouts and labels as in :func:`cross_entropy`.
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction)
    nt = resolve_num_threads(num_threads)
    x, xb, N, C, S, unbatched = _class_layout(input)
    w = _class_weight(weight, x, C)
    labels = _class_labels(target, xb, unbatched)
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    grad = np.zeros_like(x) if return_grad else None
    scale = -1.0 if (return_grad and reduction == "mean") else 1.0   # -1: kernel computes 1/sum(w_y)
    res = _K.row_loss("nll", xb, None, labels.reshape(-1), w, C, S, int(ignore_index), 0.0, 0, reduction,
                      None if o is None else o.reshape(-1), grad, scale, nt)
    return _finish(res, reduction, x.dtype, o, grad, labels=labels, n_classes=C, ignore_index=ignore_index)


def softmax_focal_loss(input, target, alpha=None, gamma=2.0, weight=None, ignore_index=-100,
                       reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Softmax focal loss (SPEC §6): ``-alpha_y * w_y * (1 - p_y)^gamma * log p_y``, p = softmax(input).

    ``alpha`` is a per-class vector (C,) or None; shapes, ``weight`` and ``ignore_index`` as in
    :func:`cross_entropy` (``mean`` divides by the summed ``weight`` of non-ignored targets);
    ``gamma=0`` with ``alpha=None`` equals ``cross_entropy``.
    """
    V.check_reduction(reduction)
    g = V.check_real(gamma, "gamma", low=0.0)
    nt = resolve_num_threads(num_threads)
    x, xb, N, C, S, unbatched = _class_layout(input)
    w = _class_weight(weight, x, C)
    a = _class_weight(alpha, x, C, "alpha")
    labels = _class_labels(target, xb, unbatched)
    grad = np.empty_like(x) if return_grad else None
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    res = _K.cross_entropy_index(xb, labels.reshape(-1), w, C, S, int(ignore_index), 0.0, reduction,
                                 None if o is None else o.reshape(-1), grad, nt, a, g)
    return _finish(res, reduction, x.dtype, o, grad, labels=labels, n_classes=C, ignore_index=ignore_index)


def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                      reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Multi-class hinge loss, mirroring ``torch.nn.functional.multi_margin_loss``.

    ``loss_i = w_y / C * sum_{j != y} max(0, margin - x_y + x_j)^p`` with p in {1, 2}; input (N, C) or (C,).
    """
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction)
    if p not in (1, 2) or isinstance(p, bool):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    m = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    x, xb, N, C, S, unbatched = _class_layout(input)
    if x.ndim > 2:
        raise ValueError(f"input must be (N, C) or (C,), got shape {x.shape}")
    w = _class_weight(weight, x, C)
    labels = _class_labels(target, xb, unbatched)
    o = V.output_array(out, labels.shape, x.dtype) if reduction == "none" else None
    grad = np.empty_like(x) if return_grad else None
    scale = 1.0 / N if (reduction == "mean" and N) else 1.0
    res = _K.row_loss("multi_margin", xb, None, labels.reshape(-1), w, C, 1, -(2**62), m, int(p), reduction,
                      None if o is None else o.reshape(-1), grad, scale, nt)
    return _finish(res, reduction, x.dtype, o, grad, count=N, labels=labels, n_classes=C)


def distillation_loss(student_logits, teacher_logits, temperature=1.0, reduction="batchmean", *,
                      num_threads=None, out=None, return_grad=False):
    """Knowledge-distillation loss (SPEC §6), one pass over both logit rows::

        T^2 * KL(softmax(teacher / T) || softmax(student / T))

    equal to ``kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, reduction=...) * T**2``.
    Inputs (N, C) or (C,).  ``batchmean`` (default) divides the sum by N, ``mean`` by N*C (as kl_div),
    ``none`` returns the per-row losses (N,).  The gradient is with respect to the student logits.

    Unbatched (C,) logits follow that formula literally: kl_div's ``batchmean`` divides by
    ``input.size(0)``, which is C for 1-D input, so ``batchmean`` and ``mean`` both divide the single
    row's loss by C (not by 1), and ``none`` returns a 0-d array.
    """
    V.check_reduction(reduction, ("none", "mean", "sum", "batchmean"))
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
    grad = np.empty_like(s) if return_grad else None
    scale = 1.0 / count if count else 1.0
    res = _K.row_loss("distillation", sb, tb, None, None, C, 1, 0, T, 0, "none" if o is not None else "sum",
                      None if o is None else o.reshape(-1), grad, scale, nt)
    red = "mean" if count is not None else reduction
    return _finish(res, red, s.dtype, o, grad, count=count)


def class_balanced_weights(counts, beta=0.9999):
    """Class-balanced weights from per-class sample counts (Cui et al., 2019, "effective number")::

        w_c = (1 - beta) / (1 - beta ** n_c),   normalised so that sum(w) = number of classes.

    A class with zero samples gets weight 0 (it has no effective number); ``beta`` in [0, 1).
    Returns float64 weights, ready for ``weight=`` of the cross-entropy family.
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
    pw = _elementwise_operand(pos_weight, x, "pos_weight", default=None)   # None: torch's l = 1
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
