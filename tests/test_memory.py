"""Leaks and memory (issue 9): every loss with a reference called many times keeps RSS flat and shows no
growth in tracemalloc; ``reduction="mean"`` over 1e8 float32 elements allocates no N-sized temporary.

The 1e8-element checks run in a fresh interpreter, so that the peak-RSS high-water mark
(``ru_maxrss``) is not hidden by what earlier tests allocated."""
import gc
import inspect
import os
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import fastloss as fl
from fastloss._reference import REFERENCES

psutil = pytest.importorskip("psutil")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))


def _calls(name, rng):
    """A few calls of loss ``name`` (every reduction, with and without the gradient) on ~1k elements."""
    spec = REFERENCES[name]
    params = inspect.signature(getattr(fl, name)).parameters
    args, kw = spec.sample(rng, 1024, np.float32)
    variants = [{}]
    if "reduction" in params:
        variants = [{"reduction": r} for r in ("none", "mean", "sum")]
    if "return_grad" in params and spec.grad_argnums:
        variants += [{**v, "return_grad": True} for v in variants]
    if "num_threads" in params:
        variants = [{**v, "num_threads": 1 + i % 2} for i, v in enumerate(variants)]
    fn = getattr(fl, name)
    return [(fn, args, {**kw, **v}) for v in variants]


def _run(calls, reps):
    for _ in range(reps):
        for fn, args, kw in calls:
            fn(*args, **kw)


def _growth(calls, warm, settle, rounds):
    """(tracemalloc growth, RSS growth) in bytes over ``rounds`` rounds of ``calls``, measured after
    ``warm`` untraced and ``settle`` traced warm-up rounds (imports, thread pools, caches)."""
    proc = psutil.Process()
    _run(calls, warm)
    gc.collect()
    tracemalloc.start()
    try:
        _run(calls, settle)
        gc.collect()
        traced0, rss0 = tracemalloc.get_traced_memory()[0], proc.memory_info().rss
        _run(calls, rounds)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - traced0, proc.memory_info().rss - rss0
    finally:
        tracemalloc.stop()


def test_repeated_calls_keep_rss_flat_and_tracemalloc_clean():
    """Every registered loss, every variant, 25 rounds after 12 warm-up rounds: tracemalloc's traced
    memory grows by less than 64 KiB and RSS by less than 16 MiB (leaking one 1k-element float32 array
    per call would be 25 * 6 * 4 KiB = 600 KiB per loss, ~22 MiB for all the references)."""
    rng = np.random.default_rng(0)
    calls = [c for name in sorted(REFERENCES) for c in _calls(name, rng)]
    traced, rss = _growth(calls, 8, 4, 25)
    assert traced < 64 * 1024, f"tracemalloc grew by {traced} bytes"
    assert rss < 16 * 2**20, f"RSS grew by {rss / 2**20:.1f} MiB over {25 * len(calls)} calls"


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_no_growth_per_loss(name):
    """Per loss: 20 rounds of its variants leave tracemalloc flat (names the leaking loss)."""
    calls = _calls(name, np.random.default_rng(1))
    traced, _ = _growth(calls, 4, 3, 20)
    assert traced < 32 * 1024, f"{name}: tracemalloc grew by {traced} bytes over {20 * len(calls)} calls"


_BIG = """
import resource, sys, tracemalloc
import numpy as np, fastloss as fl
n = 100_000_000
x = np.empty(n + 1, dtype=np.float32)
step = 10_000_000
for s in range(0, n + 1, step):            # a cheap deterministic pattern in [-2, 2), chunked
    i = np.arange(s, min(s + step, n + 1), dtype=np.float64)
    x[s:s + step] = (i * 0.6180339887498949 % 1.0) * 4 - 2
a, b = x[:-1], x[1:]                        # two C-contiguous 1e8-element inputs sharing one buffer
fn = getattr(fl, sys.argv[1])
fn(a[:1000], b[:1000])                      # warm-up: imports, first-call allocations
maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
value = fn(a, b, reduction="mean", num_threads=2)
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
maxrss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak, (maxrss1 - maxrss0) * 1024, float(value))
"""


@pytest.mark.parametrize("name", ["mse_loss", "binary_cross_entropy_with_logits"])
def test_mean_of_1e8_float32_allocates_no_n_sized_temporary(name):
    """mean over 1e8 float32 elements (400 MB per input): tracemalloc's peak during the call stays
    under 1 MiB and the peak RSS grows by well under 400 MB (one N-sized float32 temporary); the value
    is finite."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", _BIG, name], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    peak, rss_delta, value = res.stdout.split()
    assert int(peak) < 2**20, f"{name}: tracemalloc peak {int(peak)} bytes during the call"
    assert int(rss_delta) < 64 * 2**20, f"{name}: peak RSS grew by {int(rss_delta) / 2**20:.0f} MiB"
    assert np.isfinite(float(value))
