"""Segmentation overlap losses (SPEC §6): Dice, Jaccard, Tversky, focal Tversky, Dice + BCE.

Values against the float64 NumPy formula of fastloss/_reference/segmentation.py (TP, FP, FN summed
directly, stable sigmoid / softmax); gradients against torch.autograd on the smp-style torch-ops
reference there (itself checked against the NumPy formula).  Plus hostile
inputs, empty masks / batches, determinism across thread counts, input handling and errors."""
import numpy as np
import pytest
import torch

import fastloss as fl
from fastloss._reference import REFERENCES
from fastloss._reference.segmentation import np_overlap_ref, np_sigmoid, np_softmax, torch_overlap_ref
from fl_testing import DTYPES, DTYPE_IDS, REDUCTIONS, assert_close_spec, readonly, fortran, strided

LOSSES = ["dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss", "dice_bce_loss"]
KIND = {"dice_loss": "dice", "jaccard_loss": "jaccard", "tversky_loss": "tversky",
        "focal_tversky_loss": "focal_tversky", "dice_bce_loss": "dice"}
PARAMS = {"tversky_loss": {"alpha": 0.3, "beta": 0.7},
          "focal_tversky_loss": {"alpha": 0.7, "beta": 0.3, "gamma": 1.5},
          "dice_bce_loss": {"dice_weight": 0.3}}
MODES = ["binary", "multiclass", "multilabel"]


# ---------------------------------------------------------------- the independent references

def np_overlap(name, x, target, **kw):
    """The NumPy reference (fastloss/_reference/segmentation.py) in float64: x and float targets upcast."""
    target = np.asarray(target)
    if target.dtype.kind == "f":
        target = target.astype(np.float64)
    if name == "dice_bce_loss":
        kw = {"dice_weight": 0.5, **kw}          # dice_bce_loss's default
    return np_overlap_ref(KIND[name], np.asarray(x, dtype=np.float64), target, **kw)


def torch_ref(name, x, target, **kw):
    """The shared torch-ops reference on float64 tensors (x may require grad)."""
    t = torch.as_tensor(np.asarray(target, dtype=np.float64) if np.asarray(target).dtype.kind in "fb"
                        else np.asarray(target, dtype=np.int64))
    kind = "focal_tversky" if name == "focal_tversky_loss" else KIND[name]
    if name == "dice_bce_loss":
        kw = {"dice_weight": 0.5, **kw}          # dice_bce_loss's default
    return torch_overlap_ref(kind, x, t, **kw)


# ---------------------------------------------------------------- inputs

def make(mode, dtype=np.float64, shape=(3, 4, 5, 7), seed=0, scale=2.0, soft=False):
    """(logits, target) for a mode: class indices for multiclass, {0,1} (or soft) masks otherwise."""
    rng = np.random.default_rng(seed)
    if mode == "binary":
        shape = (shape[0], 1) + shape[2:]
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    if mode == "multiclass":
        return x, rng.integers(0, shape[1], (shape[0],) + shape[2:])
    t = rng.random(shape) if soft else (rng.random(shape) > 0.6).astype(np.float64)
    return x, t.astype(dtype)


def cases():
    out = []
    for name in LOSSES:
        for mode in MODES:
            for from_logits in (True, False):
                if name == "dice_bce_loss" and (mode == "multiclass" or not from_logits):
                    continue
                out.append((name, mode, from_logits))
    return out


CASES = cases()
CASE_IDS = [f"{n}-{m}-{'logits' if f else 'probs'}" for n, m, f in CASES]


def call_kwargs(name, mode, from_logits, **extra):
    kw = {"mode": mode, **PARAMS.get(name, {}), **extra}
    if name != "dice_bce_loss":
        kw["from_logits"] = from_logits
    return kw


