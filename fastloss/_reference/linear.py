"""Reference entries of the linear family (see fastloss/_reference/__init__.py): the fused linear
cross-entropy against the unfused computation, ``cross_entropy(F.linear(hidden, weight, bias), target)``
with the soft-cap and z-loss terms written out in torch ops (and the same in NumPy)."""
import numpy as np

from . import Reference, register


def _torch():
    import torch
    import torch.nn.functional as F
    return torch, F


def _t(a):
    torch, _ = _torch()
    if a is None or isinstance(a, torch.Tensor):      # tensors (float64 autograd leaves, bench views) as given
        return a
    a = np.asarray(a)
    return torch.as_tensor(a.astype(np.float64) if a.dtype.kind == "f" else a)


def _sample(rng, n, dtype, d=16, V=37):
    """~n logits: N tokens of d features, a V-class head with a bias; a tenth of the targets ignored."""
    N = max(n // V, 1)
    h = rng.standard_normal((N, d)).astype(dtype)
    w = (rng.standard_normal((V, d)) / np.sqrt(d)).astype(dtype)
    y = rng.integers(0, V, N)
    y[rng.random(N) < 0.1] = -100
    return (h, w, y, rng.standard_normal(V).astype(dtype)), {}


def linear_cross_entropy_torch(hidden, weight, target, bias=None, *, ignore_index=-100, label_smoothing=0.0,
                               reduction="mean", logit_softcap=None, z_loss=0.0):
    """F.cross_entropy(F.linear(hidden, weight, bias), target), after c tanh(x / c) when soft-capped, plus
    z_loss * logsumexp(z)^2 per token not ignored; the mean over the tokens not ignored."""
    torch, F = _torch()
    h, w, b, y = _t(hidden), _t(weight), _t(bias), _t(target).long()
    z = F.linear(h, w, b)
    if logit_softcap is not None:
        z = logit_softcap * torch.tanh(z / logit_softcap)
    if not z_loss:
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=ignore_index,
                               label_smoothing=label_smoothing, reduction=reduction).reshape(
            y.shape if reduction == "none" else ())
    per = F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=ignore_index,
                          label_smoothing=label_smoothing, reduction="none")
    keep = y.reshape(-1) != ignore_index
    per = per + z_loss * torch.logsumexp(z.reshape(-1, z.shape[-1]), 1) ** 2 * keep
    if reduction == "none":
        return per.reshape(y.shape)
    return per.sum() / keep.sum() if reduction == "mean" else per.sum()


def linear_cross_entropy_numpy(hidden, weight, target, bias=None, *, ignore_index=-100, label_smoothing=0.0,
                               reduction="mean", logit_softcap=None, z_loss=0.0):
    """The same in NumPy, materialising the logits (shifted log-sum-exp)."""
    z = np.asarray(hidden) @ np.asarray(weight).T
    if bias is not None:
        z = z + bias
    if logit_softcap is not None:
        z = logit_softcap * np.tanh(z / logit_softcap)
    z = z.reshape(-1, z.shape[-1])
    y = np.asarray(target).reshape(-1)
    keep = y != ignore_index
    m = z.max(axis=1, keepdims=True)
    lse = (np.log(np.exp(z - m).sum(axis=1, keepdims=True)) + m)[:, 0]
    zy = np.take_along_axis(z, np.where(keep, y, 0)[:, None], axis=1)[:, 0]
    eps, V = label_smoothing, z.shape[1]
    per = (1 - eps) * (lse - zy) + eps * (lse - z.mean(axis=1)) + z_loss * lse ** 2
    per = np.where(keep, per, 0).astype(z.dtype)
    if reduction == "none":
        return per.reshape(np.shape(target))
    return per.sum() / keep.sum() if reduction == "mean" else per.sum()


register(Reference("linear_cross_entropy", "linear", _sample, torch_ref=linear_cross_entropy_torch,
                   numpy_ref=linear_cross_entropy_numpy))
