"""Segmentation overlap losses: Dice, Jaccard (IoU), Tversky, focal Tversky, Dice + BCE.

One kernel pass (``fastloss/_kernels/segmentation.pyx``) streams the (N, C, *spatial) prediction in
place and returns, per (sample, class) pair, the float64 sums

    TP = sum_s p t,   P = sum_s p,   T = sum_s t        (FP = P - TP, FN = T - TP)

where p is the prediction after the activation (softmax over C for ``mode="multiclass"``, sigmoid
for ``"binary"`` / ``"multilabel"``, none when ``from_logits=False``) and t the target, both times
the valid mask (``ignore_index``).  The per-pair formula below is then evaluated here in NumPy; a
gradient is a second kernel pass from the per-pair derivatives dL/dTP and dL/dP.

Semantics follow segmentation_models_pytorch (smp) where they do not conflict with per-pair scores:
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
from __future__ import annotations

from typing import Literal, overload

import numpy as np

from . import _validate as V
from ._errors import BadLabel, raise_first_bad
from ._kernels import load
from ._losses import loss_info
from ._threads import resolve_num_threads
from ._typing import ArrayLike, FloatArray, Loss, LossGrad

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
    if ignore_index is not None:
        ignore_index = V.check_int(ignore_index, "ignore_index", " or None")
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
                  out, return_grad, grad_out, dice_weight=None, **params):
    """Validate, run the sums pass, evaluate the pair formula, reduce, and (optionally) the gradient."""
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    smooth = V.check_real(smooth, "smooth", low=0.0)
    eps = V.check_real(eps, "eps", low=0.0)
    nt = resolve_num_threads(num_threads)
    x, x3, mask, labels_flat, labels = _layout(input, target, mode, ignore_index)
    N, C = x3.shape[:2]
    o = V.output_array(out, (N, C), x.dtype) if reduction == "none" else None
    grad = V.grad_buffer(grad_out, x.shape, x.dtype, (input, target, x, mask, labels, o)) \
        if return_grad else None
    from_logits = V.check_bool(from_logits, "from_logits")
    A = _K.Activation
    act = (A.SOFTMAX if mode == "multiclass" else A.SIGMOID) if from_logits else A.NONE
    bce = dice_weight is not None
    sums, bad = _K.segment_sums(x3, mask, labels_flat, ignore_index, act, bce, nt)
    raise_first_bad(bad, BadLabel(labels, C, ignore_index))
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
    _K.segment_grad(x3, mask, labels_flat, ignore_index, act, coef, grad.reshape(x3.shape), nt)
    return value, grad


_SHAPES_DOC = r"""
    Notes
    -----
    Each score is computed per (sample, class) pair from float64 sums over the spatial positions
    :math:`s` of the activated prediction :math:`p` and the target :math:`t`:
    :math:`TP = \sum_s p\, t`, :math:`FP = \sum_s p - TP`, :math:`FN = \sum_s t - TP`, in one
    streaming pass over ``input`` (no softmax, one-hot or ``(N, C, *spatial)`` temporary is
    allocated); the gradient of ``return_grad=True`` is a second pass.  Every pair counts, also a
    pair whose target is empty: with ``smooth=0`` its score is 0 (loss 1) whatever the prediction,
    and with ``smooth > 0`` an empty prediction of an empty target scores 1 (loss 0).
    segmentation_models_pytorch instead sums over the batch too and zeroes the loss of classes
    without a true pixel in the batch (the "Switching from" guide shows how to reproduce that).
    ``ignore_index`` skips the positions whose target equals it: for class indices, every class of
    that position; for masks, that element.  Prediction and target are both multiplied by 0 there,
    so the gradient is 0, and a nan prediction at an ignored position still propagates (nan * 0),
    as in segmentation_models_pytorch.
