"""binary family: binary_cross_entropy, sigmoid_focal_loss, hinge_loss, kl_div.

References are independent float64 torch computations (torch.nn.functional, torchvision's focal formula
written in torch ops, the SPEC section 6 hinge in torch ops) -- never fastloss itself.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fastloss._reference import REFERENCES
from fastloss._reference.binary import torch_hinge_loss, torchvision_sigmoid_focal_loss
from fl_testing import assert_close_spec

LOSSES = ["binary_cross_entropy", "sigmoid_focal_loss", "hinge_loss", "kl_div"]
REDUCTIONS = {"binary_cross_entropy": ["none", "mean", "sum"], "sigmoid_focal_loss": ["none", "mean", "sum"],
              "hinge_loss": ["none", "mean", "sum"], "kl_div": ["none", "mean", "sum", "batchmean"]}
DTYPES = [np.float32, np.float64]

pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # torch's kl_div mean warning


def _t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def _torch_value_grad(name, x, y, **kw):
    """Float64 torch value of the reference and d(value or its sum)/dx through autograd."""
    xt = _t64(x, grad=True)
    spec_fn = {"binary_cross_entropy": F.binary_cross_entropy, "sigmoid_focal_loss": torchvision_sigmoid_focal_loss,
               "hinge_loss": torch_hinge_loss, "kl_div": F.kl_div}[name]
    kw = {k: (_t64(v_) if isinstance(v_, np.ndarray) else v_) for k, v_ in kw.items()}
    v = spec_fn(xt, _t64(y), **kw)
    (g,) = torch.autograd.grad(v.sum(), xt)
    return v.detach().numpy(), g.numpy()


def _check(got, ref, dtype, reduced, what=""):
    """SPEC §4 against the float64 reference (conftest.assert_close_spec)."""
    assert_close_spec(got, ref, dtype, reduced=reduced, what=what)


def _sample(name, dtype, n=3000, seed=0):
    args, kw = REFERENCES[name].sample(np.random.default_rng(seed), n, dtype)
    return args[0], args[1], kw


# ------------------------------------------------------------------ values and gradients vs torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_value_and_grad_match_torch(name, dtype):
    x, y, kw = _sample(name, dtype)
    for reduction in REDUCTIONS[name]:
        got, g = getattr(fl, name)(x, y, reduction=reduction, return_grad=True, **kw)
        ref, gref = _torch_value_grad(name, x, y, reduction=reduction, **kw)
        assert g.dtype == dtype and g.shape == x.shape
        if reduction == "none":
            assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == x.shape
        else:
            assert isinstance(got, dtype) and np.ndim(got) == 0
        _check(got, ref, dtype, reduction != "none")
        _check(g, gref, dtype, False)


def test_default_reductions_mirror_references():
    x, y, _ = _sample("sigmoid_focal_loss", np.float64, n=10)
    assert fl.sigmoid_focal_loss(x, y).shape == x.shape          # torchvision: reduction="none"
    for name in ["binary_cross_entropy", "hinge_loss", "kl_div"]:
        x, y, _ = _sample(name, np.float64, n=16)
        assert np.ndim(getattr(fl, name)(x, y)) == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_is_filled_and_returned(dtype):
    for name in LOSSES:
        x, y, kw = _sample(name, dtype, n=64)
        out = np.full(x.shape, 7, dtype=dtype)
        res = getattr(fl, name)(x, y, reduction="none", out=out, **kw)
        assert res is out
        ref, _ = _torch_value_grad(name, x, y, reduction="none", **kw)
        _check(out, ref, dtype, False)
        with pytest.raises(ValueError, match="out"):
            getattr(fl, name)(x, y, reduction="none", out=np.empty(x.size + 1, dtype), **kw)
        with pytest.raises(ValueError, match="out"):
            getattr(fl, name)(x, y, reduction="none", out=np.empty(x.shape, np.float16), **kw)


# ------------------------------------------------------------------ per-loss semantics
@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_probabilities_exactly_0_and_1(dtype):
    # torch clamps the logs at -100 and its backward divides by max((1 - p) p, 1e-12)
    p = np.array([0, 1, 0, 1, 0, 1, 0.5], dtype=dtype)
    y = np.array([0, 1, 1, 0, 0.3, 0.7, 1], dtype=dtype)
    for reduction in ["none", "sum", "mean"]:
        got, g = fl.binary_cross_entropy(p, y, reduction=reduction, return_grad=True)
        ref, gref = _torch_value_grad("binary_cross_entropy", p, y, reduction=reduction)
        _check(got, ref, dtype, reduction != "none")
        _check(g, gref, dtype, False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_weight_broadcasts_like_torch(dtype):
    rng = np.random.default_rng(1)
    x = rng.uniform(0.01, 0.99, (40, 6)).astype(dtype)
    y = rng.random((40, 6)).astype(dtype)
    for w in [np.float64(0.7), rng.random(6), rng.random((40, 1)), rng.random((40, 6)), rng.random((1, 6))]:
        got, g = fl.binary_cross_entropy(x, y, weight=w, reduction="sum", return_grad=True)
        ref, gref = _torch_value_grad("binary_cross_entropy", x, y, reduction="sum", weight=np.asarray(w))
        _check(got, ref, dtype, True)
        _check(g, gref, dtype, False)
    with pytest.raises(ValueError, match="weight"):
        fl.binary_cross_entropy(x, y, weight=np.ones(5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2), (-1.0, 2), (0.6, 0), (0.25, 1.5), (0.9, 1), (-1, 3.0)])
def test_focal_parameters(dtype, alpha, gamma):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(2000) * 2).astype(dtype)
    t = rng.random(2000).astype(dtype)  # soft targets too
    t[:1000] = t[:1000] > 0.5
    for reduction in ["none", "mean"]:
        got, g = fl.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction, return_grad=True)
        ref, gref = _torch_value_grad("sigmoid_focal_loss", x, t, alpha=alpha, gamma=gamma, reduction=reduction)
        _check(got, ref, dtype, reduction != "none")
        _check(g, gref, dtype, False)


def test_focal_gamma0_alpha_disabled_is_bce_with_logits():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal(500) * 3, (rng.random(500) > 0.5).astype(np.float64)
    got = fl.sigmoid_focal_loss(x, t, alpha=-1, gamma=0)
    # the NumPy float64 stable form (SPEC §4) is the reference: torch's own BCE-with-logits is only good
    # to ~1e-11 here (its log-sigmoid path loses digits for x ~ -9: relative 2e-12 at index 337)
    _check(got, np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))), np.float64, False)


def _stable_focal_torch(x, t, alpha=0.25, gamma=2):
    """The focal loss with 1 - p_t formed without cancellation, in float64 torch (for large |x|, where
    torchvision's literal 1 - p_t rounds to 0 or loses digits)."""
    x, t = _t64(x, grad=True), _t64(t)
    q = torch.sigmoid(x) * (1 - t) + torch.sigmoid(-x) * t
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    v = (alpha * t + (1 - alpha) * (1 - t)) * ce * q ** gamma
    (g,) = torch.autograd.grad(v.sum(), x)
    return v.detach().numpy(), g.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_large_logits_stable(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4, 30, -30, 15, -15, 60, -60, 89, -89], dtype=dtype)
    t = np.array([1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1], dtype=dtype)
    got, g = fl.sigmoid_focal_loss(x, t, return_grad=True)
    ref, gref = _stable_focal_torch(x, t)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(g))
    _check(got, ref, dtype, False)
    _check(g, gref, dtype, False)
    # the stable reference is torchvision's formula: the literal one agrees with it to float32 precision
    # (it cancels for large |x|, so not to float64's)
    tv, _ = _torch_value_grad("sigmoid_focal_loss", x, t)
    assert_close_spec(tv, ref, np.float32, reduced=False, result_type=False, what="the two references")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 3, 255, 256, 257, 1031])
