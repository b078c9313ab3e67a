"""nll_loss, cross_entropy (probability targets), softmax_focal_loss, multi_margin_loss,
distillation_loss and class_balanced_weights against independent float64 references
(torch.nn.functional in float64, the torch-ops / NumPy formulas of SPEC §6 in fastloss._reference)."""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fastloss._reference.classification import (
    class_balanced_weights_ref, distillation_ref, softmax_focal_ref,
)
from fl_testing import assert_close_spec

REDS = ("none", "mean", "sum")
# torch's kl_div(reduction="mean") warns that it is not batchmean: it is the reference we mean to match
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
DTYPES = (np.float32, np.float64)


# ------------------------------------------------------------------------------------------------ helpers
def tt(a, grad=False):
    """float64 torch tensor (integers stay int64) of an array, optionally requiring grad."""
    a = np.asarray(a)
    t = torch.tensor(a.astype(np.float64) if a.dtype.kind == "f" else a.astype(np.int64))
    return t.requires_grad_(grad)


def rnd(a, dtype):
    """An array rounded to dtype and back to float64: the exact values the kernel sees."""
    return None if a is None else np.asarray(a).astype(dtype).astype(np.float64)


def assert_close(got, ref, dtype, reduced=False, what=""):
    """SPEC §4 against the float64 reference (conftest.assert_close_spec); reduced: a mean/sum."""
    assert_close_spec(got, ref, dtype, reduced=reduced, what=what)


def check_result(val, dtype, red, shape):
    if red == "none":
        assert isinstance(val, np.ndarray) and val.dtype == dtype and val.shape == shape
    else:
        assert isinstance(val, np.floating) and val.dtype == dtype


def compare(fn, ref_fn, x, rest, kw, ref_kw, dtype, red, grad=True, out_shape=None):
    """fn(x.astype(dtype), *rest, reduction=red, **kw) with its gradient vs ref_fn on the same values in
    float64 (rest: float arrays are passed as dtype to fastloss, rounded for the reference)."""
    xd = x.astype(dtype)
    rest_fl = [r.astype(dtype) if isinstance(r, np.ndarray) and r.dtype.kind == "f" else r for r in rest]
    rest_ref = [tt(rnd(r, dtype)) if isinstance(r, np.ndarray) and r.dtype.kind == "f" else
                (tt(r) if isinstance(r, np.ndarray) else r) for r in rest]
    xt = tt(rnd(x, dtype), grad=True)
    ref = ref_fn(xt, *rest_ref, reduction=red, **ref_kw)
    if grad:
        val, g = fn(xd, *rest_fl, reduction=red, return_grad=True, **kw)
        (gref,) = torch.autograd.grad(ref.sum(), xt)
        assert g.dtype == dtype and g.shape == x.shape
        assert_close(g, gref, dtype)
    else:
        val = fn(xd, *rest_fl, reduction=red, **kw)
    check_result(val, dtype, red, tuple(ref.shape) if out_shape is None else out_shape)
    assert_close(val, ref, dtype, reduced=red != "none")
    return val


def w_kw(w, dtype):
    return {} if w is None else {"weight": w.astype(dtype)}, {} if w is None else {"weight": tt(rnd(w, dtype))}


def logits(rng, shape, scale=3.0):
    return rng.standard_normal(shape) * scale


def log_probs(x, axis):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


def softmax(x, axis):
    return np.exp(log_probs(x, axis))


SHAPES = {"NC": (37, 5), "C": (5,), "NCdd": (3, 4, 5, 6)}   # "C": unbatched, with a 0-d target


def labels_for(rng, shape, ignore=None, frac=0.25):
    lab_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    C = shape[0] if len(shape) == 1 else shape[1]
    y = rng.integers(0, C, lab_shape)
    if ignore is not None and y.ndim:
        y = np.where(rng.random(lab_shape) < frac, ignore, y)
    return y, C


# ============================================================================================== nll_loss
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore", [None, -100, 2])
def test_nll_vs_torch(dtype, shape, weighted, ignore):
    rng = np.random.default_rng(1)
    shp = SHAPES[shape]
    x = log_probs(logits(rng, shp), 0 if len(shp) == 1 else 1)
    y, C = labels_for(rng, shp, ignore)
    w = rng.random(C) + 0.25 if weighted else None
    kw, rkw = w_kw(w, dtype)
    if ignore is not None:
        kw["ignore_index"] = rkw["ignore_index"] = ignore
    for red in REDS:
        compare(fl.nll_loss, F.nll_loss, x, [y], kw, rkw, dtype, red)


