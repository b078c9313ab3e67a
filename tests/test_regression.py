"""Regression family: every loss against an independent float64 reference (torch.nn.functional, or the
SPEC §6 formula in NumPy and in torch ops), gradients against torch.autograd, weights, hostile values,
determinism across thread counts, errors, and input handling.  Driven by fastloss._reference."""
import numpy as np
import pytest
import torch

import fastloss as fl
from fastloss._reference import REFERENCES
from fl_testing import assert_close_spec

SPECS = {name: s for name, s in REFERENCES.items() if s.family == "regression"}
NAMES = sorted(SPECS)
REDUCTIONS = ["mean", "sum", "none"]

# parameter variants per loss (the default call is always included)
VARIANTS = {
    "huber_loss": [{"delta": 0.3}, {"delta": 2.5}],
    "smooth_l1_loss": [{"beta": 0.5}, {"beta": 0.0}],
    "poisson_nll_loss": [{"log_input": False}, {"full": True}, {"log_input": False, "full": True, "eps": 1e-3}],
    "gaussian_nll_loss": [{"full": True}, {"eps": 0.3}],
    "quantile_loss": [{"q": 0.1}, {"q": 0.9}],
    "mape_loss": [{"eps": 0.7}],
}
CASES = [(n, {}) for n in NAMES] + [(n, kw) for n in NAMES for kw in VARIANTS.get(n, [])]
CASE_IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for n, kw in CASES]


def sample(name, kw, n=600, dtype=np.float64, seed=0, shape=(20, 30)):
    """A valid call of the loss: (args, kwargs), arrays shaped like `shape` (KL: rows of 8 latents)."""
    rng = np.random.default_rng(seed)
    args, extra = SPECS[name].sample(rng, n, dtype)
    args = list(args)
    if name != "gaussian_kl_loss":
        args = [a.reshape(shape) for a in args]
    if name == "poisson_nll_loss" and not kw.get("log_input", True):
        args[0] = np.abs(args[0])                                 # a rate, not a log-rate
    return args, {**extra, **kw}


def reference(name, args, kw, reduction, weight=None):
    """float64 reference value: NumPy formula when there is one, else torch; a weight multiplies the
    per-item loss and the mean divides by sum(w) (huber_loss: by the count, as torch)."""
    spec = SPECS[name]
    ref = spec.numpy_ref or (lambda *a, **k: spec.torch_ref(*a, **k).numpy())
    args64 = [np.asarray(a, dtype=np.float64) for a in args]
    if weight is None:
        return np.asarray(ref(*args64, reduction=reduction, **kw))
    per = ref(*args64, reduction="none", **kw) * weight
    return weighted_reduce(name, per, weight, reduction, np)


def weighted_reduce(name, per, weight, reduction, m):
    if reduction == "none":
        return per
    if reduction == "sum" or name == "huber_loss":
        return per.sum() if reduction == "sum" else per.sum() / per.numel() if m is torch else per.sum() / per.size
    wsum = (m.ones_like(per) * weight).sum()
    return per.sum() / wsum


def torch_grads(name, args, kw, reduction, weight=None):
    """d(result)/d(args[i]) for i in grad_argnums, by torch.autograd on the float64 torch reference."""
    spec = SPECS[name]
    ts = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=i in spec.grad_argnums)
          for i, a in enumerate(args)]
    if weight is None:
        val = spec.torch_ref(*ts, reduction=reduction, **kw)
    else:
        val = weighted_reduce(name, spec.torch_ref(*ts, reduction="none", **kw) * torch.as_tensor(weight),
                              torch.as_tensor(weight), reduction, torch)
    grads = torch.autograd.grad(val.sum(), [ts[i] for i in spec.grad_argnums])
    return [g.numpy() for g in grads]


def fl_grads(name, g):
    return list(g) if isinstance(g, tuple) else [g]