"""


@overload
def dice_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
              smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ..., *,
              num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def dice_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
              smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ..., *,
              num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def dice_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
              smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ..., *,
              num_threads: int | None = ..., out: FloatArray | None = ...,
              return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="segmentation", items="sample_class")
def dice_loss(input: ArrayLike, target: ArrayLike, mode: str = "multiclass", from_logits: bool = True,
              smooth: float = 0.0, eps: float = 1e-7, ignore_index: int | None = None,
              reduction: str = "mean", *, num_threads: int | None = None, out: FloatArray | None = None,
              return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Soft Dice loss per (sample, class) pair (segmentation_models_pytorch's ``DiceLoss``).

    .. math::

        \ell_{nc} = 1 - \frac{2\, TP + \text{smooth}}{\max(2\, TP + FP + FN + \text{smooth},\ \epsilon)}
                  = 1 - \frac{2 \sum_s p\, t + \text{smooth}}
                             {\max(\sum_s p + \sum_s t + \text{smooth},\ \epsilon)}

    Parameters
    ----------
    input : array_like
        Shape ``(N, C, *spatial)``: logits (``from_logits=True``, default) or probabilities, floating
        point, read in place.
    target : array_like
        ``mode="multiclass"``: class indices of shape ``(N, *spatial)`` (any integer dtype), or masks of
        ``input``'s shape; ``"multilabel"``: masks ``(N, C, *spatial)``; ``"binary"``: masks
        ``(N, 1, *spatial)`` or ``(N, *spatial)``.  Masks may be soft (values in [0, 1]).
    mode : {"multiclass", "multilabel", "binary"}, optional
        The activation applied to logits: softmax over C (``"multiclass"``, default), or a sigmoid
        per element (``"multilabel"``, and ``"binary"`` with C = 1).
    from_logits : bool, optional
        Whether ``input`` holds logits (default) or already probabilities (no activation).
    smooth : float, optional
        Added to numerator and denominator, :math:`\ge 0`; default 0.
    eps : float, optional
        :math:`\epsilon \ge 0`, the smallest denominator; default 1e-7.
    ignore_index : int or None, optional
        Target value whose positions are skipped; None (default): none.
    reduction : {"mean", "sum", "none"}, optional
        Over the N x C pairs: ``"none"`` gives (N, C), ``"mean"`` (default; nan over zero pairs),
        ``"sum"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous (N, C) array of the
        computation dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses), computed in a second pass.
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (N, C) pair losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        An unknown ``mode``, ``input`` that is not (N, C, ...) (C = 1 for ``"binary"``), a
        ``target`` shape that fits neither form, negative ``smooth`` / ``eps``, or a bad
        ``reduction``.
    IndexError
        A class index outside [0, C) that is not ``ignore_index``.
    TypeError
        An ``ignore_index`` that is not an int or None.

    See Also
    --------
    jaccard_loss, tversky_loss, dice_bce_loss

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 3, 4, 4))          # logits, 3 classes
    >>> y = rng.integers(0, 3, (2, 4, 4))              # class indices
    >>> p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    >>> t = np.moveaxis(np.eye(3)[y], -1, 1)           # one-hot (2, 3, 4, 4)
    >>> tp, ps, ts = (p * t).sum((2, 3)), p.sum((2, 3)), t.sum((2, 3))
    >>> ref = 1 - 2 * tp / np.maximum(ps + ts, 1e-7)   # (2, 3): one loss per (sample, class)
    >>> bool(np.allclose(fl.dice_loss(x, y, reduction="none"), ref))
    True
    """
    return _overlap_loss("dice", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, grad_out)


@overload
def jaccard_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                 smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ...,
                 *, num_threads: int | None = ..., out: FloatArray | None = ...,
                 return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def jaccard_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                 smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ...,
                 *, num_threads: int | None = ..., out: FloatArray | None = ...,
                 return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def jaccard_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                 smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ...,
                 *, num_threads: int | None = ..., out: FloatArray | None = ...,
                 return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="segmentation", items="sample_class")
