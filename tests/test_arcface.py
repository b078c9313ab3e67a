"""arcface_loss against float64 torch references (no torch function exists; the formula in torch ops).

Two independent references:
* ``literal``: the textbook formula, theta = acos(cos) and the target logit cos(theta + m), in torch ops
  (float64), differentiated by torch.autograd -- used where theta is away from 0 and pi.
* the registry's ``arcface_torch`` (cos m cos - sin m sqrt(max(1 - cos^2, 0)) with a zero-gradient sqrt
  at 0, fastloss's documented convention) -- used for the hostile inputs where acos' is infinite.
The generic registry tests in test_metric.py also run on arcface_loss (reductions, out=, layouts,
torch tensors, empty batch, thread determinism on the registry sampler).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fastloss.registry.metric import arcface_torch
from fl_testing import assert_close_spec

REDUCTIONS = ["none", "mean", "sum"]


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale, margin", [(64.0, 0.5), (10.0, 2.5), (30.0, -0.2)])
def test_matches_literal_formula(dtype, reduction, scale, margin, request):
    """Value and both gradients vs torch.autograd of the literal formula; margin=2.5 puts most
    targets past theta + m > pi (the plain formula, no fallback)."""
    if (dtype, reduction, scale, margin) == (np.float64, "none", 30.0, -0.2):
        request.applymarker(pytest.mark.xfail(strict=False, reason=(
            "issue 14: float64 cross-entropy rows with a small loss formed as lse - z_y at the logits' "
            "magnitude: row 197 (loss 2.5e-4) is 6.9e-12 relative off")))
    e, y, w = sample(np.random.default_rng(0), 300, 23, 12, dtype)
    kw = dict(scale=scale, margin=margin, reduction=reduction)
    want, want_ge, want_gw = torch_value_and_grads(literal, e, y, w, **kw)
    got, (ge, gw) = fl.arcface_loss(e, y, w, return_grad=True, **kw)
    assert np.asarray(got).dtype == dtype and ge.dtype == dtype and gw.dtype == dtype
    assert ge.shape == e.shape and gw.shape == w.shape
    check(got, want, dtype, "value", reduced=reduction != "none")
    check(fl.arcface_loss(e, y, w, **kw), want, dtype, "value without grad", reduced=reduction != "none")
    # d/de of e / |e| projects out the row's direction: an entry is a difference of terms of the size
    # of the row's largest entries (both sides round them), so its absolute floor scales with the row
    check(ge, want_ge, dtype, "g_embeddings", cancel=np.abs(want_ge).max(axis=1, keepdims=True))
    check(gw, want_gw, dtype, "g_class_weights")


def test_defaults_and_past_pi_branch():
    """Defaults are scale=64, margin=0.5, mean; rows with theta + m > pi are really exercised."""
    rng = np.random.default_rng(1)
    e, y, w = sample(rng, 200, 5, 8)
    e[:50] = -w[y[:50]] + 0.05 * rng.standard_normal((50, 8))     # theta near pi
    want, _, _ = torch_value_and_grads(literal, e, y, w)
    check(fl.arcface_loss(e, y, w), want, np.float64, "defaults")
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    v = w / np.linalg.norm(w, axis=1, keepdims=True)
    assert (np.arccos(np.sum(u * v[y], axis=1)) + 0.5 > math.pi).sum() >= 40


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
    gradient is taken as 0, as the registry reference's zero-gradient sqrt does (the literal formula's
    autograd gives nan)."""
    e = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, -0.5], [1.0, 1.0, 0.0]])
    w = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    y = np.array([0, 1, 2])
    for reduction in REDUCTIONS:
        want, want_ge, want_gw = torch_value_and_grads(arcface_torch, e, y, w, margin=0.3, reduction=reduction)
        got, (ge, gw) = fl.arcface_loss(e, y, w, margin=0.3, reduction=reduction, return_grad=True)
        check(got, want, np.float64, reduction)
        check(ge, want_ge, np.float64, "ge " + reduction)
        check(gw, want_gw, np.float64, "gw " + reduction)
        lit = torch_value_and_grads(literal, e, y, w, margin=0.3, reduction=reduction)
        check(got, lit[0], np.float64, "literal value " + reduction)
        assert np.isnan(lit[1]).any()
    # D = 1: cos is +-1, the target logit is +-scale cos(m)
    e1, w1, y1 = np.array([[2.0], [-1.0], [0.5]]), np.array([[1.0], [-3.0]]), np.array([0, 1, 1])
    rows = fl.arcface_loss(e1, y1, w1, margin=0.3, scale=2.0, reduction="none")
    z_y = 2.0 * np.array([1.0, 1.0, -1.0]) * math.cos(0.3)
    z_other = 2.0 * np.array([-1.0, -1.0, 1.0])
    check(rows, np.logaddexp(z_y, z_other) - z_y, np.float64, "D = 1")


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
    want = torch_value_and_grads(literal, e, y, w, reduction="none", scale=8.0)[0]
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
