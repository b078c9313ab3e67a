"""fastloss.cross_entropy against torch.nn.functional.cross_entropy in float64.

References are torch in float64 on the same input values (a float32 input is upcast exactly), and
``torch.autograd`` for the gradients; tolerances are SPEC §4 (``conftest.assert_close_spec``).
Class-index targets first; probability targets (float target of the input's shape) are grouped at the
end (``TestProbabilityTargets``).
"""
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fl_testing import (DTYPE_IDS, DTYPES, REDUCTIONS, assert_close_spec, fortran, readonly, strided,
                      to_torch64, to_torch_long, torch_value_and_grad)



# ----------------------------------------------------------------------------------------- helpers
def make(rng, layout, dtype, C=5, ignore_frac=0.0, ignore_index=-100):
    """Logits and int64 labels for a layout: rows (N, C), unbatched (C,), spatial (N, C, d1, d2)."""
    shape = {"rows": (7, C), "unbatched": (C,), "spatial": (3, C, 4, 5)}[layout]
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    lshape = () if layout == "unbatched" else (shape[0],) + shape[2:]
    y = rng.integers(0, C, size=lshape).astype(np.int64)
    if ignore_frac:
        y = np.where(rng.random(lshape) < ignore_frac, ignore_index, y)
    return x, np.asarray(y)


def torch_ce(x, y, weight=None, **kw):
    """Float64 torch reference: (value, gradient of value.sum()) for F.cross_entropy."""
    w = None if weight is None else to_torch64(weight)
    return torch_value_and_grad(lambda xt: F.cross_entropy(xt, to_torch_long(y), weight=w, **kw), x)


def check(x, y, dtype, reduction="mean", weight=None, what="", **kw):
    """fl.cross_entropy (value alone, and value + gradient) against the float64 torch reference."""
    ref, ref_grad = torch_ce(x, y, weight=weight, reduction=reduction, **kw)
    got = fl.cross_entropy(x, y, weight=weight, reduction=reduction, **kw)
    assert_close_spec(got, ref, dtype, what=f"{what} value")
    val, grad = fl.cross_entropy(x, y, weight=weight, reduction=reduction, return_grad=True, **kw)
    assert_close_spec(val, ref, dtype, what=f"{what} value (return_grad)")
    assert_close_spec(grad, ref_grad, dtype, reduced=False, what=f"{what} grad")
    assert grad.shape == np.shape(x)
    return got


OPTIONS = {
    "plain": {},
    "weight": {"weight": True},
    "ignore": {"ignore_frac": 0.3},
    "ignore_custom": {"ignore_frac": 0.3, "ignore_index": 2},
    "smoothing": {"label_smoothing": 0.15},
    "all": {"weight": True, "ignore_frac": 0.3, "label_smoothing": 0.2},
    "smoothing_one": {"weight": True, "label_smoothing": 1.0},
}




# ----------------------------------------------------------------------------------------- values
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_matches_torch(layout, dtype, reduction, option, rng):
    _check_option(layout, dtype, reduction, option, rng)


def _check_option(layout, dtype, reduction, option, rng):
    opt = dict(OPTIONS[option])
    C = 5
    ignore_index = opt.pop("ignore_index", -100)
    x, y = make(rng, layout, dtype, C, opt.pop("ignore_frac", 0.0), ignore_index)
    if layout == "unbatched" and option.startswith("ignore"):
        y = np.asarray(ignore_index if option == "ignore" else y)
    w = rng.uniform(0.2, 3.0, C).astype(dtype) if opt.pop("weight", False) else None
    check(x, y, dtype, reduction, weight=w, ignore_index=ignore_index, what=f"{layout}/{option}", **opt)


def test_unbatched_matches_torch(rng):
    """(C,) input with a 0-d target, every dtype / reduction / option."""
    for dtype in DTYPES:
        for reduction in REDUCTIONS:
            for option in OPTIONS:
                _check_option("unbatched", dtype, reduction, option, rng)


