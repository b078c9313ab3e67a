"""Segmentation overlap losses (SPEC §6): Dice, Jaccard (IoU), Tversky, focal Tversky, Dice + BCE.

One kernel pass (``fastloss/_kernels/segmentation.pyx``) streams the (N, C, *spatial) prediction in
place and returns, per (sample, class) pair, the float64 sums

    TP = sum_s p t,   P = sum_s p,   T = sum_s t        (FP = P - TP, FN = T - TP)

where p is the prediction after the activation (softmax over C for ``mode="multiclass"``, sigmoid
for ``"binary"`` / ``"multilabel"``, none when ``from_logits=False``) and t the target, both times
the valid mask (``ignore_index``).  The per-pair formula below is then evaluated here in NumPy; a
gradient is a second kernel pass from the per-pair derivatives dL/dTP and dL/dP.

Semantics follow SPEC §6 and, where it is silent, segmentation_models_pytorch (smp):
* Scores are per (sample, class) pair and ``reduction`` runs over the N x C pairs (``none`` returns
  (N, C)).  smp instead sums over the batch too (dims=(0, 2)) and zeroes classes with no true
  pixels; here every pair counts, so a pair whose target is empty follows the smooth/eps rule:
  with ``smooth=0`` its Dice is 0 (loss 1) whatever p is, and with ``smooth > 0`` two empty masks
  give a score of 1 (loss 0).  ``eps`` clamps the denominator from below (smp's ``clamp_min(eps)``).
* ``ignore_index`` (default None, as smp): integer targets equal to it are skipped (prediction and
  target both multiplied by 0, so its gradient is 0 there); with mask targets it applies
  elementwise, to target values equal to it (smp's binary / multilabel rule).  As in smp, a NaN
  prediction at an ignored position still propagates (NaN * 0).
* ``smooth``/``eps``/formulas are smp's ``soft_dice_score`` / ``soft_jaccard_score`` /
  ``soft_tversky_score``; smp's ``classes`` and ``log_loss`` options are not provided.
"""
import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads

_K = load("segmentation")

__all__ = ["dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss", "dice_bce_loss"]

MODES = ("binary", "multiclass", "multilabel")


# ---------------------------------------------------------------- per-pair formulas (float64)

def _overlap_terms(kind, tp, ps, ts, smooth, eps, alpha=0.5, beta=0.5, gamma=None):
    """Per-pair loss and its partial derivatives dL/dTP, dL/dP (T does not depend on the input).

    score = num / max(den, eps) with num = a*TP + smooth and den linear in TP, P, T:
        dice:    num = 2 TP + smooth,  den = P + T + smooth                (= 2TP + FP + FN + smooth)
        jaccard: num = TP + smooth,    den = P + T - TP + smooth           (= TP + FP + FN + smooth)
        tversky: num = TP + smooth,    den = TP + alpha (P - TP) + beta (T - TP) + smooth
    loss = 1 - score, or (1 - score)^gamma for focal Tversky.  Where the eps clamp is active the
    denominator is constant (torch's clamp_min gradient).
    """
    if kind == "dice":
        num, den = 2.0 * tp + smooth, ps + ts + smooth
        dnum, dden_tp, dden_p = 2.0, 0.0, 1.0
    elif kind == "jaccard":
        num, den = tp + smooth, ps + ts - tp + smooth
        dnum, dden_tp, dden_p = 1.0, -1.0, 1.0
    else:  # tversky
        num, den = tp + smooth, tp + alpha * (ps - tp) + beta * (ts - tp) + smooth
        dnum, dden_tp, dden_p = 1.0, 1.0 - alpha - beta, alpha
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        d = np.maximum(den, eps)
        active = (den >= eps).astype(np.float64)
        score = num / d
        r = score / d * active                       # num / d^2 where the clamp is not active
        dloss_tp = -(dnum / d - r * dden_tp)
        dloss_p = r * dden_p
        loss = 1.0 - score
        if gamma is not None:
            outer = gamma * loss ** (gamma - 1.0) if gamma != 0 else np.zeros_like(loss)
            loss = loss ** gamma
            dloss_tp, dloss_p = outer * dloss_tp, outer * dloss_p
    return loss, dloss_tp, dloss_p


# ---------------------------------------------------------------- shared driver

