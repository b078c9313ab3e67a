"""One benchmark group per workload (``benchmark.group = workload id``), one row per implementation.

Run: ``python -m pytest benchmarks --benchmark-only`` (see conftest.py for threads and sizes);
compare groups with ``--benchmark-group-by=group --benchmark-sort=mean``.
"""
import pytest

from fastloss.bench import workloads as W

CASES = [(w.id, impl) for w in W.WORKLOADS for impl in W.IMPLS
         if impl != "sklearn" or (w.sklearn_ref is not None and w.dtype == "float64")]


@pytest.mark.parametrize("wid,impl", CASES, ids=[f"{wid}-{impl}" for wid, impl in CASES])
def test_workload(benchmark, threads, workload_inputs, wid, impl):
    w = W.BY_ID[wid]
    if not W.implemented(w):
        pytest.skip(f"fastloss.{w.loss}: not implemented yet")
    args, kwargs = workload_inputs(w)
    fn = W.callables(w, args, kwargs, threads, impls=(impl,)).get(impl)
    if fn is None:
        pytest.skip(f"{impl}: not installed or no reference for {wid}")
    benchmark.group = wid
    benchmark.extra_info.update(loss=w.loss, title=w.describe(args[0].shape[0]), impl=impl, threads=threads,
                                dtype=w.dtype, reduction=w.reduction, variant=w.variant)
    benchmark(fn)
