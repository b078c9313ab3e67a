"""The benchmark workloads of WORKLOADS.md (/work/shared/WORKLOADS.md), defined once, as data.

Read by ``fastloss bench`` (``fastloss/bench/__init__.py``) and by the pytest-benchmark suite
(``benchmarks/test_bench.py``); nothing else defines sizes or targets (the references are
``fastloss._reference``'s).

A ``Workload`` names the public loss (``fastloss.<loss>``), a builder of its arguments, the
competitors and the targets:

* ``build(rng, n, dtype) -> (args, kwargs)``: seeded synthetic NumPy inputs for a call of size ``n``
  (``n`` = the workload's N: rows, elements, box pairs or batch size; ``Workload.n`` is the
  WORKLOADS.md size, ``n_quick`` the ``--quick`` size): the workload's own data, in WORKLOADS.md's
  shapes (the references' samplers make small test calls).  ``kwargs["reduction"]`` is set from the
  workload, so torchvision-style defaults (``reduction="none"``) never leak in.
* ``torch_ref`` / ``numpy_ref``: the loss's references in ``fastloss._reference`` (the ones the tests
  assert against).  ``torch_ref(*tensors, **kwargs)``: the PyTorch computation with fastloss's signature,
  run on ``torch.from_numpy`` views of the same arrays: ``torch.nn.functional`` where it has the loss,
  else the torchvision formula (or the usual formulation) written in torch ops.
  ``numpy_ref(*arrays, **kwargs)``: an honest NumPy formula in the input's dtype, with the stable
  forms a careful NumPy user writes (log-sum-exp shifted by the row max, softplus through
  ``log1p(exp(-|x|))``).  Both double as the value check of the fastloss result.
* ``sklearn_ref(args, kwargs, threads) -> callable``: scikit-learn's Cython/OpenMP loss
  (float64 rows of W1, W2, W6).
* ``targets``: the WORKLOADS.md bounds, each on one ratio (``torch/fastloss``, ``sklearn/fastloss``:
  at least; ``fastloss/floor``, ``grad/loss``, ``grad_out/floor``: at most); ``avx2_bound`` is the calibrated bound for
  a CPU without AVX-512.

Variants are derived, not written again: W16 = ``reduction="none"`` of W1, W6, W8, W10; W17 =
``return_grad=True`` of W1, W6, W7, W8, W10, W12 (torch: forward + ``autograd.grad``); ``/f64`` =
float64 W1, W2, W6 against scikit-learn; W6/ml = W6 on multi-label rows of 20 classes with a pos_weight
of shape (20,).
"""
import contextlib
import math
import os
import zlib
from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np

from .._reference import REFERENCES

IMPLS = ("fastloss", "torch", "numpy", "sklearn")
RATIOS = ("torch/fastloss", "numpy/fastloss", "sklearn/fastloss", "fastloss/floor", "grad/loss",
          "grad_out/floor")
# short names in tables; grad/loss = time of the loss+gradient call over the loss-only call;
# grad_out/floor = W17's loss+gradient call writing into a reused grad_out= buffer, over its floor
SHORT = {"torch/fastloss": "torch", "numpy/fastloss": "numpy", "sklearn/fastloss": "sklearn",
         "fastloss/floor": "floor", "grad/loss": "grad/loss", "grad_out/floor": "grad_out/floor"}


@dataclass(frozen=True)
class Target:
    metric: str                         # one of RATIOS
    bound: float
    avx2_bound: Optional[float] = None  # WORKLOADS.md calibration for CPUs without AVX-512
    only_threads: Optional[int] = None  # judged at this thread count only (None: at every T)

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
    sklearn_ref: Optional[Callable] = None
    dtype: str = "float32"
    reduction: str = "mean"
    variant: str = "loss"       # "loss" | "none" | "grad" | "train" (fastloss.torch, W19)
    targets: tuple = ()
    notes: str = ""
    # the --quick sizes' targets; None: QUICK_TARGETS.  A matmul-bound workload (W18) keeps its own:
    # torch and fastloss spend most of the call in the same GEMM, so no loss kernel can make it 2x.
    quick_targets: Optional[tuple] = None
    # its NumPy reference runs matrix products on NumPy's BLAS threads (the bench lets their spinning
    # wind down before timing the next call: measure.time_interleaved's settle_after)
    blas_reference: bool = False

    @property
    def torch_ref(self) -> Optional[Callable]:
        return REFERENCES[self.loss].torch_ref

    @property
    def numpy_ref(self) -> Optional[Callable]:
        """None for W17 and W19: NumPy has no gradient."""
        return None if self.variant in ("grad", "train") else REFERENCES[self.loss].numpy_ref

    @property
    def grad_argnums(self) -> tuple:
        return REFERENCES[self.loss].grad_argnums

    @property
    def base(self) -> str:
        return self.id.split("/")[0]

    def describe(self, n) -> str:
        return self.title.format(n=n)

    @property
    def origin(self) -> str:
        """The WORKLOADS.md row whose data this is: W16/W1, W17/W1 and W1/f64 all use W1's builder."""
        return self.id.split("/")[1] if self.id.startswith(("W16/", "W17/", "W19/")) else self.base


