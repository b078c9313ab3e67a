# cython: language_level=3
"""Fused linear cross-entropy (``fastloss.linear_cross_entropy``): the row pass over one chunk of logits.

Read ``_common.pxd`` first: the kernel here is a *block function* run by ``run_blocks``.

The wrapper (``fastloss/_linear.py``) never holds the N x V logits: it cuts the tokens into chunks of
n_c rows (n_c x V x itemsize <= 32 MiB), fills one chunk buffer with ``hidden_c @ weight.T`` (BLAS, in
fixed vocabulary blocks), and calls ``linear_ce_rows`` on it.  This pass, per row (an item = a token):

  1. bias and soft-capping, in place: z_j = c tanh((x_j + b_j) / c) (or x_j + b_j, or x_j);
  2. the row max m, the shifted target logit z_y - m, the label-smoothing sum sum_j (z_j - m), and the
     double sum of exps s = sum_j exp(z_j - m) (``fl_reduce.h``; with a gradient, each exp is stored in
     place of z_j);
  3. the loss (``lce_point``) and, with a gradient, dloss/dx_j written in place of the logits: the
     buffer then holds G_c, which the wrapper multiplies into the gradients of hidden and weight
     (two more GEMMs).  Nothing of size V is allocated per token (the soft-cap derivative uses one row
     of scratch per thread).

Formulas (per token with target y, smoothing eps over V classes, z-loss weight lam), lse = log s + m:
  loss = (1 - eps) (lse - z_y) + (eps / V) sum_j (lse - z_j) + lam lse^2
       = (1 - eps) (ls - dy) + (eps / V) (V ls - sum_j (z_j - m)) + lam lse^2,    ls = log s, dy = z_y - m
  dloss/dz_j = p_j (1 + 2 lam lse) - (1 - eps) [j = y] - eps / V,                 p = softmax(z)
  dloss/dx_j = dloss/dz_j * dz_j/dx_j,   dz/dx = 1 - tanh^2(u) = 4 a / (1 + a)^2,  u = x / c, a = exp(-2|u|)
(torch: cross_entropy(..., label_smoothing=eps) + lam * logsumexp(z)^2, tanh soft-capping as in Gemma).
The target's gradient is formed as (p_y - 1) + 2 lam lse p_y + eps (V - 1) / V with p_y - 1 = (e_y - s) / s
in double, never p_y - 1 rounded (a confident row's tiny gradient keeps its relative precision), as
classification.pyx's cross-entropy does.  The soft-cap goes through a = exp(-2|u|) <= 1: tanh|u| =
(1 - a) / (1 + a) and its derivative 4 a / (1 + a)^2 keep their relative precision where tanh -> 1
(1 - tanh^2 from a rounded tanh would lose it: ulp / (1 - tanh) relative).

Ignored tokens (target == ignore_index): loss 0, denominator 0, gradient row 0.  A target outside
[0, V) that is not ignore_index is reported by item index (note e of _common.pxd) before it is read.
"""
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.math cimport log1p
from cython.parallel cimport threadid

from fastloss._kernels._common cimport (
    floating, BlockFn, ptr_or_null, run, f_exp_nonpos, f_abs, row_max, row_sumexp,
)
from fastloss._kernels._common cimport check_buffer, check_optional, check_count, check_ndim, buffer_items

cdef extern from "fl_reduce.h" nogil:
    double fl_row_dot_shift_f32(const float* x, const float* w, Py_ssize_t n, float m)
    double fl_row_dot_shift_f64(const double* x, const double* w, Py_ssize_t n, double m)


cdef inline double row_shift_sum(const floating* x, Py_ssize_t n, floating m) noexcept nogil:
    """sum_j (x_j - m), vectorised over the row, accumulated in double."""
    if floating is float:
        return fl_row_dot_shift_f32(x, NULL, n, m)
    else:
        return fl_row_dot_shift_f64(x, NULL, n, m)


cdef struct LceCtx:
    void* z                 # (n, V) chunk logits, C-contiguous: read, soft-capped and (with grad) overwritten
    const void* labels      # (n,) int32 or int64
    bint labels64
    const void* bias        # (V,) or NULL
    Py_ssize_t V
    int64_t ignore_index
    double smoothing
    double softcap          # c > 0, or 0 for none
    double z_loss           # lam >= 0
    bint grad               # write dloss/dx (times grad_scale) in place of the logits
    double grad_scale       # d(returned loss)/d(token loss)
    char* scratch           # per-thread row of V soft-cap derivatives (softcap and grad), else NULL
    Py_ssize_t scratch_stride   # bytes per thread


