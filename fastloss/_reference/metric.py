"""Reference entries of the metric family (see fastloss/_reference/__init__.py).

The torch losses use ``torch.nn.functional``; the SPEC §6 losses use the formula written in torch ops
here (the usual PyTorch implementations, run in float64 by the tests and in float32 by the benchmark).
"""
import numpy as np

from . import Reference, register


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


def np_triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                           reduction="mean"):
    """torch's triplet_margin_loss in NumPy: pairwise_distance(a, b) = ||a - b + eps||_p."""
    d_ap = np.linalg.norm(anchor - positive + eps, ord=p, axis=-1)
    d_an = np.linalg.norm(anchor - negative + eps, ord=p, axis=-1)
    if swap:
        d_an = np.minimum(d_an, np.linalg.norm(positive - negative + eps, ord=p, axis=-1))
    return _reduce(np.maximum(margin + d_ap - d_an, 0), reduction)


register(Reference("triplet_margin_loss", "metric", _sample_triplet, torch_ref=_torch_f("triplet_margin_loss"),
                   numpy_ref=np_triplet_margin_loss))
register(Reference("cosine_embedding_loss", "metric", _sample_pair_signed,
                   torch_ref=_torch_f("cosine_embedding_loss")))
register(Reference("margin_ranking_loss", "metric", _sample_scores, torch_ref=_torch_f("margin_ranking_loss")))
register(Reference("hinge_embedding_loss", "metric", _sample_hinge, torch_ref=_torch_f("hinge_embedding_loss")))
register(Reference("contrastive_loss", "metric", _sample_contrastive, torch_ref=contrastive_torch))