def probs_input(x, mode, from_logits):
    """For from_logits=False, feed probabilities (softmax / sigmoid of the logits, in x's dtype)."""
    if from_logits:
        return x
    x64 = x.astype(np.float64)
    return (np_softmax(x64) if mode == "multiclass" else np_sigmoid(x64)).astype(x.dtype)


# ---------------------------------------------------------------- values and gradients

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name,mode,from_logits", CASES, ids=CASE_IDS)
def test_values_match_numpy_reference(name, mode, from_logits, dtype):
    x, t = make(mode, dtype, soft=True)
    x = probs_input(x, mode, from_logits)
    kw = call_kwargs(name, mode, from_logits)
    for reduction in REDUCTIONS:
        got = getattr(fl, name)(x, t, reduction=reduction, **kw)
        assert_close_spec(got, np_overlap(name, x, t, reduction=reduction, **kw), dtype, what=reduction)


@pytest.mark.parametrize("name", LOSSES)
def test_torch_reference_agrees_with_numpy_reference(name):
    """The two references are written independently; they must agree before either is trusted."""
    for mode in ("binary", "multilabel") if name == "dice_bce_loss" else MODES:
        x, t = make(mode, soft=True)
        kw = call_kwargs(name, mode, True, smooth=0.5, ignore_index=None)
        want = np_overlap(name, x, t, reduction="none", **kw)
        got = torch_ref(name, torch.tensor(x), t, reduction="none", **kw).numpy()
        assert_close_spec(got, want, np.float64, result_type=False, what=mode)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name,mode,from_logits", CASES, ids=CASE_IDS)
def test_grad_matches_torch_autograd(name, mode, from_logits, dtype):
    x, t = make(mode, dtype, seed=1)
    x = probs_input(x, mode, from_logits)
    ignore = (3 if mode == "multiclass" else None)
    kw = call_kwargs(name, mode, from_logits, smooth=0.25, ignore_index=ignore)
    if mode == "multiclass":
        t = t.copy()
        t[0, :2] = 3        # some ignored positions (3 is also a valid class: it is ignored, not checked)
    for reduction in REDUCTIONS:
        val, g = getattr(fl, name)(x, t, reduction=reduction, return_grad=True, **kw)
        xt = torch.tensor(x.astype(np.float64), requires_grad=True)
        ref = torch_ref(name, xt, t, reduction=reduction, **kw)
        (gt,) = torch.autograd.grad(ref.sum(), xt)
        assert_close_spec(val, ref.detach(), dtype, what=f"value {reduction}")
        assert g.dtype == dtype and g.shape == x.shape
        assert_close_spec(g, gt, dtype, reduced=False, what=f"grad {reduction}")


@pytest.mark.parametrize("C,spatial", [(2, (37,)), (21, (13, 11)), (300, (3, 41)), (5, ())])
def test_class_counts_and_odd_sizes(C, spatial):
    """Tile widths change with C (a 300-class run is 16 positions); runs end mid-vector."""
    rng = np.random.default_rng(C)
    x = rng.standard_normal((3, C) + spatial) * 3
    y = rng.integers(0, C, (3,) + spatial)
    y = np.where(rng.random(y.shape) < 0.1, -100, y)
    m = (rng.random(x.shape) > 0.5).astype(np.float64)
    for name, mode, t in (("focal_tversky_loss", "multiclass", y), ("jaccard_loss", "multilabel", m)):
        kw = call_kwargs(name, mode, True, ignore_index=-100)
        val, g = getattr(fl, name)(x, t, reduction="none", return_grad=True, num_threads=2, **kw)
        assert_close_spec(val, np_overlap(name, x, t, reduction="none", **kw), np.float64, what=name)
        xt = torch.tensor(x, requires_grad=True)
        (gt,) = torch.autograd.grad(torch_ref(name, xt, t, reduction="sum", **kw), xt)
        assert_close_spec(g, gt, np.float64, reduced=False, what=f"{name} grad")