# =====================================================================================================
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_value_matches_reference(name, kw, dtype, reduction):
    args, kw = sample(name, kw, dtype=dtype)
    copies = [a.copy() for a in args]
    got = getattr(fl, name)(*args, reduction=reduction, **kw)
    want = reference(name, args, kw, reduction)
    cancel = None
    if reduction != "none" and dtype == np.float32 and name in ("poisson_nll_loss",):
        # exp(x) - y x changes sign: the sum cancels terms of the size of sum |loss_i|, each rounded to
        # float32 before the (float64) accumulation
        per = np.abs(reference(name, args, kw, "none"))
        cancel = per.sum() if reduction == "sum" else per.mean()
    assert_close_spec(got, want, dtype, reduced=reduction != "none", cancel=cancel)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)                         # inputs unmodified


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].numpy_ref is not None])
def test_numpy_and_torch_formulas_agree(name):
    """The two references (NumPy, torch) say the same thing."""
    args, kw = sample(name, {})
    for r in REDUCTIONS:
        assert_close_spec(SPECS[name].torch_ref(*args, reduction=r, **kw).numpy(),
                          SPECS[name].numpy_ref(*args, reduction=r, **kw), np.float64, result_type=False, what=r)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_grad_matches_autograd(name, kw, dtype, reduction):
    args, kw = sample(name, kw, dtype=dtype)
    val, g = getattr(fl, name)(*args, reduction=reduction, return_grad=True, **kw)
    assert_close_spec(val, reference(name, args, kw, reduction), dtype, reduced=reduction != "none")
    got = fl_grads(name, g)
    want = torch_grads(name, args, kw, reduction)
    assert len(got) == len(want)
    for gg, ww, i in zip(got, want, SPECS[name].grad_argnums):
        assert gg.shape == np.shape(args[i])
        assert_close_spec(gg, ww, dtype, reduced=False, what=f"grad {i}")


WEIGHT_SHAPES = {"full": (20, 30), "last-axis": (30,), "rows": (20, 1), "scalar": ()}


@pytest.mark.parametrize("wshape", list(WEIGHT_SHAPES))
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name, variant", CASES, ids=CASE_IDS)
def test_weight(name, variant, reduction, wshape):
    """Every case (the parameter variants too: Poisson's full=True term is added in a pass of its own,
    weighted there) with a weight of each shape, against the float64 reference and torch's gradients."""
    args, kw = sample(name, variant)
    rng = np.random.default_rng(5)
    shape = WEIGHT_SHAPES[wshape]
    if name == "gaussian_kl_loss":                                  # a weight per row (batch shape (75,))
        shape = {"full": (75,), "last-axis": (75,), "rows": (75,), "scalar": ()}[wshape]
    w = rng.random(shape) + 0.1
    val, g = getattr(fl, name)(*args, reduction=reduction, weight=w, return_grad=True, **kw)
    want = reference(name, args, kw, reduction, weight=w)
    assert_close_spec(val, want, np.float64)
    cancel = None
    if name == "smape_loss":
        # x, y of opposite signs: d/dx 2|y - x| / (|x| + |y|) = 0 exactly, as the difference of two terms
        # of size 2 w / (|x| + |y|): the reference's autograd leaves a rounding residue of that size
        wb = np.broadcast_to(w, args[0].shape)
        cancel = 2 * wb / (np.abs(args[0]) + np.abs(args[1])) / (wb.sum() if reduction == "mean" else 1.0)
    for gg, ww in zip(fl_grads(name, g), torch_grads(name, args, kw, reduction, weight=w)):
        assert_close_spec(gg, ww, np.float64, reduced=False, cancel=cancel)
    # without the gradient (another loop: weighted mean in one pass with the denominator)
    assert_close_spec(getattr(fl, name)(*args, reduction=reduction, weight=w, **kw), want, np.float64)


# =====================================================================================================
# Gaussian NLL: var broadcasting (torch's rules) and its gradient
VAR_CASES = [((6, 5), (6, 5)), ((6, 5), (6,)), ((6, 5), (6, 1)), ((4, 3, 5), (4, 1, 5)), ((4, 3, 5), (4, 3)),
             ((4, 3, 5), (4, 3, 1)), ((7,), ())]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("xshape,vshape", VAR_CASES)
