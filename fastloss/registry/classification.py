"""Registry entries of the classification family (see fastloss/registry/__init__.py)."""
import numpy as np

from . import LossSpec, register


def _torch():
    import torch
    import torch.nn.functional as F
    return torch, F


def _t(a):
    torch, _ = _torch()
    if isinstance(a, torch.Tensor):      # already a (float64, maybe requires_grad) tensor: keep it
        return a
    return torch.as_tensor(np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a))


def _sample_ce(rng, n, dtype, C=10):
    N = max(n // C, 1)
    return (rng.standard_normal((N, C)).astype(dtype) * 3, rng.integers(0, C, N)), {}


register(LossSpec(
    "cross_entropy", "classification", _sample_ce,
    torch_ref=lambda x, y, **kw: _torch()[1].cross_entropy(_t(x), _t(y), **kw),
))


def _sample_bce_logits(rng, n, dtype):
    return (rng.standard_normal(n).astype(dtype) * 4, (rng.random(n) > 0.5).astype(dtype)), {}


register(LossSpec(
    "binary_cross_entropy_with_logits", "classification", _sample_bce_logits,
    torch_ref=lambda x, y, **kw: _torch()[1].binary_cross_entropy_with_logits(_t(x), _t(y), **kw),
))


def _sample_nll(rng, n, dtype, C=10):
    (x, y), _ = _sample_ce(rng, n, np.float64, C)
    logp = x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(1, keepdims=True)
    return (logp.astype(dtype), y), {}


register(LossSpec(
    "nll_loss", "classification", _sample_nll,
    torch_ref=lambda x, y, **kw: _torch()[1].nll_loss(_t(x), _t(y), **kw),
))


def softmax_focal_ref(x, y, alpha=None, gamma=2.0, weight=None, ignore_index=-100, reduction="mean"):
    """SPEC §6 softmax focal loss from torch ops (float64 tensors in, autograd-able): with lp = log p_y,
    -alpha_y * w_y * (1 - p_y)^gamma * lp; ``mean`` divides by the sum of w_y over non-ignored targets.
    (1 - p_y) is formed as -expm1(lp), so it stays accurate when p_y is close to 1."""
    torch, F = _torch()
    unbatched = x.dim() == 1
    if unbatched:
        x, y = x[None], y.reshape(1)
    valid = y != ignore_index
    yc = torch.where(valid, y, torch.zeros_like(y))
    lp = F.log_softmax(x, dim=1).gather(1, yc.unsqueeze(1)).squeeze(1)
    w = weight[yc] if weight is not None else torch.ones_like(lp)
    w = torch.where(valid, w, torch.zeros_like(w))
    a = alpha[yc] if alpha is not None else torch.ones_like(lp)
    loss = torch.where(valid, -a * w * (-torch.expm1(lp)) ** gamma * lp, torch.zeros_like(lp))
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / w.sum()
    return loss[0] if unbatched else loss


def _focal_torch(x, y, alpha=None, gamma=2.0, weight=None, ignore_index=-100, reduction="mean"):
    return softmax_focal_ref(_t(x), _t(y), None if alpha is None else _t(alpha), gamma,
                             None if weight is None else _t(weight), ignore_index, reduction)


register(LossSpec(
    "softmax_focal_loss", "classification", lambda rng, n, dtype: (_sample_ce(rng, n, dtype)[0], {"gamma": 2.0}),
    torch_ref=_focal_torch,
))


def _sample_multi_margin(rng, n, dtype, C=10):
    return _sample_ce(rng, n, dtype, C)[0], {"margin": 1.0}


register(LossSpec(
    "multi_margin_loss", "classification", _sample_multi_margin,
    torch_ref=lambda x, y, **kw: _torch()[1].multi_margin_loss(_t(x), _t(y), **kw),
))


def distillation_ref(s, t, temperature=1.0, reduction="batchmean"):
    """SPEC §6: kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True) * T**2 on float64 tensors;
    ``none`` gives the per-row sums (the class axis is the last)."""
    torch, F = _torch()
    T = temperature
    kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                  reduction="none" if reduction == "none" else reduction)
    return (kl.sum(-1) if reduction == "none" else kl) * T ** 2


def _sample_distillation(rng, n, dtype, C=10):
    N = max(n // C, 1)
    return (rng.standard_normal((N, C)).astype(dtype) * 3, rng.standard_normal((N, C)).astype(dtype) * 3), \
        {"temperature": 2.0}


register(LossSpec(
    "distillation_loss", "classification", _sample_distillation,
    torch_ref=lambda s, t, **kw: distillation_ref(_t(s), _t(t), **kw),
    default_reduction="batchmean",
))


def class_balanced_weights_ref(counts, beta=0.9999):
    """w_c = (1 - beta) / (1 - beta**n_c), 0 for empty classes, normalised to sum to len(counts)."""
    n = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(n > 0, (1.0 - beta) / (1.0 - beta ** n), 0.0)
    return w * (len(n) / w.sum()) if w.sum() > 0 else w


register(LossSpec(
    "class_balanced_weights", "classification",
    lambda rng, n, dtype: ((rng.integers(0, 1000, max(n, 1)),), {"beta": 0.999}),
    numpy_ref=class_balanced_weights_ref, grad_argnums=(), default_reduction="none",
    notes="not a loss: a weight helper (no reduction / out / return_grad / num_threads)",
))
