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


# exp_nonpos_vn: the vector forms of exp_nonpos that the class-major and row passes inline (src_c/fl_vec.h:
# fl_expf_softmax_vn, fl_exp_nonpos_vn), N = 1, 2, 3, 4 vectors in lock step in turn (every N meets every
# lane), the last partial vector through the lane mask; levels without them: the scalar form.
cdef extern from * nogil:
    """
    #include "fl_vec.h"
    #if defined(FL_V_W)
    #define FL_PROBE_VN(T, W, V, M, OP, EXP)                                                          \
        ptrdiff_t i = 0;                                                                              \
        for (int N = 1; i < n; N = N % 4 + 1) {                                                       \
            V v[4], r[4];                                                                             \
            M m[4];                                                                                   \
            int k = 0;                                                                                \
            for (; k < N && i + k * W < n; k++) {                                                     \
                m[k] = OP##lanes(n - i - k * W);                                                      \
                v[k] = OP##loadz(m[k], x + i + k * W);                                                \
            }                                                                                         \
            EXP(k, v, m, 0, r);                                                                       \
            for (int q = 0; q < k; q++) OP##storem(y + i + q * W, m[q], r[q]);                        \
            i += k * W;                                                                               \
        }
    #endif
    static void fl_probe_exp_nonpos_vn_f32(const float* x, float* y, ptrdiff_t n) {
    #if defined(FL_V_W)
        FL_PROBE_VN(float, FL_V_W, fl_vf, fl_vm, fl_v_, fl_expf_softmax_vn)
    #else
        for (ptrdiff_t i = 0; i < n; i++) y[i] = fl_expf_softmax(x[i]);
    #endif
    }
    static void fl_probe_exp_nonpos_vn_f64(const double* x, double* y, ptrdiff_t n) {
    #if defined(FL_VD_W)
        FL_PROBE_VN(double, FL_VD_W, fl_vd, fl_vdm, fl_vd_, fl_exp_nonpos_vn)
    #else
        for (ptrdiff_t i = 0; i < n; i++) y[i] = fl_exp_nonpos(x[i]);
    #endif
    }
    """
    void fl_probe_exp_nonpos_vn_f32(const float* x, float* y, Py_ssize_t n)
    void fl_probe_exp_nonpos_vn_f64(const double* x, double* y, Py_ssize_t n)


cdef enum ProbeFunc:
    PROBE_EXP
    PROBE_LOG
    PROBE_LOG1P
    PROBE_SOFTPLUS
    PROBE_LOG_SIGMOID
    PROBE_SIGMOID
    PROBE_LOG1P_UNIT
    PROBE_EXP_NONPOS
    PROBE_EXP_NONPOS_VN


_PROBE_FUNCS = {"exp": PROBE_EXP, "log": PROBE_LOG, "log1p": PROBE_LOG1P, "softplus": PROBE_SOFTPLUS,
                "log_sigmoid": PROBE_LOG_SIGMOID, "sigmoid": PROBE_SIGMOID, "log1p_unit": PROBE_LOG1P_UNIT,
                "exp_nonpos": PROBE_EXP_NONPOS, "exp_nonpos_vn": PROBE_EXP_NONPOS_VN}


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
    elif func == PROBE_EXP_NONPOS_VN:
        if floating is float:
            fl_probe_exp_nonpos_vn_f32(x, y, n)
        else:
            fl_probe_exp_nonpos_vn_f64(x, y, n)
    else:
        for i in range(n):
            y[i] = f_sigmoid(x[i])


def math_probe(str name, x):
    """fl_<name>f / fl_<name> of src_c/fl_math.h elementwise, for ``name`` in exp, log, log1p,
    softplus (log(1 + e^x)), log_sigmoid (-softplus(-x)), sigmoid (1 / (1 + e^-x)) and log1p_unit
    (log1p(x) for x in [0, 1] or nan only: the range met inside softplus / log_sigmoid / BCE) and
    exp_nonpos (exp(x) for x <= 0, -inf or nan only: the softmax sums' exp of x - max), and exp_nonpos_vn
    (the same through its vector forms, fl_vec.h)."""
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