def test_integer_and_one_hot_targets_agree():
    x, y = make("multiclass", seed=2)
    onehot = (y[:, None] == np.arange(4).reshape(1, 4, 1, 1)).astype(np.float64)
    for name in LOSSES[:4]:
        xt = torch.tensor(x, requires_grad=True)
        ref = torch_ref(name, xt, y, reduction="none")
        (gref,) = torch.autograd.grad(ref.sum(), xt)
        for target in (y, onehot):               # two kernels (label map, one-hot mask): each vs the reference
            val, g = getattr(fl, name)(x, target, reduction="none", return_grad=True)
            assert_close_spec(val, np_overlap(name, x, y, reduction="none"), np.float64, what=name)
            assert_close_spec(g, gref, np.float64, reduced=False, what=f"{name} grad")


@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.uint8, np.int16])
def test_label_dtypes(label_dtype):
    x, y = make("multiclass", seed=3)
    want = np_overlap("dice_loss", x, y)
    assert_close_spec(fl.dice_loss(x, y.astype(label_dtype)), want, np.float64)


@pytest.mark.parametrize("ignore_index", [-100, 255, 0])
def test_ignore_index_labels(ignore_index):
    x, y = make("multiclass", seed=4)
    y = y.copy()
    y[1, 2:] = ignore_index
    y[2, 0, 0] = ignore_index
    for name in LOSSES[:4]:
        kw = PARAMS.get(name, {})
        for reduction in REDUCTIONS:
            got = getattr(fl, name)(x, y, ignore_index=ignore_index, reduction=reduction, **kw)
            want = np_overlap(name, x, y, ignore_index=ignore_index, reduction=reduction, **kw)
            assert_close_spec(got, want, np.float64, what=f"{name} {reduction}")
    if ignore_index != 0:      # an unignored out-of-range label is an error
        with pytest.raises(IndexError, match="target"):
            fl.dice_loss(x, y)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("mode", ["binary", "multilabel"])
def test_ignore_index_masks(name, mode):
    x, t = make(mode, seed=5)
    t = t.copy()
    t.reshape(-1)[::7] = 255
    kw = call_kwargs(name, mode, True, ignore_index=255)
    got = getattr(fl, name)(x, t, reduction="none", **kw)
    assert_close_spec(got, np_overlap(name, x, t, reduction="none", **kw), np.float64)


def test_binary_target_without_channel_axis():
    """mode="binary" takes an (N, *spatial) target as the (N, 1, *spatial) mask (smp's convention)."""
    x, t = make("binary", seed=6)
    for name in ("dice_loss", "dice_bce_loss"):
        want = np_overlap(name, x, t, mode="binary", reduction="none")
        for target in (t[:, 0], t):
            got = getattr(fl, name)(x, target, mode="binary", reduction="none")
            assert_close_spec(got, want, np.float64, what=f"{name} target {target.shape}")


def test_tversky_special_cases():
    """alpha = beta = 0.5 is Dice; alpha = beta = 1 is Jaccard; focal with gamma = 1 is Tversky: each
    against the reference of the special case (a different formula in np_overlap)."""
    x, y = make("multiclass", seed=7)
    assert_close_spec(fl.tversky_loss(x, y, reduction="none"), np_overlap("dice_loss", x, y, reduction="none"),
                      np.float64)
    assert_close_spec(fl.tversky_loss(x, y, alpha=1.0, beta=1.0, reduction="none"),
                      np_overlap("jaccard_loss", x, y, reduction="none"), np.float64)
    assert_close_spec(fl.focal_tversky_loss(x, y, alpha=0.2, beta=0.8, gamma=1.0),
                      np_overlap("tversky_loss", x, y, alpha=0.2, beta=0.8), np.float64)


