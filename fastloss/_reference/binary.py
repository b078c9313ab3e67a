"""Reference entries of the binary family (see fastloss/_reference/__init__.py): binary cross-entropy on
probabilities and on logits, sigmoid focal loss, hinge loss, KL divergence."""
import numpy as np

from . import Reference, register
from .classification import _t, _torch, softplus_neg


def _reduce(loss, reduction):
    return {"none": lambda v: v, "mean": lambda v: v.mean(), "sum": lambda v: v.sum()}[reduction](loss)


def np_bce_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """(1 - y) x + (1 + (pw - 1) y) softplus(-x), times weight, in NumPy."""
    sp = softplus_neg(input)
    lw = sp if pos_weight is None else (1 + (pos_weight - 1) * target) * sp
    loss = (1 - target) * input + lw
    loss = loss if weight is None else loss * weight
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def torchvision_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, its formula written in torch ops (torchvision is optional)."""
    torch, F = _torch()
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return _reduce(loss, reduction)


def np_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss in NumPy, with p = exp(-softplus(-x)) (no overflow)."""
    sp = softplus_neg(inputs)
    p = np.exp(-sp)
    ce = (1 - targets) * inputs + sp
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def torch_hinge_loss(input, target, margin=1.0, squared=False, reduction="mean"):
    """SPEC section 6 hinge in torch ops (relu: subgradient 0 at the hinge)."""
    _, F = _torch()
    h = F.relu(margin - target * input)
    return _reduce(h * h if squared else h, reduction)


def _sample_probs(rng, n, dtype):
    p = rng.uniform(0.001, 0.999, n).astype(dtype)
    return (p, rng.random(n).astype(dtype)), {}


register(Reference(
    "binary_cross_entropy", "binary", _sample_probs,
    torch_ref=lambda x, y, **kw: _torch()[1].binary_cross_entropy(_t(x), _t(y), **kw),
))


def _sample_logits_binary(rng, n, dtype):
    return (rng.standard_normal(n).astype(dtype) * 2, (rng.random(n) > 0.5).astype(dtype)), {}


register(Reference(
    "sigmoid_focal_loss", "binary", _sample_logits_binary,
    torch_ref=lambda x, y, **kw: torchvision_sigmoid_focal_loss(_t(x), _t(y), **kw),
    numpy_ref=np_sigmoid_focal_loss,
    notes="torchvision.ops.sigmoid_focal_loss; stable form, so it is more exact than the reference "
          "for |x| >~ 10 (1 - p_t cancels there in the reference)",
))


def _sample_hinge(rng, n, dtype):
    return (rng.standard_normal(n).astype(dtype) * 2, np.where(rng.random(n) > 0.5, 1, -1).astype(dtype)), {}


register(Reference(
    "hinge_loss", "binary", _sample_hinge,
    torch_ref=lambda x, y, **kw: torch_hinge_loss(_t(x), _t(y), **kw),
))


def _sample_kl(rng, n, dtype, C=8):
    N = max(n // C, 1)
    logits = rng.standard_normal((N, C))
    log_q = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    p = rng.dirichlet(np.ones(C), N)
    return (log_q.astype(dtype), p.astype(dtype)), {}


register(Reference(
    "kl_div", "binary", _sample_kl,
    torch_ref=lambda x, y, **kw: _torch()[1].kl_div(_t(x), _t(y), **kw),
))


def _sample_bce_logits(rng, n, dtype):
    return (rng.standard_normal(n).astype(dtype) * 4, (rng.random(n) > 0.5).astype(dtype)), {}


register(Reference(
    "binary_cross_entropy_with_logits", "binary", _sample_bce_logits,
    torch_ref=lambda x, y, **kw: _torch()[1].binary_cross_entropy_with_logits(_t(x), _t(y), **kw),
    numpy_ref=np_bce_with_logits,
))
