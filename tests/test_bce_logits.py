"""fastloss.binary_cross_entropy_with_logits against torch.nn.functional.binary_cross_entropy_with_logits
in float64 (values and torch.autograd gradients), SPEC §4 tolerances (``conftest.assert_close_spec``).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fl_testing import (DTYPE_IDS, DTYPES, REDUCTIONS, assert_close_spec, fortran, readonly, strided,
                        to_torch64, torch_value_and_grad)

bce = fl.binary_cross_entropy_with_logits


def torch_bce(x, y, weight=None, pos_weight=None, **kw):
    w = None if weight is None else to_torch64(weight)
    pw = None if pos_weight is None else to_torch64(pos_weight)
    return torch_value_and_grad(
        lambda xt: F.binary_cross_entropy_with_logits(xt, to_torch64(y), weight=w, pos_weight=pw, **kw), x)


def check(x, y, dtype, reduction="mean", weight=None, pos_weight=None, what=""):
    ref, ref_grad = torch_bce(x, y, weight, pos_weight, reduction=reduction)
    got = bce(x, y, weight=weight, pos_weight=pos_weight, reduction=reduction)
    assert_close_spec(got, ref, dtype, what=f"{what} value")
    val, grad = bce(x, y, weight=weight, pos_weight=pos_weight, reduction=reduction, return_grad=True)
    assert_close_spec(val, ref, dtype, what=f"{what} value (return_grad)")
    assert_close_spec(grad, ref_grad, dtype, reduced=False, what=f"{what} grad")
    return got


def data(rng, shape, dtype, hard=False):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    y = (rng.integers(0, 2, shape) if hard else rng.random(shape)).astype(dtype)
    return x, y


# ------------------------------------------------------------------------------------------- values
WEIGHTS = {
    "none": lambda rng, shape: None,
    "full": lambda rng, shape: rng.uniform(0.1, 2, shape),
    "per_row": lambda rng, shape: rng.uniform(0.1, 2, shape[:1] + (1,) * (len(shape) - 1)),
    "last_axis": lambda rng, shape: rng.uniform(0.1, 2, shape[-1:]),
    "scalar": lambda rng, shape: 1.7,
    "one_elem": lambda rng, shape: rng.uniform(0.1, 2, (1,)),
}
POS_WEIGHTS = {
    "none": lambda rng, shape: None,
    "scalar": lambda rng, shape: 2.5,
    "one_elem": lambda rng, shape: np.array([0.4]),
    "last_axis": lambda rng, shape: rng.uniform(0.1, 4, shape[-1:]),
}


@pytest.mark.parametrize("pos_weight", list(POS_WEIGHTS))
@pytest.mark.parametrize("weight", list(WEIGHTS))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(11,), (6, 5)], ids=["N", "NC"])
def test_matches_torch(shape, dtype, reduction, weight, pos_weight, rng):
    x, y = data(rng, shape, dtype)
    w = WEIGHTS[weight](rng, shape)
    pw = POS_WEIGHTS[pos_weight](rng, shape)
    check(x, y, dtype, reduction, weight=None if w is None else np.asarray(w, dtype) if np.ndim(w) else w,
          pos_weight=None if pw is None else np.asarray(pw, dtype) if np.ndim(pw) else pw,
          what=f"{shape} w={weight} pw={pos_weight}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_spatial_with_channel_weights(dtype, reduction, rng):
    """(N, C, H, W) with pos_weight / weight of shape (C, 1, 1) (broadcast over the spatial axes) and
    pos_weight (W,) along the last axis."""
    shape = (2, 3, 4, 5)
    x, y = data(rng, shape, dtype, hard=True)
    check(x, y, dtype, reduction, weight=rng.uniform(0.1, 2, (3, 1, 1)).astype(dtype),
          pos_weight=rng.uniform(0.1, 3, (3, 1, 1)).astype(dtype), what="(C,1,1)")
    check(x, y, dtype, reduction, weight=rng.uniform(0.1, 2, (2, 1, 4, 1)).astype(dtype),
          pos_weight=rng.uniform(0.1, 3, 5).astype(dtype), what="(N,1,H,1) / (W,)")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_many_blocks(dtype, reduction, rng):
    """~260k elements: many blocks, threaded, last-axis pos_weight segments across block edges."""
    shape = (2053, 127)
    x, y = data(rng, shape, dtype)
    check(x, y, dtype, reduction, weight=rng.uniform(0.1, 2, (2053, 1)).astype(dtype),
          pos_weight=rng.uniform(0.1, 3, 127).astype(dtype))
    check(x, y, dtype, reduction)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [14, 300, 1000])
def test_last_axis_vectors_across_segments(C, dtype, rng):
    """weight and pos_weight of shape (C,) over (N, C), many segments and blocks: C = 14 is read from the
    vectors repeated (tiled: segments run across row ends), C = 1000 in place (segments stop at row ends),
    C = 300 tiled in float32 and in place in float64 (_common.pxd's tile_capacity).  Every reduction and
    the gradient against torch; a reduction's bits the same at 1 and 2 threads."""
    shape = (max(3, 40_000 // C), C)
    x, y = data(rng, shape, dtype)
    w = rng.uniform(0.1, 2, C).astype(dtype)
    pw = rng.uniform(0.1, 4, C).astype(dtype)
    for reduction in REDUCTIONS:
        check(x, y, dtype, reduction, weight=w, pos_weight=pw, what=f"C={C} {reduction}")
    one = bce(x, y, weight=w, pos_weight=pw, num_threads=1)
    two = bce(x, y, weight=w, pos_weight=pw, num_threads=2)
    assert one.tobytes() == two.tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_zero_dim(dtype):
    """Regression (was a strict xfail): a 0-d input/target gave a result of shape (1,) instead of ()
    (reduction='none', and the gradient): _validate.float_array now keeps 0-d arrays 0-d.  (pos_weight
    is 0-d or a float here: torch itself rejects a (1,) pos_weight with a 0-d input under autograd.)"""
    x, y = np.array(0.7, dtype), np.array(1.0, dtype)
    for red in REDUCTIONS:
        for pw in (None, np.array(3.0, dtype), 3.0):
            check(x, y, dtype, red, pos_weight=pw, what=f"{red} pw={pw!r}")
        val, grad = bce(x, y, pos_weight=np.array([3.0], dtype), reduction=red, return_grad=True)
        assert np.shape(val) == () and grad.shape == ()


# ------------------------------------------------------------------------------------------- hostile
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weight", [None, 2.0])
def test_hostile(dtype, reduction, pos_weight):
    """+-1e4 (no overflow: exact limits), +-inf (torch gives nan where 0 * inf appears: match it), nan
    in input or target (propagates), hard and soft targets."""
    x = np.array([np.inf, np.inf, -np.inf, -np.inf, 1e4, -1e4, 1e4, -1e4, np.nan, 0.0, 3.0, 80.0, -80.0,
                  1e-30, -0.0], dtype)
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, np.nan, 0.3, 1.0, 0.0, 0.5, 0.5], dtype)
    check(x, y, dtype, reduction, pos_weight=pos_weight, what="with non-finite")
    finite = np.isfinite(x) & np.isfinite(y)
    check(x[finite], y[finite], dtype, reduction, pos_weight=pos_weight, what="finite")
    # exact limits for the huge logits
    got = bce(x[4:8], y[4:8], reduction="none")
    np.testing.assert_array_equal(got, np.array([0.0, 0.0, 1e4, 1e4], dtype))


# the exp's range edges: -|x| near float32's -87.5 / -103.97 and float64's -708.5 / -745.13 (f_exp_nonpos
# gives 0 below -87.5 / -708.5 instead of a denormal: the loss and gradient then differ by < 1e-38 / 1e-308)
EDGES = [0.0, -0.0, 1e-30, 0.5, 3.0, 20.0, 80.0, 87.3, 87.6, 88.8, 90.0, 103.9, 104.1, 700.0, 708.4, 708.6,
         709.9, 720.0, 745.0, 746.0, 1e4]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 255, 256, 257, 513, 1031])