def jaccard_loss(input: ArrayLike, target: ArrayLike, mode: str = "multiclass", from_logits: bool = True,
                 smooth: float = 0.0, eps: float = 1e-7, ignore_index: int | None = None,
                 reduction: str = "mean", *, num_threads: int | None = None, out: FloatArray | None = None,
                 return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Soft Jaccard (IoU) loss per (sample, class) pair (segmentation_models_pytorch's
    ``JaccardLoss``).

    .. math::

        \ell_{nc} = 1 - \frac{TP + \text{smooth}}{\max(TP + FP + FN + \text{smooth},\ \epsilon)}
                  = 1 - \frac{\sum_s p\, t + \text{smooth}}
                             {\max(\sum_s p + \sum_s t - \sum_s p\, t + \text{smooth},\ \epsilon)}

    Parameters
    ----------
    input : array_like
        Shape ``(N, C, *spatial)``: logits (``from_logits=True``, default) or probabilities, floating
        point, read in place.
    target : array_like
        ``mode="multiclass"``: class indices of shape ``(N, *spatial)`` (any integer dtype), or masks of
        ``input``'s shape; ``"multilabel"``: masks ``(N, C, *spatial)``; ``"binary"``: masks
        ``(N, 1, *spatial)`` or ``(N, *spatial)``.  Masks may be soft (values in [0, 1]).
    mode : {"multiclass", "multilabel", "binary"}, optional
        The activation applied to logits: softmax over C (``"multiclass"``, default), or a sigmoid
        per element (``"multilabel"``, and ``"binary"`` with C = 1).
    from_logits : bool, optional
        Whether ``input`` holds logits (default) or already probabilities (no activation).
    smooth : float, optional
        Added to numerator and denominator, :math:`\ge 0`; default 0.
    eps : float, optional
        :math:`\epsilon \ge 0`, the smallest denominator; default 1e-7.
    ignore_index : int or None, optional
        Target value whose positions are skipped; None (default): none.
    reduction : {"mean", "sum", "none"}, optional
        Over the N x C pairs: ``"none"`` gives (N, C), ``"mean"`` (default; nan over zero pairs),
        ``"sum"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous (N, C) array of the
        computation dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses), computed in a second pass.
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (N, C) pair losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        An unknown ``mode``, ``input`` that is not (N, C, ...) (C = 1 for ``"binary"``), a
        ``target`` shape that fits neither form, negative ``smooth`` / ``eps``, or a bad
        ``reduction``.
    IndexError
        A class index outside [0, C) that is not ``ignore_index``.
    TypeError
        An ``ignore_index`` that is not an int or None.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> p = np.array([[[0.9, 0.8, 0.1, 0.0]]])         # probabilities, (N, C, S) = (1, 1, 4)
    >>> t = np.array([[[1.0, 1.0, 0.0, 1.0]]])
    >>> tp = (p * t).sum()
    >>> ref = 1 - tp / (p.sum() + t.sum() - tp)
    >>> bool(np.isclose(fl.jaccard_loss(p, t, mode="binary", from_logits=False), ref))
    True
    """
    return _overlap_loss("jaccard", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, grad_out)


@overload
def tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                 smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., alpha: float = ...,
                 beta: float = ..., reduction: str = ..., *, num_threads: int | None = ...,
                 out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                 grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                 smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., alpha: float = ...,
                 beta: float = ..., reduction: str = ..., *, num_threads: int | None = ...,
                 out: FloatArray | None = ..., return_grad: Literal[True],
                 grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                 smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., alpha: float = ...,
                 beta: float = ..., reduction: str = ..., *, num_threads: int | None = ...,
                 out: FloatArray | None = ..., return_grad: bool = ...,
                 grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="segmentation", items="sample_class")
def tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = "multiclass", from_logits: bool = True,
                 smooth: float = 0.0, eps: float = 1e-7, ignore_index: int | None = None, alpha: float = 0.5,
                 beta: float = 0.5, reduction: str = "mean", *, num_threads: int | None = None,
                 out: FloatArray | None = None, return_grad: bool = False,
                 grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Tversky loss per (sample, class) pair (segmentation_models_pytorch's ``TverskyLoss`` with
    ``gamma=1``).

    .. math::

        \ell_{nc} = 1 - \frac{TP + \text{smooth}}
                             {\max(TP + \alpha\, FP + \beta\, FN + \text{smooth},\ \epsilon)}

    with :math:`FP = \sum_s p (1 - t)` and :math:`FN = \sum_s (1 - p)\, t`;
    :math:`\alpha = \beta = 0.5` is the Dice loss, :math:`\alpha = \beta = 1` the Jaccard loss.

    Parameters
    ----------
    input : array_like
        Shape ``(N, C, *spatial)``: logits (``from_logits=True``, default) or probabilities, floating
        point, read in place.
    target : array_like
        ``mode="multiclass"``: class indices of shape ``(N, *spatial)`` (any integer dtype), or masks of
        ``input``'s shape; ``"multilabel"``: masks ``(N, C, *spatial)``; ``"binary"``: masks
        ``(N, 1, *spatial)`` or ``(N, *spatial)``.  Masks may be soft (values in [0, 1]).
    mode : {"multiclass", "multilabel", "binary"}, optional
        The activation applied to logits: softmax over C (``"multiclass"``, default), or a sigmoid
        per element (``"multilabel"``, and ``"binary"`` with C = 1).
    from_logits : bool, optional
        Whether ``input`` holds logits (default) or already probabilities (no activation).
    smooth : float, optional
        Added to numerator and denominator, :math:`\ge 0`; default 0.
    eps : float, optional
        :math:`\epsilon \ge 0`, the smallest denominator; default 1e-7.
    ignore_index : int or None, optional
        Target value whose positions are skipped; None (default): none.
    alpha : float, optional
        :math:`\alpha \ge 0`, the weight of false positives; default 0.5.
    beta : float, optional
        :math:`\beta \ge 0`, the weight of false negatives; default 0.5.
    reduction : {"mean", "sum", "none"}, optional
        Over the N x C pairs: ``"none"`` gives (N, C), ``"mean"`` (default; nan over zero pairs),
        ``"sum"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous (N, C) array of the
        computation dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses), computed in a second pass.
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (N, C) pair losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        An unknown ``mode``, ``input`` that is not (N, C, ...) (C = 1 for ``"binary"``), a
        ``target`` shape that fits neither form, negative ``smooth``, ``eps``, ``alpha`` or
        ``beta``, or a bad ``reduction``.
    IndexError
        A class index outside [0, C) that is not ``ignore_index``.
    TypeError
        An ``ignore_index`` that is not an int or None.

    See Also
    --------
    focal_tversky_loss : the same score, raised to a power per pair.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> p = np.array([[[0.9, 0.8, 0.1, 0.0]]])
    >>> t = np.array([[[1.0, 1.0, 0.0, 1.0]]])
    >>> tp, fp, fn = (p * t).sum(), (p * (1 - t)).sum(), ((1 - p) * t).sum()
    >>> ref = 1 - tp / (tp + 0.3 * fp + 0.7 * fn)
    >>> loss = fl.tversky_loss(p, t, mode="binary", from_logits=False, alpha=0.3, beta=0.7)
    >>> bool(np.isclose(loss, ref))
    True
    """
    a = V.check_real(alpha, "alpha", low=0.0)
    b = V.check_real(beta, "beta", low=0.0)
    return _overlap_loss("tversky", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, grad_out, alpha=a, beta=b)


