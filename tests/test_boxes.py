"""Box losses and pairwise IoU matrices against torchvision's formulas written in torch ops (float64).

torchvision is not installed; its functions are transcribed into torch ops in
fastloss/_reference/boxes.py (the shared references, independent of the kernels).
"""
import itertools

import numpy as np
import pytest
import torch

import fastloss as fl
from fastloss._reference import REFERENCES
from fastloss._reference.boxes import (TV, tv_box_area, tv_box_iou, tv_generalized_box_iou, tv_to_xyxy)
from fl_testing import assert_close_spec

LOSSES = ["iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"]
FORMATS = ["xyxy", "xywh", "cxcywh"]
REDUCTIONS = ["none", "mean", "sum"]
EVERY_CASE = pytest.mark.parametrize("name,fmt,reduction", list(itertools.product(LOSSES, FORMATS, REDUCTIONS)))


# ------------------------------------------------------------------ helpers
def random_boxes(rng, n, fmt="xyxy", scale=10.0):
    """n valid boxes in the given format (corners drawn in xyxy, then converted in float64)."""
    x1 = rng.uniform(-scale, scale, n)
    y1 = rng.uniform(-scale, scale, n)
    w = rng.uniform(0.1, scale, n)
    h = rng.uniform(0.1, scale, n)
    if fmt == "xyxy":
        return np.stack([x1, y1, x1 + w, y1 + h], axis=-1)
    if fmt == "xywh":
        return np.stack([x1, y1, w, h], axis=-1)
    return np.stack([x1 + w / 2, y1 + h / 2, w, h], axis=-1)


def pair(rng, n, fmt="xyxy"):
    """boxes2 near boxes1, so most pairs overlap (and some do not)."""
    b1 = random_boxes(rng, n, fmt)
    b2 = b1 + rng.normal(0, 2.0, b1.shape)
    if fmt != "xyxy":
        b2[:, 2:] = np.abs(b2[:, 2:]) + 0.05
    return b1, b2


def ref_loss(name, b1, b2, fmt, reduction="none", eps=1e-7, grad=False):
    t1 = torch.tensor(np.asarray(b1, dtype=np.float64), requires_grad=grad)
    t2 = torch.tensor(np.asarray(b2, dtype=np.float64))
    val = TV[name](tv_to_xyxy(t1, fmt), tv_to_xyxy(t2, fmt), reduction=reduction, eps=eps)
    if not grad:
        return val.detach().numpy()
    (g,) = torch.autograd.grad(val.sum(), t1)
    return val.detach().numpy(), g.numpy()


def assert_close64(got, ref, reduced=None, what=""):
    """A float64 result against the float64 reference: SPEC §4 (conftest.assert_close_spec)."""
    assert_close_spec(got, ref, np.float64, reduced=reduced, what=what)


# ------------------------------------------------------------------ losses: values
@EVERY_CASE
def test_loss_float64_matches_torchvision(name, fmt, reduction):
    rng = np.random.default_rng(0)
    b1, b2 = pair(rng, 2000, fmt)
    got = getattr(fl, name)(b1, b2, reduction=reduction, box_format=fmt)
    ref = ref_loss(name, b1, b2, fmt, reduction)
    assert isinstance(got, np.ndarray if reduction == "none" else np.float64)
    assert_close64(got, ref)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_loss_float32_against_float64_reference(name, fmt):
    rng = np.random.default_rng(1)
    b1, b2 = pair(rng, 3000, fmt)
    b1, b2 = b1.astype(np.float32), b2.astype(np.float32)
    f = getattr(fl, name)
    got = f(b1, b2, box_format=fmt)
    assert got.dtype == np.float32
    assert_close_spec(got, ref_loss(name, b1, b2, fmt), np.float32)
    for red in ("mean", "sum"):
        v = f(b1, b2, reduction=red, box_format=fmt)
        assert_close_spec(v, ref_loss(name, b1, b2, fmt, red), np.float32, what=red)


@pytest.mark.parametrize("name", LOSSES)
def test_eps_where_torchvision_adds_it(name):
    rng = np.random.default_rng(2)
    b1, b2 = pair(rng, 500)
    b1[:50] = b2[:50]                      # identical pairs: eps decides 1 - A / (A + eps)
    b1[50:60, 2] = b1[50:60, 0]            # zero-width boxes: eps keeps 0/0 away
    b2[50:60, 2] = b2[50:60, 0]
    for eps in (1e-7, 0.5, 0.0):
        assert_close64(getattr(fl, name)(b1, b2, eps=eps), ref_loss(name, b1, b2, "xyxy", eps=eps))


