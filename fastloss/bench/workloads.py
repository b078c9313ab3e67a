"""The benchmark workloads of WORKLOADS.md (/work/shared/WORKLOADS.md), defined once, as data.

Read by ``fastloss bench`` (``fastloss/bench/__init__.py``) and by the pytest-benchmark suite
(``benchmarks/test_bench.py``); nothing else defines sizes, references or targets.

A ``Workload`` names the public loss (``fastloss.<loss>``), a builder of its arguments, the
competitors and the targets:

* ``build(rng, n, dtype) -> (args, kwargs)``: seeded synthetic NumPy inputs for a call of size ``n``
  (``n`` = the workload's N: rows, elements, box pairs or batch size; ``Workload.n`` is the
  WORKLOADS.md size, ``n_quick`` the ``--quick`` size).  ``kwargs["reduction"]`` is set from the
  workload, so torchvision-style defaults (``reduction="none"``) never leak in.
* ``torch_ref(*tensors, **kwargs)``: the PyTorch computation with fastloss's signature, run on
  ``torch.from_numpy`` views of the same arrays: ``torch.nn.functional`` where it has the loss,
  else the torchvision formula (or the usual formulation) written in torch ops.
* ``numpy_ref(*arrays, **kwargs)``: an honest NumPy formula in the input's dtype, with the stable
  forms a careful NumPy user writes (log-sum-exp shifted by the row max, softplus through
  ``log1p(exp(-|x|))``); it doubles as the value check of the fastloss result.
* ``sklearn_ref(args, kwargs, threads) -> callable``: scikit-learn's Cython/OpenMP loss
  (float64 rows of W1, W2, W6).
* ``targets``: the WORKLOADS.md bounds, each on one ratio (``torch/fastloss``, ``sklearn/fastloss``:
  at least; ``fastloss/floor``, ``grad/loss``: at most); ``avx2_bound`` is the calibrated bound for
  a CPU without AVX-512.

Variants are derived, not written again: W16 = ``reduction="none"`` of W1, W6, W8, W10; W17 =
``return_grad=True`` of W1, W6, W7, W8, W10, W12 (torch: forward + ``autograd.grad``); ``/f64`` =
float64 W1, W2, W6 against scikit-learn.
"""
import contextlib
import math
import os
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

IMPLS = ("fastloss", "torch", "numpy", "sklearn")
RATIOS = ("torch/fastloss", "numpy/fastloss", "sklearn/fastloss", "fastloss/floor", "grad/loss")
# short names in tables; grad/loss = time of the loss+gradient call over the loss-only call
SHORT = {"torch/fastloss": "torch", "numpy/fastloss": "numpy", "sklearn/fastloss": "sklearn",
         "fastloss/floor": "floor", "grad/loss": "grad/loss"}


@dataclass(frozen=True)
class Target:
    metric: str                         # one of RATIOS
    bound: float
    avx2_bound: Optional[float] = None  # WORKLOADS.md calibration for CPUs without AVX-512

    @property
    def at_least(self) -> bool:
        return self.metric.endswith("/fastloss")

    def bound_for(self, avx512: bool, threads: int) -> float:
        b = self.bound if (avx512 or self.avx2_bound is None) else self.avx2_bound
        if self.metric == "fastloss/floor" and threads >= 16:
            b = min(b, 1.7)  # WORKLOADS.md: >= 60% of the read bandwidth at 16 threads
        return b

    def met(self, value, avx512: bool, threads: int):
        if value is None or not math.isfinite(value):
            return None
        b = self.bound_for(avx512, threads)
        return value >= b if self.at_least else value <= b

    @property
    def short(self) -> str:
        return SHORT[self.metric]

    def describe(self, avx512: bool, threads: int) -> str:
        return f"{self.short}{'>=' if self.at_least else '<='}{self.bound_for(avx512, threads):g}"


