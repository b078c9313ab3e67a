"""Measurements for ``fastloss bench``: timings, the read-bandwidth floor, peak memory, call overhead.

Methods (also written into the JSON ``notes``):

* Timing: one warm-up call per implementation, then ``repeat`` rounds that call the implementations
  in turn (interleaved, so a noisy neighbour hurts all of them alike); the median per
  implementation; round r starts at the r-th implementation (rotated), so none is always timed right
  after another's temporaries.  The garbage collector is off while timing.  At the --quick
  (cache-resident) sizes each timed call follows untimed calls of the same implementation (at least
  one, and up to 20 within 5 ms: ``warm_each``).
* Floor: the read bandwidth of a plain streaming sum over a ``floor_mib`` MiB float32 array at T
  threads, best of (a) NumPy ``add.reduce`` over T equal chunks in a ``ThreadPoolExecutor``
  (NumPy releases the GIL in reductions; one chunk, no pool, at T=1) and (b) ``torch.sum`` with
  ``torch.set_num_threads(T)`` when torch is installed.  The best of the two is the most demanding
  floor.  A workload's floor time is the bytes its kernel must move (each input read once, plus the
  output of ``reduction="none"`` and the gradient of ``return_grad=True``) over that bandwidth.
* Memory: the extra peak of one call over the memory in use before it, two ways: ``tracemalloc``
  (NumPy registers its array allocations with it, so it sees fastloss's and NumPy's arrays but not
  torch's allocator) and the resident-set high-water mark (``VmHWM``, reset by writing ``5`` to
  ``/proc/self/clear_refs``, Linux >= 4.0), after ``malloc_trim(0)`` so that freed heap pages are
  not silently reused.  RSS sees every allocator (torch included) at page granularity.
* Small inputs: per-call time over a loop sized to ~``budget_s``, the best of 7 loops (as ``timeit``
  advises: on a shared machine the slower loops measure the other processes), against a bare NumPy
  call (``np.add.reduce`` of the prediction).
"""
import contextlib
import ctypes
import gc
import statistics
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def time_interleaved(fns, repeat=5, warmup=1, progress=None, warm_each=False, settle_after=(), settle_s=0.15,
                     warm_s=0.005, warm_max=20, warm_long_s=0.05):
    """Time zero-argument callables: warm-up, then interleaved rounds.

    Round r calls the callables in their order rotated by r, so that each takes every place in the
    round in turn (the place after NumPy's reference, whose temporaries evict the caches, is not
    always the same implementation's).

    ``warm_each``: in every round, call each callable untimed right before its timed call -- at least
    once, then again until ``warm_s`` seconds or ``warm_max`` calls have passed -- so that the timed
    call finds its inputs where a batch that was just produced sits: in cache (the --quick regime;
    without it, the other implementations' temporaries in between -- NumPy's tens of MiB -- evict the
    inputs and a cache-resident size is timed from memory).  One untimed call is not enough for a
    sub-millisecond call: on a 2-core AMD EPYC a 6 MB working set took ~10 calls after NumPy's
    temporaries to be cache-resident again (huber ``none``: 992, 244, 194, 193 us for calls 1-4
    against 135 us settled), and the implementation timed later in the round had the warmer cache.
    A callable seen taking ``warm_long_s`` or more (its warm-up or an earlier timed call) is not warmed
    again: reloading a --quick workload's few MiB of inputs from memory costs well under 1 ms, under 2%
    of such a call, while the untimed call doubled the run's time (W18's language-model head, 0.5 s a
    call on a 2-core Zen 1: W18 and its gradient were 130 of the 180 s of a --quick run there).

    ``settle_after``: names of callables after whose timed call the round pauses ``settle_s`` seconds,
    untimed: NumPy's OpenBLAS keeps its worker threads spinning for ~0.1 s after a multi-threaded
    product, and a call timed in that window competes with them for the cores (fastloss's W14 at T=2
    measured 45 ms after NumPy's reference against 2 ms without it).

    Returns (runs, results, errors): {name: [seconds, ...]}, each callable's warm-up result, and
    {name: message} for a callable that raised (it is dropped from the rounds)."""
    runs, results, errors = {k: [] for k in fns}, {}, {}
    live = dict(fns)
    long_calls = set()      # callables seen taking warm_long_s or more (warm-up or timed call)
    for name, fn in list(live.items()):
        try:
            for _ in range(warmup):
                t0 = time.perf_counter()
                results[name] = fn()
                if time.perf_counter() - t0 >= warm_long_s:
                    long_calls.add(name)
        except Exception as exc:  # a loss still being written, a reference torch lacks, ...
            errors[name] = f"{type(exc).__name__}: {exc}"
            del live[name], runs[name]
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        order = list(live.items())
        for r in range(repeat):
            if progress:
                progress(r)
            k = r % len(order) if order else 0
            for name, fn in order[k:] + order[:k]:
                if warm_each and name not in long_calls:
                    t_warm = time.perf_counter() + warm_s
                    for _ in range(warm_max):
                        fn()
                        if time.perf_counter() >= t_warm:
                            break
                t0 = time.perf_counter()
                fn()
                runs[name].append(time.perf_counter() - t0)
                if runs[name][-1] >= warm_long_s:
                    long_calls.add(name)
                if name in settle_after:
                    time.sleep(settle_s)
    finally:
        if was_enabled:
            gc.enable()
    return runs, results, errors


