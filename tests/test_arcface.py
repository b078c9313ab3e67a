"""arcface_loss against float64 torch references (no torch function exists; the formula in torch ops).

Independent references:
* ``insightface``: insightface's ``ArcMarginProduct`` (recognition/arcface_torch/losses.py; the same in
  pytorch-metric-learning) transcribed in torch ops, float64, differentiated by torch.autograd: the
  target logit cos(theta + m) where cos > th = cos(pi - m), else cos - mm (mm = sin(pi - m) m); with
  easy_margin, cos(theta + m) where cos > 0, else cos.  Its sine, sqrt(1 - cos^2), has an infinite
  derivative at theta = 0 and pi, so it is used where theta is away from both.
* ``literal``: the textbook plain formula, theta = acos(cos) and the target logit cos(theta + m) for
  every theta -- fastloss's ``plain_margin=True``.
* the shared ``arcface_torch`` (sin from |u -+ v|, a zero-gradient sqrt at 0: fastloss's documented
  convention) -- used for the hostile inputs where the others' derivatives are infinite.
The generic reference-table tests in test_metric.py also run on arcface_loss (reductions, out=, layouts,
torch tensors, empty batch, thread determinism on the shared sampler).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fastloss._reference.metric import arcface_torch
from fl_testing import assert_close_spec

REDUCTIONS = ["none", "mean", "sum"]


def insightface(e, y, w, scale=64.0, margin=0.5, reduction="mean", easy_margin=False):
    """insightface's ArcMarginProduct.forward (s = scale, m = margin), then cross-entropy."""
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    th, mm = math.cos(math.pi - margin), math.sin(math.pi - margin) * margin
    cosine = F.linear(F.normalize(e), F.normalize(w))
    sine = torch.sqrt((1.0 - torch.pow(cosine, 2)).clamp(0, 1))
    phi = cosine * cos_m - sine * sin_m
    if easy_margin:
        phi = torch.where(cosine > 0, phi, cosine)
    else:
        phi = torch.where(cosine > th, phi, cosine - mm)
    one_hot = torch.zeros_like(cosine)
    one_hot.scatter_(1, y.view(-1, 1).long(), 1)
    output = (one_hot * phi) + ((1.0 - one_hot) * cosine)
    output = output * scale
    return F.cross_entropy(output, y, reduction=reduction)


def literal(e, y, w, scale=64.0, margin=0.5, reduction="mean"):
    """ArcFace as usually written: cos(acos(cos_iy) + m) on F.normalize'd rows, times scale, CE."""
    cos = F.normalize(e, dim=1) @ F.normalize(w, dim=1).T
    theta = torch.acos(cos.gather(1, y[:, None]))
    logits = cos.scatter(1, y[:, None], torch.cos(theta + margin)) * scale
    return F.cross_entropy(logits, y, reduction=reduction)


def torch_value_and_grads(ref, e, y, w, **kw):
    te = torch.tensor(np.asarray(e, dtype=np.float64), requires_grad=True)
    tw = torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=True)
    v = ref(te, torch.as_tensor(np.asarray(y, dtype=np.int64)), tw, **kw)
    v.sum().backward()
    return v.detach().numpy(), te.grad.numpy(), tw.grad.numpy()


def sample(rng, N, C, D, dtype=np.float64):
    return (rng.standard_normal((N, D)).astype(dtype), rng.integers(0, C, N),
            rng.standard_normal((C, D)).astype(dtype))


def check(got, want, dtype, what, reduced=False, cancel=None):
    """SPEC §4 against the float64 reference (conftest.assert_close_spec)."""
    assert_close_spec(got, want, dtype, reduced=reduced, what=what, cancel=cancel)