@dataclass(frozen=True)
class Workload:
    id: str                     # "W1", "W16/W1" (reduction none), "W17/W1" (return_grad), "W1/f64"
    loss: str                   # public name: fastloss.<loss>
    title: str                  # with {n}: the size actually run (Workload.describe)
    build: Callable             # build(rng, n, dtype) -> (args, kwargs)
    n: int                      # the WORKLOADS.md size
    n_quick: int                # the --quick size
    torch_ref: Optional[Callable] = None
    numpy_ref: Optional[Callable] = None
    sklearn_ref: Optional[Callable] = None
    dtype: str = "float32"
    reduction: str = "mean"
    variant: str = "loss"       # "loss" | "none" | "grad"
    grad_argnums: tuple = (0,)
    targets: tuple = ()
    notes: str = ""

    @property
    def base(self) -> str:
        return self.id.split("/")[0]

    def describe(self, n) -> str:
        return self.title.format(n=n)

    @property
    def origin(self) -> str:
        """The WORKLOADS.md row whose data this is: W16/W1, W17/W1 and W1/f64 all use W1's builder."""
        return self.id.split("/")[1] if self.id.startswith(("W16/", "W17/")) else self.base


# ---------------------------------------------------------------- shared small helpers

def _reduce(loss, reduction):
    """none / mean / sum, for NumPy arrays and torch tensors alike."""
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def _xp(a):
    """The array namespace of ``a``: numpy, or torch for tensors (torch is imported only then)."""
    if isinstance(a, np.ndarray):
        return np
    import torch
    return torch


def _detach(a):
    return a.detach() if hasattr(a, "detach") else a


def _F():
    import torch.nn.functional as F
    return F


def _softplus_neg(x):
    """-log(sigmoid(x)) = log1p(exp(-|x|)) + max(-x, 0): never overflows."""
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0)


# ---------------------------------------------------------------- cross-entropy (W1-W5)

def np_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch's cross_entropy with class-index targets: (N, C) or (N, C, d1, ...) logits."""
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


def torch_cross_entropy(*args, **kwargs):
    return _F().cross_entropy(*args, **kwargs)


def sk_cross_entropy(args, kwargs, threads):
    """sklearn's HalfMultinomialLoss is exactly cross-entropy (log-sum-exp minus the true logit)."""
    from sklearn._loss.loss import HalfMultinomialLoss
    x, y = args
    loss, yt = HalfMultinomialLoss(n_classes=x.shape[1]), y.astype(x.dtype)
    return lambda: loss.loss(yt, x, n_threads=threads).mean()


def _build_ce(C):
    def build(rng, n, dtype):
        return (rng.standard_normal((n, C), dtype=dtype), rng.integers(0, C, n)), {}
    return build


def _build_ce_segmentation(rng, n, dtype, C=21, H=256, W=256, ignore_fraction=0.05):
    x = rng.standard_normal((n, C, H, W), dtype=dtype)
    y = rng.integers(0, C, (n, H, W))
    y[rng.random((n, H, W)) < ignore_fraction] = -100
    return (x, y), {"weight": rng.uniform(0.5, 2.0, C).astype(dtype), "ignore_index": -100}


def _build_ce_smoothing(rng, n, dtype):
    args, kwargs = _build_ce(1000)(rng, n, dtype)
    return args, dict(kwargs, label_smoothing=0.1)


# ---------------------------------------------------------------- binary losses (W6, W7)

def np_bce_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """(1 - y) x + (1 + (pw - 1) y) softplus(-x), times weight."""
    sp = _softplus_neg(input)
    lw = sp if pos_weight is None else (1 + (pos_weight - 1) * target) * sp
    loss = (1 - target) * input + lw
    return _reduce(loss if weight is None else loss * weight, reduction)


def torch_bce_with_logits(*args, **kwargs):
    return _F().binary_cross_entropy_with_logits(*args, **kwargs)


def sk_bce_with_logits(args, kwargs, threads):
    """sklearn's HalfBinomialLoss is exactly BCE-with-logits; pos_weight for 0/1 targets is a sample
    weight of pos_weight on the positives (precomputed, outside the timing)."""
    from sklearn._loss.loss import HalfBinomialLoss
    x, y = args
    pw = kwargs.get("pos_weight")
    sw = None if pw is None else np.where(y == 1, pw.reshape(()), 1).astype(x.dtype)
    loss = HalfBinomialLoss()
    return lambda: loss.loss(y, x, sample_weight=sw, n_threads=threads).mean()


def _build_binary(rng, n, dtype):
    return (rng.standard_normal(n, dtype=dtype) * 3, (rng.random(n) < 0.5).astype(dtype)), {}