def test_dice_bce_equals_weighted_sum_of_parts():
    """mean reduction, no ignore: w * dice_loss + (1 - w) * binary_cross_entropy_with_logits."""
    x, t = make("multilabel", seed=8, soft=True)
    for w in (0.0, 0.3, 1.0):
        got = fl.dice_bce_loss(x, t, mode="multilabel", dice_weight=w)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t)).item()
        dice = np_overlap("dice_loss", x, t, mode="multilabel")
        assert_close_spec(got, w * dice + (1 - w) * bce, np.float64, what=f"dice_weight={w}")


# ---------------------------------------------------------------- hostile and degenerate inputs

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name,mode,from_logits", [c for c in CASES if c[2]],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if c[2]])
def test_huge_logits(name, mode, from_logits, dtype):
    x, t = make(mode, dtype, seed=9)
    x = (np.sign(x) * 1e4).astype(dtype)
    x.reshape(-1)[::5] = 0
    kw = call_kwargs(name, mode, True)
    val, g = getattr(fl, name)(x, t, reduction="none", return_grad=True, **kw)
    assert np.all(np.isfinite(val)) and np.all(np.isfinite(g))
    assert_close_spec(val, np_overlap(name, x, t, reduction="none", **kw), dtype)
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    (gt,) = torch.autograd.grad(torch_ref(name, xt, t, reduction="sum", **kw), xt)
    assert_close_spec(g, gt, dtype, reduced=False)


def test_masked_classes_neg_inf_logits():
    """-inf logits (masked classes) are valid in multiclass: p = 0 there, no nan in loss or gradient."""
    x, y = make("multiclass", seed=10)
    x = x.copy()
    x[:, 1] = -np.inf
    y = np.where(y == 1, 0, y)
    val, g = fl.dice_loss(x, y, reduction="none", return_grad=True)
    assert np.all(np.isfinite(val)) and np.all(np.isfinite(g))
    assert_close_spec(val, np_overlap("dice_loss", x, y, reduction="none"), np.float64)
    np.testing.assert_array_equal(val[:, 1], 1.0)          # empty target, p = 0: 0 / eps -> Dice 0


@pytest.mark.parametrize("name", LOSSES[:4])
def test_empty_masks_follow_smooth_eps_rule(name):
    """Empty target and (probabilities) empty prediction: score = smooth / max(smooth, eps):
    loss 1 with smooth = 0 (0 / eps), loss 0 with smooth > 0."""
    x = np.zeros((2, 3, 4, 4))
    t = np.zeros_like(x)
    for smooth, want in ((0.0, 1.0), (1.0, 0.0)):
        kw = {"mode": "multilabel", "from_logits": False, "smooth": smooth}
        val, g = getattr(fl, name)(x, t, reduction="none", return_grad=True, **kw)
        np.testing.assert_array_equal(val, np.full((2, 3), want))
        xt = torch.tensor(x, requires_grad=True)
        (gt,) = torch.autograd.grad(torch_ref(name, xt, t, reduction="sum", **kw), xt)
        assert_close_spec(g, gt, np.float64, reduced=False, what=f"smooth={smooth}")
    # tiny probabilities: the eps clamp of the denominator is active (torch's clamp_min gradient: 0)
    x = np.full((2, 3, 4, 4), 1e-10)
    t = np.zeros_like(x)
    t[0, 0, 0, 0] = 1e-9
    kw = {"mode": "multilabel", "from_logits": False}
    val, g = getattr(fl, name)(x, t, reduction="sum", return_grad=True, **kw)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch_ref(name, xt, t, reduction="sum", **kw)
    (gt,) = torch.autograd.grad(ref, xt)
    assert_close_spec(val, ref, np.float64)
    assert_close_spec(g, gt, np.float64, reduced=False)
    # empty target, non-empty soft prediction from logits: Dice 0 -> loss 1 (pairs are not dropped)
    assert fl.dice_loss(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), mode="binary") == 1.0


