"""pytest-benchmark suite of the WORKLOADS.md workloads: ``pytest benchmarks --benchmark-only``.

The workloads come from ``fastloss.bench.workloads`` (the same definitions ``fastloss bench`` runs).
Settings by environment variable:

* ``FASTLOSS_BENCH_THREADS`` (default: all cores): T for every implementation (fastloss
  ``num_threads=T``, ``torch.set_num_threads(T)``, BLAS limited to T; NumPy elementwise is serial);
* ``FASTLOSS_BENCH_SCALE`` (default 1: the WORKLOADS.md sizes) multiplies every workload's N;
  ``FASTLOSS_BENCH_QUICK=1`` starts from the ``--quick`` sizes instead.

Plain ``pytest`` from the repository root does not collect this folder (``testpaths = ["tests"]``).
"""
import os

import pytest

from fastloss.bench import workloads as W

THREADS = int(os.environ.get("FASTLOSS_BENCH_THREADS", W.available_cores()))
SCALE = float(os.environ.get("FASTLOSS_BENCH_SCALE", "1"))
QUICK = os.environ.get("FASTLOSS_BENCH_QUICK", "") not in ("", "0")

_built = {}


@pytest.fixture(scope="session")
def threads():
    with W.thread_limits(THREADS):
        yield THREADS


@pytest.fixture
def workload_inputs():
    """build(workload) -> (args, kwargs), keeping only the latest workload's arrays alive (the full
    sizes reach hundreds of MiB; the cases of one workload run back to back)."""
    def get(w):
        if w.id not in _built:
            _built.clear()
            _built[w.id] = W.build(w, W.size(w, QUICK, SCALE))
        return _built[w.id]
    return get


def pytest_report_header(config):
    return f"fastloss benchmarks: T={THREADS}, sizes {'quick' if QUICK else 'WORKLOADS.md'} x {SCALE:g}"
