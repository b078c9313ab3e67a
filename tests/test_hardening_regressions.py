"""Regression tests for the bugs found by the hardening work of issue 9 (tests/test_fuzz.py, the sanitizer
build, the concurrency and memory tests), each named after its bug and checked against an independent
float64 reference."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fastloss._reference import REFERENCES
from fastloss._reference.binary import torchvision_sigmoid_focal_loss
from fastloss._reference.classification import distillation_ref
from fl_testing import DTYPE_IDS, DTYPES, assert_close_spec, to_torch64


# --------------------------------------------------------------------------------------------------------
# sigmoid_focal_loss: the gamma == 2 kernel (q * q) was never selected; the general one forms q^gamma as
# exp(gamma log q), nan for q = 1 - p_t < 0, i.e. for targets outside [0, 1], where torchvision's
# torch.pow(q, 2) is finite.
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sigmoid_focal_gamma2_targets_outside_unit_interval_not_nan(dtype):
    x = np.array([0.78, -0.09, 1.9, 0.0, -3.0, 4.0], dtype=dtype)
    t = np.array([2.0, 2.0, -1.0, 1.5, 3.0, -0.5], dtype=dtype)
    for reduction in ("none", "sum"):
        got, g = fl.sigmoid_focal_loss(x, t, reduction=reduction, return_grad=True)
        xt = to_torch64(x, requires_grad=True)
        ref = torchvision_sigmoid_focal_loss(xt, to_torch64(t), reduction=reduction)
        (rg,) = torch.autograd.grad(ref.sum(), xt)
        assert_close_spec(got, ref, dtype, what=reduction)
        assert_close_spec(g, rg, dtype, reduced=False, what=f"grad {reduction}")


# --------------------------------------------------------------------------------------------------------
# log-sum-exp cancellation: lse = m + log(s) rounds the log term away when the row max m is ~1e16
# (float64) or ~1e4 (float32), and the kernels subtracted logits from lse afterwards.  Fixed for
# distillation, cross-entropy with probability targets, and label smoothing (rows and spatial).
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shift", [1e16, -6.7e16, 3e5])
def test_distillation_lse_cancellation_huge_logits(dtype, shift):
    rng = np.random.default_rng(3)
    s = (rng.standard_normal((4, 10)) + shift).astype(dtype)
    t = (rng.standard_normal((4, 10)) * 2 - shift).astype(dtype)
    st = to_torch64(s, requires_grad=True)
    ref = distillation_ref(st, to_torch64(t), temperature=2.0, reduction="sum")
    (rg,) = torch.autograd.grad(ref, st)
    got, g = fl.distillation_loss(s, t, temperature=2.0, reduction="sum", return_grad=True)
    assert_close_spec(got, ref, dtype, reduced=True)
    assert_close_spec(g, rg, dtype, reduced=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("spatial", [False, True], ids=["rows", "spatial"])
def test_cross_entropy_label_smoothing_lse_cancellation(dtype, spatial):
    shape = (3, 10, 5) if spatial else (3, 10)
    x = np.full(shape, 1e16 if dtype == np.float64 else 3e5, dtype=dtype)
    x += np.random.default_rng(0).standard_normal(shape).astype(dtype) * (1e3 if dtype == np.float64 else 0.1)
    y = np.zeros((3, 5) if spatial else 3, dtype=np.int64) + 2
    w = np.linspace(0.5, 2, 10).astype(dtype)
    for weight in (None, w):
        got = fl.cross_entropy(x, y, weight=weight, label_smoothing=0.1, reduction="none")
        ref = F.cross_entropy(to_torch64(x), torch.from_numpy(y), label_smoothing=0.1, reduction="none",
                              weight=None if weight is None else to_torch64(weight))
        assert_close_spec(got, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_cross_entropy_probability_targets_lse_cancellation(dtype):
    x = np.full((2, 10), 1e16 if dtype == np.float64 else 3e5, dtype=dtype)
    x[:, 3] += 2 ** 20 if dtype == np.float64 else 0.5
    t = np.full((2, 10), 0.1, dtype=dtype)
    xt = to_torch64(x, requires_grad=True)
    ref = F.cross_entropy(xt, to_torch64(t), reduction="sum")
    (rg,) = torch.autograd.grad(ref, xt)
    got, g = fl.cross_entropy(x, t, reduction="sum", return_grad=True)
    assert_close_spec(got, ref, dtype, reduced=True)
    assert_close_spec(g, rg, dtype, reduced=False)


# --------------------------------------------------------------------------------------------------------
# hinge_embedding_loss blended its two branches with 0/1 multipliers: 0 * (+-inf) = nan, so a score of
# -inf with target 1 (torch: -inf) or +inf with target -1 (torch: 0) gave nan.
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_hinge_embedding_infinite_scores_not_nan(dtype):
    x = np.array([-np.inf, np.inf, np.inf, -np.inf, 0.5, np.nan], dtype=dtype)
    y = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0], dtype=dtype)
    got = fl.hinge_embedding_loss(x, y, reduction="none")
    ref = F.hinge_embedding_loss(to_torch64(x), to_torch64(y), reduction="none")
    assert_close_spec(got, ref, dtype)


# --------------------------------------------------------------------------------------------------------
# The shared batch-mining sampler wrote three singleton labels into batches of fewer than 3 rows.
@pytest.mark.parametrize("name", ["batch_hard_triplet_loss", "batch_all_triplet_loss"])
@pytest.mark.parametrize("n", [1, 16, 32])
def test_mining_sampler_tiny_batch(name, n):
    args, kw = REFERENCES[name].sample(np.random.default_rng(0), n, np.float64)
    assert args[0].shape[0] == len(args[1]) >= 1
    getattr(fl, name)(*args, **kw)


# --------------------------------------------------------------------------------------------------------
# smape_loss multiplied by 1 / (|x| + |y|), which overflows to inf for a denormal sum: x = 5e-324, y = 0
# gave inf instead of 2.
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_smape_denormal_denominator_not_inf(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([tiny, -tiny, 0.0, 3 * tiny, 1.0], dtype=dtype)
    y = np.array([0.0, 0.0, 0.0, tiny, -1.0], dtype=dtype)
    spec = REFERENCES["smape_loss"]
    got, g = fl.smape_loss(x, y, reduction="none", return_grad=True)
    want = spec.numpy_ref(x.astype(np.float64), y.astype(np.float64), reduction="none")   # the float64 reference
    assert_close_spec(got, want, dtype)
    # d/dx: 0 where y = 0 (the loss is the constant 2 there; torch's autograd gives nan = 0 * inf for a
    # denormal x); at (3 tiny, tiny) it is 1 / (4 tiny), beyond the dtype's range; (1, -1) as torch
    np.testing.assert_array_equal(g[:3], 0)
    xt = to_torch64(x[4:], requires_grad=True)
    (rg,) = torch.autograd.grad(spec.torch_ref(xt, to_torch64(y[4:]), reduction="sum"), xt)
    assert_close_spec(g[4:], rg, dtype, reduced=False)


# --------------------------------------------------------------------------------------------------------
# OpenMP after fork hung: GNU libgomp is not fork-safe, so a child forked from a process that had run a
# multi-threaded loss waited forever at its next multi-threaded call; the metric family's row-chunk
# ThreadPoolExecutor (created in the parent) never ran the child's work either.  Fixed in
# fastloss/_threads.py: such a child runs single-threaded (same bits).
def test_openmp_after_fork_hang():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    code = """
import os, numpy as np, fastloss as fl
rng = np.random.default_rng(0)
x = rng.standard_normal((20011, 17)); y = rng.integers(0, 17, 20011)
q = rng.standard_normal((700, 16)); k = rng.standard_normal((700, 16))
def job():
    return (fl.cross_entropy(x, y, num_threads=2).tobytes(), fl.info_nce_loss(q, k, num_threads=2).tobytes())