@pytest.mark.parametrize("red", REDS)
def test_nll_all_ignored_as_torch(red):
    x = log_probs(logits(np.random.default_rng(2), (6, 4)), 1)
    y = np.full(6, -100)
    val = compare(fl.nll_loss, F.nll_loss, x, [y], {}, {}, np.float64, red)
    if red == "mean":
        assert np.isnan(val)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nll_out_and_int_labels_and_tensors(dtype):
    rng = np.random.default_rng(3)
    x = log_probs(logits(rng, (2, 3, 4, 5)), 1).astype(dtype)
    y = rng.integers(0, 3, (2, 4, 5))
    ref = F.nll_loss(tt(x), tt(y), reduction="none").numpy()
    out = np.full((2, 4, 5), 7, dtype=dtype)
    res = fl.nll_loss(x, y, reduction="none", out=out)
    assert res is out
    assert_close(out, ref, dtype)
    for ydt in (np.int32, np.int16, np.uint8, np.int64):
        assert_close(fl.nll_loss(x, y.astype(ydt), reduction="none"), ref, dtype)
    # torch tensors in (weight too), a tensor requiring grad included
    w = rng.random(3) + 0.5
    ref_m = F.nll_loss(tt(x), tt(y), weight=tt(rnd(w, dtype)))
    got = fl.nll_loss(torch.tensor(x).requires_grad_(), torch.tensor(y, dtype=torch.int32),
                      weight=torch.tensor(w.astype(dtype)))
    assert got.dtype == dtype
    assert_close(got, ref_m, dtype, reduced=True)
    with pytest.raises(ValueError, match="out"):
        fl.nll_loss(x, y, reduction="none", out=np.empty((2, 4), dtype))
    with pytest.raises(ValueError, match="out"):
        fl.nll_loss(x, y, reduction="none", out=np.empty((2, 4, 5), np.float32 if dtype == np.float64 else np.float64))


@pytest.mark.parametrize("grad", [False, True])
def test_nll_bad_label_names_position_and_value(grad):
    x = log_probs(logits(np.random.default_rng(4), (5, 4)), 1)
    y = np.array([0, 1, 7, 2, 9])
    with pytest.raises(IndexError, match=r"\b7\b.*position 2|position 2.*\b7\b"):
        fl.nll_loss(x, y, return_grad=grad)
    y = np.array([0, -5, 1, 2, 3])
    with pytest.raises(IndexError, match=r"-5.*position 1"):
        fl.nll_loss(x, y, reduction="none")
    x4 = log_probs(logits(np.random.default_rng(4), (2, 3, 4, 5)), 1)
    y4 = np.zeros((2, 4, 5), dtype=np.int32)
    y4[1, 2, 3] = 3
    with pytest.raises(IndexError, match=r"\b3\b.*position"):
        fl.nll_loss(x4, y4, return_grad=grad)


def test_bad_label_position_is_plain_tuple():
    x4 = log_probs(logits(np.random.default_rng(4), (2, 3, 4, 5)), 1)
    y4 = np.zeros((2, 4, 5), dtype=np.int32)
    y4[1, 2, 3] = 3
    with pytest.raises(IndexError, match=re.escape("position (1, 2, 3)")):
        fl.nll_loss(x4, y4)


def test_nll_errors():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="reduction"):
        fl.nll_loss(x, np.zeros(3, int), reduction="avg")
    with pytest.raises(ValueError, match="target"):
        fl.nll_loss(x, np.zeros(4, int))
    with pytest.raises(ValueError, match="weight"):
        fl.nll_loss(x, np.zeros(3, int), weight=np.ones(3))
    with pytest.raises(TypeError, match="target"):
        fl.nll_loss(x, np.zeros(3))
    with pytest.raises(TypeError, match="input"):
        fl.nll_loss(np.zeros((3, 4), int), np.zeros(3, int))


def test_nll_hostile_values():
    x = log_probs(logits(np.random.default_rng(5), (6, 4)), 1)
    y = np.array([0, 1, 2, 3, 0, 1])
    x[0, 0], x[1, 1], x[2, 2], x[3, 0] = -np.inf, np.nan, -1e4, np.nan   # x[3,0] not a target: no effect
    for red in REDS:
        compare(fl.nll_loss, F.nll_loss, x, [y], {}, {}, np.float64, red)