def cos_to_centre(e, y, w):
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    v = w / np.linalg.norm(w, axis=1, keepdims=True)
    return np.sum(u * v[y], axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("easy_margin", [False, True])
@pytest.mark.parametrize("scale, margin", [(64.0, 0.5), (10.0, 1.3), (30.0, 0.2)])
def test_matches_insightface(dtype, reduction, easy_margin, scale, margin):
    """Value and both gradients vs torch.autograd of insightface's ArcMarginProduct; a third of the rows
    near their centre's opposite put the fallback (cos <= th) and the easy margin's cos <= 0 to work."""
    rng = np.random.default_rng(0)
    e, y, w = sample(rng, 300, 23, 12)
    e[:100] = -w[y[:100]] + np.repeat([0.1, 0.4], 50)[:, None] * rng.standard_normal((100, 12))
    e, w = e.astype(dtype), w.astype(dtype)
    c = cos_to_centre(e.astype(np.float64), y, w.astype(np.float64))
    assert (c <= math.cos(math.pi - margin)).sum() >= 10 and (c > math.cos(math.pi - margin)).sum() >= 100
    assert np.abs(c).max() < 1 - 1e-6              # theta away from 0 and pi: sqrt(1 - cos^2)' is finite
    kw = {"scale": scale, "margin": margin, "reduction": reduction, "easy_margin": easy_margin}
    want, want_ge, want_gw = torch_value_and_grads(insightface, e, y, w, **kw)
    got, (ge, gw) = fl.arcface_loss(e, y, w, return_grad=True, **kw)
    assert np.asarray(got).dtype == dtype and ge.dtype == dtype and gw.dtype == dtype
    assert ge.shape == e.shape and gw.shape == w.shape
    check(got, want, dtype, "value", reduced=reduction != "none")
    check(fl.arcface_loss(e, y, w, **kw), want, dtype, "value without grad", reduced=reduction != "none")
    # d/de of e / |e| projects out the row's direction: an entry is a difference of terms of the size
    # of the row's largest entries (both sides round them), so its absolute floor scales with the row
    check(ge, want_ge, dtype, "g_embeddings", cancel=np.abs(want_ge).max(axis=1, keepdims=True))
    # likewise d/dw of w / |w| for the class centres (each a sum over the rows of that class)
    check(gw, want_gw, dtype, "g_class_weights", cancel=np.abs(want_gw).max(axis=1, keepdims=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale, margin", [(64.0, 0.5), (10.0, 2.5), (30.0, -0.2)])
def test_plain_margin_matches_literal_formula(dtype, reduction, scale, margin):
    """plain_margin=True: value and both gradients vs torch.autograd of the literal formula; margin=2.5
    puts most targets past theta + m > pi (cos(theta + m) there, no fallback)."""
    e, y, w = sample(np.random.default_rng(0), 300, 23, 12, dtype)
    kw = {"scale": scale, "margin": margin, "reduction": reduction}
    want, want_ge, want_gw = torch_value_and_grads(literal, e, y, w, **kw)
    got, (ge, gw) = fl.arcface_loss(e, y, w, return_grad=True, plain_margin=True, **kw)
    check(got, want, dtype, "value", reduced=reduction != "none")
    check(fl.arcface_loss(e, y, w, plain_margin=True, **kw), want, dtype, "value without grad",
          reduced=reduction != "none")
    # the projections of e / |e| and w / |w| again (test_matches_insightface): an entry is a difference of
    # terms of its row's size (float64 at AVX2 on an Intel Xeon: 1.5e-14 off at an entry of 2.3e-3 in a
    # class row of entries up to 46, two ulps of 46), so its absolute floor scales with the row
    check(ge, want_ge, dtype, "g_embeddings", cancel=np.abs(want_ge).max(axis=1, keepdims=True))
    check(gw, want_gw, dtype, "g_class_weights", cancel=np.abs(want_gw).max(axis=1, keepdims=True))


def test_defaults_and_past_pi_branch():
    """Defaults are scale=64, margin=0.5, mean and insightface's fallback; rows with theta + m > pi are
    really exercised, and there the default and plain_margin differ."""
    rng = np.random.default_rng(1)
    e, y, w = sample(rng, 200, 5, 8)
    e[:50] = -w[y[:50]] + 0.05 * rng.standard_normal((50, 8))     # theta near pi
    assert (np.arccos(cos_to_centre(e, y, w)) + 0.5 > math.pi).sum() >= 40
    want, _, _ = torch_value_and_grads(insightface, e, y, w)
    check(fl.arcface_loss(e, y, w), want, np.float64, "defaults")
    rows = fl.arcface_loss(e, y, w, reduction="none")
    plain = fl.arcface_loss(e, y, w, reduction="none", plain_margin=True)
    check(plain, torch_value_and_grads(literal, e, y, w, reduction="none")[0], np.float64, "plain")
    assert (np.abs(rows[:50] - plain[:50]) > 1).sum() >= 40
    np.testing.assert_array_equal(rows[50:], plain[50:])   # the same formula where cos > th


@pytest.mark.parametrize("easy_margin, plain_margin", [(False, False), (True, False), (False, True)])
def test_hostile_float32_near_pi_with_and_without_grad(easy_margin, plain_margin):
    """Issue 14: float32 embeddings ~ -(class centre), theta within ~1e-3 of pi: the cosine's float32
    rounding made sqrt(1 - cos^2) -- and the plain row loss -- wrong by 4e-4 relative without
    return_grad (67.29597 vs 67.2679994) and right with it (a float64 path).  Both paths now agree, within
    SPEC §4, with the float64 reference, in every margin mode."""
    rng = np.random.default_rng(0)
    N, C, D = 256, 50, 32
    w = rng.standard_normal((C, D)).astype(np.float32)
    y = rng.integers(0, C, N)
    e = (-w[y] + 1e-3 * rng.standard_normal((N, D))).astype(np.float32)
    e[:64] = rng.standard_normal((64, D))
    kw = {"reduction": "none", "easy_margin": easy_margin, "plain_margin": plain_margin}
    want, want_ge, want_gw = torch_value_and_grads(arcface_torch, e, y, w, **kw)
    no_grad = fl.arcface_loss(e, y, w, **kw)
    got, (ge, gw) = fl.arcface_loss(e, y, w, return_grad=True, **kw)
    check(no_grad, want, np.float32, "without return_grad")
    check(got, want, np.float32, "with return_grad")
    check(no_grad, np.asarray(got, np.float64), np.float32, "the two paths")
    check(ge, want_ge, np.float32, "g_embeddings")
    check(gw, want_gw, np.float32, "g_class_weights")
    for red in ("mean", "sum"):
        want_r = torch_value_and_grads(arcface_torch, e, y, w, **{**kw, "reduction": red})[0]
        check(fl.arcface_loss(e, y, w, **{**kw, "reduction": red}), want_r, np.float32, red, reduced=True)


def test_margin_switches_are_checked():
    e, y, w = sample(np.random.default_rng(8), 6, 3, 4)
    with pytest.raises(ValueError, match="easy_margin.*plain_margin"):
        fl.arcface_loss(e, y, w, easy_margin=True, plain_margin=True)
    for name in ("easy_margin", "plain_margin"):
        with pytest.raises(TypeError, match=name):
            fl.arcface_loss(e, y, w, **{name: "yes"})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hostile_rows(dtype):
    """Zero embedding, embedding along its class centre (theta = 0 exactly), opposite to it (theta = pi
    exactly), huge and tiny rows: the convention reference, finite gradients."""
    rng = np.random.default_rng(2)
    e, y, w = sample(rng, 12, 4, 6)
    y[1:4] = [0, 0, 1]
    w[0] = [0, 2, 0, 0, 0, 0]           # power-of-two axes: cos is exactly +-1 below, on any BLAS
    w[1] = [0, 0, 0, 0.25, 0, 0]
    e[0] = 0.0                          # F.normalize keeps it 0: cos = 0 for every class
    e[1] = [0, 0.5, 0, 0, 0, 0]         # theta = 0
    e[2] = [0, 1e4, 0, 0, 0, 0]         # theta = 0, other length
    e[3] = [0, 0, 0, -8, 0, 0]          # theta = pi
    e[4] *= 1e4
    e[5] *= -1e4
    e[6] *= 1e30
    e[7] *= 1e-30                       # below eps = 1e-12: divided by eps, not its norm
    w[2] *= 1e4
    e, w = e.astype(dtype), w.astype(dtype)
    for reduction in REDUCTIONS:
        want, want_ge, want_gw = torch_value_and_grads(arcface_torch, e, y, w, reduction=reduction)
        got, (ge, gw) = fl.arcface_loss(e, y, w, reduction=reduction, return_grad=True)
        assert np.all(np.isfinite(got)) and np.all(np.isfinite(ge)) and np.all(np.isfinite(gw))
        check(got, want, dtype, reduction, reduced=reduction != "none")
        # the e[7] row's gradient is ~1e12-scaled (d/de of e/|e| at |e| = 1e-30 * eps-clamped): its
        # entries are differences of terms of the row's size, so its absolute floor scales with the row
        scale_e = np.abs(want_ge).max(axis=1, keepdims=True)
        check(ge, want_ge, dtype, "g_embeddings " + reduction, cancel=scale_e)
        check(gw, want_gw, dtype, "g_class_weights " + reduction)


def test_nan_and_inf_propagate_like_torch():
    e, y, w = sample(np.random.default_rng(7), 5, 3, 4)
    e[1, 0], e[2, 1] = np.nan, np.inf
    want = torch_value_and_grads(arcface_torch, e, y, w, reduction="none")[0]
    got = fl.arcface_loss(e, y, w, reduction="none")
    np.testing.assert_array_equal(np.isnan(got), [False, True, True, False, False])
    check(got, want, np.float64, "nan rows")
    w[2, 0] = np.nan                    # a nan class centre reaches every row's log-sum-exp
    assert np.isnan(fl.arcface_loss(e, y, w, reduction="none")).all()


def test_theta_zero_gradient_convention():
    """Exactly cos = 1: theta has no derivative there (a cone, like a norm at 0); the angular term's
    gradient is taken as 0, as the shared reference's zero-gradient sqrt does (the literal formula's
    autograd gives nan)."""
    e = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, -0.5], [1.0, 1.0, 0.0]])
    w = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    y = np.array([0, 1, 2])
    for plain in (False, True):
        for reduction in REDUCTIONS:
            kw = {"margin": 0.3, "reduction": reduction, "plain_margin": plain}
            want, want_ge, want_gw = torch_value_and_grads(arcface_torch, e, y, w, **kw)
            got, (ge, gw) = fl.arcface_loss(e, y, w, return_grad=True, **kw)
            check(got, want, np.float64, reduction)
            check(ge, want_ge, np.float64, "ge " + reduction)
            check(gw, want_gw, np.float64, "gw " + reduction)
            if plain:
                lit = torch_value_and_grads(literal, e, y, w, margin=0.3, reduction=reduction)
                check(got, lit[0], np.float64, "literal value " + reduction)
                assert np.isnan(lit[1]).any()
    # D = 1: cos is +-1, the target logit is +-scale cos(m) (plain), or -scale (1 + mm) at cos = -1 (fallback)
    e1, w1, y1 = np.array([[2.0], [-1.0], [0.5]]), np.array([[1.0], [-3.0]]), np.array([0, 1, 1])
    z_other = 2.0 * np.array([-1.0, -1.0, 1.0])
    for plain, z_y in ((True, 2.0 * np.array([1.0, 1.0, -1.0]) * math.cos(0.3)),
                       (False, 2.0 * np.array([math.cos(0.3), math.cos(0.3), -1.0 - math.sin(math.pi - 0.3) * 0.3]))):
        rows = fl.arcface_loss(e1, y1, w1, margin=0.3, scale=2.0, reduction="none", plain_margin=plain)
        check(rows, np.logaddexp(z_y, z_other) - z_y, np.float64, f"D = 1, plain_margin={plain}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_class_and_empty(dtype):
    e, y, w = sample(np.random.default_rng(3), 7, 1, 5, dtype)
    got, (ge, gw) = fl.arcface_loss(e, y, w, reduction="none", return_grad=True)
    np.testing.assert_array_equal(got, np.zeros(7, dtype))        # C = 1: softmax of one logit
    np.testing.assert_array_equal(ge, 0)
    np.testing.assert_array_equal(gw, 0)
    e0, y0 = e[:0], y[:0]
    assert np.isnan(fl.arcface_loss(e0, y0, w))
    assert fl.arcface_loss(e0, y0, w, reduction="sum") == 0.0
    assert fl.arcface_loss(e0, y0, w, reduction="none").shape == (0,)
    v, (ge, gw) = fl.arcface_loss(e0, y0, w, reduction="sum", return_grad=True)
    assert v == 0.0 and ge.shape == (0, 5) and gw.shape == w.shape and not gw.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_identical_across_threads_and_inputs_unmodified(dtype):
    """4000 x 300 similarities (1.2M, several row blocks and 64-row chunks)."""
    e, y, w = sample(np.random.default_rng(4), 4000, 300, 32, dtype)
    y = y.astype(np.int32)
    copies = [a.copy() for a in (e, y, w)]
    results = []
    for nt in (1, 2, 3):
        v, (ge, gw) = fl.arcface_loss(e, y, w, num_threads=nt, return_grad=True)
        s = fl.arcface_loss(e, y, w, reduction="sum", num_threads=nt)
        results.append((v.tobytes(), s.tobytes(), ge.tobytes(), gw.tobytes()))
    assert results[0] == results[1] == results[2]
    for a, c in zip((e, y, w), copies):
        np.testing.assert_array_equal(a, c)


def test_out_float32_and_int_label_dtypes():
    e, y, w = sample(np.random.default_rng(5), 50, 9, 4, np.float32)
    want = torch_value_and_grads(insightface, e, y, w, reduction="none", scale=8.0)[0]
    out = np.empty(50, np.float32)
    assert fl.arcface_loss(e, y, w, scale=8.0, reduction="none", out=out) is out
    check(out, want, np.float32, "out")
    for ldt in (np.int8, np.uint8, np.int16, np.int32, np.int64):
        check(fl.arcface_loss(e, y.astype(ldt), w, scale=8.0, reduction="none"), want, np.float32, str(ldt))


def test_errors():
    e, y, w = sample(np.random.default_rng(6), 10, 4, 3)
    bad = y.copy()
    bad[6] = 4
    with pytest.raises(IndexError, match=r"labels.*4.*position 6"):
        fl.arcface_loss(e, bad, w)
    bad[6], bad[8] = 1, -1
    with pytest.raises(IndexError, match=r"labels.*-1.*position 8"):
        fl.arcface_loss(e, bad, w, return_grad=True)
    with pytest.raises(IndexError, match="labels"):                 # C = 0: every label is out of range
        fl.arcface_loss(e, y, w[:0])
    with pytest.raises(ValueError, match="labels"):
        fl.arcface_loss(e, y[:9], w)
    with pytest.raises(ValueError, match="class_weights"):
        fl.arcface_loss(e, y, w[:, :2])
    with pytest.raises(ValueError, match="class_weights"):
        fl.arcface_loss(e, y, w[0])
    with pytest.raises(ValueError, match="embeddings"):
        fl.arcface_loss(e[0], y[:1], w)
    for kw, name in (({"scale": 0.0}, "scale"), ({"scale": -1.0}, "scale"), ({"scale": math.inf}, "scale"),
                     ({"margin": math.nan}, "margin"), ({"reduction": "batchmean"}, "reduction")):
        with pytest.raises(ValueError, match=name):
            fl.arcface_loss(e, y, w, **kw)
    with pytest.raises(TypeError, match="margin"):
        fl.arcface_loss(e, y, w, margin="0.5")
    with pytest.raises(TypeError):
        fl.arcface_loss(np.array([["a"]]), y[:1], w[:, :1])
    with pytest.raises(TypeError, match="labels"):
        fl.arcface_loss(e, y.astype(np.float64), w)
    with pytest.raises(ValueError, match="out"):
        fl.arcface_loss(e, y, w, reduction="none", out=np.empty(9))