cdef inline void softcap_row(floating* x, const floating* b, Py_ssize_t V, floating c, floating inv_c,
                             floating* d) noexcept nogil:
    """x_j <- c tanh((x_j + b_j) / c) in place (b may be NULL); d (if not NULL) <- its derivative
    1 - tanh^2 = 4 a / (1 + a)^2, a = exp(-2 |u|) (see the module docstring)."""
    cdef Py_ssize_t j
    cdef floating u, a, t, one = 1, two = 2, four = 4
    for j in range(V):
        u = (x[j] + (b[j] if b != NULL else 0)) * inv_c
        a = f_exp_nonpos(-two * f_abs(u))
        t = (one - a) / (one + a)
        x[j] = c * (t if u >= 0 else -t)
        if d != NULL:
            d[j] = four * a / ((one + a) * (one + a))


cdef inline double lce_point(double ls, double dy, double sw, double lse, double eps, double V,
                             double lam) noexcept nogil:
    """The loss of one token from ls = log s, dy = z_y - m and sw = sum_j (z_j - m): differences of
    shifted quantities, never lse - z_y (which rounds to ulp(m) in float32); lse only in the z-loss."""
    return (1 - eps) * (ls - dy) + (eps / V) * (V * ls - sw) + lam * lse * lse


cdef Py_ssize_t lce_rows_block(const LceCtx* c, Py_ssize_t start, Py_ssize_t stop,
                               floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t V = c.V, i, j, bad = -1
    cdef floating* row
    cdef floating* d = NULL
    cdef const floating* b = <const floating*> c.bias
    cdef floating m, scale, shift
    cdef floating cap = <floating> c.softcap
    cdef floating inv_cap = <floating> (1.0 / c.softcap) if c.softcap > 0 else 0
    cdef double s, ls, lse, dy, sw, ey, gs = c.grad_scale, eps = c.smoothing, lam = c.z_loss
    cdef int64_t y
    if c.scratch != NULL:
        d = <floating*> (c.scratch + threadid() * c.scratch_stride)
    for i in range(start, stop):
        row = <floating*> c.z + i * V
        y = (<const int64_t*> c.labels)[i] if c.labels64 else (<const int32_t*> c.labels)[i]
        if y == c.ignore_index or y < 0 or y >= V:
            if y != c.ignore_index and bad < 0:
                bad = i
            loss[i - start] = 0
            if denom != NULL:
                denom[i - start] = 0
            if c.grad:
                memset(row, 0, V * sizeof(floating))
            continue
        if denom != NULL:
            denom[i - start] = 1
        if c.softcap > 0:
            softcap_row(row, b, V, cap, inv_cap, d)
        elif b != NULL:
            for j in range(V):
                row[j] = row[j] + b[j]
        m = row_max(row, V)
        dy = row[y] - m
        sw = row_shift_sum(row, V, m) if eps != 0 else 0
        s = row_sumexp(row, V, m, row if c.grad else NULL)     # with grad: row[j] = exp(z_j - m)
        ls = log1p(s - 1)          # s = 1 + (the rest): log1p keeps a confident row's tiny loss
        lse = ls + m
        loss[i - start] = <floating> lce_point(ls, dy, sw, lse, eps, <double> V, lam)
        if c.grad:
            ey = row[y]
            scale = <floating> (gs * (1 + 2 * lam * lse) / s)
            shift = <floating> (gs * eps / V)
            for j in range(V):
                row[j] = row[j] * scale - shift
            row[y] = <floating> (gs * ((ey - s) / s + 2 * lam * lse * (ey / s) + eps * (V - 1) / V))
            if d != NULL:
                for j in range(V):
                    row[j] = row[j] * d[j]
    return bad


def linear_ce_rows(z, labels, out, *, bias=None, Py_ssize_t V, int64_t ignore_index, double smoothing=0.0,
                   double softcap=0.0, double z_loss=0.0, bint grad=False, double grad_scale=1.0,
                   int num_threads=1):
    """Kernel entry: the cross-entropy rows of one chunk of logits (see the module docstring).

    z (n, V) C-contiguous float32/64, writable (soft-capped, biased and, with ``grad``, replaced by
    grad_scale * dloss/dlogits in place); labels (n,) int32/int64; out (n,) for reduction="none" or None
    to reduce; bias (V,) or None; softcap c > 0 or 0 for none.  Returns (loss_sum, count of the
    non-ignored tokens, first_bad_index)."""
    check_buffer(labels, "labels", b'i', 0, -1, False)
    cdef Py_ssize_t n = buffer_items(labels)
    check_count(V, "V")
    cdef Py_ssize_t isz = check_buffer(z, "z", b'f', 0, -1, True)
    check_ndim(z, "z", 2)
    if z.shape[0] != n or z.shape[1] != V:
        raise ValueError(f"fastloss kernel: z has shape {z.shape}; the kernel reads ({n}, {V})")
    check_optional(bias, "bias", b'f', isz, V, False)
    check_optional(out, "out", b'f', isz, n, True)
    if softcap < 0 or z_loss < 0 or not (0 <= smoothing <= 1):
        raise ValueError("fastloss kernel: softcap, z_loss >= 0 and smoothing in [0, 1] required")
    cdef LceCtx c
    c.z = ptr_or_null(z)
    c.labels = ptr_or_null(labels)
    c.labels64 = labels.dtype.itemsize == 8
    c.bias = ptr_or_null(bias)
    c.V = V
    c.ignore_index = ignore_index
    c.smoothing = smoothing
    c.softcap = softcap
    c.z_loss = z_loss
    c.grad = grad
    c.grad_scale = grad_scale
    c.scratch = NULL
    c.scratch_stride = (V * isz + 63) // 64 * 64
    if grad and softcap > 0 and V > 0:
        c.scratch = <char*> malloc(max(num_threads, 1) * c.scratch_stride)
        if c.scratch == NULL:
            raise MemoryError("fastloss: could not allocate kernel scratch memory")
    cdef BlockFn fn = <BlockFn> lce_rows_block[float] if isz == 4 else <BlockFn> lce_rows_block[double]
    try:
        return run(fn, &c, n, V, isz, num_threads, out, True)
    finally:
        free(c.scratch)


# ---------------------------------------------------------------- the head's GEMMs: SciPy's BLAS
# The wrapper's products (logits, hidden and weight gradients) on fixed blocks, each ONE call of SciPy's
# sgemm / dgemm (scipy.linalg.cython_blas's C functions, fetched once from its capsules, as metric.pyx's
# in-batch kernels do) with the GIL released, the blocks on the wrapper's threads.  SciPy's OpenBLAS is
# a library of its own, pinned to one thread while a call runs (fastloss/_blas.py
# _kernel_gemm_single_threaded): the same bits for every num_threads, and NumPy's BLAS -- the user's
# matmul -- keeps its threads.
from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_GetName
from fastloss._kernels._common cimport (
    PyArrayObject, PyArray_Descr, PyArray_NDIM, PyArray_DIMS, PyArray_FLAGS, PyArray_DESCR,
    NPY_ARRAY_ALIGNED, NPY_ARRAY_WRITEABLE, NPY_OPPBYTE, native_itemsize, is_ndarray, array_data,
)

cdef extern from "numpy/arrayobject.h":
    Py_ssize_t* PyArray_STRIDES(PyArrayObject* arr) nogil

ctypedef void (*sgemm_t)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*, float*,
                         float*, int*) noexcept nogil