@pytest.mark.parametrize("target", ["int", "0d", "tensor"])
def test_unbatched_scalar_class_target(target):
    x = logits(np.random.default_rng(21), (5,))
    y = {"int": 3, "0d": np.array(3, np.int32), "tensor": torch.tensor(3)}[target]
    for fn, ref_fn in ((fl.nll_loss, F.nll_loss), (fl.cross_entropy, F.cross_entropy),
                       (fl.softmax_focal_loss, softmax_focal_ref), (fl.multi_margin_loss, F.multi_margin_loss)):
        val = fn(x, y)
        assert_close(val, ref_fn(tt(x), torch.tensor(3), reduction="mean"), np.float64, reduced=True)


# ============================================================================ cross_entropy, prob. targets
PSHAPES = {"NC": (29, 6), "C": (6,), "NCdd": (3, 4, 5, 6)}


def prob_target(rng, shape):
    return softmax(rng.standard_normal(shape) * 2, 0 if len(shape) == 1 else 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PSHAPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_ce_probs_vs_torch(dtype, shape, weighted, eps):
    rng = np.random.default_rng(6)
    shp = PSHAPES[shape]
    x = logits(rng, shp)
    t = prob_target(rng, shp)
    w = rng.random(shp[0] if len(shp) == 1 else shp[1]) + 0.25 if weighted else None
    kw, rkw = w_kw(w, dtype)
    kw["label_smoothing"] = rkw["label_smoothing"] = eps
    for red in REDS:
        compare(fl.cross_entropy, F.cross_entropy, x, [t], kw, rkw, dtype, red)


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("red", REDS)
def test_ce_probs_masked_class_nan_where_torch(eps, red):
    rng = np.random.default_rng(7)
    x = logits(rng, (8, 5))
    t = prob_target(rng, (8, 5))
    x[[1, 3, 4], 2] = -np.inf
    t[[1, 3], 2] = 0.0           # zero target prob. on a masked class: torch gives 0 * -inf = nan
    t[4] = 0.0
    t[4, 0] = 1.0
    t[4, 2] = 0.0
    x[6, 4] = -np.inf            # masked but with nonzero target prob.: inf
    for dtype in DTYPES:
        val = compare(fl.cross_entropy, F.cross_entropy, x, [t], {"label_smoothing": eps},
                      {"label_smoothing": eps}, dtype, red)
        if red == "none":
            ref = F.cross_entropy(tt(x), tt(t), label_smoothing=eps, reduction="none").numpy()
            np.testing.assert_array_equal(np.isnan(val), np.isnan(ref))
            np.testing.assert_array_equal(np.isinf(val), np.isinf(ref))


def test_ce_probs_errors_and_out():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="target"):
        fl.cross_entropy(x, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="reduction"):
        fl.cross_entropy(x, np.zeros((3, 4)), reduction="batchmean")
    with pytest.raises(ValueError, match="label_smoothing"):
        fl.cross_entropy(x, np.zeros((3, 4)), label_smoothing=1.5)
    rng = np.random.default_rng(8)
    x = logits(rng, (2, 3, 4, 5))
    t = prob_target(rng, x.shape)
    out = np.empty((2, 4, 5))
    assert fl.cross_entropy(x, t, reduction="none", out=out) is out
    assert_close(out, F.cross_entropy(tt(x), tt(t), reduction="none"), np.float64)
    with pytest.raises(ValueError, match="out"):
        fl.cross_entropy(x, t, reduction="none", out=np.empty((2, 3, 4, 5)))
    # torch tensors; float32 target with float64 input computes in float64
    got = fl.cross_entropy(torch.tensor(x), torch.tensor(t.astype(np.float32)))
    assert got.dtype == np.float64
    assert_close(got, F.cross_entropy(tt(x), tt(rnd(t, np.float32))), np.float64)


# ==================================================================================== softmax_focal_loss
FSHAPES = {"NC": (41, 7), "C": (7,), "NCdd": (3, 5, 4, 6)}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [28, 73, 160, 161, 200, 257, 300, 513, 700])
def test_focal_wide_rows(dtype, C):
    # rows of C classes on both sides of the class counts where the kernel switches between class-major
    # tiles and rows (classification.pyx's index_tiles_win: 72 (160 at AVX-512) / 256 float32, 512
    # float64), with class weights, alpha and ignored targets, against torch ops in float64
    rng = np.random.default_rng(C)
    x = logits(rng, (19, C))
    x[3, 5] = 40.0                     # a near-certain row: (1 - p)^gamma underflows towards 0
    y, _ = labels_for(rng, (19, C), -100)
    a, w = rng.random(C) + 0.1, rng.random(C) + 0.25
    kw = {"alpha": a.astype(dtype), "weight": w.astype(dtype), "gamma": 2.0}
    rkw = {"alpha": tt(rnd(a, dtype)), "weight": tt(rnd(w, dtype)), "gamma": 2.0}
    for red in REDS:
        compare(fl.softmax_focal_loss, softmax_focal_ref, x, [y], kw, rkw, dtype, red)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(FSHAPES))