# ---------------------------------------------------------------- cross-entropy (W1-W5)

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


def _build_bce_multilabel(rng, n, dtype, C=20):
    """Multi-label classification: n elements as (n / C, C) logits and 0/1 targets, with a pos_weight per
    class, shape (C,) -- torch's documented use of pos_weight (a vector along the last axis, where W6's
    is one number)."""
    x = rng.standard_normal((n // C, C), dtype=dtype) * 3
    y = (rng.random((n // C, C)) < 0.2).astype(dtype)
    return (x, y), {"pos_weight": rng.uniform(1.0, 4.0, C).astype(dtype)}


def _build_focal(rng, n, dtype):
    args, _ = _build_binary(rng, n, dtype)
    return args, {"alpha": 0.25, "gamma": 2.0}


# ---------------------------------------------------------------- regression (W8, W9)

def _build_regression(rng, n, dtype):
    return (rng.standard_normal(n, dtype=dtype), rng.standard_normal(n, dtype=dtype)), {}


# ---------------------------------------------------------------- boxes (W10, W11)

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

def _build_triplet(rng, n, dtype, D=128):
    return tuple(rng.standard_normal((n, D), dtype=dtype) for _ in range(3)), {"margin": 1.0}


def _build_nt_xent(rng, n, dtype, D=128):
    z1 = rng.standard_normal((n, D), dtype=dtype)
    return (z1, z1 + 0.5 * rng.standard_normal((n, D), dtype=dtype)), {"temperature": 0.5}


def _build_batch_hard(rng, n, dtype, D=128, per_class=16):
    return ((rng.standard_normal((n, D), dtype=dtype), rng.integers(0, max(n // per_class, 2), n)),
            {"margin": 1.0})


# ---------------------------------------------------------------- segmentation overlap (W13)

def _build_dice(rng, n, dtype, C=4, H=256, W=256):
    return (rng.standard_normal((n, C, H, W), dtype=dtype), rng.integers(0, C, (n, H, W))), \
        {"mode": "multiclass"}


# ---------------------------------------------------------------- language-model head (W18)

def _build_lm_head(rng, n, dtype, d=1024, V=32_000):
    """N tokens of d hidden features, a V-class head (nn.Linear layout, with a bias: the bench
    differentiates every argument LossInfo names), targets of every class."""
    h = rng.standard_normal((n, d), dtype=dtype)
    w = rng.standard_normal((V, d), dtype=dtype) * dtype.type(1 / math.sqrt(d))
    return (h, w, rng.integers(0, V, n), rng.standard_normal(V, dtype=dtype) * dtype.type(0.1)), {}


# ---------------------------------------------------------------- the table

def _t(metric, bound, avx2_bound=None):
    return Target(metric, bound, avx2_bound)


_CE = dict(loss="cross_entropy", sklearn_ref=sk_cross_entropy)
_BCE = dict(loss="binary_cross_entropy_with_logits", sklearn_ref=sk_bce_with_logits)

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
             n=10_000_000, n_quick=500_000, targets=(_t("torch/fastloss", 25), _t("fastloss/floor", 3)),
             notes="torch: torchvision formula in torch ops"),
    Workload("W8", loss="huber_loss", title="huber_loss N={n}", build=_build_regression, n=10_000_000,
             n_quick=500_000, targets=(_t("torch/fastloss", 3), _t("fastloss/floor", 1.5))),
    Workload("W9", loss="mse_loss", title="mse_loss N={n}", build=_build_regression, n=10_000_000,
             n_quick=500_000, targets=(_t("torch/fastloss", 3), _t("fastloss/floor", 1.5))),
    Workload("W10", loss="generalized_box_iou_loss", title="generalized_box_iou_loss N={n}",
             build=_build_boxes, n=1_000_000, n_quick=50_000,
             targets=(_t("torch/fastloss", 10), _t("fastloss/floor", 3)),
             notes="torch: torchvision formula in torch ops"),
    Workload("W11", loss="complete_box_iou_loss", title="complete_box_iou_loss N={n}",
             build=_build_boxes, n=1_000_000, n_quick=50_000,
             targets=(_t("torch/fastloss", 10), _t("fastloss/floor", 4)),
             notes="torch: torchvision formula in torch ops"),
    Workload("W12", loss="triplet_margin_loss", title="triplet_margin_loss N={n} D=128",
             build=_build_triplet, n=100_000, n_quick=5000,
             targets=(_t("torch/fastloss", 4), _t("fastloss/floor", 2))),
    Workload("W13", loss="dice_loss", title="dice_loss multiclass ({n},4,256,256)", build=_build_dice,
             n=16, n_quick=1, targets=(_t("torch/fastloss", 5), _t("fastloss/floor", 3)),
             notes="torch: segmentation_models_pytorch's formula in torch ops"),
    Workload("W14", loss="nt_xent_loss", title="nt_xent_loss N={n} D=128", build=_build_nt_xent,
             n=8192, n_quick=768, targets=(_t("torch/fastloss", 2),),
             notes="torch: SimCLR in torch ops; matmul-bound, no floor target", blas_reference=True),
    Workload("W15", loss="batch_hard_triplet_loss", title="batch_hard_triplet_loss B={n} D=128",
             build=_build_batch_hard, n=4096, n_quick=768, targets=(_t("torch/fastloss", 3),),
             notes="torch: batch-hard mining in torch ops; no floor target", blas_reference=True),
    Workload("W18", loss="linear_cross_entropy", title="linear_cross_entropy N={n} d=1024 V=32000",
             build=_build_lm_head, n=4096, n_quick=256, targets=(_t("torch/fastloss", 1),),
             quick_targets=(_t("torch/fastloss", 1),),
             notes="torch: F.cross_entropy(F.linear(h, W, b), y), the N x V logits materialised; "
                   "matmul-bound, no floor target", blas_reference=True),
)

_BY_BASE = {w.id: w for w in BASE}


def _none_variant(base):
    return replace(_BY_BASE[base], id=f"W16/{base}", reduction="none", variant="none",
                   title=_BY_BASE[base].title + " none",
                   targets=(_t("torch/fastloss", 3), _t("fastloss/floor", 2)))


def _grad_variant(base):
    w = _BY_BASE[base]
    return replace(w, id=f"W17/{base}", variant="grad", title=w.title + " +grad",
                   # issue 16: grad/loss is the wrong yardstick where a loss is memory-bound (writing an
                   # input-sized gradient costs about as much as reading the input); the call writing into a
                   # reused grad_out= is judged against its own floor, (bytes read + gradient written) /
                   # bandwidth, at T=2 (WORKLOADS.md's W17 floor bounds)
                   targets=(_t("torch/fastloss", 6),
                            Target("grad_out/floor", 1.6 if w.loss == "cross_entropy" else 1.3, only_threads=2)),
                   notes="torch: forward + autograd.grad")


def _f64_variant(base):
    w = _BY_BASE[base]
    return replace(w, id=f"{base}/f64", dtype="float64", title=w.title + " f64",
                   targets=(_t("sklearn/fastloss", 4),),
                   notes="sklearn: HalfMultinomialLoss/HalfBinomialLoss(n_threads=T).loss(...).mean()")


def _multilabel_variant():
    """W6's loss and size on multi-label rows of 20 classes with a pos_weight of shape (20,): the
    last-axis operand path of the elementwise kernels (segments of a row each, before they read such a
    vector tiled: 2.3 ns per element against W6's 1.4)."""
    return replace(_BY_BASE["W6"], id="W6/ml", build=_build_bce_multilabel, sklearn_ref=None,
                   title="bce_with_logits N={n} as (N/20, 20), pos_weight (20,)",
                   notes="multi-label: a pos_weight per class, broadcast along the last axis")


def _train_variant(base):
    w = _BY_BASE[base]
    return replace(w, id=f"W19/{base}", variant="train", title=w.title + " fastloss.torch fwd+bwd",
                   targets=(_t("torch/fastloss", 4),),
                   notes="fastloss.torch loss(x, y).backward() vs torch's loss(x, y).backward() (.grad reset)")


WORKLOADS = BASE + tuple(_none_variant(b) for b in ("W1", "W6", "W8", "W10")) \
    + tuple(_grad_variant(b) for b in ("W1", "W6", "W7", "W8", "W10", "W12")) \
    + (replace(_grad_variant("W18"), targets=(_t("torch/fastloss", 1 / 0.9),),
               quick_targets=(_t("torch/fastloss", 1 / 0.9),)),) \
    + (_multilabel_variant(),) \
    + tuple(_f64_variant(b) for b in ("W1", "W2", "W6")) \
    + tuple(_train_variant(b) for b in ("W1", "W3"))
BY_ID = {w.id: w for w in WORKLOADS}

# Where each target applies.  WORKLOADS.md's targets (``Workload.targets``) are set for the full sizes,
# where inputs are memory-resident; the --quick sizes (inputs of a few MiB, cache-resident: one
# evaluation batch) have their own target, issue 16's: every workload >= 2x torch at T=1 and T=2,
# except the matmul-bound W18 (fused linear cross-entropy), judged by its WORKLOADS.md bound at both.
# A workload slower than torch is flagged at every size and thread count (never acceptable).
QUICK_TARGETS = (Target("torch/fastloss", 2),)
REGIMES = {"full": "memory-resident (full sizes)", "quick": "cache-resident (--quick sizes)",
           None: "scaled sizes (no target is set for them)"}


def regime(quick=False, scale=1.0):
    """"quick" (the --quick sizes, or smaller: still cache-resident), "full" (the WORKLOADS.md sizes,
    or larger: still memory-resident), or None (sizes that no target is set for: judged on nothing but
    the slower-than-torch flag)."""
    if quick:
        return "quick" if scale <= 1 else None
    return "full" if scale >= 1 else None


def targets_for(w, regime_):
    """The targets ``w`` is judged against at sizes of ``regime_`` (see ``regime``)."""
    quick = QUICK_TARGETS if w.quick_targets is None else w.quick_targets
    return {"full": w.targets, "quick": quick}.get(regime_, ())


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


def times_gradient_extras(w) -> bool:
    """Whether a gradient row (W17) also times fastloss's loss alone (its grad/loss) and the call into a
    reused ``grad_out=`` (its grad_out/floor): the rows with a grad_out/floor target.  Not W17/W18, the
    matmul-bound language-model head: its loss and gradient are three products (no floor), and the two
    extra calls, ~1 s each at the --quick size on a 2-core Zen 1, were a third of a --quick run."""
    return w.variant == "grad" and any(t.metric == "grad_out/floor" for t in w.targets)


def callables(w, args, kwargs, threads, impls=IMPLS):
    """Zero-argument callables timing one call of each available implementation at ``threads``.

    Conversion (``torch.from_numpy`` views, sklearn's float labels) happens here, outside the timing.
    Thread counts are set by ``thread_limits``, not here.  An implementation that does not apply
    (no torch, no sklearn row, no NumPy gradient) is absent from the result.
    """
    if w.variant == "train":
        return _train_callables(w, args, kwargs, threads, impls)
    out = {}
    if "fastloss" in impls and implemented(w):
        from .._losses import LOSSES
        f = LOSSES[w.loss].function
        extra = {"num_threads": threads}
        if w.variant == "grad":
            extra["return_grad"] = True
        out["fastloss"] = lambda: f(*args, **kwargs, **extra)
        if times_gradient_extras(w):
            # the same call writing into preallocated gradient buffers (reused: no allocation and no
            # first-touch page faults), as a training loop passes them
            bufs = [np.zeros_like(args[i]) for i in w.grad_argnums]
            go = bufs[0] if len(bufs) == 1 else tuple(bufs)
            out["fastloss grad_out"] = lambda: f(*args, **kwargs, **extra, grad_out=go)
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


def _train_callables(w, args, kwargs, threads, impls):
    """W19: one training step's loss forward + backward into the prediction's ``.grad`` (reset first),
    fastloss.torch against torch's loss; each returns (loss, (gradient,)) for the check."""
    out = {}
    fns = {}
    if "fastloss" in impls and implemented(w):
        import fastloss.torch as flt
        fns["fastloss"] = (getattr(flt, w.loss), {"num_threads": threads})
    if "torch" in impls and w.torch_ref is not None:
        fns["torch"] = (w.torch_ref, {})
    for name, (fn, extra) in fns.items():
        targs = [_to_torch(a, i in w.grad_argnums) for i, a in enumerate(args)]
        tkw = {k: _to_torch(v) for k, v in kwargs.items()}
        wrt = [targs[i] for i in w.grad_argnums]

        def step(fn=fn, extra=extra, targs=targs, tkw=tkw, wrt=wrt):
            for t in wrt:
                t.grad = None
            loss = fn(*targs, **tkw, **extra)
            loss.backward()
            return loss.detach().numpy(), tuple(t.grad for t in wrt)
        out[name] = step if name == "fastloss" else (lambda step=step: step()[1])
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