@pytest.mark.parametrize("name", LOSSES)
def test_empty_batch_and_empty_spatial(name):
    mode = "multilabel"
    for shape in ((0, 3, 4, 4), (2, 3, 0)):
        x = np.zeros(shape, dtype=np.float32)
        t = np.zeros(shape, dtype=np.float32)
        f = getattr(fl, name)
        none = f(x, t, mode=mode, reduction="none")
        assert none.shape == shape[:2] and none.dtype == np.float32
        assert_close_spec(f(x, t, mode=mode, reduction="sum"), np_overlap(name, x, t, mode=mode, reduction="sum"),
                          np.float32)
        mean, g = f(x, t, mode=mode, return_grad=True)
        assert g.shape == shape
        if shape[0] == 0:
            assert np.isnan(mean)
    x = np.zeros((0, 4, 3, 3))
    assert fl.dice_loss(x, np.zeros((0, 3, 3), dtype=np.int64), reduction="none").shape == (0, 4)


@pytest.mark.parametrize("name", LOSSES)
def test_nan_propagates(name):
    mode = "multilabel" if name == "dice_bce_loss" else "multiclass"
    x, t = make(mode, seed=11)
    x = x.copy()
    x[0, 1, 2, 3] = np.nan
    val = getattr(fl, name)(x, t, mode=mode, reduction="none")
    want = np_overlap(name, x, t, mode=mode, reduction="none")
    assert_close_spec(val, want, np.float64)
    assert np.isnan(val[0]).any() and np.all(np.isfinite(val[1:]))
    assert np.isnan(getattr(fl, name)(x, t, mode=mode))


# ---------------------------------------------------------------- threads, layout, input handling

@pytest.mark.parametrize("name,mode", [("dice_loss", "multiclass"), ("tversky_loss", "multilabel"),
                                       ("dice_bce_loss", "binary"), ("jaccard_loss", "multiclass")])
def test_deterministic_across_threads(name, mode):
    """>= 200k elements: many blocks; sums, means and gradients bitwise equal for 1, 2, 3 threads."""
    x, t = make(mode, np.float32, shape=(2, 4, 160, 170), seed=12)
    ign = 2 if mode == "multiclass" else None
    f = getattr(fl, name)
    res = [f(x, t, mode=mode, ignore_index=ign, reduction=r, num_threads=n, return_grad=True)
           for n in (1, 2, 3) for r in ("mean", "sum")]
    for i in range(2, len(res)):
        ref = res[i % 2]
        assert res[i][0].tobytes() == ref[0].tobytes()
        assert res[i][1].tobytes() == ref[1].tobytes()
    assert_close_spec(res[0][0], np_overlap(name, x, t, mode=mode, ignore_index=ign), np.float32)


def test_inputs_unmodified_and_layouts():
    x, y = make("multiclass", seed=13)
    x0, y0 = x.copy(), y.copy()
    want = np_overlap("dice_loss", x, y, reduction="none")
    for xi, yi in ((readonly(x), readonly(y)), (fortran(x), fortran(y)), (strided(x, 2), strided(y, 1)),
                   (torch.tensor(x), torch.tensor(y)), (x.tolist(), y.tolist())):
        got = fl.dice_loss(xi, yi, reduction="none", return_grad=True)[0]
        assert_close_spec(got, want, np.float64)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    xm, tm = make("multilabel", seed=13)
    tm0 = tm.copy()
    fl.dice_bce_loss(fortran(xm), tm, mode="multilabel", ignore_index=1, return_grad=True)
    np.testing.assert_array_equal(tm, tm0)


def test_half_precision_and_mixed_dtypes():
    x, t = make("multilabel", seed=14)
    want = np_overlap("dice_loss", x.astype(np.float16), t, mode="multilabel")
    got = fl.dice_loss(torch.tensor(x).half(), t, mode="multilabel")
    assert_close_spec(got, want, np.float32)             # float16 computes in float32
    got = fl.dice_loss(x.astype(np.float32), t.astype(np.float64), mode="multilabel")   # target follows input
    assert got.dtype == np.float32