def test_unbatched_rows_agree_without_the_0d_bug(rng):
    """The (C,) layout is one row: computed through the (1, C) path it matches torch's unbatched call."""
    x = rng.standard_normal(6)
    y = 4
    ref = F.cross_entropy(to_torch64(x), torch.tensor(y))
    assert_close_spec(fl.cross_entropy(x[None, :], np.array([y])), ref, np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_targets_ignored(dtype, reduction, rng):
    """torch: mean over zero non-ignored targets is nan (0/0), sum is 0; the gradient is 0 / nan."""
    x = rng.standard_normal((4, 3)).astype(dtype)
    y = np.full(4, -100)
    for kw in ({}, {"label_smoothing": 0.1}, {"weight": np.array([1.0, 2.0, 3.0], dtype)}):
        check(x, y, dtype, reduction, what=str(kw), **kw)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_empty_batch(dtype):
    x = np.zeros((0, 4), dtype)
    y = np.zeros(0, np.int64)
    assert np.isnan(fl.cross_entropy(x, y))
    assert fl.cross_entropy(x, y, reduction="sum") == 0
    out = fl.cross_entropy(x, y, reduction="none")
    assert out.shape == (0,) and out.dtype == dtype
    for red in REDUCTIONS:
        check(x, y, dtype, red, what=f"empty {red}")
    check(np.zeros((0, 4, 3), dtype), np.zeros((0, 3), np.int64), dtype, "mean", what="empty spatial")
    check(np.zeros((2, 4, 0), dtype), np.zeros((2, 0), np.int64), dtype, "sum", what="empty positions")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_one_class(dtype, reduction):
    x = np.array([[3.0], [-2.0], [0.0]], dtype)
    y = np.zeros(3, np.int64)
    check(x, y, dtype, reduction, what="C=1")
    check(x, y, dtype, reduction, label_smoothing=0.3, what="C=1 smoothing")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_large_vocabulary(dtype, reduction, rng):
    """C = 32000 (a language-model vocabulary), few rows: the row primitives' long loops."""
    x = (rng.standard_normal((3, 32000)) * 3).astype(dtype)
    y = np.array([0, 31999, 12345])
    check(x, y, dtype, reduction, what="C=32000")
    check(x, y, dtype, reduction, label_smoothing=0.1, weight=rng.uniform(0.5, 2, 32000).astype(dtype),
          what="C=32000 smoothing+weight")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_many_blocks(layout, dtype, reduction, rng):
    """Inputs of ~260k logits cross many blocks of the driver (and run threaded)."""
    if layout == "rows":
        x = rng.standard_normal((5003, 52)).astype(dtype)
        y = rng.integers(0, 52, 5003)
    else:
        x = rng.standard_normal((3, 7, 97, 131)).astype(dtype)
        y = rng.integers(0, 7, (3, 97, 131))
    y[::17] = -100
    w = rng.uniform(0.5, 2.0, x.shape[1]).astype(dtype)
    check(x, y, dtype, reduction, weight=w, label_smoothing=0.05, what=layout)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_tiles_of_a_streamed_input(num_threads, rng):
    """Inputs past one core's L2 cache (prefetch_end; 16 MiB here, past any L2): the (N, C) tiles prefetch the
    next tile's logits, labels and probability targets across the blocks' ends, up to the array's end (a row
    count no multiple of a tile)."""
    x = rng.standard_normal((65539, 64)).astype(np.float32)       # 16.8 MB of logits
    y = rng.integers(0, 64, 65539)
    y[::13] = -100
    assert x.nbytes + y.nbytes >= 16 << 20
    ref, ref_grad = torch_ce(x, y, reduction="none")
    val, grad = fl.cross_entropy(x, y, reduction="none", return_grad=True, num_threads=num_threads)
    assert_close_spec(val, ref, np.float32, what="index targets value")
    assert_close_spec(fl.cross_entropy(x, y, reduction="none", num_threads=num_threads), ref, np.float32,
                      what="index targets value, loss alone")
    assert_close_spec(grad, ref_grad, np.float32, reduced=False, what="index targets grad")
    x = rng.standard_normal((52433, 40)).astype(np.float32)       # 8.4 + 8.4 MB of logits and targets
    t = rng.random((52433, 40)).astype(np.float32)
    t /= t.sum(1, keepdims=True)
    ref, ref_grad = torch_value_and_grad(lambda xt: F.cross_entropy(xt, to_torch64(t), reduction="sum"), x)
    val, grad = fl.cross_entropy(x, t, reduction="sum", return_grad=True, num_threads=num_threads)
    assert_close_spec(val, ref, np.float32, what="probability targets value")
    assert_close_spec(fl.cross_entropy(x, t, reduction="sum", num_threads=num_threads), ref, np.float32,
                      what="probability targets value, loss alone")
    assert_close_spec(grad, ref_grad, np.float32, reduced=False, what="probability targets grad")


@pytest.mark.parametrize("C,S", [(1, 33), (3, 1), (21, 1024), (21, 300), (5, 4096), (70, 257), (70, 1024)])
def test_spatial_float32_runs(C, S, rng):
    """The class-major runs of the spatial layout in float32, with and without label smoothing (fl_tile.h's
    fused pass: chunks of 4 vectors of positions, masked tails; class strides S >= 1024 read through the
    chunk copy for C <= 64 (a stride of 4 KiB with S = 1024), in place above and for shorter strides): ties
    (integer logits), a -inf logit, ignored targets and class weights, against float64 torch; the same bits
    at 1 and 2 threads."""
    x = rng.standard_normal((2, C, S)).astype(np.float32)
    x[:, :, ::3] = np.round(x[:, :, ::3])      # ties with the max
    x[0, 0, ::5] = -np.inf
    y = rng.integers(0, C, (2, S))
    y[rng.random((2, S)) < 0.1] = -100
    w = rng.uniform(0.5, 2.0, C).astype(np.float32)
    for reduction, kw in itertools.product(("none", "mean"), ({}, {"label_smoothing": 0.1})):
        check(x, y, np.float32, reduction, weight=w, what=f"C={C} S={S} {list(kw)}", **kw)
        a = fl.cross_entropy(x, y, weight=w, reduction=reduction, return_grad=True, num_threads=1, **kw)
        b = fl.cross_entropy(x, y, weight=w, reduction=reduction, return_grad=True, num_threads=2, **kw)
        for u, v in zip(a, b):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes()


def _hostile_short_rows(rng, N, C):
    """N float32 rows of C logits for the short-row tests: ties with the max (every third row rounded), a
    row with +1e4 first, one with -1e4 last, one all -1e4 (rows 5-7); the callers add their own."""
    x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    x[::3] = np.round(x[::3])                  # ties with the max
    x[5, 0] = 1e4
    x[6, -1] = -1e4
    x[7, :] = -1e4
    return x


@pytest.mark.parametrize("C", [1, 2, 3, 5, 9, 10, 17, 21, 31, 32, 48, 64, 65, 72])
def test_short_rows_float32_tiles(C, rng):
    """Short float32 rows go through class-major tiles and fl_tile.h's fused pass (AVX2 / AVX-512: chunks of
    4 vectors of positions, the exps of 4 classes in lock step, masked tails; the scalar passes below AVX2):
    611 rows (tiles of tile_rows(C) rows and a partial last one, tails of every length mod 8 and 16) with
    hostile rows (+-1e4, -inf, an all -inf row, NaN, ties with the max), ignored targets and class weights,
    against float64 torch; the same bits at 1 and 2 threads, for a row alone, and laid out spatially
    (1, C, N) (read in place, no tile): every position goes through the same operations.  Label smoothing
    (its sum of w_j (x_j - m) formed in the fused pass), with and without weights, likewise."""
    N = 611
    x = _hostile_short_rows(rng, N, C)
    x[8, : max(C - 1, 1)] = -np.inf            # all but one class masked (C = 1: all)
    x[9, :] = -np.inf
    x[10, C // 2] = np.nan
    y = rng.integers(0, C, N)
    y[rng.random(N) < 0.07] = -100
    y[5:11] = C - 1        # hostile rows with a target (torch's gradient of an ignored nan row is nan, ours 0)
    w = rng.uniform(0.5, 2.0, C).astype(np.float32)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.1}, {"weight": w, "label_smoothing": 0.2}):
        check(x, y, np.float32, "none", what=f"C={C} {list(kw)}", **kw)
        check(x, y, np.float32, "mean", what=f"C={C} {list(kw)}", **kw)
        a = fl.cross_entropy(x, y, reduction="none", return_grad=True, num_threads=1, **kw)
        b = fl.cross_entropy(x, y, reduction="none", return_grad=True, num_threads=2, **kw)
        for u, v in zip(a, b):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes()
        loss = np.asarray(fl.cross_entropy(x, y, reduction="none", **kw))
        spatial = np.asarray(fl.cross_entropy(np.ascontiguousarray(x.T[None]), y[None], reduction="none",
                                              **kw))[0]
        assert loss.tobytes() == spatial.tobytes(), f"C={C}: tile and spatial layouts differ"
        for i in (0, 7, 9, 10, 300, N - 1):
            alone = np.asarray(fl.cross_entropy(x[i:i + 1], y[i:i + 1], reduction="none", **kw))
            assert loss[i:i + 1].tobytes() == alone.tobytes(), f"C={C} row {i}"