def _layout(input, target, mode, ignore_index):
    """(x (N, C, S), mask (N, C, S) or None, labels (N*S,) or None, labels in their shape, x)."""
    V.check_choice(mode, "mode", MODES)
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, (int, np.integer))):
        raise TypeError(f"ignore_index must be None or an int, got {ignore_index!r}")
    x = V.prediction(input, "input")
    if x.ndim < 2:
        raise ValueError(f"input must have shape (N, C, *spatial), got shape {x.shape}")
    N, C = x.shape[:2]
    if C == 0:
        raise ValueError(f"input must have at least one class (channel), got shape {x.shape}")
    if mode == "binary" and C != 1:
        raise ValueError(f"input must have 1 channel for mode='binary', got shape {x.shape}")
    x3 = x.reshape(N, C, int(np.prod(x.shape[2:], dtype=np.int64)))
    t = V._to_numpy(target, "target")
    label_shape = x.shape[:1] + x.shape[2:]
    if mode == "multiclass" and t.shape == label_shape:
        labels = V.labels_array(t, "target")
        return x, x3, None, labels.reshape(-1), labels
    if t.shape == x.shape or (mode == "binary" and t.shape == label_shape):
        mask = V.float_array(t, "target", dtype=x.dtype)
        return x, x3, mask.reshape(x3.shape), None, None
    expected = f"{x.shape}" + (f" (masks) or {label_shape} (class indices)" if mode == "multiclass" else
                               f" or {label_shape}" if mode == "binary" else "")
    raise ValueError(f"target shape {t.shape} does not match input shape {x.shape} for mode={mode!r}: "
                     f"expected {expected}")


def _overlap_loss(kind, input, target, mode, from_logits, smooth, eps, ignore_index, reduction, num_threads,
                  out, return_grad, dice_weight=None, **params):
    """Validate, run the sums pass, evaluate the pair formula, reduce, and (optionally) the gradient."""
    V.check_reduction(reduction, out=out, return_grad=return_grad)
    smooth = V.check_real(smooth, "smooth", low=0.0)
    eps = V.check_real(eps, "eps", low=0.0)
    nt = resolve_num_threads(num_threads)
    x, x3, mask, labels_flat, labels = _layout(input, target, mode, ignore_index)
    N, C = x3.shape[:2]
    o = V.output_array(out, (N, C), x.dtype) if reduction == "none" else None
    from_logits = V.check_bool(from_logits, "from_logits")
    act = ("softmax" if mode == "multiclass" else "sigmoid") if from_logits else "none"
    act = _K.ACTIVATIONS[act]
    bce = dice_weight is not None
    sums, bad = _K.segment_sums(x3, mask, labels_flat, ignore_index, act, bce, nt)
    if bad >= 0:
        V.raise_bad_label(labels, bad, C, ignore_index)
    loss, dtp, dp = _overlap_terms(kind, sums[..., 0], sums[..., 1], sums[..., 2], smooth, eps, **params)
    if bce:
        with np.errstate(divide="ignore", invalid="ignore"):
            bce_w = np.where(sums[..., 4] > 0, (1.0 - dice_weight) / sums[..., 4], 0.0)
        loss = dice_weight * loss + bce_w * sums[..., 3]
        dtp, dp = dice_weight * dtp, dice_weight * dp
    if reduction == "none":
        o[...] = loss
        value = o
    else:
        value = V.reduced(np.sum(loss, dtype=np.float64), N * C, reduction, x.dtype)
    if not return_grad:
        return value
    scale = 1.0 / (N * C) if (reduction == "mean" and N * C) else 1.0
    coef = np.zeros((N, C, 3), dtype=np.float64)
    coef[..., 0], coef[..., 1] = dtp * scale, dp * scale
    if bce:
        coef[..., 2] = bce_w * scale
    grad = np.empty_like(x)
    _K.segment_grad(x3, mask, labels_flat, ignore_index, act, coef, grad.reshape(x3.shape), nt)
    return value, grad


_SHAPES_DOC = """
    ``input`` (N, C, *spatial): logits (``from_logits=True``, default) or probabilities, read in place;
    ``mode="multiclass"``: softmax over C, ``target`` class indices (N, *spatial) (any integer dtype)
    or masks of ``input``'s shape; ``"multilabel"``: sigmoid, masks (N, C, *spatial); ``"binary"``:
    sigmoid, C = 1, masks (N, 1, *spatial) or (N, *spatial).  Masks may be soft (any values in [0, 1]).
    Labels outside [0, C) that are not ``ignore_index`` raise IndexError.  ``reduction`` over the
    N x C (sample, class) pairs: ``"none"`` gives (N, C), ``"mean"`` (default) / ``"sum"`` a scalar
    (mean over zero pairs is nan).  ``return_grad=True`` also returns d(result)/d(input) (a second
    pass).  See the module docstring for the smp semantics followed.
"""