def _build_bce_pos_weight(rng, n, dtype):
    args, _ = _build_binary(rng, n, dtype)
    return args, {"pos_weight": np.array([2.0], dtype=dtype)}


def np_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, with p = exp(-softplus(-x)) (no overflow)."""
    sp = _softplus_neg(inputs)
    p = np.exp(-sp)
    ce = (1 - targets) * inputs + sp
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def torch_sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, verbatim in torch ops."""
    import torch
    p = torch.sigmoid(inputs)
    ce_loss = _F().binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return _reduce(loss, reduction)


def _build_focal(rng, n, dtype):
    args, _ = _build_binary(rng, n, dtype)
    return args, {"alpha": 0.25, "gamma": 2.0}


# ---------------------------------------------------------------- regression (W8, W9)

def np_huber_loss(input, target, reduction="mean", delta=1.0):
    d = input - target
    ad = np.abs(d)
    return _reduce(np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


def np_mse_loss(input, target, reduction="mean"):
    d = input - target
    return _reduce(d * d, reduction)


def torch_huber_loss(*args, **kwargs):
    return _F().huber_loss(*args, **kwargs)


def torch_mse_loss(*args, **kwargs):
    return _F().mse_loss(*args, **kwargs)


def _build_regression(rng, n, dtype):
    return (rng.standard_normal(n, dtype=dtype), rng.standard_normal(n, dtype=dtype)), {}


# ---------------------------------------------------------------- boxes (W10, W11)
# torchvision.ops' formulas (_loss_inter_union, generalized_box_iou_loss, _diou_iou_loss,
# complete_box_iou_loss) written once over the array namespace: the torch reference runs them in
# torch ops (as torchvision does), the NumPy reference in NumPy.

def _inter_union(b1, b2):
    xp = _xp(b1)
    x1, y1, x2, y2 = (b1[..., i] for i in range(4))
    x1g, y1g, x2g, y2g = (b2[..., i] for i in range(4))
    xkis1, ykis1 = xp.maximum(x1, x1g), xp.maximum(y1, y1g)
    xkis2, ykis2 = xp.minimum(x2, x2g), xp.minimum(y2, y2g)
    intsct = xp.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsct[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsct
    return intsct, union


def _enclosing(b1, b2):
    xp = _xp(b1)
    return (xp.minimum(b1[..., 0], b2[..., 0]), xp.minimum(b1[..., 1], b2[..., 1]),
            xp.maximum(b1[..., 2], b2[..., 2]), xp.maximum(b1[..., 3], b2[..., 3]))


def ref_generalized_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    intsct, union = _inter_union(boxes1, boxes2)
    iou = intsct / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing(boxes1, boxes2)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    return _reduce(1 - (iou - (area_c - union) / (area_c + eps)), reduction)


def ref_complete_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    xp = _xp(boxes1)
    intsct, union = _inter_union(boxes1, boxes2)
    iou = intsct / (union + eps)
    xc1, yc1, xc2, yc2 = _enclosing(boxes1, boxes2)
    diag2 = (xc2 - xc1) ** 2 + (yc2 - yc1) ** 2 + eps
    x1, y1, x2, y2 = (boxes1[..., i] for i in range(4))
    x1g, y1g, x2g, y2g = (boxes2[..., i] for i in range(4))
    centers2 = ((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2 + ((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2
    diou = 1 - iou + centers2 / diag2
    v = (4 / math.pi ** 2) * (xp.arctan((x2g - x1g) / (y2g - y1g)) - xp.arctan((x2 - x1) / (y2 - y1))) ** 2
    alpha = _detach(v / (1 - iou + v + eps))         # torchvision computes alpha under no_grad
    return _reduce(diou + alpha * v, reduction)


def _build_boxes(rng, n, dtype):
    """Valid xyxy boxes (x1 < x2, y1 < y2) and a jittered partner: most pairs overlap, some do not."""
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(1, 50, (n, 2))
    b1 = np.concatenate([xy, xy + wh], axis=1)
    xy2 = xy + rng.normal(0, 10, (n, 2))
    wh2 = wh * rng.uniform(0.5, 1.5, (n, 2))
    b2 = np.concatenate([xy2, xy2 + wh2], axis=1)
    return (b1.astype(dtype), b2.astype(dtype)), {}


# ---------------------------------------------------------------- metric learning (W12, W14, W15)

def np_triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False,
                           reduction="mean"):
    """torch's triplet_margin_loss: pairwise_distance(a, b) = ||a - b + eps||_p."""
    d_ap = np.linalg.norm(anchor - positive + eps, ord=p, axis=-1)
    d_an = np.linalg.norm(anchor - negative + eps, ord=p, axis=-1)
    if swap:
        d_an = np.minimum(d_an, np.linalg.norm(positive - negative + eps, ord=p, axis=-1))
    return _reduce(np.maximum(margin + d_ap - d_an, 0), reduction)


def torch_triplet_margin_loss(*args, **kwargs):
    return _F().triplet_margin_loss(*args, **kwargs)


def _build_triplet(rng, n, dtype, D=128):
    return tuple(rng.standard_normal((n, D), dtype=dtype) for _ in range(3)), {"margin": 1.0}


def np_nt_xent_loss(z1, z2, temperature=0.5, reduction="mean"):
    """SimCLR NT-Xent over the 2N views: cosine similarities / temperature, self-pairs excluded,
    the positive of view i is its other view; mean over the 2N views."""
    n = len(z1)
    z = np.concatenate([z1, z2])
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    s = (z @ z.T) / temperature
    np.fill_diagonal(s, -np.inf)
    m = s.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    pos = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return _reduce(lse - s[np.arange(2 * n), pos], reduction)


def torch_nt_xent_loss(z1, z2, temperature=0.5, reduction="mean"):
    """The usual SimCLR formulation in torch ops (materialises the 2N x 2N similarity matrix)."""
    import torch
    n = len(z1)
    z = _F().normalize(torch.cat([z1, z2]), dim=1)
    s = (z @ z.T) / temperature
    s.fill_diagonal_(-math.inf)
    pos = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return _F().cross_entropy(s, pos, reduction=reduction)


def _build_nt_xent(rng, n, dtype, D=128):
    z1 = rng.standard_normal((n, D), dtype=dtype)
    return (z1, z1 + 0.5 * rng.standard_normal((n, D), dtype=dtype)), {"temperature": 0.5}


def ref_batch_hard_triplet_loss(embeddings, labels, margin=1.0, squared=False, reduction="mean"):
    """Batch-hard mining (Hermans et al. 2017): per anchor, the farthest same-label sample and the
    nearest other-label sample, Euclidean distances from the Gram matrix; an anchor without a
    positive uses 0, without a negative gives 0 loss."""
    xp = _xp(embeddings)
    e = embeddings
    sq = (e * e).sum(1)
    d2 = xp.maximum(sq[:, None] - 2 * (e @ e.T) + sq[None, :], xp.zeros_like(sq[:1]))
    d = d2 if squared else xp.sqrt(d2)
    same = labels[:, None] == labels[None, :]
    eye = xp.eye(len(labels), dtype=same.dtype)
    hardest_pos = xp.where(same & ~eye, d, xp.zeros_like(d[:1])).max(1)
    hardest_neg = xp.where(same, xp.full_like(d[:1], math.inf), d).min(1)
    if xp is not np:
        hardest_pos, hardest_neg = hardest_pos.values, hardest_neg.values
    return _reduce(xp.maximum(hardest_pos - hardest_neg + margin, xp.zeros_like(sq[:1])), reduction)


def _build_batch_hard(rng, n, dtype, D=128, per_class=16):
    return ((rng.standard_normal((n, D), dtype=dtype), rng.integers(0, max(n // per_class, 2), n)),
            {"margin": 1.0})


# ---------------------------------------------------------------- segmentation overlap (W13)

def np_dice_loss(input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7,
                 ignore_index=None, reduction="mean"):
    """Multiclass soft Dice per (sample, class) as in SPEC §6 / segmentation_models_pytorch:
    1 - (2 TP + smooth) / clamp_min(sum p + sum onehot + smooth, eps)."""
    if mode != "multiclass":
        raise NotImplementedError("the benchmark reference covers mode='multiclass' only")
    C = input.shape[1]
    p = input
    if from_logits:
        e = np.exp(input - input.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
    oh = (target[:, None] == np.arange(C).reshape((1, C) + (1,) * (input.ndim - 2))).astype(input.dtype)
    if ignore_index is not None:
        valid = (target != ignore_index)[:, None].astype(input.dtype)
        p, oh = p * valid, oh * valid
    axes = tuple(range(2, input.ndim))
    tp = (p * oh).sum(axis=axes)
    card = p.sum(axis=axes) + oh.sum(axis=axes)
    return _reduce(1 - (2 * tp + smooth) / np.maximum(card + smooth, eps), reduction)


def torch_dice_loss(input, target, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7,
                    ignore_index=None, reduction="mean"):
    """The same in torch ops (softmax, one_hot), the way segmentation_models_pytorch computes it."""
    if mode != "multiclass":
        raise NotImplementedError("the benchmark reference covers mode='multiclass' only")
    C = input.shape[1]
    p = input.softmax(dim=1) if from_logits else input
    oh = _F().one_hot(target, C).movedim(-1, 1).to(input.dtype)
    if ignore_index is not None:
        valid = (target != ignore_index).unsqueeze(1).to(input.dtype)
        p, oh = p * valid, oh * valid
    dims = tuple(range(2, input.ndim))
    tp = (p * oh).sum(dim=dims)
    card = p.sum(dim=dims) + oh.sum(dim=dims)
    return _reduce(1 - (2 * tp + smooth) / (card + smooth).clamp_min(eps), reduction)


def _build_dice(rng, n, dtype, C=4, H=256, W=256):
    return (rng.standard_normal((n, C, H, W), dtype=dtype), rng.integers(0, C, (n, H, W))), \
        {"mode": "multiclass"}


# ---------------------------------------------------------------- the table

def _t(metric, bound, avx2_bound=None):
    return Target(metric, bound, avx2_bound)


_CE = dict(loss="cross_entropy", torch_ref=torch_cross_entropy, numpy_ref=np_cross_entropy,
           sklearn_ref=sk_cross_entropy)
_BCE = dict(loss="binary_cross_entropy_with_logits", torch_ref=torch_bce_with_logits,
            numpy_ref=np_bce_with_logits, sklearn_ref=sk_bce_with_logits)

BASE = (
    Workload("W1", title="cross_entropy N={n} C=1000", build=_build_ce(1000), n=100_000, n_quick=2000,
             targets=(_t("torch/fastloss", 6, 3), _t("fastloss/floor", 2.5)), **_CE),
    Workload("W2", title="cross_entropy N={n} C=10", build=_build_ce(10), n=1_000_000, n_quick=50_000,
             targets=(_t("torch/fastloss", 6, 3), _t("fastloss/floor", 3)), **_CE),
    Workload("W3", title="cross_entropy N={n} C=32000", build=_build_ce(32_000), n=4096, n_quick=64,
             targets=(_t("torch/fastloss", 6, 3), _t("fastloss/floor", 2.5)), **_CE),
    Workload("W4", title="cross_entropy ({n},21,256,256) 5% ignored, weights", build=_build_ce_segmentation,
             n=16, n_quick=1, targets=(_t("torch/fastloss", 6, 3), _t("fastloss/floor", 3)), **_CE),
    Workload("W5", title="cross_entropy N={n} C=1000 smoothing 0.1", build=_build_ce_smoothing, n=100_000,
             n_quick=2000, targets=(_t("torch/fastloss", 6, 3), _t("fastloss/floor", 2.5)), **_CE),
    Workload("W6", title="bce_with_logits N={n} pos_weight", build=_build_bce_pos_weight, n=10_000_000,
             n_quick=500_000, targets=(_t("torch/fastloss", 8, 4), _t("fastloss/floor", 2.5)), **_BCE),
    Workload("W7", loss="sigmoid_focal_loss", title="sigmoid_focal_loss N={n}", build=_build_focal,
             n=10_000_000, n_quick=500_000, torch_ref=torch_sigmoid_focal_loss,
             numpy_ref=np_sigmoid_focal_loss, targets=(_t("torch/fastloss", 25), _t("fastloss/floor", 3)),
             notes="torch: torchvision formula in torch ops"),
    Workload("W8", loss="huber_loss", title="huber_loss N={n}", build=_build_regression, n=10_000_000,
             n_quick=500_000, torch_ref=torch_huber_loss, numpy_ref=np_huber_loss,
             targets=(_t("torch/fastloss", 3), _t("fastloss/floor", 1.5))),
    Workload("W9", loss="mse_loss", title="mse_loss N={n}", build=_build_regression, n=10_000_000,
             n_quick=500_000, torch_ref=torch_mse_loss, numpy_ref=np_mse_loss,
             targets=(_t("torch/fastloss", 3), _t("fastloss/floor", 1.5))),
    Workload("W10", loss="generalized_box_iou_loss", title="generalized_box_iou_loss N={n}",
             build=_build_boxes, n=1_000_000, n_quick=50_000, torch_ref=ref_generalized_box_iou_loss,
             numpy_ref=ref_generalized_box_iou_loss,
             targets=(_t("torch/fastloss", 10), _t("fastloss/floor", 3)),
             notes="torch: torchvision formula in torch ops"),
    Workload("W11", loss="complete_box_iou_loss", title="complete_box_iou_loss N={n}",
             build=_build_boxes, n=1_000_000, n_quick=50_000, torch_ref=ref_complete_box_iou_loss,
             numpy_ref=ref_complete_box_iou_loss,
             targets=(_t("torch/fastloss", 10), _t("fastloss/floor", 4)),
             notes="torch: torchvision formula in torch ops"),
    Workload("W12", loss="triplet_margin_loss", title="triplet_margin_loss N={n} D=128",
             build=_build_triplet, n=100_000, n_quick=5000, torch_ref=torch_triplet_margin_loss,
             numpy_ref=np_triplet_margin_loss, grad_argnums=(0, 1, 2),
             targets=(_t("torch/fastloss", 4), _t("fastloss/floor", 2))),
    Workload("W13", loss="dice_loss", title="dice_loss multiclass ({n},4,256,256)", build=_build_dice,
             n=16, n_quick=1, torch_ref=torch_dice_loss, numpy_ref=np_dice_loss,
             targets=(_t("torch/fastloss", 5), _t("fastloss/floor", 3)),
             notes="torch: softmax + one_hot in torch ops (as segmentation_models_pytorch)"),
    Workload("W14", loss="nt_xent_loss", title="nt_xent_loss N={n} D=128", build=_build_nt_xent,
             n=8192, n_quick=768, torch_ref=torch_nt_xent_loss, numpy_ref=np_nt_xent_loss,
             grad_argnums=(0, 1), targets=(_t("torch/fastloss", 2),),
             notes="torch: SimCLR in torch ops; matmul-bound, no floor target"),
    Workload("W15", loss="batch_hard_triplet_loss", title="batch_hard_triplet_loss B={n} D=128",
             build=_build_batch_hard, n=4096, n_quick=768, torch_ref=ref_batch_hard_triplet_loss,
             numpy_ref=ref_batch_hard_triplet_loss, targets=(_t("torch/fastloss", 3),),
             notes="torch: batch-hard mining in torch ops; no floor target"),
)

_BY_BASE = {w.id: w for w in BASE}


def _none_variant(base):
    return replace(_BY_BASE[base], id=f"W16/{base}", reduction="none", variant="none",
                   title=_BY_BASE[base].title + " none",
                   targets=(_t("torch/fastloss", 3), _t("fastloss/floor", 2)))


def _grad_variant(base):
    w = _BY_BASE[base]
    return replace(w, id=f"W17/{base}", variant="grad", numpy_ref=None, title=w.title + " +grad",
                   targets=(_t("torch/fastloss", 6), _t("grad/loss", 1.4)),
                   notes="torch: forward + autograd.grad")


def _f64_variant(base):
    w = _BY_BASE[base]
    return replace(w, id=f"{base}/f64", dtype="float64", title=w.title + " f64",
                   targets=(_t("sklearn/fastloss", 4),),
                   notes="sklearn: HalfMultinomialLoss/HalfBinomialLoss(n_threads=T).loss(...).mean()")


WORKLOADS = BASE + tuple(_none_variant(b) for b in ("W1", "W6", "W8", "W10")) \
    + tuple(_grad_variant(b) for b in ("W1", "W6", "W7", "W8", "W10", "W12")) \
    + tuple(_f64_variant(b) for b in ("W1", "W2", "W6"))
BY_ID = {w.id: w for w in WORKLOADS}

# Small-input call overhead (WORKLOADS.md: N <= 1000 stays <= 5 us above a bare NumPy call).
SMALL_SIZES = (1, 100, 1000)
SMALL_WORKLOADS = ("W2", "W6", "W7", "W8", "W9", "W10", "W12")
SMALL_OVERHEAD_TARGET_S = 5e-6


# ---------------------------------------------------------------- using the table

def select(tokens=None):
    """Workloads matching any token: a loss name, an id ("W17/W1"), or a group (the part before "/":
    "W16" = all W16/*, "W1" = W1 and W1/f64).
    Raises ValueError naming the unknown tokens."""
    if not tokens:
        return list(WORKLOADS)
    tokens = [t.strip() for t in tokens if t.strip()]
    keys = lambda w: {w.loss.lower(), w.id.lower(), w.base.lower()}  # noqa: E731
    unknown = [t for t in tokens if not any(t.lower() in keys(w) for w in WORKLOADS)]
    if unknown:
        raise ValueError(f"unknown workload or loss {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(sorted({w.loss for w in WORKLOADS}))} and ids "
                         f"{', '.join(w.id for w in WORKLOADS)}")
    return [w for w in WORKLOADS if any(t.lower() in keys(w) for t in tokens)]


def implemented(w) -> bool:
    from .._losses import LOSSES
    return w.loss in LOSSES


def size(w, quick=False, scale=1.0) -> int:
    return max(1, int(round((w.n_quick if quick else w.n) * scale)))


def build(w, n):
    """Seeded inputs of workload ``w`` at size ``n``: (args, kwargs) of NumPy arrays."""
    rng = np.random.default_rng(zlib.crc32(w.origin.encode()))
    args, kwargs = w.build(rng, n, np.dtype(w.dtype))
    return args, dict(kwargs, reduction=w.reduction)


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def sklearn_available() -> bool:
    try:
        import sklearn._loss.loss  # noqa: F401
    except ImportError:
        return False
    return True


def _to_torch(a, requires_grad=False):
    import torch
    if not isinstance(a, np.ndarray):
        return a
    t = torch.from_numpy(a)
    return t.requires_grad_(True) if requires_grad else t


def callables(w, args, kwargs, threads, impls=IMPLS):
    """Zero-argument callables timing one call of each available implementation at ``threads``.

    Conversion (``torch.from_numpy`` views, sklearn's float labels) happens here, outside the timing.
    Thread counts are set by ``thread_limits``, not here.  An implementation that does not apply
    (no torch, no sklearn row, no NumPy gradient) is absent from the result.
    """
    out = {}
    if "fastloss" in impls and implemented(w):
        from .._losses import LOSSES
        f = LOSSES[w.loss].function
        extra = {"num_threads": threads}
        if w.variant == "grad":
            extra["return_grad"] = True
        out["fastloss"] = lambda: f(*args, **kwargs, **extra)
    if "torch" in impls and w.torch_ref is not None and torch_available():
        grad = w.variant == "grad"
        targs = [_to_torch(a, grad and i in w.grad_argnums) for i, a in enumerate(args)]
        tkw = {k: _to_torch(v) for k, v in kwargs.items()}
        tref = w.torch_ref
        if grad:
            import torch
            wrt = [targs[i] for i in w.grad_argnums]
            out["torch"] = lambda: torch.autograd.grad(tref(*targs, **tkw), wrt)
        else:
            out["torch"] = lambda: tref(*targs, **tkw)
    if "numpy" in impls and w.numpy_ref is not None:
        nref = w.numpy_ref
        out["numpy"] = lambda: nref(*args, **kwargs)
    if "sklearn" in impls and w.sklearn_ref is not None and w.dtype == "float64" and sklearn_available():
        out["sklearn"] = w.sklearn_ref(args, kwargs, threads)
    return out


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextlib.contextmanager
def thread_limits(threads):
    """torch intra-op threads and NumPy's BLAS (matmul in W14/W15) at ``threads``; restored after.
    fastloss gets ``num_threads=threads`` per call; NumPy's elementwise ufuncs are single-threaded."""
    stack = contextlib.ExitStack()
    with stack:
        if torch_available():
            import torch
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            stack.callback(torch.set_num_threads, before)
        try:
            from threadpoolctl import threadpool_limits
            stack.enter_context(threadpool_limits(limits=threads, user_api="blas"))
        except ImportError:
            pass
        yield