# ----------------------------------------------------------------------------------------- hostile values
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_hostile_finite_and_masked(layout, dtype, reduction):
    """+-1e4 logits, -inf (masked) classes not on the target, -inf on the target (loss inf),
    an all -inf row (nan, as torch), NaN (propagates to its row)."""
    rows = np.array([
        [1e4, -1e4, 0.0, 1.0],       # target 0: huge gap
        [1e4, -1e4, 0.0, 1.0],       # target 1: loss ~2e4
        [-np.inf, 2.0, -np.inf, 1.0],  # masked classes, target 1
        [-np.inf, 2.0, -np.inf, 1.0],  # target on a masked class -> inf
        [-np.inf] * 4,               # everything masked -> nan
        [np.nan, 0.0, 1.0, 2.0],     # nan -> nan
        [-1e4, -1e4, 0.5, -1e4],     # huge negatives around a normal logit
        [3.0, 3.0, 3.0, 3.0],
    ], dtype=dtype)
    y = np.array([0, 1, 1, 0, 2, 3, 2, 1])
    if layout == "spatial":  # the same rows as (1, C, 8) positions
        x, yy = np.ascontiguousarray(rows.T[None]), y[None]
    else:
        x, yy = rows, y
    check(x, yy, dtype, reduction, what=layout)
    finite = [0, 1, 2, 6, 7]  # the same without the non-finite rows, with options
    xf = rows[finite]
    check(xf, y[finite], dtype, reduction, label_smoothing=0.1, weight=np.array([1, 2, 3, 4], dtype),
          what="finite rows + options")


