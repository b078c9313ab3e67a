"""Numerical limits (issue 9): float32 reductions over 1e9 elements stay within 1e-6 relative of the
float64 sum (SPEC §4: fastloss accumulates float32 losses in float64 blocks combined pairwise).

1e9 float32 elements are 4 GB per input, so the test reduces a 1e8-element array 10 times with
``reduction="sum"`` (different losses, i.e. different terms) and adds the 10 float64-accumulated
results: what a chunked 1e9-element reduction does.  The float64 reference is computed in chunks of
1e7 elements with NumPy's pairwise sum.  A naive float32 running sum would be off by far more than
1e-6 (it stops growing at 2^24 times the typical term), which the test also demonstrates on a slice.
"""
import numpy as np
import pytest

import fastloss as fl
from fl_testing import RTOL32_REDUCED, assert_close_spec

N = 100_000_000
STEP = 10_000_000


@pytest.fixture(scope="module")
def big():
    """1e8 + 1 float32 values in [-2, 2) (a cheap deterministic pattern, built in chunks)."""
    x = np.empty(N + 1, dtype=np.float32)
    for s in range(0, N + 1, STEP):
        i = np.arange(s, min(s + STEP, N + 1), dtype=np.float64)
        x[s:s + STEP] = (i * 0.6180339887498949 % 1.0) * 4 - 2
    return x


def _ref_sum(term, a, b):
    """float64 sum over the pair (a, b) of term(a64, b64), chunked."""
    total = 0.0
    for s in range(0, a.size, STEP):
        total += float(np.sum(term(a[s:s + STEP].astype(np.float64), b[s:s + STEP].astype(np.float64))))
    return total


TERMS = {
    "mse_loss": lambda x, y: (x - y) ** 2,
    "l1_loss": lambda x, y: np.abs(x - y),
    "binary_cross_entropy_with_logits": lambda x, t: np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))),
    "smooth_l1_loss": lambda x, y: np.where(np.abs(x - y) < 1, 0.5 * (x - y) ** 2, np.abs(x - y) - 0.5),
}


def test_float32_sum_of_1e9_elements_within_1e6_of_float64(big):
    a, b = big[:-1], big[1:]                      # two C-contiguous 1e8-element views, different values
    names = ["mse_loss", "l1_loss", "binary_cross_entropy_with_logits", "smooth_l1_loss"]
    calls = [names[k % len(names)] for k in range(10)]
    refs = {name: _ref_sum(TERMS[name], a, b) for name in names}
    got_total, ref_total = 0.0, 0.0
    for name in calls:
        got = getattr(fl, name)(a, b, reduction="sum", num_threads=2)
        assert_close_spec(got, refs[name], np.float32, reduced=True, what=name)
        got_total += float(got)
        ref_total += refs[name]
    assert_close_spec(got_total, ref_total, np.float32, reduced=True, result_type=False, what="1e9 terms")


def test_float32_mean_of_1e8_elements_within_1e6(big):
    a, b = big[:-1], big[1:]
    got = fl.mse_loss(a, b, reduction="mean", num_threads=3)
    ref = _ref_sum(TERMS["mse_loss"], a, b) / a.size
    assert_close_spec(got, ref, np.float32, reduced=True)


def test_naive_float32_accumulation_would_fail(big):
    """Why the float64 blocks matter: a float32 running sum of 2^25 squared differences is off by
    far more than 1e-6 (cumsum is sequential: each partial sum rounds to float32)."""
    a, b = big[: 2**25], big[1: 2**25 + 1]
    naive = float(np.cumsum((a - b) ** 2, dtype=np.float32)[-1])
    ref = _ref_sum(TERMS["mse_loss"], a, b)
    assert abs(naive - ref) > 10 * RTOL32_REDUCED * ref
    got = fl.mse_loss(a, b, reduction="sum")
    assert_close_spec(got, ref, np.float32, reduced=True)
