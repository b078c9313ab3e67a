"""Reference entries of the classification family (see fastloss/_reference/__init__.py)."""
import numpy as np

from . import Reference, register


def _torch():
    import torch
    import torch.nn.functional as F
    return torch, F


def _t(a):
    torch, _ = _torch()
    if isinstance(a, torch.Tensor):      # already a (float64, maybe requires_grad) tensor: keep it
        return a
    return torch.as_tensor(np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a))


def softplus_neg(x):
    """-log(sigmoid(x)) = log1p(exp(-|x|)) + max(-x, 0) in NumPy: never overflows."""
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)


def np_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch's cross_entropy with class-index targets, (N, C) or (N, C, d1, ...) logits, in NumPy."""
    C = input.shape[1]
    x = np.moveaxis(input, 1, -1).reshape(-1, C)      # a copy for the spatial layout, as NumPy must
    y = target.reshape(-1)
    m = x.max(axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)                # an infinite row max shifts by 0 (torch's rule)
    lse = m[:, 0] + np.log(np.exp(x - m).sum(axis=1))
    valid = y != ignore_index
    ys = np.where(valid, y, 0)
    w = np.ones(C, dtype=x.dtype) if weight is None else weight
    wy = np.where(valid, w[ys], 0).astype(x.dtype)
    loss = (1 - label_smoothing) * wy * (lse - np.take_along_axis(x, ys[:, None], 1)[:, 0])
    if label_smoothing:
        smooth = ((lse[:, None] - x) * w).sum(axis=1)
        loss = loss + np.where(valid, label_smoothing / C * smooth, 0).astype(x.dtype)
    if reduction == "none":
        return loss.reshape(target.shape)
    return loss.sum() / wy.sum() if reduction == "mean" else loss.sum()


def _sample_ce(rng, n, dtype, C=10):
    N = max(n // C, 1)
    return (rng.standard_normal((N, C)).astype(dtype) * 3, rng.integers(0, C, N)), {}


register(Reference(
    "cross_entropy", "classification", _sample_ce,
    torch_ref=lambda x, y, **kw: _torch()[1].cross_entropy(_t(x), _t(y), **kw),
    numpy_ref=np_cross_entropy,
))


def _sample_nll(rng, n, dtype, C=10):
    (x, y), _ = _sample_ce(rng, n, np.float64, C)
    logp = x - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True)) - x.max(1, keepdims=True)
    return (logp.astype(dtype), y), {}


register(Reference(
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


register(Reference(
    "softmax_focal_loss", "classification", lambda rng, n, dtype: (_sample_ce(rng, n, dtype)[0], {"gamma": 2.0}),
    torch_ref=_focal_torch,
))


def _sample_multi_margin(rng, n, dtype, C=10):
    return _sample_ce(rng, n, dtype, C)[0], {"margin": 1.0}


register(Reference(
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


register(Reference(
    "distillation_loss", "classification", _sample_distillation,
    torch_ref=lambda s, t, **kw: distillation_ref(_t(s), _t(t), **kw),
))


def class_balanced_weights_ref(counts, beta=0.9999):
    """w_c = (1 - beta) / (1 - beta**n_c), 0 for empty classes, normalised to sum to len(counts)."""
    n = np.asarray(counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(n > 0, (1.0 - beta) / (1.0 - beta ** n), 0.0)
    return w * (len(n) / w.sum()) if w.sum() > 0 else w


register(Reference(
    "class_balanced_weights", "classification",
    lambda rng, n, dtype: ((rng.integers(0, 1000, max(n, 1)),), {"beta": 0.999}),
    numpy_ref=class_balanced_weights_ref, grad_argnums=(), default_reduction="none",
    notes="not a loss: a weight helper (no reduction / out / return_grad / num_threads)",
))