@pytest.mark.parametrize("dtype,scale", [(np.float32, 1e4), (np.float32, 1e3), (np.float64, 1e6)])
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_large_logits_close_together(layout, dtype, scale, rng):
    """Logits far from 0 but within a few units of each other: the loss is O(1) and must keep its
    relative accuracy (torch's log_softmax computes (x - m) - log s without cancellation)."""
    rows = (-scale + rng.standard_normal((16, 4))).astype(dtype)
    rows[0] = -scale
    y = rng.integers(0, 4, 16)
    x, yy = (np.ascontiguousarray(rows.T[None]), y[None]) if layout == "spatial" else (rows, y)
    check(x, yy, dtype, "none", what=layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_masked_classes_with_smoothing_follow_torch(dtype):
    """-inf logits with label smoothing: torch gives inf/nan (eps/C * (lse - (-inf))); match it."""
    x = np.array([[-np.inf, 2.0, 0.5, 1.0], [0.0, 1.0, 2.0, 3.0]], dtype)
    check(x, np.array([1, 2]), dtype, "none", label_smoothing=0.1)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_plus_inf_logit_follows_torch(layout, dtype):
    rows = np.array([[0.0, np.inf, 1.0], [0.0, np.inf, 1.0], [0.0, 1.0, 2.0]], dtype)
    y = np.array([0, 1, 2])
    x, yy = (np.ascontiguousarray(rows.T[None]), y[None]) if layout == "spatial" else (rows, y)
    check(x, yy, dtype, "none", what=layout)


# ----------------------------------------------------------------------------------------- input forms
def _variants(x):
    t32 = torch.from_numpy(np.array(x))
    return {
        "fortran": fortran(x),
        "strided": strided(x, axis=0),
        "strided_last": strided(x, axis=x.ndim - 1),
        "readonly": readonly(x),
        "torch": t32,
        "torch_requires_grad": t32.clone().requires_grad_(True),
        "torch_permuted": torch.from_numpy(np.array(np.transpose(x))).permute(*reversed(range(x.ndim))),
        "list": x.tolist(),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("variant", list(_variants(np.zeros((2, 3)))))
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_input_forms(layout, variant, dtype, rng):
    x, y = make(rng, layout, dtype, ignore_frac=0.2)
    xv = _variants(x)[variant]
    if variant == "list":
        dtype = np.float64  # a list of Python floats is float64
        x = np.asarray(xv)
    for red in REDUCTIONS:
        ref, ref_grad = torch_ce(x, y, reduction=red)
        val, grad = fl.cross_entropy(xv, y, reduction=red, return_grad=True)
        assert_close_spec(val, ref, dtype, what=f"{variant} {red}")
        assert_close_spec(grad, ref_grad, dtype, reduced=False, what=f"{variant} {red} grad")


@pytest.mark.parametrize("label_form", ["int32", "int16", "uint8", "int64_strided", "torch_long",
                                        "torch_int32", "list", "fortran"])
def test_label_forms(label_form, rng):
    x = rng.standard_normal((6, 4, 3))
    y = rng.integers(0, 4, (6, 3))
    forms = {
        "int32": y.astype(np.int32), "int16": y.astype(np.int16), "uint8": y.astype(np.uint8),
        "int64_strided": strided(y, axis=0), "torch_long": torch.from_numpy(y),
        "torch_int32": torch.from_numpy(y.astype(np.int32)), "list": y.tolist(), "fortran": fortran(y),
    }
    ref, ref_grad = torch_ce(x, y, reduction="none")
    val, grad = fl.cross_entropy(x, forms[label_form], reduction="none", return_grad=True)
    assert_close_spec(val, ref, np.float64)
    assert_close_spec(grad, ref_grad, np.float64)


def test_int32_labels_with_negative_ignore(rng):
    x = rng.standard_normal((9, 4)).astype(np.float32)
    y = rng.integers(0, 4, 9).astype(np.int32)
    y[::3] = -100
    check(x, y, np.float32, "mean")
    check(x, np.where(y == -100, 3, y).astype(np.int32), np.float32, "mean", ignore_index=3)


def test_half_precision_computes_in_float32(rng):
    x = rng.standard_normal((5, 4)).astype(np.float16)
    y = rng.integers(0, 4, 5)
    ref, _ = torch_ce(x.astype(np.float64), y)
    assert_close_spec(fl.cross_entropy(x, y), ref, np.float32)
    xb = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    ref_b, _ = torch_ce(xb.float().numpy(), y)
    assert_close_spec(fl.cross_entropy(xb, y), ref_b, np.float32)


def test_mixed_dtypes_compute_in_prediction_dtype(rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    y = rng.integers(0, 4, 5)
    w = rng.uniform(0.5, 2, 4)  # float64 weight
    got = fl.cross_entropy(x, y, weight=w)
    ref, _ = torch_ce(x, y, weight=w.astype(np.float32))
    assert_close_spec(got, ref, np.float32)
    got = fl.cross_entropy(x.astype(np.float64), y, weight=w.astype(np.float32))
    ref, _ = torch_ce(x, y, weight=w.astype(np.float32))
    assert_close_spec(got, ref, np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_inputs_unmodified(dtype, rng):
    x, y = make(rng, "spatial", dtype, ignore_frac=0.2)
    w = rng.uniform(0.5, 2, 5).astype(dtype)
    xc, yc, wc = x.copy(), y.copy(), w.copy()
    for red in REDUCTIONS:
        fl.cross_entropy(x, y, weight=w, reduction=red, label_smoothing=0.1, return_grad=True)
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(y, yc)
    np.testing.assert_array_equal(w, wc)
    xt = torch.from_numpy(x.copy())
    fl.cross_entropy(xt, torch.from_numpy(y), return_grad=True)
    np.testing.assert_array_equal(xt.numpy(), xc)


# ----------------------------------------------------------------------------------------- out=
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["rows", "spatial"])
def test_out(layout, dtype, rng):
    x, y = make(rng, layout, dtype, ignore_frac=0.2)
    ref, ref_grad = torch_ce(x, y, reduction="none")
    out = np.full(y.shape, 7.0, dtype)
    res = fl.cross_entropy(x, y, reduction="none", out=out)
    assert res is out
    assert_close_spec(out, ref, dtype)
    out2 = np.full(y.shape, 7.0, dtype)
    res, grad = fl.cross_entropy(x, y, reduction="none", out=out2, return_grad=True)
    assert res is out2
    assert_close_spec(out2, ref, dtype)
    assert_close_spec(grad, ref_grad, dtype)


def test_out_errors(rng):
    x, y = make(rng, "rows", np.float32)
    n = y.shape[0]
    bad = {
        "wrong shape": np.empty(n + 1, np.float32),
        "wrong dtype": np.empty(n, np.float64),
        "not contiguous": np.empty(2 * n, np.float32)[::2],
        "read-only": readonly(np.empty(n, np.float32)),
    }
    for what, out in bad.items():
        with pytest.raises(ValueError, match="out"):
            fl.cross_entropy(x, y, reduction="none", out=out)
    with pytest.raises(TypeError, match="out"):
        fl.cross_entropy(x, y, reduction="none", out=[0.0] * n)


# ----------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("num_threads", [1, 2])
def test_label_out_of_range(num_threads, rng):
    x = rng.standard_normal((6, 4))
    for bad_value, pos in [(4, 2), (-1, 0), (-5, 5), (1000, 3)]:
        y = np.array([0, 1, 2, 3, 0, 1])
        y[pos] = bad_value
        for yy in (y, y.astype(np.int32)):
            pattern = rf"(?s)(?=.*(?<![\d-]){bad_value}(?!\d))(?=.*position\D*{pos}\b)"
            with pytest.raises(IndexError, match=pattern):
                fl.cross_entropy(x, yy, num_threads=num_threads)
    # ignore_index set to another value: -100 is an ordinary (bad) label again
    y = np.array([0, -100, 1, 2, 3, 0])
    with pytest.raises(IndexError, match=r"-100"):
        fl.cross_entropy(x, y, ignore_index=-1)


def test_label_out_of_range_reports_first_in_large_threaded_input(rng):
    x = rng.standard_normal((20000, 16)).astype(np.float32)
    y = rng.integers(0, 16, 20000)
    y[15001] = 16
    y[19000] = -3
    for nt in (1, 2, 3):
        with pytest.raises(IndexError, match=r"(?s)(?=.*position\D*15001\b)(?=.*\b16\b)"):
            fl.cross_entropy(x, y, num_threads=nt, return_grad=True)


def test_label_out_of_range_spatial_names_position(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y = rng.integers(0, 3, (2, 4, 5))
    y[1, 2, 3] = 3
    with pytest.raises(IndexError, match=r"(?s)(?=.*index 3\b)(?=.*1\D+(64\D+)?2\D+(64\D+)?3\b)"):
        fl.cross_entropy(x, y, reduction="none")


def test_label_out_of_range_spatial_position_is_plain_tuple(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y = rng.integers(0, 3, (2, 4, 5))
    y[1, 2, 3] = 3
    with pytest.raises(IndexError, match=r"position \(1, 2, 3\)"):
        fl.cross_entropy(x, y, reduction="none")


@pytest.mark.parametrize("kwargs,exc,name", [
    ({"weight": np.ones(5)}, ValueError, "weight"),
    ({"weight": np.ones((1, 4))}, ValueError, "weight"),
    ({"weight": "abc"}, TypeError, "weight"),
    ({"reduction": "avg"}, ValueError, "reduction"),
    ({"reduction": None}, ValueError, "reduction"),
    ({"label_smoothing": 1.5}, ValueError, "label_smoothing"),
    ({"label_smoothing": -0.1}, ValueError, "label_smoothing"),
    ({"label_smoothing": "a"}, TypeError, "label_smoothing"),
    ({"size_average": True}, ValueError, "size_average"),
    ({"reduce": False}, ValueError, "reduce"),
])
def test_bad_arguments(kwargs, exc, name):
    x = np.zeros((3, 4))
    y = np.zeros(3, np.int64)
    with pytest.raises(exc, match=name):
        fl.cross_entropy(x, y, **kwargs)


@pytest.mark.parametrize("x,y,exc,name", [
    ("abc", np.zeros(3, np.int64), TypeError, "input"),
    (np.zeros((3, 4), np.int64), np.zeros(3, np.int64), TypeError, "input"),
    (np.array([[object()]]), np.zeros(1, np.int64), TypeError, "input"),
    (np.float64(1.0), np.zeros(1, np.int64), ValueError, "input"),
    (np.zeros((3, 4)), "abc", TypeError, "target"),
    (np.zeros((3, 4)), np.zeros(4, np.int64), ValueError, "target"),
    (np.zeros((3, 4)), np.zeros((3, 1), np.int64), ValueError, "target"),
    (np.zeros((3, 4, 5)), np.zeros((3, 4), np.int64), ValueError, "target"),
    (np.zeros((3, 4)), np.zeros(3, bool), TypeError, "target"),
])
def test_bad_inputs(x, y, exc, name):
    with pytest.raises(exc, match=name):
        fl.cross_entropy(x, y)


# ========================================================================================= probabilities


# ----------------------------------------------------------------------------------------- long rows
def _long_rows(rng, C, dtype):
    """23 rows of C logits, hostile rows among normal ones: masked classes, +-1e4, nan, an all-masked row,
    ties at the max."""
    x = (rng.standard_normal((23, C)) * 3).astype(dtype)
    x[2, :] = -np.inf
    x[2, 5] = 1.0
    x[5, 7], x[5, 8] = 1e4, -1e4
    x[9, :5] = -1e4
    x[11, 3] = np.nan
    x[13, :] = -np.inf
    x[17, [1, 2, C - 1]] = x[17].max()
    return x


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [73, 100, 131])
def test_long_rows_hostile_and_paired(C, dtype, rng):
    """Rows too long for tiles take the row path, which runs float32 rows two at a time through one pass;
    ignored targets between them change which rows pair up.  Index targets (every option) and probability
    targets against torch, and each row's loss and gradient the same bits as the row's alone: pairing never
    changes a row's result."""
    x = _long_rows(rng, C, dtype)
    y = rng.integers(0, C, len(x))
    y[[3, 8, 14]] = -100
    y[2] = 5
    w = rng.uniform(0.5, 2.0, C).astype(dtype)
    t = _soft_targets(rng, x.shape, dtype, 1)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.1}, {"weight": w, "label_smoothing": 0.2}):
        check(x, y, dtype, "none", what=f"C={C} {list(kw)}", **kw)
        check(x, y, dtype, "mean", what=f"C={C} {list(kw)}", **kw)
    for kw in ({}, {"weight": w, "label_smoothing": 0.2}):
        ref, ref_grad = torch_value_and_grad(
            lambda xt: F.cross_entropy(xt, to_torch64(t), reduction="none", **{
                k: to_torch64(v) if k == "weight" else v for k, v in kw.items()}), x)
        val, grad = fl.cross_entropy(x, t, reduction="none", return_grad=True, **kw)
        assert_close_spec(val, ref, dtype, what=f"probs C={C}")
        assert_close_spec(grad, ref_grad, dtype, reduced=False, what=f"probs grad C={C}")
    for target in (y, t):
        val, grad = fl.cross_entropy(x, target, reduction="sum", return_grad=True, label_smoothing=0.1)
        loss = fl.cross_entropy(x, target, reduction="none", label_smoothing=0.1)
        for i in range(len(x)):
            alone_grad = fl.cross_entropy(x[i:i + 1], target[i:i + 1], reduction="sum", return_grad=True,
                                          label_smoothing=0.1)[1]
            alone = fl.cross_entropy(x[i:i + 1], target[i:i + 1], reduction="none", label_smoothing=0.1)
            np.testing.assert_array_equal(loss[i:i + 1], alone, err_msg=f"row {i}")
            np.testing.assert_array_equal(grad[i:i + 1], alone_grad, err_msg=f"row {i} grad")


@pytest.mark.parametrize("C, N", [(512, 2100), (1000, 1100), (4099, 260)])
def test_long_rows_next_row_max_in_the_pass(C, N, rng):
    """float32 rows of 512 classes or more run one at a time, each row's pass also forming the next row's max
    (fl_row_pass_f32's xn) within blocks of 16 rows (rows_block_items) and prefetching the row after the
    next (xf).  Hostile rows first, last and in between in the blocks (NaN, +-1e4, +inf, all but one class
    masked, an all-masked row, ties, the max in the tail) and ignored rows (so a row's next one with a
    target is further on), against float64 torch; every row's loss and gradient the same bits as the row's
    alone (no next row to fuse) and at 1 and 2 threads."""
    x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    x[15, C // 3] = np.nan
    x[16, :] = -np.inf
    x[16, C - 1] = 2.0
    x[17, 7], x[17, 8] = 1e4, -1e4
    x[31, [1, 2, C - 1]] = x[31].max() + 1
    x[32, :] = -np.inf
    x[33, C - 1] = 1e4
    x[47, :] = -1e4
    x[47, 0] = 0.0
    x[48, C - 2] = np.inf
    x[40, :] = -5.0                             # ignored, between rows with a target: row 41's max is 1e4
    x[41, 3] = 1e4
    y = rng.integers(0, C, N)
    y[[16, 40, 64, N - 1]] = -100
    y[[15, 17, 31, 32, 33, 47, 48]] = C - 1
    t = _soft_targets(rng, x.shape, np.float32, 1)
    rows = [0, 14, 15, 16, 17, 18, 31, 32, 33, 34, 39, 40, 41, 47, 48, 49, 63, 64, 65, N - 2, N - 1]
    for kw in ({}, {"label_smoothing": 0.1}):
        check(x, y, np.float32, "none", what=f"C={C} {list(kw)}", **kw)
        check(x, y, np.float32, "mean", what=f"C={C} {list(kw)}", **kw)
    ref, ref_grad = torch_value_and_grad(lambda xt: F.cross_entropy(xt, to_torch64(t), reduction="none"), x)
    val, grad = fl.cross_entropy(x, t, reduction="none", return_grad=True)
    assert_close_spec(val, ref, np.float32, what=f"probs C={C}")
    assert_close_spec(grad, ref_grad, np.float32, reduced=False, what=f"probs grad C={C}")
    for target in (y, t):
        kw = {"label_smoothing": 0.1} if target is y else {}
        loss = fl.cross_entropy(x, target, reduction="none", num_threads=1, **kw)
        val, grad = fl.cross_entropy(x, target, reduction="none", return_grad=True, num_threads=1, **kw)
        np.testing.assert_array_equal(val, loss)
        for u, v in zip((loss, val, grad),
                        (fl.cross_entropy(x, target, reduction="none", num_threads=2, **kw),)
                        + fl.cross_entropy(x, target, reduction="none", return_grad=True, num_threads=2, **kw)):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes()
        for i in rows:
            alone, alone_grad = fl.cross_entropy(x[i:i + 1], target[i:i + 1], reduction="none",
                                                 return_grad=True, **kw)
            np.testing.assert_array_equal(loss[i:i + 1], alone, err_msg=f"C={C} row {i}")
            np.testing.assert_array_equal(grad[i:i + 1], alone_grad, err_msg=f"C={C} row {i} grad")


def _soft_targets(rng, shape, dtype, C_axis):
    t = rng.random(shape)
    return (t / t.sum(axis=C_axis, keepdims=True)).astype(dtype)


class TestProbabilityTargets:
    """Float targets of the input's shape: class probabilities (torch >= 1.10 semantics: ``mean``
    divides by the number of samples/positions, weights scale each class term, label smoothing mixes
    the target with the uniform distribution)."""

    @pytest.mark.parametrize("option", ["plain", "weight", "smoothing", "weight_smoothing", "unnormalised"])
    @pytest.mark.parametrize("reduction", REDUCTIONS)
    @pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
    @pytest.mark.parametrize("layout", ["rows", "unbatched", "spatial"])
    def test_matches_torch(self, layout, dtype, reduction, option, rng):
        C = 5
        shape = {"rows": (7, C), "unbatched": (C,), "spatial": (3, C, 4, 5)}[layout]
        x = (rng.standard_normal(shape) * 2).astype(dtype)
        c_axis = 0 if layout == "unbatched" else 1
        t = _soft_targets(rng, shape, dtype, c_axis)
        if option == "unnormalised":  # torch does not require rows to sum to 1
            t = (t * rng.uniform(0, 2, shape)).astype(dtype)
        w = rng.uniform(0.2, 3.0, C).astype(dtype) if "weight" in option else None
        eps = 0.2 if "smoothing" in option else 0.0
        wt = None if w is None else to_torch64(w)
        ref, ref_grad = torch_value_and_grad(
            lambda xt: F.cross_entropy(xt, to_torch64(t), weight=wt, reduction=reduction,
                                       label_smoothing=eps), x)
        got = fl.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=eps)
        assert_close_spec(got, ref, dtype)
        val, grad = fl.cross_entropy(x, t, weight=w, reduction=reduction, label_smoothing=eps,
                                     return_grad=True)
        assert_close_spec(val, ref, dtype)
        assert_close_spec(grad, ref_grad, dtype, reduced=False)

    @pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
    def test_many_blocks_and_out(self, dtype, rng):
        x = rng.standard_normal((4001, 60)).astype(dtype)
        t = _soft_targets(rng, x.shape, dtype, 1)
        for red in REDUCTIONS:
            ref, ref_grad = torch_value_and_grad(
                lambda xt: F.cross_entropy(xt, to_torch64(t), reduction=red), x)
            val, grad = fl.cross_entropy(x, t, reduction=red, return_grad=True)
            assert_close_spec(val, ref, dtype, what=red)
            assert_close_spec(grad, ref_grad, dtype, reduced=False, what=red)
        out = np.empty(4001, dtype)
        assert fl.cross_entropy(x, t, reduction="none", out=out) is out

    @pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
    def test_hostile(self, dtype):
        x = np.array([[1e4, -1e4, 0.0], [-np.inf, 1.0, 2.0], [np.nan, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype)
        t = np.array([[0.5, 0.5, 0.0], [0.0, 0.3, 0.7], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], dtype)
        ref, ref_grad = torch_value_and_grad(
            lambda xt: F.cross_entropy(xt, to_torch64(t), reduction="none"), x)
        val, grad = fl.cross_entropy(x, t, reduction="none", return_grad=True)
        # the -inf logit with probability 0: torch computes 0 * -inf = nan; fastloss may match it or
        # give the mathematically right finite value -- compare only the rows without that case
        keep = [0, 2, 3]
        assert_close_spec(val[keep], ref[keep], dtype)
        assert_close_spec(grad[keep], ref_grad[keep], dtype)

    def test_empty(self):
        x = np.zeros((0, 3))
        assert np.isnan(fl.cross_entropy(x, np.zeros((0, 3))))
        assert fl.cross_entropy(x, np.zeros((0, 3)), reduction="sum") == 0

    def test_inputs_unmodified_and_torch_tensors(self, rng):
        x = rng.standard_normal((6, 4)).astype(np.float32)
        t = _soft_targets(rng, x.shape, np.float32, 1)
        xc, tc = x.copy(), t.copy()
        ref, _ = torch_value_and_grad(lambda xt: F.cross_entropy(xt, to_torch64(t)), x)
        assert_close_spec(fl.cross_entropy(torch.from_numpy(x), torch.from_numpy(t), return_grad=True)[0],
                          ref, np.float32)
        assert_close_spec(fl.cross_entropy(fortran(x), strided(t)), ref, np.float32)
        np.testing.assert_array_equal(x, xc)
        np.testing.assert_array_equal(t, tc)

    @pytest.mark.parametrize("tshape", [(3, 5), (4, 4), (3,), (3, 4, 1)])
    def test_wrong_target_shape(self, tshape):
        # a float target of the class-index shape (3,) is float labels: a dtype error (issue 13), as torch's
        with pytest.raises(TypeError if tshape == (3,) else ValueError, match="target"):
            fl.cross_entropy(np.zeros((3, 4)), np.zeros(tshape))


def _probs_ref64(x, t, w=None, eps=0.0, c_axis=1):
    """Independent float64 reference of cross-entropy with probability targets along c_axis (SPEC: torch's
    float-target semantics): loss = -sum_j w_j t'_j log_softmax(x)_j, t' = (1 - eps) t + eps / C, and the
    gradient of each item's loss, A softmax(x) - w t' (A = sum_j w_j t'_j).  NumPy, no torch: 0 * -inf is
    nan as in torch, a -inf logit with t > 0 gives +inf."""
    x = np.moveaxis(np.asarray(x, np.float64), c_axis, -1)
    t = np.moveaxis(np.asarray(t, np.float64), c_axis, -1)
    C = x.shape[-1]
    tw = (1 - eps) * t + eps / C
    if w is not None:
        tw = tw * np.asarray(w, np.float64)
    with np.errstate(all="ignore"):
        m = np.max(x, axis=-1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True))
        loss = -np.sum(tw * (x - lse), axis=-1)
        grad = np.sum(tw, axis=-1, keepdims=True) * np.exp(x - lse) - tw
    return loss, np.moveaxis(grad, -1, c_axis)


@pytest.mark.parametrize("C", [1, 3, 8, 17, 20, 21, 22, 24, 31, 33, 36, 37, 48, 73])
def test_probs_float32_fused_tiles(C, rng):
    """Probability targets through the fused class-major pass (fl_tile.h's fl_tile_ce_soft_f32: max, sum of
    exps and the target sums A, D in registers; the loss alone from C = 22 on: m and s fused, A and D along
    the rows): 611 rows (tiles of tile_rows(C) rows and a partial last one, every C % 8) with hostile rows
    (+-1e4, ties, -inf with target 0 (nan, as torch) and with target > 0 (+inf), NaN), weights and smoothing,
    against an independent float64 reference; the same bits at 1 and 2 threads and for a row alone; the
    gradient path (targets through the tile) and the loss alone agree within SPEC."""
    N = 611
    x = _hostile_short_rows(rng, N, C)
    x[8, : C // 2] = rng.uniform(-1e4, 1e4, C // 2)
    t = _soft_targets(rng, x.shape, np.float32, 1)
    if C > 1:
        x[9, 0] = -np.inf                      # target 0 at a masked class: 0 * -inf = nan
        t[9, 0] = 0
        x[10, -1] = -np.inf                    # target > 0 at a masked class: +inf
    x[11, C // 2] = np.nan
    w = rng.uniform(0.5, 2.0, C).astype(np.float32)
    hostile = [9, 10, 11]
    finite = np.setdiff1d(np.arange(N), hostile)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.2}, {"weight": w, "label_smoothing": 0.3}):
        ref, ref_g = _probs_ref64(x, t, kw.get("weight"), kw.get("label_smoothing", 0.0))
        loss = fl.cross_entropy(x, t, reduction="none", **kw)
        assert_close_spec(loss, ref, np.float32, what=f"C={C} {list(kw)}")
        val, g = fl.cross_entropy(x, t, reduction="none", return_grad=True, **kw)
        assert_close_spec(val, ref, np.float32, what=f"C={C} {list(kw)} (grad path)")
        assert_close_spec(g[finite], ref_g[finite], np.float32, reduced=False, what=f"C={C} {list(kw)} grad")
        assert np.isnan(g[11]).all()
        mean = fl.cross_entropy(x[finite], t[finite], reduction="mean", **kw)
        assert_close_spec(mean, np.mean(ref[finite]), np.float32, what=f"C={C} {list(kw)} mean")
        for rg in (False, True):
            a = fl.cross_entropy(x, t, reduction="none", return_grad=rg, num_threads=1, **kw)
            b = fl.cross_entropy(x, t, reduction="none", return_grad=rg, num_threads=2, **kw)
            for u, v in zip(a if rg else (a,), b if rg else (b,)):
                assert np.asarray(u).tobytes() == np.asarray(v).tobytes(), f"C={C}: threads differ"
        for i in (0, 5, 7, 9, 10, 11, 300, N - 1):
            alone = fl.cross_entropy(x[i:i + 1], t[i:i + 1], reduction="none", **kw)
            assert loss[i:i + 1].tobytes() == alone.tobytes(), f"C={C} row {i}"


@pytest.mark.parametrize("C,S", [(1, 33), (5, 37), (21, 1024), (21, 300), (24, 1500), (70, 257)])
def test_probs_float32_spatial_runs(C, S, rng):
    """Probability targets in the spatial layout (N, C, S): runs of positions through the fused pass, the
    logits through the chunk copy for strides S >= 1024, the targets read in place; hostile positions, weights
    and smoothing against the float64 reference, the same bits at 1 and 2 threads, and the same loss and
    gradient as the positions laid out as rows, within SPEC."""
    x = (rng.standard_normal((2, C, S)) * 3).astype(np.float32)
    x[:, :, ::3] = np.round(x[:, :, ::3])
    x[0, :, 1] = 1e4 * (np.arange(C) % 2)
    t = _soft_targets(rng, x.shape, np.float32, 1)
    if C > 1:
        x[1, 0, 2] = -np.inf
        t[1, 0, 2] = 0
    x[1, -1, 4] = np.nan
    w = rng.uniform(0.5, 2.0, C).astype(np.float32)
    for kw in ({}, {"weight": w, "label_smoothing": 0.2}):
        ref, ref_g = _probs_ref64(x, t, kw.get("weight"), kw.get("label_smoothing", 0.0))
        val, g = fl.cross_entropy(x, t, reduction="none", return_grad=True, **kw)
        assert_close_spec(val, ref, np.float32, what=f"C={C} S={S}")
        ok = np.isfinite(ref_g).all(axis=1)
        assert_close_spec(np.moveaxis(g, 1, -1)[ok], np.moveaxis(ref_g, 1, -1)[ok], np.float32, reduced=False,
                          what=f"C={C} S={S} grad")
        assert_close_spec(fl.cross_entropy(x, t, reduction="none", **kw), ref, np.float32)
        a = fl.cross_entropy(x, t, reduction="none", return_grad=True, num_threads=1, **kw)
        b = fl.cross_entropy(x, t, reduction="none", return_grad=True, num_threads=2, **kw)
        for u, v in zip(a, b):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes()


# ------------------------------------------------------------------------- the usual call, recognised
class _Sub(np.ndarray):
    pass


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_usual_call_recognised_and_every_other_layout_converted(dtype, rng):
    """cross_entropy reads (N, C) float32/float64 logits with (N,) int32/int64 labels in place, recognised
    from the array structs (plain_index_rows); every other form of the same numbers -- another label
    dtype or byte order, strided, Fortran-ordered or subclassed arrays, big-endian logits -- goes through
    the converting path: each gives the float64 reference's value, and the usual call's bits."""
    from fastloss._classification import _K
    x = (rng.standard_normal((9, 6)) * 3).astype(dtype)
    y = rng.integers(0, 6, 9)
    y[4] = -100
    assert _K.plain_index_rows(x, y) == 6 and _K.plain_index_rows(x, y.astype(np.int32)) == 6
    usual = fl.cross_entropy(x, y)
    assert_close_spec(usual, torch_ce(x, y)[0], dtype, what="usual")
    others = {"int32": (x, y.astype(np.int32)), "int16": (x, y.astype(np.int16)),
              "big-endian labels": (x, y.astype(">i8")), "strided labels": (x, np.repeat(y, 2)[::2]),
              "strided logits": (np.repeat(x, 2, axis=1)[:, ::2], y), "fortran logits": (np.asfortranarray(x), y),
              "subclass": (x.view(_Sub), y.view(_Sub)),
              "list labels": (x, y.tolist())}
    for what, (xa, ya) in others.items():
        plain = _K.plain_index_rows(xa, ya)
        assert plain == (6 if what == "int32" else -1), what
        got = fl.cross_entropy(xa, ya)
        assert got.dtype == dtype and got.tobytes() == usual.tobytes(), what
    # the errors of the converting path stay the usual call's: a label out of range, a length mismatch
    bad = y.copy()
    bad[2] = 6
    with pytest.raises(IndexError, match="target"):
        fl.cross_entropy(x, bad)
    with pytest.raises(ValueError, match="target shape"):
        fl.cross_entropy(x, y[:5])
    assert _K.plain_index_rows(x, y[:5]) == -1 and _K.plain_index_rows(x[0], y[:1]) == -1
    assert _K.plain_index_rows(x.astype(np.float16), y) == -1 and _K.plain_index_rows(x, y.astype(np.uint32)) == -1
    assert _K.plain_index_rows(x.astype(x.dtype.newbyteorder(">")), y) == -1
