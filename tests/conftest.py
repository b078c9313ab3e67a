"""Shared helpers for fastloss tests: SPEC §4 tolerances and float64 torch references.

Every comparison is against an INDEPENDENT float64 reference (torch in float64 on the same input
values, or a NumPy float64 formula), never against fastloss itself.

Test modules import these helpers with ``from fl_testing import ...``: pytest runs with
``--import-mode=importlib`` (pyproject.toml), under which ``tests/`` is not on ``sys.path`` and a
conftest cannot be imported by name, so this module registers itself as ``fl_testing`` (pytest always
loads a directory's conftest before collecting the test modules in it).
"""
import os
import sys

import numpy as np
import pytest

import fastloss as fl

sys.modules.setdefault("fl_testing", sys.modules[__name__])

try:
    import torch
    # The references are small; torch's intra-op thread pool only adds latency (tens of ms per call
    # on a busy 2-core machine) and competes with the fastloss threads under test.
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a test dependency
    torch = None

# torch shares the process's libgomp: importing it (and torch.set_num_threads) sets OpenMP's default
# thread count, which fastloss follows when its own setting is unset.  Pin fastloss's default so that
# the large-input tests really run multi-threaded (tests/test_threads.py checks the unset default in
# fresh interpreters without torch).
FL_TEST_THREADS = max(2, os.cpu_count() or 1)
fl.set_num_threads(FL_TEST_THREADS)

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
REDUCTIONS = ["none", "mean", "sum"]

# ---- SPEC §4 tolerances: the ONE place the suite's numeric tolerances live -----------------------------
# Every test that compares a number with a reference goes through ``assert_close_spec`` (or, for a bare
# (rtol, atol) pair, ``tolerances``).  SPEC §4: float64 results 1e-12 relative; float32 per-element
# results 1e-5 relative + 1e-6 absolute of a float64 reference; float32 reductions 1e-6 relative.
# Gradients are per-element results.  The absolute floors of float64 and of float32 reductions are not in
# SPEC's text: they only let a result that is exactly 0 in exact arithmetic come out as a rounding-level
# residue (p - 1 at p ~ 1, a gradient that cancels, a denormal); they are far below any compared value.
# float64: 1e-14, a few ulps of the O(10)-sized terms a softmax-row gradient sums (p_j k_j / tau): torch's
# own float64 evaluation of such an entry is off by that much (1e-15 failed on info_nce / nt_xent rows
# whose loss is ~1e-10, where the float64 reference itself has no more digits).
RTOL64 = 1e-12
ATOL64 = 1e-14
RTOL32_ELEM = 1e-5
ATOL32_ELEM = 1e-6
RTOL32_REDUCED = 1e-6
ATOL32_REDUCED = 1e-30


def tolerances(dtype, reduced=False):
    """(rtol, atol) of SPEC §4 for results of ``dtype``; ``reduced`` for a mean/sum scalar (float32)."""
    if np.dtype(dtype) == np.float64:
        return RTOL64, ATOL64
    if reduced:
        return RTOL32_REDUCED, ATOL32_REDUCED
    return RTOL32_ELEM, ATOL32_ELEM