@pytest.mark.parametrize("gamma,opts", [(g, "weight+alpha+ignore") for g in (0.0, 0.5, 1.0, 2.0, 3.0)]
                         + [(2.0, "plain"), (0.5, "alpha")])
def test_focal_vs_torch_ops(dtype, shape, gamma, opts):
    rng = np.random.default_rng(9)
    shp = FSHAPES[shape]
    x = logits(rng, shp)
    y, C = labels_for(rng, shp, -100 if opts == "weight+alpha+ignore" else None)
    kw, rkw = ({}, {})
    if opts != "plain":
        a = rng.random(C) + 0.1
        kw["alpha"], rkw["alpha"] = a.astype(dtype), tt(rnd(a, dtype))
    if opts == "weight+alpha+ignore":
        w = rng.random(C) + 0.25
        kw["weight"], rkw["weight"] = w.astype(dtype), tt(rnd(w, dtype))
    kw["gamma"] = rkw["gamma"] = gamma
    for red in REDS:
        compare(fl.softmax_focal_loss, softmax_focal_ref, x, [y], kw, rkw, dtype, red)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", list(FSHAPES))
def test_focal_gamma0_is_cross_entropy(dtype, shape):
    rng = np.random.default_rng(10)
    shp = FSHAPES[shape]
    x = logits(rng, shp)
    y, C = labels_for(rng, shp, 3)
    w = rng.random(C) + 0.25
    kw, rkw = w_kw(w, dtype)
    kw["ignore_index"] = rkw["ignore_index"] = 3
    for red in REDS:
        compare(lambda *a, **k: fl.softmax_focal_loss(*a, gamma=0.0, **k), F.cross_entropy, x, [y], kw, rkw,
                dtype, red)


@pytest.mark.parametrize("dtype", [np.float64])   # float32: see test_float32_large_logits_precision
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 3.0])
@pytest.mark.parametrize("spatial", [False, True])
def test_focal_extreme_logits(dtype, gamma, spatial):
    rng = np.random.default_rng(11)
    shp = (4, 5, 3, 3) if spatial else (30, 5)
    x = np.where(rng.random(shp) < 0.5, -1e4, 1e4) * rng.random(shp).round(1)
    y, C = labels_for(rng, shp)
    for red in REDS:
        compare(fl.softmax_focal_loss, softmax_focal_ref, x, [y], {"gamma": gamma}, {"gamma": gamma}, dtype, red)


def test_focal_fractional_gamma_certain_class_finite_grad():
    # p_y == 1 exactly: loss 0 and gradient 0 (the limit; torch.autograd's pow backward gives nan here)
    x = np.array([[1e4, -1e4, 0.0], [0.0, 1e4, 0.0]])
    y = np.array([0, 1])
    for dtype in DTYPES:
        val, g = fl.softmax_focal_loss(x.astype(dtype), y, gamma=0.5, reduction="sum", return_grad=True)
        assert val == 0 and np.all(g == 0)


