"""Metric-learning losses: triplet / ranking / cosine / hinge embedding losses (torch.nn.functional),
contrastive and in-batch mining losses, InfoNCE / NT-Xent (SPEC §6).

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/metric.pyx``; the arithmetic lives there.  Embeddings are rows: (N, D), or a
single (D,) row for the torch losses that accept it.
"""
import math

import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads

_K = load("metric")

__all__ = ["triplet_margin_loss", "margin_ranking_loss", "cosine_embedding_loss", "hinge_embedding_loss",
           "contrastive_loss"]


# ---------------------------------------------------------------------------------------- helpers
def _check_common(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction)


def _rows(arrays, names, dtype=None):
    """Embedding arguments as C-contiguous arrays of one float dtype (the first one's) and one shape,
    (N, D) or (D,).  Returns (arrays, 2-d views, unbatched)."""
    first = V.prediction(arrays[0], names[0])
    out = [first]
    for a, name in zip(arrays[1:], names[1:]):
        out.append(V.float_array(a, name, dtype=first.dtype) if a is not None else None)
        if out[-1] is not None:
            V.check_same_shape(first, out[-1], names[0], name)
    if first.ndim not in (1, 2):
        raise ValueError(f"{names[0]} must be (N, D) or (D,), got shape {first.shape}")
    unbatched = first.ndim == 1
    views = [None if a is None else (a[None, :] if unbatched else a) for a in out]
    return out, views, unbatched


def _row_targets(target, name, n, unbatched, dtype):
    """Per-row float targets of shape (N,) (or () for one unbatched row)."""
    y = V._to_numpy(target, name)
    expected = () if unbatched else (n,)
    if y.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (one per row), got {y.shape}")
    return V.float_array(y, name, dtype=dtype).reshape(-1)   # (ascontiguousarray makes a 0-d array 1-d)


def _run(kernel, args, arrays, reduction, n, out_shape, dtype, out, return_grad, nt, grad_shape=None):
    """Allocate out/grads, call a kernel ``kernel(*args, out, *grads, grad_scale, nt)`` and finish.

    ``arrays`` are the differentiated inputs (their gradients come back in the same order)."""
    o = V.output_array(out, out_shape, dtype) if reduction == "none" else None
    grads = [np.empty(grad_shape or a.shape, dtype=dtype) for a in arrays] if return_grad else None
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    loss_sum, _ = kernel(*args, None if o is None else o.reshape(-1), *(grads or [None] * len(arrays)),
                         scale, nt)
    value = o if reduction == "none" else V.reduced(loss_sum, n, reduction, dtype)
    if not return_grad:
        return value
    return value, (grads[0] if len(grads) == 1 else tuple(grads))


