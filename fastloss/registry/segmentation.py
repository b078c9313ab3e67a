"""Registry entries of the segmentation family (see fastloss/registry/__init__.py): the overlap losses of
SPEC §6, with a torch-ops reference written the way segmentation_models_pytorch computes them (one_hot,
masks multiplied in, FP and FN summed directly), per (sample, class) pair."""
import numpy as np

from . import LossSpec, register
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
        y = target.reshape(N, S)
        valid = (y != ignore_index) if ignore_index is not None else torch.ones_like(y, dtype=torch.bool)
        t = F.one_hot(torch.where(valid, y, torch.zeros_like(y)), C).permute(0, 2, 1).to(x.dtype)
        valid = valid.unsqueeze(1).to(x.dtype)
    else:
        t = target.reshape(N, C, S).to(x.dtype)
        valid = (t != ignore_index).to(x.dtype) if ignore_index is not None else torch.ones_like(t)
    p, t = p * valid, t * valid
    tp = (p * t).sum(2)
    fp = (p * (1 - t)).sum(2)
    fn = ((1 - p) * t).sum(2)
    if kind == "dice":
        score = (2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(eps)
    elif kind == "jaccard":
        score = (tp + smooth) / (tp + fp + fn + smooth).clamp_min(eps)
    else:
        score = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth).clamp_min(eps)
    loss = 1 - score
    if kind == "focal_tversky":
        loss = loss ** gamma
    if dice_weight is not None:
        bce = (F.binary_cross_entropy_with_logits(x, t, reduction="none") * valid).sum(2)
        count = valid.expand_as(x).sum(2)
        mean_bce = torch.where(count > 0, bce / count.clamp_min(1), 0 * bce)
        loss = dice_weight * loss + (1 - dice_weight) * mean_bce
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


def _ref(kind):
    return lambda x, y, **kw: torch_overlap_ref(kind, _t(x), _t(y), **kw)


register(LossSpec("dice_loss", "segmentation", _sample_multiclass, torch_ref=_ref("dice")))
register(LossSpec("jaccard_loss", "segmentation", _sample_multiclass, torch_ref=_ref("jaccard")))
register(LossSpec(
    "tversky_loss", "segmentation",
    lambda rng, n, dtype: (_sample_multiclass(rng, n, dtype)[0],
                           {"mode": "multiclass", "alpha": 0.3, "beta": 0.7}),
    torch_ref=_ref("tversky"),
))
register(LossSpec(
    "focal_tversky_loss", "segmentation",
    lambda rng, n, dtype: (_sample_multiclass(rng, n, dtype)[0],
                           {"mode": "multiclass", "alpha": 0.3, "beta": 0.7, "gamma": 0.75}),
    torch_ref=_ref("focal_tversky"),
))
register(LossSpec(
    "dice_bce_loss", "segmentation", _sample_binary,
    torch_ref=lambda x, y, dice_weight=0.5, **kw: torch_overlap_ref("dice", _t(x), _t(y),
                                                                    dice_weight=dice_weight, **kw),
    notes="from logits only; per pair: w * Dice + (1 - w) * mean BCE over the valid positions",
))