def test_focal_all_ignored_and_errors():
    x = logits(np.random.default_rng(12), (5, 3))
    y = np.full(5, -100)
    for red in REDS:
        compare(fl.softmax_focal_loss, softmax_focal_ref, x, [y], {}, {}, np.float64, red)
    assert np.isnan(fl.softmax_focal_loss(x, y))
    with pytest.raises(ValueError, match="reduction"):
        fl.softmax_focal_loss(x, np.zeros(5, int), reduction="batchmean")
    with pytest.raises(ValueError, match="gamma"):
        fl.softmax_focal_loss(x, np.zeros(5, int), gamma=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        fl.softmax_focal_loss(x, np.zeros(5, int), alpha=np.ones(4))
    with pytest.raises(IndexError, match="position 3"):
        fl.softmax_focal_loss(x, np.array([0, 1, 2, 3, 0]))
    out = np.empty(5)
    yv = np.array([0, 1, 2, 1, 0])
    assert fl.softmax_focal_loss(x, yv, reduction="none", out=out) is out
    assert_close(out, softmax_focal_ref(tt(x), tt(yv), reduction="none"), np.float64)


def test_float32_large_logits_precision():
    """Regression (was a strict xfail): the kernels formed lse = log(s) + m in float32 and then subtracted a
    logit (ce_probs_block: lse*A - B; distillation_block: (x_t/T - lse_t) - (x_s/T - lse_s); the label
    smoothing term: lse*coef - sum_j w_j x_j), so the rounding of lse (ulp(1e4) ~ 1e-3) swamped an O(1)
    loss: logits [1e4, 1e4, -3, 0], target 0 gave 0.69336 instead of log 2.  Now every term is formed
    from max-shifted logits; loss and gradient match float64 torch to SPEC §4's float32 bounds."""
    x = np.array([[1e4, 1e4, -3.0, 0.0], [2e3, 2e3 - 1, 5.0, 6.0], [-1e4, -1e4 + 2, -1e4, -1e4 + 0.5]])
    y = np.array([0, 1, 3])
    t = softmax(x * 1e-3 + np.arange(4), 1)
    w = np.array([0.5, 2.0, 1.0, 1.5])
    fails = []
    cases = [("cross_entropy", fl.cross_entropy, F.cross_entropy, [y], {}),
             ("cross_entropy smoothing", fl.cross_entropy, F.cross_entropy, [y], {"label_smoothing": 0.2}),
             ("cross_entropy smoothing weight", fl.cross_entropy, F.cross_entropy, [y],
              {"label_smoothing": 0.2, "weight": w}),
             ("focal", fl.softmax_focal_loss, softmax_focal_ref, [y], {}),
             ("cross_entropy probs", fl.cross_entropy, F.cross_entropy, [t], {}),
             ("cross_entropy probs smoothing weight", fl.cross_entropy, F.cross_entropy, [t],
              {"label_smoothing": 0.1, "weight": w}),
             ("distillation", fl.distillation_loss, distillation_ref,
              [x[::-1] + np.array([0.0, 0.5, 0.0, 1.0])], {}),
             ("distillation T=3", fl.distillation_loss, distillation_ref,
              [x[::-1] + np.array([0.0, 0.5, 0.0, 1.0])], {"temperature": 3.0})]
    for name, fn, ref_fn, rest, kw in cases:
        kw_fl, kw_ref = dict(kw), dict(kw)
        if "weight" in kw:
            kw_fl["weight"], kw_ref["weight"] = w.astype(np.float32), tt(rnd(w, np.float32))
        for xx, rr in ((x, rest), (x.T[None].copy(), [r.T[None].copy() if r.ndim == 2 else r[None] for r in rest])):
            if name.startswith("distillation") and xx.ndim == 3:
                continue
            for red in ("none", "sum"):
                try:
                    compare(fn, ref_fn, xx, rr, kw_fl, kw_ref, np.float32, red, grad=True)
                except AssertionError as exc:
                    fails.append(f"{name} {xx.shape} {red}: {str(exc).splitlines()[-2:]}")
    assert not fails, "\n".join(fails)


# ===================================================================================== multi_margin_loss
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("unbatched", [False, True])
def test_multi_margin_vs_torch(dtype, p, weighted, unbatched):
    rng = np.random.default_rng(13)
    shp = (6,) if unbatched else (33, 6)
    x = logits(rng, shp, 1.0)
    y, C = labels_for(rng, shp)
    w = rng.random(C) + 0.25 if weighted else None
    kw, rkw = w_kw(w, dtype)
    kw["p"] = rkw["p"] = p
    for margin, red in zip((1.0, 0.3, 2.5, 1.0), REDS + ("mean",)):
        kw["margin"] = rkw["margin"] = margin
        compare(fl.multi_margin_loss, F.multi_margin_loss, x, [y], kw, rkw, dtype, red)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [3, 10, 60, 100, 320, 512, 513, 700])
def test_multi_margin_many_rows_vs_torch(dtype, C):
    """Many short rows (several class-major tiles, a partial last tile) and long rows (the row loop): tiles
    up to C = 512 (a tile of 8 rows; 16 at C = 320 on AVX-512 float32), rows from 513."""
    rng = np.random.default_rng(20 + C)
    x = logits(rng, (1501, C), 1.0)
    y = rng.integers(0, C, 1501)
    w = rng.random(C) + 0.25
    for p in (1, 2):
        kw, rkw = w_kw(w, dtype)
        kw["p"] = rkw["p"] = p
        for red in REDS:
            compare(fl.multi_margin_loss, F.multi_margin_loss, x, [y], kw, rkw, dtype, red)
            compare(fl.multi_margin_loss, F.multi_margin_loss, x, [y], kw, rkw, dtype, red, grad=False)