# ------------------------------------------------------------------ losses: gradients
@EVERY_CASE
def test_grad_matches_autograd(name, fmt, reduction):
    rng = np.random.default_rng(3)
    b1, b2 = pair(rng, 1000, fmt)
    b1[:20] = b2[:20]                      # ties: min/max split the gradient as torch does
    if fmt == "xyxy":
        b1[20:40, :2] = b2[20:40, :2]      # shared corners only
    val, g = getattr(fl, name)(b1, b2, reduction=reduction, box_format=fmt, return_grad=True)
    rval, rg = ref_loss(name, b1, b2, fmt, reduction, grad=True)
    assert g.shape == b1.shape and g.dtype == np.float64
    assert_close64(val, rval)
    assert_close64(g, rg, reduced=False)


@pytest.mark.parametrize("name", LOSSES)
def test_grad_float32(name):
    rng = np.random.default_rng(4)
    b1, b2 = pair(rng, 1000)
    b1, b2 = b1.astype(np.float32), b2.astype(np.float32)
    _, g = getattr(fl, name)(b1, b2, reduction="sum", return_grad=True)
    _, rg = ref_loss(name, b1, b2, "xyxy", "sum", grad=True)
    assert g.dtype == np.float32
    assert_close_spec(g, rg, np.float32, reduced=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_tail_of_the_box_transposes(fmt):
    """Lengths around the vector blocks of the (n, 4) <-> rows transposes (src_c/fl_soa4.h: 8 float / 4
    double boxes with AVX, 4 / 2 with SSE2, the rest scalar) and across a segment (256 pairs): loss,
    float64 gradient and float32 loss against the reference."""
    rng = np.random.default_rng(8)
    for n in (1, 2, 3, 5, 7, 9, 12, 13, 255, 257, 263):
        b1, b2 = pair(rng, n, fmt)
        val, g = fl.generalized_box_iou_loss(b1, b2, box_format=fmt, return_grad=True)
        rval, rg = ref_loss("generalized_box_iou_loss", b1, b2, fmt, grad=True)
        assert_close64(val, rval)
        assert_close64(g, rg, reduced=False)
        f1, f2 = b1.astype(np.float32), b2.astype(np.float32)
        assert_close_spec(fl.complete_box_iou_loss(f1, f2, box_format=fmt),
                          ref_loss("complete_box_iou_loss", f1, f2, fmt), np.float32, what=f"n {n}")


# ------------------------------------------------------------------ hostile inputs
def hostile_pairs():
    rng = np.random.default_rng(5)
    b1, b2 = pair(rng, 64)
    b1[0] = b2[0] = [1, 1, 1, 1]                 # zero-area, identical
    b1[1] = [0, 0, 0, 5]; b2[1] = [0, 0, 3, 0]   # zero width / zero height
    b1[2] = b2[2] = [0, 0, 2, 3]                 # identical
    b1[3] = [2, 2, 0, 0]; b2[3] = [0, 0, 1, 1]   # x2 < x1, y2 < y1
    b1[4] = [3, 0, 1, 2]; b2[4] = [0, 0, 2, 2]
    b1[5] = [1e6, 1e6, 3e6, 2.5e6]; b2[5] = [1.5e6, 0.5e6, 4e6, 2e6]  # huge coordinates
    b1[6] = [-1e6, -1e6, 1e6, 1e6]; b2[6] = [0, 0, 1, 1]
    b1[7] = [0, 0, 1, 1]; b2[7] = [5, 5, 6, 6]   # disjoint
    b1[8] = [0, 0, 1, 1]; b2[8] = [1, 0, 2, 1]   # touching edges
    b1[9, 1] = np.nan
    b2[10, 3] = np.nan
    b1[11, 2] = np.inf
    b2[12, 0] = -np.inf
    return b1, b2


@pytest.mark.parametrize("name", LOSSES)
def test_hostile_boxes_float64(name):
    b1, b2 = hostile_pairs()
    with np.errstate(all="ignore"):
        got = getattr(fl, name)(b1, b2)
    ref = ref_loss(name, b1, b2, "xyxy")
    assert_close64(got, ref)
    assert np.isnan(got[9]) and np.isnan(got[10])


@pytest.mark.parametrize("name", LOSSES)
def test_hostile_boxes_gradients(name):
    b1, b2 = hostile_pairs()
    finite = slice(0, 9)                         # NaN/inf rows: the loss is NaN; gradients unspecified
    b1, b2 = b1[finite], b2[finite]
    with np.errstate(all="ignore"):
        _, g = getattr(fl, name)(b1, b2, return_grad=True)
    _, rg = ref_loss(name, b1, b2, "xyxy", grad=True)
    # identical boxes: the gradient is a difference of O(1) terms that cancel to ~1e-9, so both sides
    # carry ~1e-16 absolute rounding (FMA contraction in the kernel, none in torch): SPEC's float64
    # absolute floor covers it
    assert_close64(g, rg, reduced=False)


@pytest.mark.parametrize("name", LOSSES)
def test_hostile_boxes_float32(name):
    b1, b2 = hostile_pairs()
    b1, b2 = b1[:9].astype(np.float32), b2[:9].astype(np.float32)
    with np.errstate(all="ignore"):
        got = getattr(fl, name)(b1, b2)
    ref = ref_loss(name, b1, b2, "xyxy")
    assert_close_spec(got, ref, np.float32)


@pytest.mark.parametrize("name", LOSSES)
def test_empty_batch_and_single_pair(name):
    f = getattr(fl, name)
    e = np.zeros((0, 4))
    assert f(e, e).shape == (0,)
    assert f(e, e, reduction="mean") == 0.0
    assert f(e, e, reduction="sum") == 0.0
    v, g = f(e, e, reduction="mean", return_grad=True)
    assert v == 0.0 and g.shape == (0, 4)
    a, b = np.array([0.0, 0, 2, 2]), np.array([1.0, 1, 3, 4])
    r = f(a, b)
    assert isinstance(r, np.ndarray) and r.shape == ()
    assert_close64(r, ref_loss(name, a, b, "xyxy"))
    assert_close64(f(a, b, reduction="mean"), ref_loss(name, a, b, "xyxy", "mean"))


@pytest.mark.parametrize("name", LOSSES)
def test_single_box_broadcasts(name):
    rng = np.random.default_rng(6)
    b1, b2 = pair(rng, 300)
    f = getattr(fl, name)
    one = b2[0]
    v, g = f(b1, one, reduction="mean", return_grad=True)
    rv, rg = ref_loss(name, b1, np.broadcast_to(one, b1.shape), "xyxy", "mean", grad=True)
    assert_close64(v, rv)
    assert_close64(g, rg, reduced=False)
    # boxes1 the single box: its gradient sums over the pairs, as autograd does through broadcasting
    v, g = f(one, b1, reduction="sum", return_grad=True)
    t1 = torch.tensor(one, requires_grad=True)
    ref = TV[name](t1.expand(300, 4), torch.tensor(b1), reduction="sum")
    (rg,) = torch.autograd.grad(ref, t1)
    assert_close64(v, ref.detach().numpy())
    assert g.shape == (4,)
    assert_close64(g, rg.numpy(), reduced=False)


def test_leading_dims_and_inputs():
    rng = np.random.default_rng(7)
    b1, b2 = pair(rng, 60)
    b1, b2 = b1.reshape(3, 20, 4), b2.reshape(3, 20, 4)
    got = fl.generalized_box_iou_loss(b1, b2)
    assert got.shape == (3, 20)
    assert_close64(got, ref_loss("generalized_box_iou_loss", b1, b2, "xyxy"))
    # Fortran order, strided, read-only, torch tensors, integers: same values, inputs untouched
    ref = fl.complete_box_iou_loss(b1.reshape(-1, 4), b2.reshape(-1, 4))
    assert_close64(ref, ref_loss("complete_box_iou_loss", b1.reshape(-1, 4), b2.reshape(-1, 4), "xyxy"))
    f1 = np.asfortranarray(b1.reshape(-1, 4))
    s2 = np.repeat(b2.reshape(-1, 4), 2, axis=0)[::2]
    ro = b2.reshape(-1, 4).copy()
    ro.flags.writeable = False
    keep = f1.copy()
    for x, y in [(f1, s2), (torch.tensor(b1.reshape(-1, 4)), ro)]:
        np.testing.assert_array_equal(fl.complete_box_iou_loss(x, y), ref)
    np.testing.assert_array_equal(f1, keep)
    ib1, ib2 = np.array([[0, 0, 4, 4]]), np.array([[1, 1, 5, 6]], dtype=np.int16)
    gi = fl.generalized_box_iou_loss(ib1, ib2)
    assert gi.dtype == np.float32
    assert_close_spec(gi, ref_loss("generalized_box_iou_loss", ib1, ib2, "xyxy"), np.float32)


@pytest.mark.parametrize("name", LOSSES)
def test_out(name):
    rng = np.random.default_rng(8)
    b1, b2 = pair(rng, 100)
    out = np.empty(100)
    r = getattr(fl, name)(b1, b2, out=out)
    assert r is out
    assert_close64(out, ref_loss(name, b1, b2, "xyxy"))
    with pytest.raises(ValueError, match="out"):
        getattr(fl, name)(b1, b2, out=np.empty(99))


@pytest.mark.parametrize("name", ["generalized_box_iou_loss", "complete_box_iou_loss"])
def test_deterministic_across_threads(name):
    rng = np.random.default_rng(9)
    b1, b2 = pair(rng, 250_000)
    b1, b2 = b1.astype(np.float32), b2.astype(np.float32)
    f = getattr(fl, name)
    res = [f(b1, b2, reduction="mean", num_threads=t, return_grad=True) for t in (1, 2, 3)]
    for v, g in res[1:]:
        assert v.tobytes() == res[0][0].tobytes()
        np.testing.assert_array_equal(g, res[0][1])
    assert f(b1, b2, reduction="sum", num_threads=2).tobytes() == f(b1, b2, reduction="sum", num_threads=1).tobytes()


@pytest.mark.parametrize("name", LOSSES)
def test_errors(name):
    f = getattr(fl, name)
    ok = np.zeros((3, 4))
    with pytest.raises(ValueError, match="boxes1"):
        f(np.zeros((3, 5)), ok)
    with pytest.raises(ValueError, match="boxes2"):
        f(ok, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="boxes1"):
        f(np.zeros(()), ok)
    with pytest.raises(ValueError, match="boxes1 shape"):
        f(ok, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="box_format"):
        f(ok, ok, box_format="yxyx")
    with pytest.raises(ValueError, match="reduction"):
        f(ok, ok, reduction="avg")
    with pytest.raises(TypeError, match="boxes1"):
        f(np.array([["a"] * 4]), ok)
    with pytest.raises(TypeError, match="eps"):
        f(ok, ok, eps="1")
    with pytest.raises(TypeError):
        f(ok, ok, "mean", 1e-7, "xyxy")      # box_format is keyword-only


# ------------------------------------------------------------------ pairwise matrices
@pytest.mark.parametrize("fname", ["box_iou", "generalized_box_iou"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_pairwise_float64(fname, fmt):
    rng = np.random.default_rng(10)
    b1, b2 = random_boxes(rng, 70, fmt), random_boxes(rng, 300, fmt)
    ref_f = tv_box_iou if fname == "box_iou" else tv_generalized_box_iou
    got = getattr(fl, fname)(b1, b2, box_format=fmt)
    assert got.shape == (70, 300) and got.dtype == np.float64
    assert_close64(got, ref_f(torch.tensor(b1), torch.tensor(b2), fmt).numpy())
    got32 = getattr(fl, fname)(b1.astype(np.float32), b2.astype(np.float32), box_format=fmt)
    assert_close_spec(got32, ref_f(torch.tensor(b1.astype(np.float32)).double(),
                                   torch.tensor(b2.astype(np.float32)).double(), fmt), np.float32)


@pytest.mark.parametrize("fname", ["box_iou", "generalized_box_iou"])
def test_pairwise_hostile_batched_threads(fname):
    b1, b2 = hostile_pairs()
    ref_f = tv_box_iou if fname == "box_iou" else tv_generalized_box_iou
    f = getattr(fl, fname)
    with np.errstate(all="ignore"):
        assert_close64(f(b1, b2), ref_f(torch.tensor(b1), torch.tensor(b2)).numpy())
        assert_close64(f(b1[:0], b2), np.zeros((0, 64)))
    rng = np.random.default_rng(11)
    a, b = random_boxes(rng, 2 * 150).reshape(2, 150, 4), random_boxes(rng, 2 * 400).reshape(2, 400, 4)
    ref = ref_f(torch.tensor(a), torch.tensor(b)).numpy()
    for t in (1, 2, 3):
        assert_close64(f(a, b, num_threads=t), ref)
    out = np.empty((2, 150, 400))
    assert f(a, b, out=out) is out
    with pytest.raises(ValueError, match="leading shape"):
        f(a, b[0])
    with pytest.raises(ValueError, match="boxes2"):
        f(a[0], np.zeros((3, 5)))
    with pytest.raises(ValueError, match="box_format"):
        f(a[0], b[0], box_format="xy")


@pytest.mark.parametrize("fname", ["box_iou", "generalized_box_iou"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_pairwise_nan_in_any_coordinate(fname, fmt):
    """A NaN in any coordinate of either box makes that pair NaN, as torchvision's torch.max / torch.min of
    the corners propagate it -- also in xywh / cxcywh, whose areas (w * h) do not hold x and y; every other
    pair is unchanged."""
    rng = np.random.default_rng(12)
    ref_f = tv_box_iou if fname == "box_iou" else tv_generalized_box_iou
    for side, col in itertools.product((0, 1), range(4)):
        b1, b2 = random_boxes(rng, 5, fmt), random_boxes(rng, 6, fmt)
        (b1 if side == 0 else b2)[2, col] = np.nan
        for dt in (np.float64, np.float32):
            got = getattr(fl, fname)(b1.astype(dt), b2.astype(dt), box_format=fmt)
            ref = ref_f(torch.tensor(b1.astype(dt)).double(), torch.tensor(b2.astype(dt)).double(), fmt).numpy()
            assert np.array_equal(np.isnan(got), np.isnan(ref)), (side, col, dt)
            assert np.isnan(got[2, :]).all() if side == 0 else np.isnan(got[:, 2]).all()
            assert_close_spec(got, ref, dt)


def test_pairwise_integer_boxes_and_fmt_alias():
    a = np.array([[0, 0, 4, 4], [1, 2, 3, 9]])
    b = np.array([[1, 1, 5, 6], [0, 0, 1, 1], [2, 2, 2, 2]])
    got = fl.box_iou(a, b)
    assert_close_spec(got, tv_box_iou(torch.tensor(a).double(), torch.tensor(b).double()), np.float32)
    # the third positional argument is box_format (torchvision's `fmt`)
    assert_close_spec(fl.box_iou(a * 1.0, b * 1.0, "xywh"),
                      tv_box_iou(torch.tensor(a * 1.0), torch.tensor(b * 1.0), "xywh"), np.float64)
    with pytest.raises(ValueError, match="fmt"):
        fl.box_iou(a, b, "xyxy2")


@pytest.mark.parametrize("fmt", FORMATS)
def test_box_area(fmt):
    rng = np.random.default_rng(12)
    b = random_boxes(rng, 600, fmt).reshape(3, 200, 4)
    b[0, 0] = [3, 3, 1, 1]
    got = fl.box_area(b, box_format=fmt)
    assert got.shape == (3, 200)
    assert_close64(got, tv_box_area(torch.tensor(b), fmt).numpy())
    got32 = fl.box_area(b.astype(np.float32), fmt)
    assert_close_spec(got32, tv_box_area(torch.tensor(b.astype(np.float32)).double(), fmt), np.float32)
    ib = np.array([[0, 0, 4, 5], [2, 2, 1, 1]], dtype=np.int64)
    ia = fl.box_area(ib, box_format=fmt)
    assert ia.dtype == np.int64
    np.testing.assert_array_equal(ia, tv_box_area(torch.tensor(ib), fmt).numpy())
    with pytest.raises(ValueError, match="boxes"):
        fl.box_area(np.zeros((3, 3)))


def test_reference_entries():
    rng = np.random.default_rng(13)
    for name in LOSSES + ["box_iou", "generalized_box_iou"]:
        spec = REFERENCES[name]
        assert spec.family == "boxes"
        args, kw = spec.sample(rng, 4000, np.float64)
        assert_close64(getattr(fl, name)(*args, **kw), spec.torch_ref(*args, **kw).numpy())