ctypedef void (*dgemm_t)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*, double*,
                         double*, int*) noexcept nogil
cdef sgemm_t SGEMM = NULL
cdef dgemm_t DGEMM = NULL


def blas_address():
    """The address of the sgemm ``matmul`` calls (SciPy's, fetched on first use): the wrapper finds its
    library from it (fastloss/_blas.py)."""
    global SGEMM, DGEMM
    if SGEMM == NULL:
        from scipy.linalg.cython_blas import __pyx_capi__ as capi
        DGEMM = <dgemm_t> PyCapsule_GetPointer(capi["dgemm"], PyCapsule_GetName(capi["dgemm"]))
        SGEMM = <sgemm_t> PyCapsule_GetPointer(capi["sgemm"], PyCapsule_GetName(capi["sgemm"]))
    return <size_t> SGEMM


cdef struct Operand2d:
    char* data
    Py_ssize_t rows
    Py_ssize_t cols
    bint row_major            # unit stride along a row (else along a column)
    int ld                    # the other stride, in items (>= the unit dimension's length, >= 1)


cdef Operand2d matrix(object x, str name, Py_ssize_t itemsize, bint written) except *:
    """A 2-d ndarray view of one unit stride (a row-major block, a column block of one, or a transpose):
    its data pointer and BLAS leading dimension.  Refuses anything else (boundary checks, _common.pxd)."""
    cdef Operand2d m
    if not is_ndarray(x):
        raise TypeError(f"fastloss kernel: {name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef PyArrayObject* a = <PyArrayObject*> x
    cdef PyArray_Descr* d = PyArray_DESCR(a)
    if native_itemsize(d.type_num, b'f') != itemsize or d.byteorder == NPY_OPPBYTE:
        raise TypeError(f"fastloss kernel: {name} must be a native float{8 * itemsize} array, got {x.dtype}")
    if PyArray_NDIM(a) != 2:
        raise ValueError(f"fastloss kernel: {name} must be 2-d, got {PyArray_NDIM(a)}-d")
    cdef int flags = PyArray_FLAGS(a)
    if not flags & NPY_ARRAY_ALIGNED or (written and not flags & NPY_ARRAY_WRITEABLE):
        raise ValueError(f"fastloss kernel: {name} must be aligned" + (" and writable" if written else ""))
    m.rows, m.cols = PyArray_DIMS(a)[0], PyArray_DIMS(a)[1]
    cdef Py_ssize_t s0 = PyArray_STRIDES(a)[0], s1 = PyArray_STRIDES(a)[1], ld
    # (a dimension of length <= 1 is never stepped: its stride is free)
    m.row_major = s1 == itemsize or m.cols <= 1
    if m.row_major:
        ld = s0 // itemsize if m.rows > 1 else m.cols
        ok = s0 > 0 and s0 % itemsize == 0 and ld >= m.cols if m.rows > 1 else True
    else:
        ld = s1 // itemsize if m.cols > 1 else m.rows
        ok = (s0 == itemsize or m.rows <= 1) and s1 > 0 and s1 % itemsize == 0 and ld >= m.rows
    if not ok:
        raise ValueError(f"fastloss kernel: {name} must have one unit stride (a row-major or column-major "
                         f"block), got strides {x.strides}")
    if max(m.rows, m.cols, ld) >= 2 ** 31:
        raise ValueError("fastloss kernel: BLAS takes 32-bit sizes")
    m.ld = <int> max(ld, 1)
    m.data = <char*> array_data(x)
    return m


def matmul(a, b, out, *, double beta=0.0):
    """Kernel entry: out = a @ b + beta * out (beta 0: out is only written), one single-threaded GEMM of
    SciPy's BLAS (the caller pins it: _blas.py) with the GIL released.  a (m, k), b (k, n), out (m, n):
    2-d ndarray views of one float dtype, each with one unit stride (out's along its rows)."""
    if SGEMM == NULL:
        blas_address()
    cdef Py_ssize_t itemsize = 4
    if is_ndarray(a) and native_itemsize(PyArray_DESCR(<PyArrayObject*> a).type_num, b'f') == 8:
        itemsize = 8
    cdef Operand2d A = matrix(a, "a", itemsize, False)
    cdef Operand2d B = matrix(b, "b", itemsize, False)
    cdef Operand2d C = matrix(out, "out", itemsize, True)
    if A.cols != B.rows or C.rows != A.rows or C.cols != B.cols or not C.row_major:
        raise ValueError(f"fastloss kernel: matmul of {a.shape} and {b.shape} into {out.shape} (a row-major "
                         f"block)")
    # row-major C (m x n) is column-major C^T (n x m, ldc): C^T = op(B)^T op(A)^T, where a row-major
    # operand X is column-major X^T ('N' gives X^T) and a column-major one is X ('T' gives X^T)
    cdef char tb = b'N' if B.row_major else b'T', ta = b'N' if A.row_major else b'T'
    cdef int n = <int> C.cols, m = <int> C.rows, k = <int> A.cols, lda = A.ld, ldb = B.ld, ldc = C.ld
    cdef float one_f = 1.0, beta_f = <float> beta
    cdef double one_d = 1.0
    cdef Py_ssize_t i
    if m == 0 or n == 0:
        return
    if k == 0:                      # (BLAS refuses some leading dimensions here; the empty product is 0)
        for i in range(m):
            if beta == 0.0:
                memset(C.data + i * ldc * itemsize, 0, n * itemsize)
            elif beta != 1.0:
                out[i] *= beta
        return
    with nogil:
        if itemsize == 4:
            SGEMM(&tb, &ta, &n, &m, &k, &one_f, <float*> B.data, &ldb, <float*> A.data, &lda, &beta_f,
                  <float*> C.data, &ldc)
        else:
            DGEMM(&tb, &ta, &n, &m, &k, &one_d, <double*> B.data, &ldb, <double*> A.data, &lda, &beta,
                  <double*> C.data, &ldc)
