# cython: language_level=3
"""Private kernel family for testing: the ``src_c/fl_math.h`` functions applied to 1-D arrays.

Not part of the public API.  ``tests/test_math.py`` loads it with
``from fastloss._kernels import load; load("mathfuncs")`` to measure the accuracy of the exact code
the loss kernels inline (same ISA level, same compiler flags, called from the same fused wrappers).

Each function takes a C-contiguous float32 or float64 1-D ndarray and returns a new array of the same
dtype.  The loops are the plain ``for i in range(n)`` loops a loss kernel would write, so GCC
vectorises them exactly as it does inside the losses.
"""
cimport cython
from fastloss._kernels._common cimport (
    floating, f_exp, f_log, f_log1p, f_log1p_unit, f_softplus, f_log_sigmoid, f_sigmoid,
)

import numpy as np


cdef enum Func:
    F_EXP
    F_LOG
    F_LOG1P
    F_SOFTPLUS
    F_LOG_SIGMOID
    F_SIGMOID
    F_LOG1P_UNIT


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void apply(int func, const floating[::1] x, floating[::1] y) noexcept nogil:
    cdef Py_ssize_t i, n = x.shape[0]
    # one loop per function (a switch inside the loop would block vectorisation)
    if func == F_EXP:
        for i in range(n):
            y[i] = f_exp(x[i])
    elif func == F_LOG:
        for i in range(n):
            y[i] = f_log(x[i])
    elif func == F_LOG1P:
        for i in range(n):
            y[i] = f_log1p(x[i])
    elif func == F_SOFTPLUS:
        for i in range(n):
            y[i] = f_softplus(x[i])
    elif func == F_LOG_SIGMOID:
        for i in range(n):
            y[i] = f_log_sigmoid(x[i])
    elif func == F_LOG1P_UNIT:
        for i in range(n):
            y[i] = f_log1p_unit(x[i])
    else:
        for i in range(n):
            y[i] = f_sigmoid(x[i])


cdef object _run(int func, object x):
    if not isinstance(x, np.ndarray) or x.ndim != 1 or not x.flags.c_contiguous:
        raise ValueError("mathfuncs: x must be a C-contiguous 1-D ndarray")
    y = np.empty_like(x)
    cdef float[::1] xf, yf
    cdef double[::1] xd, yd
    if x.dtype == np.float32:
        xf = x
        yf = y
        with nogil:
            apply[float](func, xf, yf)
    elif x.dtype == np.float64:
        xd = x
        yd = y
        with nogil:
            apply[double](func, xd, yd)
    else:
        raise TypeError(f"mathfuncs: x must be float32 or float64, got {x.dtype}")
    return y


def exp(x):
    """fl_expf / fl_exp elementwise."""
    return _run(F_EXP, x)


def log(x):
    """fl_logf / fl_log elementwise."""
    return _run(F_LOG, x)


def log1p(x):
    """fl_log1pf / fl_log1p elementwise."""
    return _run(F_LOG1P, x)


def softplus(x):
    """fl_softplusf / fl_softplus elementwise: log(1 + e^x)."""
    return _run(F_SOFTPLUS, x)


def log_sigmoid(x):
    """fl_log_sigmoidf / fl_log_sigmoid elementwise: -softplus(-x)."""
    return _run(F_LOG_SIGMOID, x)


def sigmoid(x):
    """fl_sigmoidf / fl_sigmoid elementwise: 1 / (1 + e^-x)."""
    return _run(F_SIGMOID, x)


def log1p_unit(x):
    """fl_log1p_unitf / fl_log1p_unit elementwise: log1p(x) for x in [0, 1] (or nan) only, the range
    met inside softplus / log_sigmoid / BCE (x = exp(-|z|))."""
    return _run(F_LOG1P_UNIT, x)
