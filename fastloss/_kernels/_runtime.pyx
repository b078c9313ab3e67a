# cython: language_level=3
"""Run-time facts and the process-wide thread setting (compiled once, at the baseline level).

``fastloss_get_num_threads`` / ``fastloss_set_num_threads`` are exported C symbols so that
threadpoolctl can find and limit fastloss like any other native thread pool (see ``fastloss/_threads.py``).
"""

cdef extern from "fl_runtime.h" nogil:
    int fl_openmp_enabled()
    int fl_omp_max_threads()
    int fl_cpu_x86_64_level()

# 0 = not set by the user: follow OpenMP's default (OMP_NUM_THREADS, else the number of cores).
cdef int _requested_threads = 0


cdef public int fastloss_get_num_threads() noexcept nogil:
    if _requested_threads > 0:
        return _requested_threads
    return fl_omp_max_threads()


cdef public void fastloss_set_num_threads(int n) noexcept nogil:
    global _requested_threads
    _requested_threads = n if n > 0 else 0


def get_num_threads():
    return fastloss_get_num_threads()


def set_num_threads(int n):
    fastloss_set_num_threads(n)


def requested_num_threads():
    """The value of ``set_num_threads`` (0 = unset: OpenMP's default is followed)."""
    return _requested_threads


def openmp_enabled():
    return bool(fl_openmp_enabled())


def omp_max_threads():
    return fl_omp_max_threads()


def cpu_x86_64_level():
    """The x86-64 psABI level of the CPU: 4 = x86-64-v4 (AVX-512), 3 = x86-64-v3 (AVX2+FMA), 1 = other
    x86, 0 = not x86 (fastloss/_kernels/_levels.py maps the vector levels onto these)."""
    return fl_cpu_x86_64_level()
