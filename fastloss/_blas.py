"""BLAS calls whose results do not depend on the thread count (private; the in-batch metric losses and
``linear_cross_entropy``).

OpenBLAS's results can depend on its own thread count, so fastloss runs BLAS single-threaded
(``_single_threaded_blas``) on fixed blocks of a product, the blocks in parallel on its own Python
threads (``_parallel``; the GEMMs release the GIL): the same numbers for every ``num_threads``.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading

_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, None, None]   # [calls inside _single_threaded_blas, threadpoolctl limiter of the first,
                                #  the OpenBLAS local thread counts it replaced]
_BLAS_LOCAL = [None]            # _openblas_local_setters(), found on first use
_BLAS_CONTROLLER = []       # one threadpoolctl.ThreadpoolController, made on first use


def _blas_controller():
    """The process's ThreadpoolController, made once (call with _BLAS_LOCK held).  A fresh
    ``threadpool_limits`` scans every loaded shared library: ~0.6 ms a call, which made the in-batch
    losses 10x slower than torch at batch sizes of a few dozen rows; a kept controller limits in ~16 us.
    NumPy's BLAS -- the one the blocks use -- is loaded with NumPy, so it is in the first scan."""
    if not _BLAS_CONTROLLER:
        from threadpoolctl import ThreadpoolController
        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0]


@contextlib.contextmanager
def _single_threaded_blas():
    """BLAS on one thread (threadpoolctl, when installed): OpenBLAS's results depend on its thread
    count, so fastloss runs its own fixed blocks in parallel instead (``_parallel``).

    The BLAS setting is process-wide, so concurrent calls share one limit, counted: the first call in
    sets it and the last one out restores it.  (Nested ``threadpool_limits`` per call restored the
    caller's setting while another Python thread's call was still running: bits differed.)"""
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        yield
        return
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = _blas_controller().limit(limits=1, user_api="blas")
            _BLAS_USERS[2] = [(f, f(1)) for f in _openblas_local_setters()]
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                _BLAS_USERS[1].restore_original_limits()
                for f, before in _BLAS_USERS[2]:
                    f(before)
                _BLAS_USERS[1] = _BLAS_USERS[2] = None


def _openblas_local_setters():
    """``openblas_set_num_threads_local`` of each OpenBLAS the controller found (OpenBLAS >= 0.3.27), found
    once (call with _BLAS_LOCK held).  threadpoolctl's limit sets OpenBLAS's global thread count only; a
    GEMM called from another Python thread than the one that first limited it still ran multi-threaded
    (different bits: linear_cross_entropy's gradients from a worker thread, 1e-3 relative apart in
    float32) until this count was pinned to 1 too."""
    if _BLAS_LOCAL[0] is None:
        found = []
        for lib in getattr(_blas_controller(), "lib_controllers", []):
            dynlib = getattr(lib, "dynlib", None)
            if getattr(lib, "internal_api", "") != "openblas" or dynlib is None:
                continue
            for name in ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_"):
                fn = getattr(dynlib, name, None)
                if fn is not None:
                    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
                    found.append(fn)
                    break
        _BLAS_LOCAL[0] = found
    return _BLAS_LOCAL[0]


_POOLS = {}


def _parallel(fn, starts, nt):
    """fn(start) for every start, on nt Python threads (the work releases the GIL: BLAS, kernels)."""
    if nt == 1 or len(starts) == 1:
        for r0 in starts:
            fn(r0)
        return
    if nt not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor
        _POOLS[nt] = ThreadPoolExecutor(nt, thread_name_prefix="fastloss-rows")
    list(_POOLS[nt].map(fn, starts))