def test_gaussian_nll_var_shapes(xshape, vshape, reduction):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(xshape), rng.standard_normal(xshape)
    v = np.asarray(rng.random(vshape) * 2)
    v.reshape(-1)[:1] = 1e-9                                          # one var below eps: clamped
    val, (gx, gv) = fl.gaussian_nll_loss(x, y, v, reduction=reduction, return_grad=True)
    tx, tv = torch.tensor(x, requires_grad=True), torch.tensor(v, requires_grad=True)
    ref = torch.nn.functional.gaussian_nll_loss(tx, torch.tensor(y), tv, reduction=reduction)
    assert_close_spec(val, ref, np.float64)
    rgx, rgv = torch.autograd.grad(ref.sum(), [tx, tv])
    assert_close_spec(gx, rgx, np.float64, reduced=False)
    assert_close_spec(gv, rgv, np.float64, reduced=False)


def test_gaussian_nll_float_var():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    val, (gx, gv) = fl.gaussian_nll_loss(x, y, 0.7, return_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.gaussian_nll_loss(tx, torch.tensor(y), 0.7)
    assert_close_spec(val, ref, np.float64)
    assert_close_spec(gx, torch.autograd.grad(ref, tx)[0], np.float64, reduced=False)
    assert gv is None


# =====================================================================================================
# Hostile values: elementwise results against the references (nan where they give nan)
HOSTILE = np.array([0.0, -0.0, 1e-30, 1e4, -1e4, 1e30, -1e30, np.inf, -np.inf, np.nan, 0.5, -0.3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=CASE_IDS)
def test_hostile_values(name, kw, dtype):
    xs, ys = np.meshgrid(HOSTILE, HOSTILE)
    x, y = xs.reshape(-1).astype(dtype), ys.reshape(-1).astype(dtype)
    if name == "msle_loss":
        x, y = np.where(x <= -1, 3.0, x).astype(dtype), np.where(y <= -1, 2.0, y).astype(dtype)
    if name == "mape_loss" and "eps" not in kw:
        y = np.where(y == 0, 2.0, y).astype(dtype)
    if name == "poisson_nll_loss" and not kw.get("log_input", True):
        x = np.abs(x)
    args = [x, y]
    if name == "gaussian_nll_loss":
        args.append(np.abs(y[::-1]).copy())
    if name == "gaussian_kl_loss":
        args = [a.reshape(-1, 1) for a in args]
    with np.errstate(all="ignore"):
        want = reference(name, args, kw, "none")
        got, g = getattr(fl, name)(*args, reduction="none", return_grad=True, **kw)
    # absolute slack scaled by the size of the terms that cancel (|x|, |y|, |y log y|): the loss
    # formulas subtract terms of that size, so a rounding of the inputs' precision shows there
    with np.errstate(all="ignore"):
        m = np.abs(x.astype(np.float64)) + np.abs(y.astype(np.float64))
        scale = np.nan_to_num(1 + m * (1 + np.abs(np.log1p(m))), nan=1.0, posinf=0.0)
    if name == "gaussian_kl_loss":
        scale = scale.reshape(want.shape)
    if dtype == np.float32:
        with np.errstate(all="ignore"):
            want = np.where(np.abs(want) > np.finfo(np.float32).max, np.sign(want) * np.inf, want)  # overflow
    assert_close_spec(got, want, dtype, reduced=False, cancel=scale)
    # gradients where torch's is finite and the inputs are moderate and not nan (at nan, torch's
    # autograd of the torch-ops formulas gives arbitrary subgradient mixes; the kernels give nan or 0)
    wg = torch_grads(name, args, kw, "none")
    if dtype == np.float64:
        for gg, ww in zip(fl_grads(name, g), wg):
            xr, yr = np.asarray(args[0]).reshape(ww.shape), np.asarray(args[1]).reshape(ww.shape)
            ok = np.isfinite(ww) & (np.abs(xr) < 1e20) & ~np.isnan(xr) & ~np.isnan(yr)
            assert_close_spec(gg[ok], ww[ok], np.float64, reduced=False)


def test_log_cosh_no_overflow():
    d = np.array([1e30, -1e30, 800.0, -800.0, 1e-30], dtype=np.float32)
    got, g = fl.log_cosh_loss(d, np.zeros_like(d), reduction="none", return_grad=True)
    # log cosh d = |d| + log1p(exp(-2|d|)) - log 2 (float64, exact for these d): no overflow of cosh
    want = np.abs(d.astype(np.float64)) + np.log1p(np.exp(-2 * np.abs(d.astype(np.float64)))) - np.log(2)
    want[-1] = 0.5 * 1e-30 ** 2                # d^2 / 2 below the float64 cancellation
    assert_close_spec(got, want, np.float32, reduced=False)
    np.testing.assert_array_equal(g[:4], [1, -1, 1, -1])


# =====================================================================================================
@pytest.mark.parametrize("name", NAMES)
def test_deterministic_across_threads(name):
    args, kw = sample(name, {}, n=240_000, dtype=np.float32, seed=3, shape=(2000, 120))
    res = [getattr(fl, name)(*args, num_threads=t, return_grad=True, **kw) for t in (1, 2, 3)]
    for v, g in res[1:]:
        assert v.tobytes() == res[0][0].tobytes()
        for a, b in zip(fl_grads(name, g), fl_grads(name, res[0][1])):
            assert a.tobytes() == b.tobytes()
    w = np.random.default_rng(0).random(args[0].shape[:-1] if name == "gaussian_kl_loss" else args[0].shape[-1:])
    vals = [getattr(fl, name)(*args, num_threads=t, weight=w, **kw) for t in (1, 2, 3)]
    assert vals[0].tobytes() == vals[1].tobytes() == vals[2].tobytes()


# =====================================================================================================
@pytest.mark.parametrize("name", NAMES)
def test_empty_and_out(name):
    args, kw = sample(name, {})
    empty = [np.zeros((0, 8)) for _ in args]
    f = getattr(fl, name)
    for reduction in REDUCTIONS:               # nan (mean over nothing), 0 (sum), an empty result
        assert_close_spec(f(*empty, reduction=reduction, **kw), reference(name, empty, kw, reduction),
                          np.float64, what=f"empty {reduction}")
    assert f(*empty, reduction="none", **kw).shape == ((0,) if name == "gaussian_kl_loss" else (0, 8))
    want = reference(name, args, kw, "none")
    out = np.full(want.shape, 7.0)
    assert f(*args, reduction="none", out=out, **kw) is out
    assert_close_spec(out, want, np.float64)
    with pytest.raises(ValueError, match="out"):
        f(*args, reduction="none", out=np.empty(want.shape, np.float32), **kw)


@pytest.mark.parametrize("name", NAMES)
def test_input_layouts(name):
    """Fortran-ordered, strided, read-only and torch inputs give the same result, unmodified."""
    args, kw = sample(name, {})
    f = getattr(fl, name)
    want = f(*args, **kw)
    assert_close_spec(want, reference(name, args, kw, "mean"), np.float64)
    fortran = [np.asfortranarray(a) for a in args]
    strided = [np.repeat(a, 2, axis=-1)[..., ::2] for a in args]
    ro = [a.copy() for a in args]
    for a in ro:
        a.flags.writeable = False
    tensors = [torch.tensor(a) for a in args]
    for variant in (fortran, strided, ro, tensors):
        assert f(*variant, **kw) == want           # bitwise: a layout changes no value (and is checked above)
    assert f(*[a.astype(np.float16) for a in args], **kw).dtype == np.float32


# =====================================================================================================
@pytest.mark.parametrize("name", NAMES)
def test_common_errors(name):
    args, kw = sample(name, {})
    f = getattr(fl, name)
    with pytest.raises(ValueError, match="reduction"):
        f(*args, reduction="avg", **kw)
    bad = list(args)
    bad[1] = bad[1][:, :-1] if bad[1].ndim > 1 else bad[1][:-1]
    with pytest.raises(ValueError, match="shape|size"):
        f(*bad, **kw)
    with pytest.raises(TypeError):
        f(np.array(["a", "b"]), *args[1:], **kw)
    with pytest.raises(TypeError):
        f(np.arange(4), *args[1:], **kw)                              # integer prediction
    with pytest.raises(ValueError, match="weight"):
        f(*args, weight=np.ones(7), **kw)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "poisson_nll_loss"])