parent = job()
pid = os.fork()
if pid == 0:
    os._exit(0 if job() == parent else 3)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
print("ok")
"""
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("a forked child hung in its first multi-threaded loss call")
    assert res.returncode == 0 and res.stdout.split() == ["ok"], res.stdout + res.stderr


# --------------------------------------------------------------------------------------------------------
# binary_cross_entropy_with_logits added log1p(e) to max(-x, 0) before adding (1 - y) x: for y = 0 and
# x << 0 the small loss log1p(e^x) was rounded away against |x| (float32: x = -30 gave 0 instead of
# 9.4e-14, x = -7.5 a 3e-4 relative error).  Reference: softplus in float64 without cancellation
# (torch's own float64 form cancels the same way, 1e-2 relative at x = -30).
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bce_logits_small_loss_cancellation(dtype):
    x = np.concatenate([-np.linspace(5, 60, 56), np.linspace(5, 60, 56)]).astype(dtype)
    y = (x > 0).astype(dtype)                       # confident and right: tiny losses
    z = np.abs(x.astype(np.float64))
    ref = np.log1p(np.exp(-z))                      # = softplus(-|x|), exactly the loss here
    got, g = fl.binary_cross_entropy_with_logits(x, y, reduction="none", return_grad=True)
    assert_close_spec(got, ref, dtype)
    ref_g = np.where(x > 0, -1.0, 1.0) * np.exp(-z) / (1 + np.exp(-z))     # sigmoid(x) - y
    assert_close_spec(g, ref_g, dtype)


# --------------------------------------------------------------------------------------------------------
# poisson_nll_loss (log_input) in float32: exp(x) and y x both overflowing gave inf - inf = nan at the
# baseline vector level (no FMA contraction; the -O1 sanitizer build too), inf at avx2 (fused).
@pytest.mark.parametrize("level", ["baseline", None])
def test_poisson_float32_double_overflow_no_fma_nan(level):
    import os
    import subprocess
    import sys
    from fastloss._kernels._built_levels import BUILT_LEVELS
    if level is not None and level not in BUILT_LEVELS:
        pytest.skip(f"{level} not built")
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    code = ("import numpy as np, fastloss as fl\n"
            "x = np.array([95.0, 100.0, 120.0], np.float32); y = np.full(3, 3e38, np.float32)\n"
            "print(*fl.poisson_nll_loss(x, y, reduction='none'))\n")
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("FASTLOSS_ISA", None)
    if level is not None:
        env["FASTLOSS_ISA"] = level
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    # float64 reference: exp(x) - y x exceeds float32's range, positive, for each: inf.  (Where y x wins,
    # e.g. x = 89, the true value is -inf and the fused form still gives +inf: a documented limit.)
    assert res.stdout.split() == ["inf", "inf", "inf"], res.stdout