def test_multi_margin_errors_and_edges():
    rng = np.random.default_rng(14)
    x = logits(rng, (5, 4))
    for bad in ([0, 1, 4, 2, 3], [0, 1, 2, -1, 3]):
        with pytest.raises(IndexError, match="position"):
            fl.multi_margin_loss(x, np.array(bad))
    with pytest.raises(ValueError, match="p"):
        fl.multi_margin_loss(x, np.zeros(5, int), p=3)
    with pytest.raises(ValueError, match="reduction"):
        fl.multi_margin_loss(x, np.zeros(5, int), reduction="avg")
    with pytest.raises(ValueError, match="input"):
        fl.multi_margin_loss(np.zeros((2, 3, 4)), np.zeros((2, 4), int))
    # torch returns uninitialised memory for an empty batch; we follow SPEC §1: mean nan, sum 0
    e, ey = np.zeros((0, 4)), np.zeros(0, int)
    assert np.isnan(fl.multi_margin_loss(e, ey))
    assert fl.multi_margin_loss(e, ey, reduction="sum") == 0
    assert fl.multi_margin_loss(e, ey, reduction="none").shape == (0,)
    x[3, 0] = np.inf   # inf propagates as in torch
    y = np.array([0, 1, 2, 3, 0])
    for red in REDS:
        compare(fl.multi_margin_loss, F.multi_margin_loss, x, [y], {}, {}, np.float64, red, grad=False)
    out = np.empty(5)
    assert fl.multi_margin_loss(x, y, reduction="none", out=out) is out


@pytest.mark.parametrize("dtype", DTYPES)
def test_multi_margin_nan_as_torch(dtype):
    """Regression (was a strict xfail): the kernel added h when h was nan, but torch
    (LossMultiMargin.cpp) counts a term only if z = margin - x_y + x_j > 0, so a nan z is skipped: row
    loss 0 for a nan target logit, a nan non-target logit ignored; the gradient there is 0."""
    x = np.array([[0.0, np.nan, 1.0], [0.0, 0.5, np.nan], [0.0, 0.5, 1.0], [np.nan, np.nan, np.nan]])
    y = np.array([1, 1, 0, 2])
    w = np.array([0.5, 2.0, 1.5])
    for red in REDS:
        for p in (1, 2):
            compare(fl.multi_margin_loss, F.multi_margin_loss, x, [y], {"p": p}, {"p": p}, dtype, red)
            kw, rkw = w_kw(w, dtype)
            kw["p"] = rkw["p"] = p
            compare(fl.multi_margin_loss, F.multi_margin_loss, x, [y], kw, rkw, dtype, red)


# ===================================================================================== distillation_loss
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_distillation_vs_torch(dtype, T):
    rng = np.random.default_rng(15)
    s, t = logits(rng, (23, 9)), logits(rng, (23, 9))
    for red in ("batchmean", "mean", "sum", "none"):
        compare(fl.distillation_loss, distillation_ref, s, [t], {"temperature": T}, {"temperature": T}, dtype, red)


@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_distillation_unbatched(red):
    rng = np.random.default_rng(16)
    s, t = logits(rng, (9,)), logits(rng, (9,))
    compare(fl.distillation_loss, distillation_ref, s, [t], {"temperature": 2.0}, {"temperature": 2.0},
            np.float64, red)


@pytest.mark.parametrize("dtype", DTYPES)
def test_distillation_unbatched_batchmean_matches_spec_formula(dtype):
    """Regression (was a strict xfail): (C,) logits with reduction='batchmean' divided the sum by 1, but
    SPEC §6 defines the loss as kl_div(..., reduction='batchmean') * T**2, which divides by
    input.size(0) = C for 1-D input.  fastloss follows the formula (documented in the docstring)."""
    rng = np.random.default_rng(16)
    s, t = logits(rng, (9,)), logits(rng, (9,))
    compare(fl.distillation_loss, distillation_ref, s, [t], {"temperature": 2.0}, {"temperature": 2.0},
            dtype, "batchmean")