def median(xs):
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------- floor

def read_bandwidth(threads, floor_mib=512, repeat=5):
    """Bytes/s of a streaming float32 sum at ``threads``:
    {"bandwidth": best, "method": its name, "methods": {name: bytes/s}}.  The array dies on return."""
    from .workloads import thread_limits, torch_available
    a = np.ones(floor_mib * 2 ** 20 // 4, dtype=np.float32)    # np.ones touches every page
    with contextlib.ExitStack() as stack:
        if threads == 1:
            fns = {"numpy add.reduce": lambda: np.add.reduce(a)}
        else:
            pool = stack.enter_context(ThreadPoolExecutor(threads))
            chunks = np.array_split(a, threads)
            fns = {f"numpy add.reduce x{threads} threads": lambda: sum(pool.map(np.add.reduce, chunks))}
        if torch_available():
            import torch
            t = torch.from_numpy(a)
            fns["torch.sum"] = lambda: t.sum()
        with thread_limits(threads):
            runs, _, _ = time_interleaved(fns, repeat=repeat)
    methods = {name: a.nbytes / median(xs) for name, xs in runs.items()}
    best = max(methods, key=methods.get)
    return {"threads": threads, "bandwidth": methods[best], "method": best, "methods": methods,
            "array_bytes": a.nbytes}


def traffic_bytes(w, args, kwargs, result):
    """Bytes the kernel must move: every array argument read once, plus the reduction="none" output
    and the gradient of return_grad=True, each written once."""
    arrays = [a for a in list(args) + list(kwargs.values()) if isinstance(a, np.ndarray)]
    n = sum(a.nbytes for a in arrays)
    if w.variant == "none" and result is not None:
        n += np.asarray(result).nbytes
    if w.variant in ("grad", "train"):
        n += sum(args[i].nbytes for i in w.grad_argnums)
    return n


# ---------------------------------------------------------------- memory

def _status_kib(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def _malloc_trim():
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def extra_peak(fn):
    """{"tracemalloc": bytes, "rss": bytes or None} of extra peak memory during one call of ``fn``."""
    _malloc_trim()       # no gc.collect(): with torch loaded it costs ~0.4 s and arrays die by refcount
    rss = None
    if _reset_hwm():
        before = _status_kib("VmRSS")
        _reset_hwm()
        r = fn()
        rss = max(0, (_status_kib("VmHWM") - before) * 1024)
        del r
        _malloc_trim()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        r = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del r
    finally:
        tracemalloc.stop()
    return {"tracemalloc": max(0, peak), "rss": rss}


# A reduced loss may allocate O(threads + blocks) (scratch blocks, per-block partials), never O(N): its
# extra peak must stay under this slack (page granularity, allocator arenas) or this fraction of its inputs.
MEMORY_SLACK_BYTES = 2 ** 20
MEMORY_FRACTION = 0.01


def memory_verdict(memory, input_bytes):
    """fastloss's extra peak against the O(1) bound, and against torch's (RSS: torch's allocator is
    invisible to tracemalloc).  ``memory`` is {impl: extra_peak(...)}."""
    def extra(impl):
        m = memory.get(impl)
        if not m:
            return None
        known = [v for v in (m.get("tracemalloc"), m.get("rss")) if v is not None]
        return max(known) if known else None
    fl, th = extra("fastloss"), (memory.get("torch") or {}).get("rss")
    bound = max(MEMORY_SLACK_BYTES, MEMORY_FRACTION * input_bytes)
    return {"fastloss_extra": fl, "torch_extra": th, "bound": bound,
            "torch_minus_fastloss": None if fl is None or th is None else th - fl,
            "ok": None if fl is None else fl <= bound}


# ---------------------------------------------------------------- small inputs

def per_call(fn, budget_s=0.005, repeat=7):
    """Seconds per call of a fast callable: the best of ``repeat`` loops sized to about ``budget_s``."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    loops = max(1, int(budget_s / one))
    out = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(loops):
                fn()
            out.append((time.perf_counter() - t0) / loops)
    finally:
        if was_enabled:
            gc.enable()
    return min(out)