# ------------------------------------------------------------------ in-batch losses (torch-ops formulas)
def _sample_mining(rng, n, dtype, D=16):
    B = max(min(n // D, 512), 1)
    labels = rng.integers(0, max(B // 6, 2), B)
    labels[:3] = -1 - np.arange(min(B, 3))          # three singleton classes: anchors with no positive
    return (rng.standard_normal((B, D)).astype(dtype) * 0.4, labels), {"margin": 0.5}


def _sample_nce(rng, n, dtype, D=16):
    N = max(min(n // D, 1024), 1)
    return tuple(rng.standard_normal((N, D)).astype(dtype) for _ in range(2)), {"temperature": 0.2}


def _gram_distances(e, squared):
    """Pairwise Euclidean distances by the Gram matrix (the usual torch batch-mining formula)."""
    torch, _ = _torch()
    sq = (e * e).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * e @ e.T).clamp_min(0)
    return d2 if squared else d2.clamp_min(1e-300).sqrt()   # the clamp only keeps sqrt' finite on d = 0


def _label_masks(labels):
    torch, _ = _torch()
    same = labels[:, None] == labels[None, :]
    return same & ~torch.eye(len(labels), dtype=torch.bool), ~same


def batch_hard_torch(embeddings, labels, margin=1.0, squared=False, reduction="mean"):
    """SPEC §6 batch-hard in torch ops; anchors without a positive or a negative are skipped."""
    torch, _ = _torch()
    e, labels = _t(embeddings), _t(labels)
    d = _gram_distances(e, squared)
    pos, neg = _label_masks(labels)
    hardest_pos = torch.where(pos, d, -torch.inf).max(1).values
    hardest_neg = torch.where(neg, d, torch.inf).min(1).values
    valid = pos.any(1) & neg.any(1)
    loss = torch.where(valid, torch.clamp_min(hardest_pos - hardest_neg + margin, 0), 0.0)
    if reduction == "mean":
        return loss.sum() / valid.sum()
    return _reduce(loss, reduction)


def batch_all_torch(embeddings, labels, margin=1.0, squared=False, reduction="mean"):
    """SPEC §6 batch-all in torch ops (a (B, B, B) tensor: for tests at small B); the mean is over the
    triplets with positive loss (0 if none)."""
    torch, _ = _torch()
    e, labels = _t(embeddings), _t(labels)
    d = _gram_distances(e, squared)
    pos, neg = _label_masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]
    loss = torch.where(valid, torch.clamp_min(d[:, :, None] - d[:, None, :] + margin, 0), 0.0)
    if reduction == "none":
        return loss.sum((1, 2))
    if reduction == "sum":
        return loss.sum()
    count = (loss > 0).sum()
    return loss.sum() / count if count > 0 else loss.sum() * 0


def info_nce_torch(query, key, temperature=0.07, reduction="mean"):
    torch, F = _torch()
    q, k = _t(query), _t(key)
    return F.cross_entropy(q @ k.T / temperature, torch.arange(q.shape[0]), reduction=reduction)


def nt_xent_torch(z1, z2, temperature=0.5, reduction="mean"):
    """SimCLR's NT-Xent in torch ops: cosine similarities of the 2N views, self pairs masked."""
    torch, F = _torch()
    z = F.normalize(torch.cat([_t(z1), _t(z2)]), dim=1)
    n = z1.shape[0]
    sim = (z @ z.T / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool), -torch.inf)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target, reduction=reduction)


def np_batch_hard_triplet_loss(embeddings, labels, margin=1.0, squared=False, reduction="mean"):
    """SPEC §6 batch-hard in NumPy: per anchor, the farthest same-label sample and the nearest
    other-label one, Euclidean distances from the Gram matrix; anchors without a positive or a negative
    are skipped (loss 0, not counted by the mean)."""
    e = embeddings
    sq = (e * e).sum(1)
    d2 = np.maximum(sq[:, None] - 2 * (e @ e.T) + sq[None, :], 0)
    d = d2 if squared else np.sqrt(d2)
    same = labels[:, None] == labels[None, :]
    pos, neg = same & ~np.eye(len(labels), dtype=bool), ~same
    hardest_pos = np.where(pos, d, -np.inf).max(1, initial=-np.inf)
    hardest_neg = np.where(neg, d, np.inf).min(1, initial=np.inf)
    valid = pos.any(1) & neg.any(1)
    loss = np.where(valid, np.maximum(hardest_pos - hardest_neg + margin, 0), 0).astype(e.dtype)
    if reduction == "mean":
        return loss.sum() / loss.dtype.type(valid.sum())
    return _reduce(loss, reduction)


def np_nt_xent_loss(z1, z2, temperature=0.5, reduction="mean"):
    """SimCLR's NT-Xent in NumPy over the 2N views: cosine similarities / temperature, self pairs
    excluded, the positive of view i its other view."""
    n = len(z1)
    z = np.concatenate([z1, z2])
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    s = (z @ z.T) / temperature
    np.fill_diagonal(s, -np.inf)
    m = s.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    pos = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return _reduce(lse - s[np.arange(2 * n), pos], reduction)


register(Reference("batch_hard_triplet_loss", "metric", _sample_mining, torch_ref=batch_hard_torch,
                   numpy_ref=np_batch_hard_triplet_loss))
register(Reference("batch_all_triplet_loss", "metric", _sample_mining, torch_ref=batch_all_torch))
register(Reference("info_nce_loss", "metric", _sample_nce, torch_ref=info_nce_torch))
register(Reference("nt_xent_loss", "metric", _sample_nce, torch_ref=nt_xent_torch, numpy_ref=np_nt_xent_loss))


# ------------------------------------------------------------------ arcface (torch-ops formula)
def _sample_arcface(rng, n, dtype, D=16):
    N = max(min(n // D, 1024), 1)
    C = 37
    e, y, w = rng.standard_normal((N, D)), rng.integers(0, C, N), rng.standard_normal((C, D))
    k = N // 4                          # a quarter of the rows near their centre's opposite: theta + m > pi
    e[:k] = -w[y[:k]] + 0.3 * rng.standard_normal((k, D))
    return (e.astype(dtype), y, w.astype(dtype)), {"scale": 16.0, "margin": 0.4}


def arcface_torch(embeddings, labels, class_weights, scale=64.0, margin=0.5, reduction="mean", easy_margin=False,
                  plain_margin=False):
    """ArcFace in torch ops, insightface's ArcMarginProduct / arcface_torch target logit:
    cos(theta + m) where cos > th = cos(pi - m), else cos - mm, mm = sin(pi - m) m; with easy_margin,
    cos(theta + m) where cos > 0, else cos; with plain_margin, cos(theta + m) everywhere.

    sin(theta) is sqrt((1 - cos)(1 + cos)) with 1 -+ cos = |u -+ v|^2 / 2 of the normalised rows u, v
    (insightface's sqrt(1 - cos^2) loses the digits of sin near theta = 0 and pi, which decide the loss
    there in plain / easy mode); a zero row (u = 0) takes sqrt(1 - cos^2).  The sqrt is written with the
    double-where trick so that its gradient is 0 where sin = 0 (fastloss's documented convention; the
    literal sqrt gives inf/nan there) and the value is unchanged everywhere."""
    import math
    torch, F = _torch()
    e, w, y = _t(embeddings), _t(class_weights), _t(labels).long()
    u, v_all = F.normalize(e, dim=1), F.normalize(w, dim=1)
    cos = u @ v_all.T
    c = cos.gather(1, y[:, None])
    v = v_all[y]
    unit = ((e.norm(dim=1) >= 1e-12) & (w[y].norm(dim=1) >= 1e-12))[:, None]
    s2 = torch.where(unit, ((u - v) ** 2).sum(1, keepdim=True) * ((u + v) ** 2).sum(1, keepdim=True) / 4, 1 - c * c)
    pos = s2 > 0
    sin = torch.where(pos, torch.where(pos, s2, 1.0).sqrt(), 0.0)
    target = c * math.cos(margin) - sin * math.sin(margin)
    if easy_margin:
        target = torch.where(c > 0, target, c)
    elif not plain_margin:
        target = torch.where(c > math.cos(math.pi - margin), target, c - math.sin(math.pi - margin) * margin)
    logits = (cos.scatter(1, y[:, None], target)) * scale
    return F.cross_entropy(logits, y, reduction=reduction)


register(Reference("arcface_loss", "metric", _sample_arcface, torch_ref=arcface_torch))