def test_distillation_extreme_and_errors():
    rng = np.random.default_rng(17)
    s, t = logits(rng, (6, 5), 1e4), logits(rng, (6, 5), 1e4)
    for red in ("batchmean", "none"):
        compare(fl.distillation_loss, distillation_ref, s, [t], {"temperature": 3.0}, {"temperature": 3.0},
                np.float64, red)
    for T in (0, -1, 0.0):
        with pytest.raises(ValueError, match="temperature"):
            fl.distillation_loss(s, t, temperature=T)
    with pytest.raises(ValueError, match="teacher_logits"):
        fl.distillation_loss(s, t[:, :4])
    with pytest.raises(ValueError, match="teacher_logits"):
        fl.distillation_loss(s, t[:5])
    with pytest.raises(ValueError, match="reduction"):
        fl.distillation_loss(s, t, reduction="avg")
    out = np.empty(6)
    assert fl.distillation_loss(s, t, reduction="none", out=out) is out
    # empty batch as torch: batchmean/mean nan, sum 0, none (0,)
    e = np.zeros((0, 5))
    assert np.isnan(fl.distillation_loss(e, e)) and np.isnan(fl.distillation_loss(e, e, reduction="mean"))
    assert fl.distillation_loss(e, e, reduction="sum") == 0
    assert fl.distillation_loss(e, e, reduction="none").shape == (0,)


# ================================================================================ class_balanced_weights
@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.999, 0.9999])
def test_class_balanced_weights_formula(beta):
    counts = np.array([0, 1, 2, 10, 100, 5000, 7, 0, 123456])
    for c in (counts, counts.astype(np.int32), counts.astype(np.float32), list(counts), torch.tensor(counts)):
        w = fl.class_balanced_weights(c, beta)
        assert w.dtype == np.float64 and w.shape == counts.shape
        assert_close(w, class_balanced_weights_ref(counts, beta), np.float64)
        assert w[0] == 0 and w[7] == 0
        assert_close(w.sum(), len(counts), np.float64)       # normalised to sum C (exact: a reference value)
    c0 = counts.copy()
    fl.class_balanced_weights(counts, beta)
    np.testing.assert_array_equal(counts, c0)


def test_class_balanced_weights_beta0_uniform_and_errors():
    np.testing.assert_array_equal(fl.class_balanced_weights([3, 0, 1, 9], 0.0), [4 / 3, 0, 4 / 3, 4 / 3])
    assert_close(fl.class_balanced_weights([5, 5, 5], 0.99), [1.0, 1.0, 1.0], np.float64)
    with pytest.raises(ValueError, match="counts"):
        fl.class_balanced_weights([1, -2, 3], 0.9)
    with pytest.raises(ValueError, match="counts"):
        fl.class_balanced_weights(np.ones((2, 3)), 0.9)
    for b in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="beta"):
            fl.class_balanced_weights([1, 2], b)
    with pytest.raises(TypeError, match="counts"):
        fl.class_balanced_weights("abc", 0.9)


