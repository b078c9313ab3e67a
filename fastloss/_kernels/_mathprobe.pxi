# The math probe, for tests only: the ``src_c/fl_math.h`` functions applied to 1-D arrays.
#
# Included by one vector family (segmentation.pyx), so that it is compiled at every vector level, with
# the same compiler flags as the loss kernels, and not as a module of its own:
# ``tests/test_math.py`` calls ``load_level("segmentation", level).math_probe(name, x)`` to measure
# the accuracy of the exact code the loss kernels inline at each level.
#
# ``x``: a C-contiguous float32 or float64 1-D ndarray; the result: a new array of the same dtype.  The
# loops are the plain ``for i in range(n)`` loops a loss kernel would write, so GCC vectorises them
# exactly as it does inside the losses.  Raw pointers (no typed memoryviews), so that the family module
# gains no Cython memoryview machinery.
from fastloss._kernels._common cimport (
    floating, f_exp, f_exp_nonpos, f_log, f_log1p, f_log1p_unit, f_softplus, f_log_sigmoid, f_sigmoid, ptr_or_null,
)

import numpy as np


cdef enum ProbeFunc:
    PROBE_EXP
    PROBE_LOG
    PROBE_LOG1P
    PROBE_SOFTPLUS
    PROBE_LOG_SIGMOID
    PROBE_SIGMOID
    PROBE_LOG1P_UNIT
    PROBE_EXP_NONPOS


_PROBE_FUNCS = {"exp": PROBE_EXP, "log": PROBE_LOG, "log1p": PROBE_LOG1P, "softplus": PROBE_SOFTPLUS,
                "log_sigmoid": PROBE_LOG_SIGMOID, "sigmoid": PROBE_SIGMOID, "log1p_unit": PROBE_LOG1P_UNIT,
                "exp_nonpos": PROBE_EXP_NONPOS}


cdef void _probe_apply(int func, const floating* x, floating* y, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    # one loop per function (a switch inside the loop would block vectorisation)
    if func == PROBE_EXP:
        for i in range(n):
            y[i] = f_exp(x[i])
    elif func == PROBE_LOG:
        for i in range(n):
            y[i] = f_log(x[i])
    elif func == PROBE_LOG1P:
        for i in range(n):
            y[i] = f_log1p(x[i])
    elif func == PROBE_SOFTPLUS:
        for i in range(n):
            y[i] = f_softplus(x[i])
    elif func == PROBE_LOG_SIGMOID:
        for i in range(n):
            y[i] = f_log_sigmoid(x[i])
    elif func == PROBE_LOG1P_UNIT:
        for i in range(n):
            y[i] = f_log1p_unit(x[i])
    elif func == PROBE_EXP_NONPOS:
        for i in range(n):
            y[i] = f_exp_nonpos(x[i])
    else:
        for i in range(n):
            y[i] = f_sigmoid(x[i])


def math_probe(str name, x):
    """fl_<name>f / fl_<name> of src_c/fl_math.h elementwise, for ``name`` in exp, log, log1p,
    softplus (log(1 + e^x)), log_sigmoid (-softplus(-x)), sigmoid (1 / (1 + e^-x)) and log1p_unit
    (log1p(x) for x in [0, 1] or nan only: the range met inside softplus / log_sigmoid / BCE) and
    exp_nonpos (exp(x) for x <= 0, -inf or nan only: the softmax sums' exp of x - max)."""
    if name not in _PROBE_FUNCS:
        raise ValueError(f"math_probe: unknown function {name!r}")
    cdef int func = _PROBE_FUNCS[name]
    if not isinstance(x, np.ndarray) or x.ndim != 1 or not x.flags.c_contiguous:
        raise ValueError("math_probe: x must be a C-contiguous 1-D ndarray")
    y = np.empty_like(x)
    cdef Py_ssize_t n = x.shape[0]
    cdef void* xp = ptr_or_null(x)
    cdef void* yp = ptr_or_null(y)
    if x.dtype == np.float32:
        with nogil:
            _probe_apply[float](func, <const float*> xp, <float*> yp, n)
    elif x.dtype == np.float64:
        with nogil:
            _probe_apply[double](func, <const double*> xp, <double*> yp, n)
    else:
        raise TypeError(f"math_probe: x must be float32 or float64, got {x.dtype}")
    return y