def test_deprecated_params_rejected(name):
    args, _ = sample(name, {})
    with pytest.raises(ValueError, match="size_average"):
        getattr(fl, name)(*args, size_average=True)
    with pytest.raises(ValueError, match="reduce"):
        getattr(fl, name)(*args, reduce=False)


def test_parameter_errors():
    x = np.ones((3, 4))
    with pytest.raises(ValueError, match="delta"):
        fl.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="beta"):
        fl.smooth_l1_loss(x, x, beta=-1.0)
    for q in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(ValueError, match="q"):
            fl.quantile_loss(x, x, q=q)
    with pytest.raises(TypeError, match="q"):
        fl.quantile_loss(x, x, q="0.5")
    with pytest.raises(ValueError, match="eps"):
        fl.mape_loss(x, x, eps=0.0)


def test_domain_errors_name_argument_and_position():
    x = np.zeros((3, 4))
    y = np.ones((3, 4))
    with pytest.raises(ValueError, match=r"target is 0 at position \(1, 2\)"):
        fl.mape_loss(y, np.where(np.arange(12).reshape(3, 4) == 6, 0.0, 1.0))
    assert np.isfinite(fl.mape_loss(y, x, eps=1e-3))                  # eps: divide by max(|t|, eps)
    bx = x.copy()
    bx[2, 1] = -1.0
    with pytest.raises(ValueError, match=r"input has value -1.0 <= -1 at position \(2, 1\)"):
        fl.msle_loss(bx, y)
    with pytest.raises(ValueError, match=r"target .* at position \(2, 1\)"):
        fl.msle_loss(y, bx)
    v = np.ones((3, 4))
    v[1, 3] = -0.5
    with pytest.raises(ValueError, match=r"var has negative .* position \(1, 3\)"):
        fl.gaussian_nll_loss(x, y, v)
    with pytest.raises(ValueError, match="var"):
        fl.gaussian_nll_loss(x, y, -1.0)
    with pytest.raises(ValueError, match="var is of incorrect size"):
        fl.gaussian_nll_loss(x, y, np.ones((3, 5)))
    # the domain check still reports in a large multi-block, multi-thread call (first bad index)
    big = np.zeros(300_000)
    big[[250_001, 123_456]] = -2.0
    with pytest.raises(ValueError, match=r"position 123456"):
        fl.msle_loss(big, np.zeros_like(big), num_threads=3)