# ================================================================== shared invariants over the family
def _family_calls(rng, big=False):
    """(name, fn, args, kwargs, ref) for every loss here; big: >= 200k logits (multi-block, spatial too)."""
    N, C = (25000, 8) if big else (40, 8)
    x = logits(rng, (N, C))
    y = rng.integers(0, C, N)
    y[::7] = -100
    xs = logits(rng, (4, 5, 100, 100) if big else (2, 5, 3, 4))
    ys = rng.integers(0, 5, (xs.shape[0],) + xs.shape[2:])
    ys[..., ::5] = -100
    w = rng.random(C) + 0.25
    return [
        ("nll", fl.nll_loss, (log_probs(x, 1), y), {"weight": w}, F.nll_loss),
        ("nll_spatial", fl.nll_loss, (log_probs(xs, 1), ys), {}, F.nll_loss),
        ("ce_probs", fl.cross_entropy, (x, softmax(x[::-1] * 0.5, 1)), {"label_smoothing": 0.05}, F.cross_entropy),
        ("ce_probs_spatial", fl.cross_entropy, (xs, softmax(xs * 0.5 + 1, 1)), {}, F.cross_entropy),
        ("focal", fl.softmax_focal_loss, (x, y), {"weight": w, "gamma": 1.5}, softmax_focal_ref),
        ("focal_spatial", fl.softmax_focal_loss, (xs, ys), {"gamma": 2.0}, softmax_focal_ref),
        ("multi_margin", fl.multi_margin_loss, (x, np.abs(y) % C), {"p": 2}, F.multi_margin_loss),
        ("distillation", fl.distillation_loss, (x, x[::-1] + 1), {"temperature": 2.0}, distillation_ref),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_family_mean_and_grad_bitwise_deterministic(dtype):
    rng = np.random.default_rng(18)
    for name, fn, args, kw, _ in _family_calls(rng, big=True):
        assert args[0].size >= 200_000
        a = [v.astype(dtype) if v.dtype.kind == "f" else v for v in args]
        kw = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        red = "batchmean" if name == "distillation" else "mean"
        results = [fn(*a, reduction=red, return_grad=True, num_threads=n, **kw) for n in (1, 2, 3, 2)]
        for v, g in results[1:]:
            assert v.tobytes() == results[0][0].tobytes(), name
            assert g.tobytes() == results[0][1].tobytes(), name
        # the loss-only kernels (no gradient pass) are deterministic too
        for r in (red, "sum"):
            vals = [fn(*a, reduction=r, num_threads=n, **kw) for n in (1, 3)]
            assert vals[0].tobytes() == vals[1].tobytes(), (name, r)


def test_family_big_float32_reductions_accurate():
    rng = np.random.default_rng(19)
    for name, fn, args, kw, ref_fn in _family_calls(rng, big=True)[::2]:
        a32 = [v.astype(np.float32) if v.dtype.kind == "f" else v for v in args]
        ref_args = [tt(rnd(v, np.float32)) if v.dtype.kind == "f" else tt(v) for v in args]
        rkw = {k: (tt(rnd(v, np.float32)) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        kw32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        red = "batchmean" if name == "distillation" else "mean"
        assert_close(fn(*a32, reduction=red, **kw32), ref_fn(*ref_args, reduction=red, **rkw), np.float32,
                     reduced=True)


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "tensor", "float16"])
def test_family_layouts_and_inputs_unmodified(layout):
    rng = np.random.default_rng(20)
    for name, fn, args, kw, ref_fn in _family_calls(rng):
        args = list(args)
        if layout == "fortran":
            args = [np.asfortranarray(v) for v in args]
        elif layout == "strided":
            args = [np.repeat(v, 2, axis=-1)[..., ::2] if v.dtype.kind == "f" else
                    np.stack([v, v], -1)[..., 0] for v in args]
            assert not args[0].flags.c_contiguous
        elif layout == "readonly":
            for v in args:
                v.setflags(write=False)
        copies = [np.array(v, copy=True) for v in args]
        red = "batchmean" if name == "distillation" else "mean"
        dtype = np.float64
        if layout == "tensor":
            call_args = [torch.tensor(v) for v in args]
        elif layout == "float16":
            dtype = np.float32
            call_args = [v.astype(np.float16) if v.dtype.kind == "f" else v for v in args]
        else:
            call_args = args
        val, g = fn(*call_args, reduction=red, return_grad=True, **kw)
        for v, c in zip(args, copies):
            np.testing.assert_array_equal(v, c)
        ref_args = [tt(np.ascontiguousarray(rnd(v, np.float16) if layout == "float16" else v))
                    if v.dtype.kind == "f" else tt(np.ascontiguousarray(v)) for v in args]
        ref_args[0].requires_grad_()
        rkw = {k: (tt(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        ref = ref_fn(*ref_args, reduction=red, **rkw)
        (gref,) = torch.autograd.grad(ref, ref_args[0])
        assert val.dtype == dtype and g.dtype == dtype, name
        assert_close(val, ref, dtype, reduced=True)
        assert_close(g, gref, dtype)


@pytest.mark.parametrize("red", REDS)
def test_family_empty_batch_as_torch(red):
    e, ey = np.zeros((0, 4)), np.zeros(0, np.int64)
    es, eys = np.zeros((0, 4, 3, 2)), np.zeros((0, 3, 2), np.int64)
    cases = [(fl.nll_loss, F.nll_loss, (e, ey)), (fl.nll_loss, F.nll_loss, (es, eys)),
             (fl.cross_entropy, F.cross_entropy, (e, e)), (fl.cross_entropy, F.cross_entropy, (es, es)),
             (fl.softmax_focal_loss, softmax_focal_ref, (e, ey)), (fl.softmax_focal_loss, softmax_focal_ref, (es, eys)),
             (fl.distillation_loss, distillation_ref, (e, e))]
    for fn, ref_fn, args in cases:
        val, g = fn(*args, reduction=red, return_grad=True)
        ref = ref_fn(*[tt(a) for a in args], reduction=red)
        assert g.shape == args[0].shape
        assert_close(val, ref, np.float64, reduced=red != "none")
