"""BLAS calls whose results do not depend on the thread count (private; the in-batch metric losses and
``linear_cross_entropy``).

OpenBLAS's results can depend on its own thread count, so fastloss runs BLAS single-threaded on fixed
blocks of a product, the blocks in parallel: the same numbers for every ``num_threads``.

* The in-batch metric losses call SciPy's BLAS (``scipy.linalg.cython_blas``) from inside their OpenMP
  kernels, one GEMM per block (``_kernels/metric.pyx``).  SciPy's OpenBLAS (pthreads) has only a
  process-wide thread count (its ``openblas_set_num_threads_local`` sets the global one too), so
  ``_kernel_gemm_single_threaded`` pins *that library* to one thread while a call runs -- NumPy's BLAS
  is another library (``numpy.libs/libscipy_openblas64_``): the user's NumPy products keep their
  threads.  Where NumPy and SciPy share one BLAS (a system or conda build), the pin reaches NumPy's
  products too while a loss runs; SciPy's own BLAS calls made meanwhile from other threads run on
  one thread.
* ``linear_cross_entropy`` calls NumPy's matmul on fixed blocks on its own Python threads
  (``_parallel``; the GEMMs release the GIL) under ``_single_threaded_blas``, a process-wide limit.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
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


_GEMM_USERS = [0, None]         # [calls inside _kernel_gemm_single_threaded, the count the first found]
_GEMM_LIBRARY = []              # [(set, get) of the kernels' BLAS library's thread count], found once


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _dl_path(address):
    """The real path of the shared object that holds ``address`` (dladdr), or None."""
    try:
        dladdr = ctypes.CDLL(None).dladdr
    except (OSError, AttributeError):       # (no dladdr: Windows)
        return None
    dladdr.argtypes, dladdr.restype = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)], ctypes.c_int
    info = _DlInfo()
    if not address or not dladdr(address, ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(os.fsdecode(info.dli_fname))


def _library_of(address):
    """The real path of the BLAS library behind ``address``, a function of SciPy's cython_blas (or
    None): the module that holds it, then the library its Fortran-named sgemm resolves to from there
    (dlsym searches a module's dependencies)."""
    module = _dl_path(address)
    if module is None:
        return None
    try:
        lib = ctypes.CDLL(module)
    except OSError:
        return module
    for name in ("scipy_sgemm_", "sgemm_", "scipy_sgemm_64_", "sgemm_64_"):
        fn = getattr(lib, name, None)
        path = _dl_path(ctypes.cast(fn, ctypes.c_void_p).value) if fn is not None else None
        if path is not None:
            return path
    return module


def _gemm_threads(address):
    """(set, get) of the thread count of the BLAS library holding ``address`` (the kernels' sgemm,
    SciPy's), found once (call with _BLAS_LOCK held), or None.  OpenBLAS: its own
    ``openblas_set_num_threads`` / ``openblas_get_num_threads`` (SciPy's are prefixed ``scipy_``).
    (Not threadpoolctl's: it lets only the first Python thread that set an OpenBLAS's count change it
    again -- a call from another thread was silently ignored and the GEMMs ran threaded.)  Another
    library (MKL, BLIS): threadpoolctl's controller of that file, when installed."""
    if not _GEMM_LIBRARY:
        found = None
        path = _library_of(address)
        try:
            lib = ctypes.CDLL(path) if path is not None else None
        except OSError:
            lib = None
        for prefix, suffix in (("scipy_", ""), ("", ""), ("scipy_", "64_"), ("", "64_")):
            setter = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                found = (setter, getter)
                break
        if found is None and path is not None:
            try:
                from threadpoolctl import ThreadpoolController
                libs = [c for c in ThreadpoolController().lib_controllers if os.path.realpath(c.filepath) == path]
            except ImportError:
                libs = []
            if libs:
                found = (lambda n: [c.set_num_threads(n) for c in libs], lambda: libs[0].get_num_threads())
        _GEMM_LIBRARY.append(found)
    return _GEMM_LIBRARY[0]


@contextlib.contextmanager
def _kernel_gemm_single_threaded(address):
    """The BLAS library that holds ``address`` (the in-batch kernels' sgemm: SciPy's) on one thread
    while the block runs; concurrent calls share one counted pin (the first in sets it, the last out
    restores the count it found).  NumPy's own BLAS is not touched."""
    with _BLAS_LOCK:
        pin = _gemm_threads(address)
        if pin is not None:
            if _GEMM_USERS[0] == 0:
                _GEMM_USERS[1] = pin[1]()
                if _GEMM_USERS[1] != 1:
                    pin[0](1)
            _GEMM_USERS[0] += 1
    try:
        yield
    finally:
        if pin is not None:
            with _BLAS_LOCK:
                _GEMM_USERS[0] -= 1
                if _GEMM_USERS[0] == 0 and _GEMM_USERS[1] != 1:
                    pin[0](_GEMM_USERS[1])


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
