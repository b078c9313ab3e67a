"""Registry entries of the metric family (see fastloss/registry/__init__.py).

The torch losses use ``torch.nn.functional``; the SPEC §6 losses use the formula written in torch ops
here (the usual PyTorch implementations, run in float64 by the tests and in float32 by the benchmark).
"""
import numpy as np

from . import LossSpec, register


def _torch():
    import torch
    import torch.nn.functional as F
    return torch, F


def _t(a):
    torch, _ = _torch()
    if isinstance(a, torch.Tensor):
        return a
    a = np.asarray(a)
    return torch.as_tensor(a.astype(np.float64) if a.dtype.kind == "f" else a)


def _rows(n, D=16):
    return max(n // D, 1), D


def _sample_triplet(rng, n, dtype):
    N, D = _rows(n)
    return tuple(rng.standard_normal((N, D)).astype(dtype) for _ in range(3)), {}


def _sample_pair_signed(rng, n, dtype):
    N, D = _rows(n)
    x1, x2 = (rng.standard_normal((N, D)).astype(dtype) for _ in range(2))
    return (x1, x2, rng.choice([-1.0, 1.0], N).astype(dtype)), {"margin": 0.2}


def _sample_scores(rng, n, dtype):
    x1, x2 = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    return (x1, x2, rng.choice([-1.0, 1.0], n).astype(dtype)), {"margin": 0.3}


def _sample_hinge(rng, n, dtype):
    return (rng.standard_normal(n).astype(dtype) * 2, rng.choice([-1.0, 1.0], n).astype(dtype)), {}


def _sample_contrastive(rng, n, dtype):
    N, D = _rows(n)
    x1, x2 = (rng.standard_normal((N, D)).astype(dtype) * 0.3 for _ in range(2))
    return (x1, x2, rng.integers(0, 2, N).astype(dtype)), {"margin": 1.5}


def _torch_f(name):
    return lambda *args, **kw: getattr(_torch()[1], name)(*(_t(a) for a in args), **kw)


def _reduce(loss, reduction):
    return loss if reduction == "none" else (loss.mean() if reduction == "mean" else loss.sum())


def contrastive_torch(x1, x2, label, margin=1.0, reduction="mean"):
    """SPEC §6 in torch ops: y d^2 + (1 - y) max(0, m - d)^2 with d the Euclidean distance."""
    torch, _ = _torch()
    x1, x2, y = _t(x1), _t(x2), _t(label)
    d = torch.linalg.vector_norm(x1 - x2, dim=-1)
    return _reduce(y * d ** 2 + (1 - y) * torch.clamp_min(margin - d, 0) ** 2, reduction)


register(LossSpec("triplet_margin_loss", "metric", _sample_triplet, torch_ref=_torch_f("triplet_margin_loss"),
                  grad_argnums=(0, 1, 2)))
register(LossSpec("cosine_embedding_loss", "metric", _sample_pair_signed,
                  torch_ref=_torch_f("cosine_embedding_loss"), grad_argnums=(0, 1)))
register(LossSpec("margin_ranking_loss", "metric", _sample_scores, torch_ref=_torch_f("margin_ranking_loss"),
                  grad_argnums=(0, 1)))
register(LossSpec("hinge_embedding_loss", "metric", _sample_hinge, torch_ref=_torch_f("hinge_embedding_loss")))
register(LossSpec("contrastive_loss", "metric", _sample_contrastive, torch_ref=contrastive_torch,
                  grad_argnums=(0, 1)))
