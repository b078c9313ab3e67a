"""Registry entries of the classification family (see fastloss/registry/__init__.py)."""
import numpy as np

from . import LossSpec, register


def _torch():
    import torch
    import torch.nn.functional as F
    return torch, F


def _t(a):
    torch, _ = _torch()
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