def test_out():
    x, y = make("multiclass", np.float32, seed=15)
    o = np.empty((3, 4), dtype=np.float32)
    r = fl.jaccard_loss(x, y, reduction="none", out=o)
    assert r is o
    assert_close_spec(o, np_overlap("jaccard_loss", x, y, reduction="none"), np.float32)
    with pytest.raises(ValueError, match="out"):
        fl.jaccard_loss(x, y, reduction="none", out=np.empty((4, 3), dtype=np.float32))


def test_reference_entries():
    for name in LOSSES:
        spec = REFERENCES[name]
        assert spec.family == "segmentation"
        args, kw = spec.sample(np.random.default_rng(0), 400, np.float64)
        got = getattr(fl, name)(*args, **kw)
        assert_close_spec(got, spec.torch_ref(*args, **kw), np.float64, what=name)


# ---------------------------------------------------------------- errors (SPEC §5)

def test_errors():
    x, y = make("multiclass", seed=16)
    xm, tm = make("multilabel", seed=16)
    with pytest.raises(ValueError, match="mode"):
        fl.dice_loss(x, y, mode="multi")
    with pytest.raises(ValueError, match="mode"):
        fl.dice_bce_loss(x, y, mode="multiclass")
    with pytest.raises(ValueError, match="input"):
        fl.dice_loss(xm, tm, mode="binary")                        # 4 channels
    with pytest.raises(ValueError, match="input"):
        fl.dice_loss(np.zeros(5), np.zeros(5), mode="binary")
    with pytest.raises(ValueError, match="input"):
        fl.dice_loss(np.zeros((2, 0, 3)), np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="target"):
        fl.dice_loss(x, y[:, :3])
    with pytest.raises(ValueError, match="target"):
        fl.dice_loss(xm, tm[:, :2], mode="multilabel")
    with pytest.raises(ValueError, match="target"):
        fl.dice_loss(xm, y, mode="multilabel")                     # labels are multiclass only
    with pytest.raises(TypeError, match="target"):
        fl.dice_loss(x, y.astype(np.float64))                      # a float label map
    with pytest.raises(TypeError, match="target"):
        fl.dice_loss(xm, np.full(xm.shape, "a"), mode="multilabel")
    with pytest.raises(TypeError, match="input"):
        fl.dice_loss(x.astype(np.int64), y)
    with pytest.raises(TypeError, match="input"):
        fl.dice_loss(np.full(x.shape, "a"), y)
    with pytest.raises(TypeError, match="ignore_index"):
        fl.dice_loss(x, y, ignore_index=2.5)
    with pytest.raises(ValueError, match="reduction"):
        fl.dice_loss(x, y, reduction="avg")
    for f, kw, arg in ((fl.dice_loss, {"smooth": -1.0}, "smooth"), (fl.jaccard_loss, {"eps": -1e-7}, "eps"),
                       (fl.tversky_loss, {"alpha": -0.1}, "alpha"), (fl.tversky_loss, {"beta": -0.1}, "beta"),
                       (fl.focal_tversky_loss, {"gamma": -1.0}, "gamma"),
                       (fl.dice_bce_loss, {"dice_weight": 1.5, "mode": "multilabel"}, "dice_weight")):
        with pytest.raises(ValueError, match=arg):
            f(xm if f is fl.dice_bce_loss else x, tm if f is fl.dice_bce_loss else y, **kw)
    with pytest.raises(ValueError, match="num_threads"):
        fl.dice_loss(x, y, num_threads=0)


@pytest.mark.parametrize("bad", [4, -1, 2**40])
def test_bad_labels(bad):
    x, y = make("multiclass", seed=17)
    y = y.astype(np.int64)
    y[2, 3, 4] = bad
    with pytest.raises(IndexError, match=r"target.*\(2, 3, 4\)"):
        fl.dice_loss(x, y)
    with pytest.raises(IndexError, match="target"):
        fl.tversky_loss(x, y, return_grad=True)
