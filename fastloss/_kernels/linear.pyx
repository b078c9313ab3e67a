# cython: language_level=3
"""Fused linear cross-entropy (``fastloss.linear_cross_entropy``): the row pass over one chunk of logits.

Read ``_common.pxd`` first: the kernel here is a *block function* run by ``run_blocks``.

The wrapper (``fastloss/_linear.py``) never holds the N x V logits: it cuts the tokens into chunks of
n_c rows (n_c x V x itemsize <= 56 MiB), fills one chunk buffer with ``hidden_c @ weight.T`` (BLAS, in
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
from libc.math cimport log1p, exp, INFINITY
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


cdef inline void bias_and_cap(floating* row, const floating* b, Py_ssize_t n, double softcap, floating* d) noexcept nogil:
    """Step 1 of a row (or a block of it): x_j + b_j, soft-capped when softcap > 0 (d: its derivative,
    or NULL), in place; b (the bias from this row's first class) may be NULL."""
    cdef Py_ssize_t j
    if softcap > 0:
        softcap_row(row, b, n, <floating> softcap, <floating> (1.0 / softcap), d)
    elif b != NULL:
        for j in range(n):
            row[j] = row[j] + b[j]


cdef inline int64_t label_at(const void* labels, bint is64, Py_ssize_t i) noexcept nogil:
    return (<const int64_t*> labels)[i] if is64 else (<const int32_t*> labels)[i]


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
    cdef double s, ls, lse, dy, sw, ey, gs = c.grad_scale, eps = c.smoothing, lam = c.z_loss
    cdef int64_t y
    if c.scratch != NULL:
        d = <floating*> (c.scratch + threadid() * c.scratch_stride)
    for i in range(start, stop):
        row = <floating*> c.z + i * V
        y = label_at(c.labels, c.labels64, i)
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
        bias_and_cap(row, b, V, c.softcap, d)
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


cdef inline void row_add(const floating* row, Py_ssize_t w, double* acc) noexcept nogil:
    """acc[j] += row[j] for j < w, in double (the compiler vectorises it)."""
    cdef Py_ssize_t j
    for j in range(w):
        acc[j] += row[j]


def linear_bias_grad_add(z, acc, Py_ssize_t v0, Py_ssize_t v1):
    """Kernel entry: acc[v0:v1] += z[:, v0:v1].sum(axis=0), in double, rows in order (the bias gradient of
    one chunk: G's column sums over the block of classes v0:v1).  z (n, V) C-contiguous float32/64, acc
    (V,) float64 C-contiguous, writable; 0 <= v0 <= v1 <= V.  Runs without the GIL, so the wrapper's
    threads sum their blocks while the others run their GEMMs."""
    cdef Py_ssize_t isz = check_buffer(z, "z", b'f', 0, -1, False)
    check_ndim(z, "z", 2)
    cdef Py_ssize_t n = z.shape[0], V = z.shape[1], r
    check_buffer(acc, "acc", b'f', 8, V, True)
    if not (0 <= v0 <= v1 <= V):
        raise ValueError(f"fastloss kernel: columns {v0}:{v1} outside z's {V}")
    cdef char* zp = <char*> ptr_or_null(z)
    cdef double* ap = <double*> ptr_or_null(acc) + v0
    with nogil:
        for r in range(n):
            if isz == 4:
                row_add[float](<const float*> zp + r * V + v0, v1 - v0, ap)
            else:
                row_add[double](<const double*> zp + r * V + v0, v1 - v0, ap)


# ---------------------------------------------------------------- the loss alone: one vocabulary block at a time
# Without a gradient the chunk's logits need not be held at once: the wrapper computes them one
# vocabulary block at a time (a block of R tokens x at most 2048 classes, on one thread: GEMM then
# ``linear_ce_block_stats``, while the block is still in cache), keeps per token and block the block's
# max m_b, its sum of exps s_b = sum_{j in b} exp(z_j - m_b) and (smoothing) sw_b = sum_{j in b} (z_j - m_b),
# and ``linear_ce_combine`` merges them in block order:
#   m = max_b m_b,  s = sum_b s_b exp(m_b - m),  sum_j (z_j - m) = sum_b (sw_b + n_b (m_b - m)).
# A block whose max is -inf (every logit masked) adds nothing (s_b = 0, not exp(-inf + inf)).  The
# blocks are fixed by the shapes, so the numbers are the same for every num_threads.

cdef struct LceStatsCtx:
    void* z                 # (R, nb) the block's logits x_j + ..., scratch (biased / capped in place)
    const void* labels      # (R,) the chunk's labels, int32 or int64
    bint labels64
    const void* bias        # (V,) or NULL: the block reads bias[v0:v0 + nb]
    Py_ssize_t R
    Py_ssize_t nb           # classes in this block
    Py_ssize_t v0           # its first class
    double softcap
    bint need_sw
    double* stats           # (R, n_blocks, 3): (m_b, s_b, sw_b) per token and block
    Py_ssize_t n_blocks
    Py_ssize_t blk          # this block's index
    double* zy              # (R,) z_y of each token, written by the block that holds y


cdef void lce_block_stats(const LceStatsCtx* c, floating* z) noexcept nogil:
    """The statistics of block c.blk of every token (rows of z, the block's logits: c.z typed)."""
    cdef Py_ssize_t i, nb = c.nb
    cdef floating* row
    cdef const floating* b = NULL
    cdef floating m
    cdef double* st
    cdef int64_t y
    if c.bias != NULL:
        b = <const floating*> c.bias + c.v0
    for i in range(c.R):
        row = z + i * nb
        bias_and_cap(row, b, nb, c.softcap, <floating*> NULL)
        m = row_max(row, nb)
        st = c.stats + (i * c.n_blocks + c.blk) * 3
        st[0] = m
        if m == -INFINITY:          # every logit of the block masked: no mass (not exp(-inf + inf))
            st[1] = 0
            st[2] = -INFINITY if c.need_sw else 0
        else:
            st[1] = row_sumexp(row, nb, m, <floating*> NULL)
            st[2] = row_shift_sum(row, nb, m) if c.need_sw else 0
        y = label_at(c.labels, c.labels64, i)
        if c.v0 <= y < c.v0 + nb:
            c.zy[i] = row[y - c.v0]


def linear_ce_block_stats(z, labels, stats, zy, *, bias=None, Py_ssize_t v0, Py_ssize_t blk,
                          double softcap=0.0, bint need_sw=False):
    """Kernel entry: the per-token statistics of one vocabulary block (see above), on the calling
    thread with the GIL released.  z (R, nb) C-contiguous float32/64, writable scratch (biased and
    soft-capped in place); labels (R,) int32/int64; stats (R, n_blocks, 3) float64 and zy (R,) float64,
    C-contiguous, written at this block's entries; bias (V,) or None; softcap c > 0 or 0 for none."""
    cdef Py_ssize_t isz = check_buffer(z, "z", b'f', 0, -1, True)
    check_ndim(z, "z", 2)
    check_buffer(labels, "labels", b'i', 0, -1, False)
    check_buffer(stats, "stats", b'f', 8, -1, True)
    check_ndim(stats, "stats", 3)
    check_buffer(zy, "zy", b'f', 8, -1, True)
    cdef LceStatsCtx c
    c.R, c.nb = z.shape[0], z.shape[1]
    c.n_blocks = stats.shape[1]
    if (buffer_items(labels) != c.R or stats.shape[0] != c.R or stats.shape[2] != 3
            or buffer_items(zy) != c.R or not 0 <= blk < c.n_blocks or v0 < 0 or softcap < 0):
        raise ValueError(f"fastloss kernel: z {z.shape}, labels {labels.shape}, stats {stats.shape}, "
                         f"zy {zy.shape}, block {blk}")
    if bias is not None:
        check_buffer(bias, "bias", b'f', isz, -1, False)
        if buffer_items(bias) < v0 + c.nb:
            raise ValueError(f"fastloss kernel: bias of {buffer_items(bias)} for classes up to {v0 + c.nb}")
    c.z, c.labels, c.bias = ptr_or_null(z), ptr_or_null(labels), ptr_or_null(bias)
    c.labels64 = labels.dtype.itemsize == 8
    c.v0, c.blk, c.softcap, c.need_sw = v0, blk, softcap, need_sw
    c.stats, c.zy = <double*> ptr_or_null(stats), <double*> ptr_or_null(zy)
    with nogil:
        if isz == 4:
            lce_block_stats(&c, <float*> c.z)
        else:
            lce_block_stats(&c, <double*> c.z)


cdef struct LceCombineCtx:
    const double* stats     # (n, n_blocks, 3)
    const double* zy        # (n,)
    const void* labels
    bint labels64
    Py_ssize_t n_blocks
    Py_ssize_t block        # classes per block (the last one may hold fewer)
    Py_ssize_t V
    int64_t ignore_index
    double smoothing
    double z_loss


cdef Py_ssize_t lce_combine_block(const LceCombineCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                  floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t i, k, bad = -1
    cdef const double* st
    cdef double m, s, sw, ls, lse, mk
    cdef int64_t y
    for i in range(start, stop):
        y = label_at(c.labels, c.labels64, i)
        if y == c.ignore_index or y < 0 or y >= c.V:
            if y != c.ignore_index and bad < 0:
                bad = i
            loss[i - start] = 0
            if denom != NULL:
                denom[i - start] = 0
            continue
        if denom != NULL:
            denom[i - start] = 1
        st = c.stats + i * c.n_blocks * 3
        m = -INFINITY
        for k in range(c.n_blocks):
            mk = st[3 * k]
            if mk > m or mk != mk:          # (a nan logit makes the row's loss nan, as torch)
                m = mk
                if mk != mk:
                    break
        s = 0
        sw = 0
        for k in range(c.n_blocks):
            mk = st[3 * k]
            if mk != -INFINITY:
                s += st[3 * k + 1] * exp(mk - m)
            if c.smoothing != 0:
                sw += st[3 * k + 2] + <double> (min(c.block, c.V - k * c.block)) * (mk - m)
        ls = log1p(s - 1)
        lse = ls + m
        loss[i - start] = <floating> lce_point(ls, c.zy[i] - m, sw, lse, c.smoothing, <double> c.V, c.z_loss)
    return bad


def linear_ce_combine(stats, zy, labels, out, *, Py_ssize_t V, Py_ssize_t block, int64_t ignore_index,
                      double smoothing=0.0, double z_loss=0.0, int itemsize=4, int num_threads=1):
    """Kernel entry: the losses of a chunk's tokens from their block statistics (see above); out (n,)
    for reduction="none" (float of ``itemsize``) or None to reduce.  Returns (loss_sum, count of the
    non-ignored tokens, first_bad_index), as ``linear_ce_rows``."""
    check_buffer(labels, "labels", b'i', 0, -1, False)
    cdef Py_ssize_t n = buffer_items(labels)
    check_count(V, "V")
    check_buffer(stats, "stats", b'f', 8, -1, False)
    check_ndim(stats, "stats", 3)
    check_buffer(zy, "zy", b'f', 8, -1, False)
    if (stats.shape[0] != n or stats.shape[2] != 3 or buffer_items(zy) != n or block < 1
            or stats.shape[1] != (V + block - 1) // block or itemsize not in (4, 8)):
        raise ValueError(f"fastloss kernel: stats {stats.shape}, zy {zy.shape} for {n} tokens, V {V}, "
                         f"blocks of {block}")
    check_optional(out, "out", b'f', itemsize, n, True)
    if z_loss < 0 or not (0 <= smoothing <= 1):
        raise ValueError("fastloss kernel: z_loss >= 0 and smoothing in [0, 1] required")
    cdef LceCombineCtx c
    c.stats, c.zy = <const double*> ptr_or_null(stats), <const double*> ptr_or_null(zy)
    c.labels = ptr_or_null(labels)
    c.labels64 = labels.dtype.itemsize == 8
    c.n_blocks, c.block, c.V = stats.shape[1], block, V
    c.ignore_index, c.smoothing, c.z_loss = ignore_index, smoothing, z_loss
    cdef BlockFn fn = <BlockFn> lce_combine_block[float] if itemsize == 4 else <BlockFn> lce_combine_block[double]
    return run(fn, &c, n, 4 * c.n_blocks, itemsize, num_threads, out, True)