def test_segment_halves(n, dtype, rng):
    """The kernel runs a full segment's (256 items) items k and 128 + k side by side (store_items) and a
    shorter one item by item: lengths around one and several segments, the exp's range edges in both signs at every position, hard and soft targets,
    with reduction="none" (its nan refit) and the reductions, with and without the gradient; and the same
    through a last-axis pos_weight (segments of K = 7 items)."""
    mag = np.array(EDGES)[rng.integers(0, len(EDGES), n)]
    x = (mag * rng.choice([-1.0, 1.0], n)).astype(dtype)
    y = np.where(rng.random(n) < 0.7, rng.integers(0, 2, n), rng.random(n)).astype(dtype)
    for red in REDUCTIONS:
        for pw in (None, 2.0):
            check(x, y, dtype, red, pos_weight=pw, what=f"n={n} {red} pw={pw}")
    if n % 7 == 0:
        check(x.reshape(-1, 7), y.reshape(-1, 7), dtype, "none",
              pos_weight=rng.uniform(0.1, 3, 7).astype(dtype), what=f"n={n} last-axis pos_weight")
    # a nan and an infinite target in the second half: refit alone, the rest untouched
    if n >= 4:
        x2, y2 = x.copy(), y.copy()
        x2[n // 2 + 1] = np.nan
        y2[n - 1] = np.inf
        check(x2, y2, dtype, "none", pos_weight=2.0, what=f"n={n} with nan / inf")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_empty(dtype):
    for shape in [(0,), (0, 3), (3, 0)]:
        x = np.zeros(shape, dtype)
        assert np.isnan(bce(x, x))
        assert bce(x, x, reduction="sum") == 0
        out = bce(x, x, reduction="none")
        assert out.shape == shape and out.dtype == dtype
        for red in REDUCTIONS:
            check(x, x, dtype, red, what=f"{shape} {red}")


# ------------------------------------------------------------------------------------------- input forms
def _forms(a):
    return {
        "fortran": fortran(a), "strided": strided(a, 0), "strided_last": strided(a, 1),
        "readonly": readonly(a), "torch": torch.from_numpy(np.array(a)),
        "torch_grad": torch.from_numpy(np.array(a)).requires_grad_(True),
        "list": a.tolist(),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("form", list(_forms(np.zeros((2, 2)))))
def test_input_forms(form, dtype, rng):
    x, y = data(rng, (6, 5), dtype)
    w = rng.uniform(0.1, 2, (6, 5)).astype(dtype)
    xv, yv, wv = (_forms(a)[form] for a in (x, y, w))
    if form == "list":
        dtype = np.float64
    ref, ref_grad = torch_bce(x, y, w, reduction="sum")
    val, grad = bce(xv, yv, weight=wv, reduction="sum", return_grad=True)
    assert_close_spec(val, ref, dtype, what=form)
    assert_close_spec(grad, ref_grad, dtype, what=form)


def test_half_and_mixed_dtypes(rng):
    x, y = data(rng, (7, 3), np.float32)
    ref, _ = torch_bce(x.astype(np.float16).astype(np.float64), y)
    assert_close_spec(bce(x.astype(np.float16), y), ref, np.float32)
    ref, _ = torch_bce(x, y.astype(np.float32), pos_weight=np.float32(2.0) * np.ones(3, np.float32))
    assert_close_spec(bce(x, y.astype(np.float64), pos_weight=2.0 * np.ones(3)), ref, np.float32)
    # float64 input, float32 target: computed in float64
    assert_close_spec(bce(x.astype(np.float64), y), torch_bce(x, y)[0], np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_inputs_unmodified(dtype, rng):
    x, y = data(rng, (9, 4), dtype)
    w, pw = rng.uniform(0.1, 2, (9, 1)).astype(dtype), rng.uniform(0.1, 2, 4).astype(dtype)
    copies = [a.copy() for a in (x, y, w, pw)]
    for red in REDUCTIONS:
        bce(x, y, weight=w, pos_weight=pw, reduction=red, return_grad=True)
    for a, c in zip((x, y, w, pw), copies):
        np.testing.assert_array_equal(a, c)


# ------------------------------------------------------------------------------------------- out=
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_out(dtype, rng):
    x, y = data(rng, (6, 5), dtype)
    ref, ref_grad = torch_bce(x, y, pos_weight=np.full(5, 2.0), reduction="none")
    out = np.full((6, 5), 9.0, dtype)
    res = bce(x, y, pos_weight=np.full(5, 2.0, dtype), reduction="none", out=out)
    assert res is out
    assert_close_spec(out, ref, dtype)
    out = np.full((6, 5), 9.0, dtype)
    res, grad = bce(x, y, pos_weight=np.full(5, 2.0, dtype), reduction="none", out=out, return_grad=True)
    assert res is out
    assert_close_spec(out, ref, dtype)
    assert_close_spec(grad, ref_grad, dtype)
    for bad in (np.empty((6, 4), dtype), np.empty((6, 5), np.float16), np.empty((5, 6), dtype).T,
                readonly(np.empty((6, 5), dtype))):
        with pytest.raises(ValueError, match="out"):
            bce(x, y, reduction="none", out=bad)


# ------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs,exc,name", [
    ({"target": np.zeros((4, 2))}, ValueError, "target"),
    ({"target": np.zeros(12)}, ValueError, "target"),
    ({"target": "abc"}, TypeError, "target"),
    ({"input": "abc"}, TypeError, "input"),
    ({"input": np.zeros((4, 3), np.int64)}, TypeError, "input"),
    ({"weight": np.ones(4)}, ValueError, "weight"),           # does not broadcast to (4, 3)
    ({"weight": np.ones((2, 4, 3))}, ValueError, "weight"),   # would enlarge the result
    ({"weight": "abc"}, TypeError, "weight"),
    ({"pos_weight": np.ones(4)}, ValueError, "pos_weight"),
    ({"pos_weight": np.ones((5, 3))}, ValueError, "pos_weight"),
    ({"reduction": "batchmean"}, ValueError, "reduction"),
    ({"size_average": False}, ValueError, "size_average"),
    ({"reduce": True}, ValueError, "reduce"),
])
def test_bad_arguments(kwargs, exc, name):
    args = {"input": np.zeros((4, 3)), "target": np.zeros((4, 3))}
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        bce(**args)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_large_reused_buffers(dtype):
    """Large out= / grad_out= at odd offsets (>= 8 MiB, elementwise.pyx's STREAM_BYTES: plain stores for
    this compute-bound kind, streaming ones for the cheap kinds) with the nan refit of infinite targets
    (the fallback form rewrites a segment's losses and gradients): against torch's loss and gradient."""
    n = (8 << 20) // np.dtype(dtype).itemsize + 517
    rng = np.random.default_rng(9)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    y = rng.random(n).astype(dtype)
    y[::997] = np.inf
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_()
    ref = F.binary_cross_entropy_with_logits(xt, torch.from_numpy(y.astype(np.float64)), reduction="none")
    ref.sum().backward()
    out = np.empty(n + 1, dtype)[1:]
    g = np.empty(n + 2, dtype)[1:n + 1]
    value, grad = fl.binary_cross_entropy_with_logits(x, y, reduction="none", out=out, return_grad=True,
                                                      grad_out=g, num_threads=2)
    assert value is out and grad is g
    assert_close_spec(out, ref, dtype, reduced=False, what="streamed out")
    assert_close_spec(g, xt.grad, dtype, reduced=False, what="streamed grad_out")