def test_gaussian_kl_shapes():
    rng = np.random.default_rng(4)
    mu, lv = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 3, 6))
    got = fl.gaussian_kl_loss(mu, lv, reduction="none")
    assert got.shape == (2, 3)
    assert_close_spec(got, -0.5 * (1 + lv - mu ** 2 - np.exp(lv)).sum(-1), np.float64)
    assert fl.gaussian_kl_loss(mu[0, 0], lv[0, 0], reduction="none").shape == ()
    with pytest.raises(ValueError, match="mu"):
        fl.gaussian_kl_loss(np.float64(1.0), np.float64(1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def _gauss_kl_exact(mu, lv):
    """(mu^2 + (e^lv - 1 - lv)) / 2 per latent, in 40-digit arithmetic (mpmath), rounded to float64."""
    import mpmath
    with mpmath.workdps(40):
        g = np.array([float(mpmath.expm1(mpmath.mpf(float(v))) - mpmath.mpf(float(v))) for v in lv.ravel()])
    return 0.5 * (mu.astype(np.float64) ** 2 + g.reshape(lv.shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_kl_near_the_prior(dtype):
    """A latent near the prior (lv -> 0, mu -> 0: posterior collapse, or a converged VAE) has a KL of
    ~ (mu^2 + lv^2 / 2) / 2, far below the terms 1 + lv and e^lv whose difference the textbook form
    -(1 + lv - mu^2 - e^lv) / 2 takes: in float32 that form keeps ~1e-7 of absolute precision per latent,
    a relative error of 1e-5 at lv ~ 0.06 and of 1e4 at lv ~ 1e-6.  Against an exact reference (mpmath),
    each batch's mean (one scale of lv per batch, both sides of the kernel's series cut at |lv| = 1/2) is
    held to SPEC's reduction rule, and the rows and d/dlv = expm1(lv) / 2 to the per-element rule."""
    import mpmath
    rng = np.random.default_rng(7)
    for scale in [1e-6, 1e-4, 1e-2, 0.0625, 0.3, 0.6]:
        mu = (rng.standard_normal((32, 16)) * scale * 0.1).astype(dtype)
        lv = (rng.standard_normal((32, 16)) * scale).astype(dtype)
        ref_rows = _gauss_kl_exact(mu, lv).sum(-1)
        assert_close_spec(fl.gaussian_kl_loss(mu, lv), ref_rows.mean(), dtype, what=f"mean, scale {scale}")
        assert_close_spec(fl.gaussian_kl_loss(mu, lv, reduction="sum"), ref_rows.sum(), dtype)
        got, (gm, gl) = fl.gaussian_kl_loss(mu, lv, reduction="none", return_grad=True)
        assert_close_spec(got, ref_rows, dtype, what=f"rows, scale {scale}")
        assert_close_spec(gm, mu.astype(np.float64), dtype, reduced=False)
        with mpmath.workdps(40):
            em1 = np.array([float(mpmath.expm1(mpmath.mpf(float(v)))) for v in lv.ravel()]).reshape(lv.shape)
        assert_close_spec(gl, 0.5 * em1, dtype, reduced=False, what=f"d/dlv, scale {scale}")
    # rows held to their own size (a loss of 1e-13 to 2e-6 / 1e-13 of itself, not to SPEC's absolute floors)
    lv = np.array([[1e-6, -2e-6, 3e-3, -0.01], [0.4, -0.45, 0.55, -0.7], [5.8e-12] * 4], dtype)
    ref_rows = _gauss_kl_exact(np.zeros_like(lv), lv).sum(-1)
    got = fl.gaussian_kl_loss(np.zeros_like(lv), lv, reduction="none").astype(np.float64)
    assert np.all(np.abs(got - ref_rows) <= (2e-6 if dtype == np.float32 else 1e-13) * ref_rows), (got, ref_rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_reused_buffers(dtype):
    """out= and grad_out= of at least 8 MiB are written with streaming stores by the cheap kinds
    (elementwise.pyx's STREAM_BYTES, src_c/fl_stream.h), a segment at a time, plain stores for the
    partial cache lines at both ends: huber's, at an odd offset (not 64-byte aligned), checked against
    the float64 formula and, bit for bit, against the fresh buffers' call, at 1 and 2 threads."""
    n = (8 << 20) // np.dtype(dtype).itemsize + 1001
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(n) * 2).astype(dtype)
    y = rng.standard_normal(n).astype(dtype)
    d = x.astype(np.float64) - y
    ref = np.where(np.abs(d) < 1, d * d / 2, np.abs(d) - 0.5)
    ref_g = np.clip(d, -1, 1) / n
    out = np.full(n + 3, -7.0, dtype)[1:n + 1]
    g = np.full(n + 3, -7.0, dtype)[2:n + 2]
    fresh = fl.huber_loss(x, y, reduction="none", num_threads=1)
    for T in (1, 2):
        res = fl.huber_loss(x, y, reduction="none", out=out, num_threads=T)
        assert res is out and out.tobytes() == fresh.tobytes()
        assert_close_spec(out, ref, dtype, reduced=False, what="streamed out")
        value, grad = fl.huber_loss(x, y, return_grad=True, grad_out=g, num_threads=T)
        assert grad is g
        assert_close_spec(g, ref_g, dtype, reduced=False, what="streamed grad_out")
        assert_close_spec(value, ref.mean(), dtype, what="mean")
        out2 = np.empty_like(x)
        value2, grad2 = fl.huber_loss(x, y, reduction="none", out=out2, return_grad=True, grad_out=g,
                                      num_threads=T)
        assert grad2 is g and value2 is out2 and out2.tobytes() == fresh.tobytes()
        assert_close_spec(g, ref_g * n, dtype, reduced=False, what="streamed grad_out (none)")


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"])
def test_float32_sums_without_conversion(name):
    """Unweighted float32 sums of the non-negative arithmetic kinds add their losses without a float ->
    double conversion at the AVX2 and AVX-512 levels (src_c/fl_lanes.h, fl_lanes_bits): the same lanes, so the same
    bits as a weight of ones, which converts each loss -- with runs of every tail length, subnormal
    losses, losses near float32's top (lanes >= 2^128: converted again), and inf / nan losses (which
    take the converting path too) -- and the float64 reference."""
    f = getattr(fl, name)
    rng = np.random.default_rng(11)
    n = 3 * 4096 + 77
    cases = {"normal": (rng.standard_normal(n) * 3).astype(np.float32)}
    tiny = np.zeros(n, np.float32)
    tiny[::3] = 1e-42                                  # subnormal losses (l1; the squares underflow to 0)
    tiny[1::3] = 3e-20
    cases["tiny"] = tiny
    top = np.full(n, 3e38, np.float32)                 # l1 / huber losses near FLT_MAX: lanes >= 2^128
    top[::7] = 0.5
    cases["top"] = top
    for bad in (np.inf, -np.inf, np.nan):
        b = (rng.standard_normal(n)).astype(np.float32)
        b[4096 + 5] = bad
        cases[f"bad {bad}"] = b
        b = (rng.standard_normal(n)).astype(np.float32)
        b[[n - 3, 4096 - 2]] = bad                     # in the run's tail (< 32 items, padded) and before it
        cases[f"bad {bad} in the tail"] = b
    y = np.zeros(n, np.float32)
    ones = np.ones(n, np.float32)
    for label, x in cases.items():
        for m in (n, 4096, 4095, 33, 32, 31, 1):
            got = f(x[:m], y[:m], reduction="sum")
            want = f(x[:m], y[:m], reduction="sum", weight=ones[:m])
            assert got.tobytes() == want.tobytes(), (label, m, got, want)
            for T in (2, 3):
                assert f(x[:m], y[:m], reduction="sum", num_threads=T).tobytes() == got.tobytes()
    # the lanes' float64 total (fl.partial's), where the order of the lanes' tree shows: lane 0 holds 1, lanes
    # 16 and 17 hold 2^-53 each -- fl_lanes_total's tree adds lane 16 to lane 0 first (1 + 2^-53 rounds to
    # 1), an order that paired 16 with 17 first would give 1 + 2^-52
    if name in ("l1_loss", "smooth_l1_loss", "huber_loss"):
        o = np.zeros(64, np.float32)
        o[0], o[16], o[17] = 1.0, 2.0 ** -53, 2.0 ** -53
        if name != "l1_loss":       # |d| < 1: half the square; d = 1 itself is the linear part's |d| - 0.5
            o[[16, 17]] = 2.0 ** -26
            o[0] = 2.0
        got = fl.partial(name, o, np.zeros_like(o)).total
        want = fl.partial(name, o, np.zeros_like(o), loss_weight=np.ones_like(o)).total
        assert got == want, (got, want)
    x = cases["normal"]
    for m in (n, 4095, 31):
        for reduction in ("sum", "mean"):
            want = float(REFERENCES[name].torch_ref(x[:m].astype(np.float64), y[:m].astype(np.float64),
                                                    reduction=reduction))
            assert_close_spec(f(x[:m], y[:m], reduction=reduction), want, np.float32)
