"""Reference entries of the segmentation family (see fastloss/_reference/__init__.py): the overlap losses of
SPEC §6 per (sample, class) pair, with a torch-ops reference written the way segmentation_models_pytorch
computes them (probabilities as exp(log_softmax) / exp(logsigmoid), one-hot targets, the mask multiplied
in; Dice and Jaccard from intersection and cardinality, Tversky from FP and FN summed directly), and a
NumPy reference that sums TP, FP and FN directly for every loss (a second form of the same values)."""
import numpy as np

from . import Reference, register
from .classification import _t, _torch


def torch_overlap_ref(kind, input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7,
                      ignore_index=None, alpha=0.5, beta=0.5, gamma=1.0, dice_weight=None, reduction="mean"):
    """SPEC §6 overlap loss ``kind`` in ("dice", "jaccard", "tversky", "focal_tversky") on float64 tensors
    (autograd-able); ``dice_weight`` adds (1 - w) * per-pair mean BCE-with-logits (dice_bce_loss)."""
    torch, F = _torch()
    N, C = input.shape[:2]
    S = int(np.prod(input.shape[2:]))
    x = input.reshape(N, C, S)
    if from_logits:
        p = x.log_softmax(dim=1).exp() if mode == "multiclass" else F.logsigmoid(x).exp()
    else:
        p = x
    if mode == "multiclass" and not target.is_floating_point() and target.dim() == input.dim() - 1:
        y = target.reshape(N, 1, S)
        t = (y == torch.arange(C).reshape(1, C, 1)).to(x.dtype)          # one-hot, class-major
        valid = (y != ignore_index).to(x.dtype) if ignore_index is not None else None
    else:
        t = target.reshape(N, C, S).to(x.dtype)
        valid = (t != ignore_index).to(x.dtype) if ignore_index is not None else None
    if valid is not None:                               # (no mask: multiplying by ones changes nothing)
        p, t = p * valid, t * valid
    tp = (p * t).sum(2)
    if kind in ("dice", "jaccard"):                     # smp: intersection and cardinality
        card = (p + t).sum(2)
        score = (2 * tp + smooth if kind == "dice" else tp + smooth) \
            / ((card if kind == "dice" else card - tp) + smooth).clamp_min(eps)
    else:                                               # smp's Tversky: FP and FN summed directly
        fp = (p * (1 - t)).sum(2)
        fn = ((1 - p) * t).sum(2)
        score = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)
    loss = 1 - score
    if kind == "focal_tversky":
        loss = loss ** gamma
    if dice_weight is not None:
        valid = torch.ones_like(x) if valid is None else valid.expand_as(x)
        bce = (F.binary_cross_entropy_with_logits(x, t, reduction="none") * valid).sum(2)
        count = valid.sum(2)
        mean_bce = torch.where(count > 0, bce / count.clamp_min(1), 0 * bce)
        loss = dice_weight * loss + (1 - dice_weight) * mean_bce
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def np_sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_overlap_ref(kind, input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7,
                   ignore_index=None, alpha=0.5, beta=0.5, gamma=1.0, dice_weight=None, reduction="mean"):
    """The same SPEC §6 overlap loss in NumPy, in the dtype of ``input``: stable sigmoid / softmax, TP,
    FP and FN summed directly per (sample, class) pair."""
    x = np.asarray(input)
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:]))
    xs = x.reshape(N, C, S)
    if from_logits:
        p = np_softmax(xs) if mode == "multiclass" else np_sigmoid(xs)
    else:
        p = xs
    target = np.asarray(target)
    if mode == "multiclass" and target.ndim == x.ndim - 1:
        y = target.reshape(N, 1, S)
        t = (y == np.arange(C).reshape(1, C, 1)).astype(x.dtype)
        valid = None if ignore_index is None else np.broadcast_to(y != ignore_index, t.shape)
    else:
        t = target.reshape(N, C, S).astype(x.dtype)
        valid = None if ignore_index is None else t != ignore_index
    v = None if valid is None else valid.astype(x.dtype)
    pv, tv = (p, t) if v is None else (p * v, t * v)            # (no mask: multiplying by ones changes nothing)
    tp, fp, fn = (pv * tv).sum(2), (pv * (1 - tv)).sum(2), ((1 - pv) * tv).sum(2)
    if kind == "dice":
        score = (2 * tp + smooth) / np.maximum(2 * tp + fp + fn + smooth, eps)
    elif kind == "jaccard":
        score = (tp + smooth) / np.maximum(tp + fp + fn + smooth, eps)
    else:
        score = (tp + smooth) / np.maximum(tp + alpha * fp + beta * fn + smooth, eps)
    loss = 1 - score
    if kind == "focal_tversky":
        loss = loss ** gamma
    if dice_weight is not None:
        v = np.ones_like(xs) if v is None else v
        bce = np.maximum(xs, 0) - xs * tv + np.log1p(np.exp(-np.abs(xs)))
        cnt = v.sum(2)
        loss = dice_weight * loss + (1 - dice_weight) * np.where(cnt > 0, (bce * v).sum(2) / np.maximum(cnt, 1), 0)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _sample_multiclass(rng, n, dtype, C=4):
    S = max(n // (2 * C), 1)
    return (rng.standard_normal((2, C, S, 1)).astype(dtype) * 2, rng.integers(0, C, (2, S, 1))), \
        {"mode": "multiclass"}


def _sample_binary(rng, n, dtype):
    S = max(n // 2, 1)
    x = rng.standard_normal((2, 1, S, 1)).astype(dtype) * 2
    return (x, (rng.random((2, 1, S, 1)) > 0.5).astype(dtype)), {"mode": "binary"}


def _refs(kind, **defaults):
    """(torch_ref, numpy_ref) of the overlap loss ``kind`` with the public function's extra defaults."""
    def torch_ref(x, y, **kw):
        return torch_overlap_ref(kind, _t(x), _t(y), **{**defaults, **kw})

    def numpy_ref(x, y, **kw):
        return np_overlap_ref(kind, x, y, **{**defaults, **kw})
    return dict(torch_ref=torch_ref, numpy_ref=numpy_ref)


register(Reference("dice_loss", "segmentation", _sample_multiclass, **_refs("dice")))
register(Reference("jaccard_loss", "segmentation", _sample_multiclass, **_refs("jaccard")))
register(Reference(
    "tversky_loss", "segmentation",
    lambda rng, n, dtype: (_sample_multiclass(rng, n, dtype)[0],
                           {"mode": "multiclass", "alpha": 0.3, "beta": 0.7}),
    **_refs("tversky"),
))
register(Reference(
    "focal_tversky_loss", "segmentation",
    lambda rng, n, dtype: (_sample_multiclass(rng, n, dtype)[0],
                           {"mode": "multiclass", "alpha": 0.3, "beta": 0.7, "gamma": 0.75}),
    **_refs("focal_tversky"),
))
register(Reference(
    "dice_bce_loss", "segmentation", _sample_binary, **_refs("dice", dice_weight=0.5),
    notes="from logits only; per pair: w * Dice + (1 - w) * mean BCE over the valid positions",
))