@overload
def focal_tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                       smooth: float = ..., eps: float = ..., ignore_index: int | None = ...,
                       alpha: float = ..., beta: float = ..., gamma: float = ..., reduction: str = ..., *,
                       num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def focal_tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                       smooth: float = ..., eps: float = ..., ignore_index: int | None = ...,
                       alpha: float = ..., beta: float = ..., gamma: float = ..., reduction: str = ..., *,
                       num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def focal_tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., from_logits: bool = ...,
                       smooth: float = ..., eps: float = ..., ignore_index: int | None = ...,
                       alpha: float = ..., beta: float = ..., gamma: float = ..., reduction: str = ..., *,
                       num_threads: int | None = ..., out: FloatArray | None = ...,
                       return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="segmentation", items="sample_class")
def focal_tversky_loss(input: ArrayLike, target: ArrayLike, mode: str = "multiclass",
                       from_logits: bool = True, smooth: float = 0.0, eps: float = 1e-7,
                       ignore_index: int | None = None, alpha: float = 0.5, beta: float = 0.5,
                       gamma: float = 1.0, reduction: str = "mean", *, num_threads: int | None = None,
                       out: FloatArray | None = None, return_grad: bool = False,
                       grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Focal Tversky loss (Abraham and Khan, 2019): the Tversky loss of each (sample, class) pair
    raised to the power :math:`\gamma`.

    .. math::

        \ell_{nc} = \Bigl(1 - \frac{TP + \text{smooth}}
                                   {\max(TP + \alpha\, FP + \beta\, FN + \text{smooth},\ \epsilon)}
                    \Bigr)^{\gamma}

    then reduced over the pairs.  segmentation_models_pytorch's ``TverskyLoss(gamma=...)`` instead
    raises the *mean* loss to :math:`\gamma`; applying it per pair keeps ``reduction="none"``
    meaningful.  ``gamma=1`` is :func:`tversky_loss`; ``gamma=0`` gives 1 with zero gradient.

    Parameters
    ----------
    input : array_like
        Shape ``(N, C, *spatial)``: logits (``from_logits=True``, default) or probabilities, floating
        point, read in place.
    target : array_like
        ``mode="multiclass"``: class indices of shape ``(N, *spatial)`` (any integer dtype), or masks of
        ``input``'s shape; ``"multilabel"``: masks ``(N, C, *spatial)``; ``"binary"``: masks
        ``(N, 1, *spatial)`` or ``(N, *spatial)``.  Masks may be soft (values in [0, 1]).
    mode : {"multiclass", "multilabel", "binary"}, optional
        The activation applied to logits: softmax over C (``"multiclass"``, default), or a sigmoid
        per element (``"multilabel"``, and ``"binary"`` with C = 1).
    from_logits : bool, optional
        Whether ``input`` holds logits (default) or already probabilities (no activation).
    smooth : float, optional
        Added to numerator and denominator, :math:`\ge 0`; default 0.
    eps : float, optional
        :math:`\epsilon \ge 0`, the smallest denominator; default 1e-7.
    ignore_index : int or None, optional
        Target value whose positions are skipped; None (default): none.
    alpha : float, optional
        :math:`\alpha \ge 0`, the weight of false positives; default 0.5.
    beta : float, optional
        :math:`\beta \ge 0`, the weight of false negatives; default 0.5.
    gamma : float, optional
        :math:`\gamma \ge 0`; default 1.
    reduction : {"mean", "sum", "none"}, optional
        Over the N x C pairs: ``"none"`` gives (N, C), ``"mean"`` (default; nan over zero pairs),
        ``"sum"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous (N, C) array of the
        computation dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses), computed in a second pass.
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (N, C) pair losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        An unknown ``mode``, ``input`` that is not (N, C, ...) (C = 1 for ``"binary"``), a
        ``target`` shape that fits neither form, negative ``smooth``, ``eps``, ``alpha``, ``beta``
        or ``gamma``, or a bad ``reduction``.
    IndexError
        A class index outside [0, C) that is not ``ignore_index``.
    TypeError
        An ``ignore_index`` that is not an int or None.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 2, 8))
    >>> per_pair = fl.tversky_loss(x, x > 0.5, mode="multilabel", reduction="none")
    >>> loss = fl.focal_tversky_loss(x, x > 0.5, mode="multilabel", gamma=0.75)
    >>> bool(np.isclose(loss, np.mean(per_pair ** 0.75)))
    True
    """
    a = V.check_real(alpha, "alpha", low=0.0)
    b = V.check_real(beta, "beta", low=0.0)
    g = V.check_real(gamma, "gamma", low=0.0)
    return _overlap_loss("tversky", input, target, mode, from_logits, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, grad_out, alpha=a, beta=b, gamma=g)


@overload
def dice_bce_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., dice_weight: float = ...,
                  smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ...,
                  *, num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def dice_bce_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., dice_weight: float = ...,
                  smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ...,
                  *, num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def dice_bce_loss(input: ArrayLike, target: ArrayLike, mode: str = ..., dice_weight: float = ...,
                  smooth: float = ..., eps: float = ..., ignore_index: int | None = ..., reduction: str = ...,
                  *, num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="segmentation", items="sample_class")
def dice_bce_loss(input: ArrayLike, target: ArrayLike, mode: str = "binary", dice_weight: float = 0.5,
                  smooth: float = 0.0, eps: float = 1e-7, ignore_index: int | None = None,
                  reduction: str = "mean", *, num_threads: int | None = None, out: FloatArray | None = None,
                  return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Dice plus binary cross-entropy with logits, in one pass over the logits (sigmoid modes).

    Per (sample, class) pair, with
    :math:`\operatorname{BCE}(x, t) = (1 - t)\, x + \operatorname{softplus}(-x)`
    (torch's stable form) averaged over the pair's valid positions and :math:`w` = ``dice_weight``,

    .. math::

        \ell_{nc} = w\, \ell^{\text{Dice}}_{nc} + (1 - w)\, \overline{\operatorname{BCE}}_{nc}

    so with ``reduction="mean"`` and no ``ignore_index`` this is exactly
    ``w * dice_loss(...) + (1 - w) * binary_cross_entropy_with_logits(input, target)``.  A pair
    with no valid position contributes 0 BCE.

    Parameters
    ----------
    input : array_like
        Logits of shape ``(N, 1, *spatial)`` for ``"binary"``, ``(N, C, *spatial)`` for ``"multilabel"``.
    target : array_like
        Masks: ``(N, 1, *spatial)`` or ``(N, *spatial)`` for ``"binary"``, ``(N, C, *spatial)`` for
        ``"multilabel"``; may be soft (values in [0, 1]).
    mode : {"binary", "multilabel"}, optional
        Default ``"binary"``; ``"multiclass"`` is a ``ValueError``.
    dice_weight : float, optional
        :math:`w` in [0, 1]; default 0.5.
    smooth : float, optional
        The Dice term's smoothing, :math:`\ge 0`; default 0.
    eps : float, optional
        The Dice term's smallest denominator, :math:`\ge 0`; default 1e-7.
    ignore_index : int or None, optional
        Target value whose positions are skipped by both terms; None (default): none.
    reduction : {"mean", "sum", "none"}, optional
        Over the N x C pairs: ``"none"`` gives (N, C), ``"mean"`` (default), ``"sum"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous (N, C) array of the
        computation dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses), computed in a second pass.
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (N, C) pair losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        ``mode="multiclass"``, ``dice_weight`` outside [0, 1], shapes that do not fit, negative
        ``smooth`` / ``eps``, or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 1, 8, 8))
    >>> t = (rng.random((2, 1, 8, 8)) > 0.5).astype(float)
    >>> both = 0.3 * fl.dice_loss(x, t, mode="binary") + 0.7 * fl.binary_cross_entropy_with_logits(x, t)
    >>> bool(np.isclose(fl.dice_bce_loss(x, t, dice_weight=0.3), both))
    True
    """
    V.check_choice(mode, "mode", ("binary", "multilabel"))     # (dice_bce_loss: sigmoid modes only)
    w = V.check_real(dice_weight, "dice_weight", low=0.0, high=1.0)
    return _overlap_loss("dice", input, target, mode, True, smooth, eps, ignore_index, reduction,
                         num_threads, out, return_grad, grad_out, dice_weight=w)


for _f in (dice_loss, jaccard_loss, tversky_loss, focal_tversky_loss, dice_bce_loss):
    if _f.__doc__ is not None:      # None under python -OO
        _f.__doc__ += _SHAPES_DOC
del _f