def assert_close_spec(got, ref64, dtype=None, reduced=None, what="", *, cancel=None, result_type=True):
    """Assert a result matches an independent float64 reference within SPEC §4.

    ``dtype``: the precision the result was computed in (default: ``got``'s dtype).  ``reduced``: the
    float32 reduction rule (1e-6 relative) instead of the per-element one; defaults to "the reference is
    a scalar" -- pass ``reduced=False`` for gradients and 0-d per-element results.
    ``result_type``: check that ``got`` is a NumPy array/scalar of ``dtype`` (off for numbers read back
    from a file or a CLI).  Shapes must match; nan == nan; infinities equal in sign.

    ``cancel`` -- the ONE documented loosening, for ill-conditioned inputs: the magnitude (scalar or per
    element) of the terms whose difference the exact result is, where a relative error of the result
    itself is out of reach of any floating-point evaluation (torch's included).  The absolute floor of
    the per-element rule (a few ulps at magnitude 1) is then scaled to that magnitude:
    ``|got - ref| <= rtol |ref| + atol_elem * max(1, cancel)``.  Every call passing it says why."""
    if torch is not None and isinstance(ref64, torch.Tensor):
        ref64 = ref64.detach().numpy()
    if torch is not None and isinstance(got, torch.Tensor):
        got = got.detach().numpy()
    ref = np.asarray(ref64, dtype=np.float64)
    if dtype is None:
        dtype = np.asarray(got).dtype
    dtype = np.dtype(dtype)
    if reduced is None:
        reduced = ref.ndim == 0
    if result_type:
        assert isinstance(got, (np.ndarray, np.generic)), f"{what}: expected a NumPy result, got {type(got)}"
        assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    assert np.shape(got) == ref.shape, f"{what}: shape {np.shape(got)}, expected {ref.shape}"
    rtol, atol = tolerances(dtype, reduced)
    got64 = np.asarray(got, dtype=np.float64)
    if cancel is not None:
        atol_elem = ATOL64 if dtype == np.float64 else ATOL32_ELEM
        atol = atol_elem * np.maximum(1.0, np.abs(np.asarray(cancel, dtype=np.float64)))
        with np.errstate(invalid="ignore"):
            bad = ~((got64 == ref) | (np.isnan(got64) & np.isnan(ref))
                    | (np.abs(got64 - ref) <= atol + rtol * np.abs(ref)))
        bad = np.broadcast_to(bad, ref.shape)
        if bad.any():
            idx = np.flatnonzero(bad)[:8]
            raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements outside SPEC §4 "
                                 f"(cancel-scaled) at flat {idx.tolist()}: got {got64.reshape(-1)[idx]}, "
                                 f"want {ref.reshape(-1)[idx]}")
        return
    np.testing.assert_allclose(got64, ref, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def to_torch64(a, requires_grad=False):
    """A float64 torch tensor of the values of ``a`` (a float32 input is upcast exactly)."""
    t = torch.from_numpy(np.array(a, dtype=np.float64, copy=True))
    return t.requires_grad_(requires_grad)


def to_torch_long(a):
    return torch.from_numpy(np.asarray(a, dtype=np.int64).copy())


def torch_value_and_grad(fn, x, *args, **kwargs):
    """Float64 torch reference: (value, d sum(value) / d x) for ``fn(x64, *args, **kwargs)``.

    ``x`` is converted to float64 (exactly); the gradient is of the value's sum, i.e. what
    ``return_grad=True`` returns for reduction="none" (SPEC §2)."""
    xt = to_torch64(x, requires_grad=True)
    val = fn(xt, *args, **kwargs)
    (g,) = torch.autograd.grad(val.sum(), xt, allow_unused=True)
    if g is None:
        g = torch.zeros_like(xt)
    return val.detach().numpy(), g.numpy()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def readonly(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def fortran(a):
    return np.asfortranarray(a)


def strided(a, axis=0):
    """A non-contiguous view with the same values as ``a`` (every other entry of a doubled array)."""
    a = np.asarray(a)
    big = np.repeat(a, 2, axis=axis)
    sl = [slice(None)] * a.ndim
    sl[axis] = slice(0, None, 2)
    v = big[tuple(sl)]
    assert not v.flags.c_contiguous or a.shape[axis] <= 1
    return v


# ---- hypothesis profiles (tests/test_fuzz.py) ---------------------------------------------------------
# ``ci`` (default): bounded, derandomised (a fixed example stream per test: no flakes), no deadline (the
# machine is shared).  ``long``: ``pytest --hypothesis-profile=long`` -- many random examples per loss
# (FASTLOSS_FUZZ_EXAMPLES, default 3000: ~100 000 cases over the references); tests/README.md records runs.
try:
    from hypothesis import HealthCheck, settings as _hyp_settings

    _hyp_common = dict(deadline=None, print_blob=True,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                              HealthCheck.filter_too_much])
    _hyp_settings.register_profile("ci", max_examples=25, derandomize=True, **_hyp_common)
    _hyp_settings.register_profile("long", max_examples=int(os.environ.get("FASTLOSS_FUZZ_EXAMPLES", "3000")),
                                   **_hyp_common)
    _hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass
