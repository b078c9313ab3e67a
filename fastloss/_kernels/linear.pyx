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