# ---------------------------------------------------------------------------------- torch losses
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Triplet margin loss, mirroring ``torch.nn.functional.triplet_margin_loss``.

    Rows of (N, D) (or one (D,) row).  With torch's ``pairwise_distance`` (eps inside the norm)::

        d(x, y) = ||x - y + eps||_p,   loss = max(0, margin + d(a, p) - d(a, n))

    and with ``swap=True`` d(a, n) is replaced by min(d(a, n), d(p, n)).  Any ``p > 0`` (``p=inf``
    included) is accepted; torch's ``margin > 0`` check is kept.  Distances are accumulated in double
    in one pass per row.  ``return_grad=True`` returns ``(loss, (g_anchor, g_positive, g_negative))``
    (torch's autograd conventions at kinks: the hinge passes the gradient at 0, a swap tie splits it
    in half, a zero distance has gradient 0).  Shapes must match (no broadcasting).
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    p = V.check_real(p, "p", low=0.0, low_open=True)
    eps = V.check_real(eps, "eps")
    nt = resolve_num_threads(num_threads)
    (a, pos, neg), (a2, p2, n2), unbatched = _rows([anchor, positive, negative],
                                                  ["anchor", "positive", "negative"])
    out_shape = () if unbatched else (a2.shape[0],)
    return _run(_K.triplet_margin, (a2, p2, n2, margin, p, eps, bool(swap)), [a, pos, neg], reduction,
                a2.shape[0], out_shape, a.dtype, out, return_grad, nt)


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean",
                          *, num_threads=None, out=None, return_grad=False):
    """Cosine embedding loss, mirroring ``torch.nn.functional.cosine_embedding_loss``.

    Rows of (N, D) with target (N,), or (D,) with a 0-d target.  With torch's EPSILON = 1e-12 (a
    float32 constant) added to each squared magnitude, so a zero vector gives cos = 0, not nan::

        cos = <x1, x2> / sqrt((|x1|^2 + E)(|x2|^2 + E))
        loss = 1 - cos (y = 1),  max(0, cos - margin) (y = -1),  0 (any other y)

    ``return_grad=True`` returns ``(loss, (g_input1, g_input2))``.
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x1, x2), (v1, v2), unbatched = _rows([input1, input2], ["input1", "input2"])
    y = _row_targets(target, "target", v1.shape[0], unbatched, x1.dtype)
    out_shape = () if unbatched else (v1.shape[0],)
    return _run(_K.pair_rows, ("cosine_embedding", v1, v2, y, margin), [x1, x2], reduction, v1.shape[0], out_shape,
                x1.dtype, out, return_grad, nt)


def _scores(arrays, names, target):
    """Score arguments (any shape, all the same) and the target, as flat arrays of one float dtype."""
    xs = [V.prediction(arrays[0], names[0])]
    xs += [V.float_array(a, n, dtype=xs[0].dtype) for a, n in zip(arrays[1:], names[1:])]
    y = V.float_array(target, "target", dtype=xs[0].dtype)
    for x, n in zip(xs[1:] + [y], names[1:] + ["target"]):
        V.check_same_shape(xs[0], x, names[0], n)
    return xs, [x.reshape(-1) for x in xs], y.reshape(-1)


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean",
                        *, num_threads=None, out=None, return_grad=False):
    """Margin ranking loss, mirroring ``torch.nn.functional.margin_ranking_loss``::

        loss = max(0, -y * (x1 - x2) + margin)

    All three arguments have the same shape (torch disallows broadcasting here).
    ``return_grad=True`` returns ``(loss, (g_input1, g_input2))``.
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x1, x2), (f1, f2), y = _scores([input1, input2], ["input1", "input2"], target)
    return _run(_K.score_loss, (f1, f2, y, margin), [x1, x2], reduction, x1.size, x1.shape, x1.dtype, out,
                return_grad, nt)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean",
                         *, num_threads=None, out=None, return_grad=False):
    """Hinge embedding loss, mirroring ``torch.nn.functional.hinge_embedding_loss``::

        loss = [y != 1] * max(0, margin - x) + [y != -1] * x

    (as torch, a target other than +-1 gets both terms).  ``target`` has ``input``'s shape.
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x,), (f,), y = _scores([input], ["input"], target)
    return _run(_K.hinge_embedding, (f, y, margin), [x], reduction, x.size, x.shape, x.dtype, out,
                return_grad, nt)


# ------------------------------------------------------------------------------ SPEC §6 losses
def contrastive_loss(x1, x2, label, margin=1.0, reduction="mean", *, num_threads=None, out=None,
                     return_grad=False):
    """Contrastive (Hadsell et al.) loss on pairs of rows (SPEC §6); ``label`` 1 = similar, 0 = dissimilar::

        d = ||x1 - x2||_2,   loss = y * d^2 + (1 - y) * max(0, margin - d)^2

    ``label`` is (N,) (any real values are used as given; 0/1 is the intended use).  No eps is added
    to the distance: the d^2 term is differentiated as a square (finite at d = 0) and the hinge term's
    gradient is 0 where d = 0 (a norm's subgradient, as torch).  ``return_grad=True`` returns
    ``(loss, (g_x1, g_x2))``.
    """
    V.check_reduction(reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (a, b), (v1, v2), unbatched = _rows([x1, x2], ["x1", "x2"])
    y = _row_targets(label, "label", v1.shape[0], unbatched, a.dtype)
    out_shape = () if unbatched else (v1.shape[0],)
    return _run(_K.pair_rows, ("contrastive", v1, v2, y, margin), [a, b], reduction, v1.shape[0], out_shape, a.dtype,
                out, return_grad, nt)
