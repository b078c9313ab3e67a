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

# SPEC §4
RTOL64 = 1e-12
ATOL64 = 1e-14          # elements that cancel to ~0 (gradients p - 1 near 0, losses near 0)
RTOL32_ELEM = 1e-5
ATOL32_ELEM = 1e-6
RTOL32_REDUCED = 1e-6


def tolerances(dtype, reduced=False):
    """(rtol, atol) of SPEC §4 for results of ``dtype``; ``reduced`` for a mean/sum scalar."""
    if np.dtype(dtype) == np.float64:
        return RTOL64, ATOL64
    if reduced:
        return RTOL32_REDUCED, 1e-7
    return RTOL32_ELEM, ATOL32_ELEM


def assert_close_spec(got, ref64, dtype, reduced=None, what=""):
    """Assert a fastloss result matches a float64 reference within SPEC §4.

    Checks the result's dtype (the prediction's dtype), its shape, then values with nan == nan and
    infinities equal in sign.  ``reduced`` defaults to "the reference is a scalar"."""
    dtype = np.dtype(dtype)
    if torch is not None and isinstance(ref64, torch.Tensor):
        ref64 = ref64.detach().numpy()
    ref = np.asarray(ref64, dtype=np.float64)
    if reduced is None:
        reduced = ref.ndim == 0
    assert isinstance(got, (np.ndarray, np.generic)), f"{what}: expected a NumPy result, got {type(got)}"
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    assert np.shape(got) == ref.shape, f"{what}: shape {np.shape(got)}, expected {ref.shape}"
    rtol, atol = tolerances(dtype, reduced)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), ref, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=what)


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
# (FASTLOSS_FUZZ_EXAMPLES, default 3000: ~100 000 cases over the registry); tests/README.md records runs.
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