@pytest.mark.parametrize("gamma", [2, 1.5])
def test_focal_segment_halves(n, gamma, dtype):
    """The kernel runs a full segment's (256 items) items k and 128 + k side by side (store_items) and a
    shorter one item by item: lengths around one and several segments, logits up to the exp's range edges (float32 -87.5 / -104, float64 -708.5 / -745)
    in both signs, hard and soft targets, loss and gradient, against the stable float64 reference."""
    rng = np.random.default_rng(n)
    edges = np.array([0.0, 0.3, 3.0, 20.0, 87.3, 87.6, 90.0, 103.9, 104.1, 708.4, 708.6, 720.0, 746.0, 1e4])
    x = (edges[rng.integers(0, len(edges), n)] * rng.choice([-1.0, 1.0], n)).astype(dtype)
    t = np.where(rng.random(n) < 0.7, rng.integers(0, 2, n), rng.random(n)).astype(dtype)
    got, g = fl.sigmoid_focal_loss(x, t, gamma=gamma, return_grad=True)
    ref, gref = _stable_focal_torch(x, t, gamma=gamma)
    _check(got, ref, dtype, False)
    _check(g, gref, dtype, False)
    got_mean = fl.sigmoid_focal_loss(x, t, gamma=gamma, reduction="mean")
    _check(got_mean, ref.mean(), dtype, True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_inf_nan_like_torchvision(dtype):
    x = np.array([np.inf, -np.inf, np.inf, -np.inf, np.nan, 1.0, 2.0], dtype=dtype)
    t = np.array([1, 1, 0, 0, 1, np.nan, 0], dtype=dtype)
    got = fl.sigmoid_focal_loss(x, t)
    ref, _ = _torch_value_grad("sigmoid_focal_loss", x, t)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    _check(got[~np.isnan(ref)], ref[~np.isnan(ref)], dtype, False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hinge_margin_squared_and_inf(dtype):
    rng = np.random.default_rng(4)
    s = (rng.standard_normal(1000) * 2).astype(dtype)
    s[:4] = [np.inf, -np.inf, 0.5, -0.5]     # 0.5 * y = margin 0.5: exactly at the hinge
    y = np.where(rng.random(1000) > 0.5, 1, -1).astype(dtype)
    y[:4] = [1, 1, 1, -1]
    for margin, squared in [(1.0, False), (0.5, True), (0.5, False), (2.0, True)]:
        got, g = fl.hinge_loss(s, y, margin=margin, squared=squared, reduction="none", return_grad=True)
        ref, gref = _torch_value_grad("hinge_loss", s, y, margin=margin, squared=squared, reduction="none")
        np.testing.assert_array_equal(got[:2], ref[:2])
        _check(got[2:], ref[2:], dtype, False)
        _check(g[2:], gref[2:], dtype, False)
    # integer targets are accepted (the reference on the same values)
    ref, _ = _torch_value_grad("hinge_loss", s[4:], y[4:], reduction="none")
    _check(fl.hinge_loss(s[4:], y[4:].astype(np.int8), reduction="none"), ref, dtype, False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kl_log_target_batchmean_and_zero_targets(dtype):
    x, y, _ = _sample("kl_div", dtype, n=800)
    y[0, :3] = 0
    for log_target in [False, True]:
        tgt = np.log(np.maximum(y, 1e-30)).astype(dtype) if log_target else y
        for reduction in REDUCTIONS["kl_div"]:
            got, g = fl.kl_div(x, tgt, reduction=reduction, log_target=log_target, return_grad=True)
            ref, gref = _torch_value_grad("kl_div", x, tgt, reduction=reduction, log_target=log_target)
            _check(got, ref, dtype, reduction != "none")
            _check(g, gref, dtype, False)
    # target 0: contributes 0 (xlogy), even next to -inf log-probabilities of other entries... but 0 * -inf
    # input is nan in torch; fastloss matches
    xi = np.array([-np.inf, -1.0, np.nan], dtype=dtype)
    ti = np.array([0.0, 0.0, 0.5], dtype=dtype)
    ref = F.kl_div(_t64(xi), _t64(ti), reduction="none").numpy()
    got = fl.kl_div(xi, ti, reduction="none")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert got[1] == 0
    # 0-d batchmean is the sum (torch divides only when input.dim() != 0)
    got0 = fl.kl_div(np.array(-1.0, dtype), np.array(0.5, dtype), reduction="batchmean")
    ref0 = F.kl_div(_t64(-1.0), _t64(0.5), reduction="batchmean").item()
    _check(got0, ref0, dtype, True)


def test_kl_mean_does_not_warn():
    import warnings
    x, y, _ = _sample("kl_div", np.float64, n=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fl.kl_div(x, y)


# ------------------------------------------------------------------ empty, layouts, inputs untouched
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0)])
def test_empty(name, shape):
    x = np.zeros(shape, np.float32)
    y = np.ones(shape, np.float32)
    f = getattr(fl, name)
    assert f(x, y, reduction="none").shape == shape
    assert f(x, y, reduction="sum") == 0
    assert np.isnan(f(x, y, reduction="mean"))
    v, g = f(x, y, reduction="mean", return_grad=True)
    assert g.shape == shape
    if name == "kl_div":
        ref = F.kl_div(torch.zeros(shape), torch.ones(shape), reduction="batchmean").item()
        got = f(x, y, reduction="batchmean")
        assert (np.isnan(got) and np.isnan(ref)) or got == ref


@pytest.mark.parametrize("name", LOSSES)
def test_layouts_torch_tensors_and_inputs_unmodified(name):
    x, y, kw = _sample(name, np.float64, n=600)
    x2, y2 = x.reshape(20, -1), y.reshape(20, -1)
    ref = getattr(fl, name)(np.ascontiguousarray(x2), np.ascontiguousarray(y2), reduction="none", **kw)
    _check(ref, _torch_value_grad(name, x2, y2, reduction="none", **kw)[0], np.float64, False)
    xf, yf = np.asfortranarray(x2), np.asfortranarray(y2)
    xs = np.repeat(x2, 2, axis=1)[:, ::2]
    xr = x2.copy()
    xr.flags.writeable = False
    keep = [a.copy() for a in (xf, yf, xs, xr)]
    for xi, yi in [(xf, yf), (xs, y2), (xr, y2), (torch.from_numpy(x2), torch.from_numpy(y2))]:
        got, g = getattr(fl, name)(xi, yi, reduction="none", return_grad=True, **kw)
        np.testing.assert_array_equal(got, ref)
    for a, b in zip((xf, yf, xs, xr), keep):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ determinism
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_reductions_bitwise_identical_across_threads(name, dtype):
    x, y, kw = _sample(name, dtype, n=240_000, seed=5)
    for reduction in ["mean", "sum"]:
        outs = [getattr(fl, name)(x, y, reduction=reduction, num_threads=nt, return_grad=True, **kw)
                for nt in (1, 2, 3)]
        for v, g in outs[1:]:
            assert v.tobytes() == outs[0][0].tobytes()
            assert g.tobytes() == outs[0][1].tobytes()


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", LOSSES)
def test_errors(name):
    f = getattr(fl, name)
    x, y, _ = _sample(name, np.float64, n=12)
    tname = "targets" if name == "sigmoid_focal_loss" else "target"
    with pytest.raises(ValueError, match=tname):
        f(x, y[..., :-1])          # (shapes that do not broadcast: kl_div broadcasts, as torch)
    with pytest.raises(ValueError, match="reduction"):
        f(x, y, reduction="avg")
    with pytest.raises(TypeError):
        f("abc", y)
    with pytest.raises(TypeError):
        f(x, np.array(["a"] * y.size))
    with pytest.raises(TypeError):
        f(np.arange(y.size), y)        # integer predictions are rejected, as torch does
    with pytest.raises(ValueError, match="num_threads"):
        f(x, y, num_threads=0)


def test_hinge_bad_target_names_position_and_value():
    s = np.zeros((3, 4))
    y = np.ones((3, 4))
    y[1, 2] = 0
    y[2, 0] = 5
    with pytest.raises(ValueError, match=r"target.*0\.0.*\(1, 2\)"):
        fl.hinge_loss(s, y)
    y = np.ones(300_000)
    y[123_457] = np.nan
    with pytest.raises(ValueError, match=r"nan.*123457"):
        fl.hinge_loss(np.zeros(300_000), y, num_threads=2)


def test_bce_out_of_range_names_argument_position_and_value():
    x = np.full(10, 0.5)
    y = np.full(10, 0.5)
    x[3] = 1.5
    with pytest.raises(ValueError, match=r"input.*1\.5.*3"):
        fl.binary_cross_entropy(x, y)
    x[3] = 0.5
    y[7] = -0.25
    with pytest.raises(ValueError, match=r"target.*-0\.25.*7"):
        fl.binary_cross_entropy(x, y)
    x[1] = np.nan
    with pytest.raises(ValueError, match=r"input.*nan.*1"):
        fl.binary_cross_entropy(x, y)


def test_parameter_errors():
    x, y, _ = _sample("sigmoid_focal_loss", np.float64, n=8)
    with pytest.raises(TypeError, match="alpha"):
        fl.sigmoid_focal_loss(x, y, alpha="a")
    with pytest.raises(TypeError, match="gamma"):
        fl.sigmoid_focal_loss(x, y, gamma=None)
    with pytest.raises(TypeError, match="margin"):
        fl.hinge_loss(x, np.sign(x), margin="1")
    with pytest.raises(ValueError, match="size_average"):
        fl.kl_div(x, y, size_average=True)
    with pytest.raises(ValueError, match="size_average"):
        fl.binary_cross_entropy(np.abs(x) / 10, y, reduce=False)