def dice_loss(input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7, ignore_index=None,
              reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Soft Dice loss per (sample, class) pair (SPEC §6; segmentation_models_pytorch ``DiceLoss``)::

        loss = 1 - (2 TP + smooth) / max(2 TP + FP + FN + smooth, eps)
             = 1 - (2 sum p t + smooth) / max(sum p + sum t + smooth, eps)
    """
    return _overlap_loss("dice", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad)


def jaccard_loss(input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7, ignore_index=None,
                 reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Soft Jaccard (IoU) loss per (sample, class) pair (SPEC §6; smp ``JaccardLoss``)::

        loss = 1 - (TP + smooth) / max(TP + FP + FN + smooth, eps)
             = 1 - (sum p t + smooth) / max(sum p + sum t - sum p t + smooth, eps)
    """
    return _overlap_loss("jaccard", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad)


def tversky_loss(input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7, ignore_index=None,
                 alpha=0.5, beta=0.5, reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Tversky loss per (sample, class) pair (SPEC §6; smp ``TverskyLoss`` with gamma=1)::

        loss = 1 - (TP + smooth) / max(TP + alpha FP + beta FN + smooth, eps)

    FP = sum p (1 - t), FN = sum (1 - p) t; alpha = beta = 0.5 is Dice, 1 and 1 is Jaccard.
    """
    a = V.check_real(alpha, "alpha", low=0.0)
    b = V.check_real(beta, "beta", low=0.0)
    return _overlap_loss("tversky", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, alpha=a, beta=b)


def focal_tversky_loss(input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7,
                       ignore_index=None, alpha=0.5, beta=0.5, gamma=1.0, reduction="mean", *,
                       num_threads=None, out=None, return_grad=False):
    """Focal Tversky loss (SPEC §6): the Tversky loss of each (sample, class) pair to the power gamma::

        loss = (1 - (TP + smooth) / max(TP + alpha FP + beta FN + smooth, eps)) ** gamma

    then reduced over the pairs.  (smp's ``TverskyLoss(gamma=...)`` instead raises the *mean* loss to
    gamma; SPEC §6 applies gamma per pair, so ``reduction="none"`` stays meaningful.)  ``gamma=1`` is
    :func:`tversky_loss`; ``gamma=0`` gives 1 with zero gradient.
    """
    a = V.check_real(alpha, "alpha", low=0.0)
    b = V.check_real(beta, "beta", low=0.0)
    g = V.check_real(gamma, "gamma", low=0.0)
    return _overlap_loss("tversky", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, alpha=a, beta=b, gamma=g)


def dice_bce_loss(input, target, mode="binary", dice_weight=0.5, smooth=0.0, eps=1e-7, ignore_index=None,
                  reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Dice + binary cross-entropy with logits, in one pass over the logits (sigmoid modes only).

    Per (sample, class) pair, with BCE(x, t) = (1 - t) x + softplus(-x) (torch's stable form)::

        loss = dice_weight * dice_loss + (1 - dice_weight) * mean over valid positions of BCE

    so with ``reduction="mean"`` and no ``ignore_index`` this is exactly
    ``w * dice_loss(...) + (1 - w) * binary_cross_entropy_with_logits(input, target)``.  ``input`` is
    logits ((N, 1, *spatial) for ``"binary"``, (N, C, *spatial) for ``"multilabel"``), ``target``
    masks; a pair with no valid position contributes 0 BCE.  ``mode="multiclass"`` is a ValueError.
    """
    V.check_choice(mode, "mode", ("binary", "multilabel"))     # (dice_bce_loss: sigmoid modes only)
    w = V.check_real(dice_weight, "dice_weight", low=0.0, high=1.0)
    return _overlap_loss("dice", input, target, mode, True, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, dice_weight=w)


for _f in (dice_loss, jaccard_loss, tversky_loss, focal_tversky_loss, dice_bce_loss):
    _f.__doc__ += _SHAPES_DOC
del _f
