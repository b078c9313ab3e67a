# cython: language_level=3
"""Metric-learning kernels: losses on embeddings (rows of D numbers) and on scalar scores.

Read ``_common.pxd`` first: every kernel here is a *block function* run by ``run_blocks``.

Items.
  * pairwise rows (triplet_margin_loss, cosine_embedding_loss, contrastive_loss): item = one row of
    each embedding argument; the distances are accumulated in ONE pass over the row (in double), the
    gradient rows are written in a second pass while the row is still in L1.
  * elementwise (margin_ranking_loss, hinge_embedding_loss): item = one score.
  * in-batch losses (batch_hard / batch_all triplet, info_nce, nt_xent): the (B x B) similarity is
    never materialised.  Python computes one *row block* of the Gram / similarity matrix with NumPy's
    BLAS matmul (O(block x B) memory); a kernel here does the mining / log-sum-exp / masking on that
    block and writes per-row losses (and, for the gradient, per-row coefficients).  The per-row losses
    are then reduced by ``run_blocks`` in one final deterministic pass (``reduce_rows``).

Precision.  Row sums (squared distances, dot products) accumulate in double for both float types:
the triplet hinge ``margin + d_ap - d_an`` cancels, and double sums keep float32 results within
SPEC §4.  ``omp simd reduction`` (C helpers below; Cython cannot emit the pragma) keeps those sums
vectorised and their order fixed by the ISA level alone.

Gradients at non-differentiable points follow torch's autograd: ``clamp_min`` passes the gradient
where its input is >= the bound, ``minimum`` splits a tie in half, a norm's gradient is 0 where the
norm is 0.
"""
from libc.math cimport sqrt, pow, INFINITY
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset

from fastloss._kernels._common cimport (
    floating, BlockFn, BlockRun, run_blocks, block_items_for, row_max, row_sumexp,
)

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    /* Row primitives on two rows a, b of n numbers, with d_k = a_k - b_k + eps (torch's
     * pairwise_distance places eps inside the norm: ||a - b + eps||_p).  Sums in double. */
    #define FL_METRIC_ROWS(T, S)                                                                  \\
    static inline double fl_sqdiff_##S(const T* a, const T* b, ptrdiff_t n, double eps) {        \\
        double s = 0.0;                                                                           \\
        _Pragma("omp simd reduction(+:s)")                                                        \\
        for (ptrdiff_t k = 0; k < n; k++) { double d = (double)a[k] - (double)b[k] + eps; s += d * d; } \\
        return s;                                                                                 \\
    }                                                                                             \\
    /* sum_k |d_k|^p for finite p (p = 1 vectorised), max_k |d_k| for p = inf (nan propagates) */ \\
    static inline double fl_powdiff_##S(const T* a, const T* b, ptrdiff_t n, double eps, double p) { \\
        double s = 0.0;                                                                           \\
        if (isinf(p)) {                                                                           \\
            for (ptrdiff_t k = 0; k < n; k++) {                                                   \\
                double d = fabs((double)a[k] - (double)b[k] + eps);                               \\
                if (d != d) return d;                                                             \\
                s = d > s ? d : s;                                                                \\
            }                                                                                     \\
        } else if (p == 1.0) {                                                                    \\
            _Pragma("omp simd reduction(+:s)")                                                    \\
            for (ptrdiff_t k = 0; k < n; k++) s += fabs((double)a[k] - (double)b[k] + eps);      \\
        } else {                                                                                  \\
            for (ptrdiff_t k = 0; k < n; k++) s += pow(fabs((double)a[k] - (double)b[k] + eps), p); \\
        }                                                                                         \\
        return s;                                                                                 \\
    }                                                                                             \\
    /* ga += c * d||d||_p/dd, gb -= the same (either may be NULL).  torch's norm_backward: 0 where  \\
     * the norm is 0; for p = inf the gradient is shared equally by the entries attaining the max. */ \\
    static inline void fl_normdiff_grad_##S(const T* a, const T* b, ptrdiff_t n, double eps,      \\
                                            double p, double norm, double c, T* ga, T* gb) {      \\
        if (norm == 0.0 || c == 0.0) return;                                                      \\
        if (p == 2.0) {                                                                           \\
            double f = c / norm;                                                                  \\
            if (ga && gb) {                                                                       \\
                _Pragma("omp simd")                                                               \\
                for (ptrdiff_t k = 0; k < n; k++) {                                               \\
                    T v = (T)(f * ((double)a[k] - (double)b[k] + eps)); ga[k] += v; gb[k] -= v; } \\
            } else {                                                                              \\
                T* g = ga ? ga : gb; double sg = ga ? f : -f;                                     \\
                _Pragma("omp simd")                                                               \\
                for (ptrdiff_t k = 0; k < n; k++) g[k] += (T)(sg * ((double)a[k] - (double)b[k] + eps)); \\
            }                                                                                     \\
            return;                                                                               \\
        }                                                                                         \\
        double ties = 1.0;                                                                        \\
        if (isinf(p)) {                                                                           \\
            ties = 0.0;                                                                           \\
            for (ptrdiff_t k = 0; k < n; k++)                                                     \\
                ties += fabs((double)a[k] - (double)b[k] + eps) == norm;                          \\
        }                                                                                         \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                       \\
            double d = (double)a[k] - (double)b[k] + eps, ad = fabs(d), v;                        \\
            if (d == 0.0) continue;                                                               \\
            if (isinf(p)) v = ad == norm ? c / ties : 0.0;                                        \\
            else if (p == 1.0) v = c;                                                             \\
            else v = c * pow(ad / norm, p - 1.0);                                                 \\
            v = d > 0 ? v : -v;                                                                   \\
            if (ga) ga[k] += (T)v;                                                                \\
            if (gb) gb[k] -= (T)v;                                                                \\
        }                                                                                         \\
    }                                                                                             \\
    /* dot(a, b), |a|^2, |b|^2 in one pass, in double */                                          \\
    static inline void fl_dot3_##S(const T* a, const T* b, ptrdiff_t n, double* r) {              \\
        double ab = 0.0, aa = 0.0, bb = 0.0;                                                      \\
        _Pragma("omp simd reduction(+:ab,aa,bb)")                                                 \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                       \\
            double x = a[k], y = b[k]; ab += x * y; aa += x * x; bb += y * y; }                   \\
        r[0] = ab; r[1] = aa; r[2] = bb;                                                          \\
    }                                                                                             \\
    /* g = u * a + v * b (the gradient of a function of dot(a, b), |a|^2, |b|^2) */               \\
    static inline void fl_axpby_##S(const T* a, const T* b, ptrdiff_t n, double u, double v, T* g) { \\
        _Pragma("omp simd")                                                                       \\
        for (ptrdiff_t k = 0; k < n; k++) g[k] = (T)(u * (double)a[k] + v * (double)b[k]);        \\
    }
    FL_METRIC_ROWS(float, f32)
    FL_METRIC_ROWS(double, f64)
    """
    double fl_sqdiff_f32(const float* a, const float* b, Py_ssize_t n, double eps) nogil
    double fl_sqdiff_f64(const double* a, const double* b, Py_ssize_t n, double eps) nogil
    double fl_powdiff_f32(const float* a, const float* b, Py_ssize_t n, double eps, double p) nogil
    double fl_powdiff_f64(const double* a, const double* b, Py_ssize_t n, double eps, double p) nogil
    void fl_normdiff_grad_f32(const float* a, const float* b, Py_ssize_t n, double eps, double p,
                              double norm, double c, float* ga, float* gb) nogil
    void fl_normdiff_grad_f64(const double* a, const double* b, Py_ssize_t n, double eps, double p,
                              double norm, double c, double* ga, double* gb) nogil
    void fl_dot3_f32(const float* a, const float* b, Py_ssize_t n, double* r) nogil
    void fl_dot3_f64(const double* a, const double* b, Py_ssize_t n, double* r) nogil
    void fl_axpby_f32(const float* a, const float* b, Py_ssize_t n, double u, double v, float* g) nogil
    void fl_axpby_f64(const double* a, const double* b, Py_ssize_t n, double u, double v, double* g) nogil


# ---------------------------------------------------------------- fused wrappers of the row helpers
cdef inline double norm_diff(const floating* a, const floating* b, Py_ssize_t n, double eps,
                             double p) noexcept nogil:
    """||a - b + eps||_p in double (torch's pairwise_distance)."""
    cdef double s
    if p == 2.0:
        if floating is float:
            return sqrt(fl_sqdiff_f32(a, b, n, eps))
        else:
            return sqrt(fl_sqdiff_f64(a, b, n, eps))
    if floating is float:
        s = fl_powdiff_f32(a, b, n, eps, p)
    else:
        s = fl_powdiff_f64(a, b, n, eps, p)
    if p == 1.0 or p == INFINITY:
        return s
    return pow(s, 1.0 / p)


cdef inline void norm_diff_grad(const floating* a, const floating* b, Py_ssize_t n, double eps, double p,
                                double norm, double c, floating* ga, floating* gb) noexcept nogil:
    """ga += c * d(norm)/da, gb += c * d(norm)/db (= the negative)."""
    if floating is float:
        fl_normdiff_grad_f32(a, b, n, eps, p, norm, c, ga, gb)
    else:
        fl_normdiff_grad_f64(a, b, n, eps, p, norm, c, ga, gb)


cdef inline void dot3(const floating* a, const floating* b, Py_ssize_t n, double* r) noexcept nogil:
    if floating is float:
        fl_dot3_f32(a, b, n, r)
    else:
        fl_dot3_f64(a, b, n, r)


cdef inline void axpby(const floating* a, const floating* b, Py_ssize_t n, double u, double v,
                       floating* g) noexcept nogil:
    if floating is float:
        fl_axpby_f32(a, b, n, u, v, g)
    else:
        fl_axpby_f64(a, b, n, u, v, g)


# ---------------------------------------------------------------- entry plumbing
cdef inline void* data_ptr(object arr):
    """Data pointer of a C-contiguous ndarray, or NULL for None."""
    return NULL if arr is None else <void*> <size_t> arr.ctypes.data


cdef object drive(BlockFn fn, const void* ctx, Py_ssize_t n_items, Py_ssize_t item_cost,
                  Py_ssize_t itemsize, int num_threads, object out, bint want_denom):
    """Run one block function over n_items with run_blocks; returns (loss_sum, denom_sum)."""
    cdef BlockRun run
    cdef int status
    run.n_items = n_items
    run.item_cost = item_cost if item_cost > 0 else 1
    run.block_items = block_items_for(run.item_cost)
    run.itemsize = itemsize
    run.num_threads = num_threads
    run.loss_out = data_ptr(out)
    run.want_denom = want_denom
    with nogil:
        status = run_blocks(fn, ctx, &run)
    if status != 0:
        raise MemoryError("fastloss: could not allocate kernel scratch memory")
    return run.loss_sum, run.denom_sum


# =====================================================================================================
# triplet_margin_loss (torch.nn.functional; aten/src/ATen/native/Loss.cpp)
# =====================================================================================================
# d_ap = ||a - p + eps||_p,  d_an = ||a - n + eps||_p,  with swap also d_pn = ||p - n + eps||_p and
# d_neg = min(d_an, d_pn) (else d_an):
#   loss = max(0, margin + d_ap - d_neg)
#   dloss/dd_ap = [z >= 0],  dloss/dd_an = -[z >= 0] * w_an,  dloss/dd_pn = -[z >= 0] * w_pn
# where z = margin + d_ap - d_neg and (w_an, w_pn) = (1, 0), (0, 1) or (1/2, 1/2) on a tie (torch's
# minimum backward).  Chain rule through the norms: see fl_normdiff_grad.

cdef inline double triplet_point(double dap, double dan, double dpn, double margin, bint swap,
                                 double* c) noexcept nogil:
    """Returns the loss; c[0..2] = d loss / d (d_ap, d_an, d_pn)."""
    cdef double wan = 1.0, wpn = 0.0, dneg = dan
    if swap:
        if dpn < dan:
            wan, wpn, dneg = 0.0, 1.0, dpn
        elif dpn == dan:
            wan, wpn = 0.5, 0.5
    cdef double z = margin + dap - dneg
    cdef double act = 1.0 if z >= 0 else 0.0
    c[0] = act
    c[1] = -act * wan
    c[2] = -act * wpn
    return 0.0 if z < 0 else z


cdef struct TripletCtx:
    const void* a
    const void* p
    const void* n
    Py_ssize_t D
    double margin
    double pnorm
    double eps
    bint swap
    void* ga
    void* gp
    void* gn
    double grad_scale


cdef Py_ssize_t triplet_block(const TripletCtx* c, Py_ssize_t start, Py_ssize_t stop,
                              floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t D = c.D, i
    cdef const floating* a
    cdef const floating* p
    cdef const floating* n
    cdef floating* ga
    cdef floating* gp
    cdef floating* gn
    cdef double dap, dan, dpn = 0.0, gs = c.grad_scale
    cdef double coef[3]
    for i in range(start, stop):
        a = <const floating*> c.a + i * D
        p = <const floating*> c.p + i * D
        n = <const floating*> c.n + i * D
        dap = norm_diff(a, p, D, c.eps, c.pnorm)
        dan = norm_diff(a, n, D, c.eps, c.pnorm)
        if c.swap:
            dpn = norm_diff(p, n, D, c.eps, c.pnorm)
        loss[i - start] = <floating> triplet_point(dap, dan, dpn, c.margin, c.swap, coef)
        if c.ga != NULL:
            ga = <floating*> c.ga + i * D
            gp = <floating*> c.gp + i * D
            gn = <floating*> c.gn + i * D
            memset(ga, 0, D * sizeof(floating))
            memset(gp, 0, D * sizeof(floating))
            memset(gn, 0, D * sizeof(floating))
            norm_diff_grad(a, p, D, c.eps, c.pnorm, dap, coef[0] * gs, ga, gp)
            norm_diff_grad(a, n, D, c.eps, c.pnorm, dan, coef[1] * gs, ga, gn)
            if c.swap:
                norm_diff_grad(p, n, D, c.eps, c.pnorm, dpn, coef[2] * gs, gp, gn)
    return -1


def triplet_margin(a, p, n, double margin, double pnorm, double eps, bint swap, out, ga, gp, gn,
                   double grad_scale, int num_threads):
    """Kernel entry: a, p, n (N, D) C-contiguous of one float dtype; out (N,) or None; ga/gp/gn like a
    or None.  Returns (loss_sum, 0)."""
    cdef TripletCtx c
    c.a, c.p, c.n = data_ptr(a), data_ptr(p), data_ptr(n)
    c.D = a.shape[1]
    c.margin, c.pnorm, c.eps, c.swap = margin, pnorm, eps, swap
    c.ga, c.gp, c.gn = data_ptr(ga), data_ptr(gp), data_ptr(gn)
    c.grad_scale = grad_scale
    cdef BlockFn fn = <BlockFn> triplet_block[float] if a.dtype.itemsize == 4 else <BlockFn> triplet_block[double]
    return drive(fn, &c, a.shape[0], c.D * (3 if swap else 2), a.dtype.itemsize, num_threads, out, False)


# =====================================================================================================
# cosine_embedding_loss (torch: aten/src/ATen/native/Loss.cpp, EPSILON = 1e-12f)
# =====================================================================================================
# m1 = |x1|^2 + E, m2 = |x2|^2 + E, cos = <x1, x2> / sqrt(m1 m2)   (E keeps zero vectors at cos = 0)
#   y = 1:  loss = 1 - cos,               dloss/dcos = -1
#   y = -1: loss = max(0, cos - margin),  dloss/dcos = [cos - margin >= 0]
#   other y: loss = 0
#   dcos/dx1 = x2 / sqrt(m1 m2) - cos * x1 / m1,  dcos/dx2 = x1 / sqrt(m1 m2) - cos * x2 / m2

cdef double COS_EPSILON = <double> <float> 1e-12   # torch's constexpr float EPSILON, widened


cdef inline double cosine_embedding_point(double ab, double aa, double bb, double y, double margin,
                                          double* u) noexcept nogil:
    """Returns the loss; u[0], u[1]: coefficients of (x1, x2) in dloss/dx1, u[2], u[3] in dloss/dx2."""
    cdef double m1 = aa + COS_EPSILON, m2 = bb + COS_EPSILON
    cdef double den = sqrt(m1 * m2)
    cdef double cos = ab / den
    cdef double loss = 0.0, dc = 0.0
    if y == 1.0:
        loss, dc = 1.0 - cos, -1.0
    elif y == -1.0:
        loss = cos - margin
        dc = 1.0 if loss >= 0 else 0.0
        loss = 0.0 if loss < 0 else loss
    u[0] = -dc * cos / m1
    u[1] = dc / den
    u[2] = dc / den
    u[3] = -dc * cos / m2
    return loss


cdef struct PairCtx:
    const void* x1
    const void* x2
    const void* y            # (N,) targets in the kernel's float type
    Py_ssize_t D
    double margin
    void* g1
    void* g2
    double grad_scale


cdef Py_ssize_t cosine_embedding_block(const PairCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                       floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t D = c.D, i
    cdef const floating* x1
    cdef const floating* x2
    cdef double r[3]
    cdef double u[4]
    cdef double gs = c.grad_scale
    for i in range(start, stop):
        x1 = <const floating*> c.x1 + i * D
        x2 = <const floating*> c.x2 + i * D
        dot3(x1, x2, D, r)
        loss[i - start] = <floating> cosine_embedding_point(r[0], r[1], r[2], (<const floating*> c.y)[i],
                                                            c.margin, u)
        if c.g1 != NULL:
            axpby(x1, x2, D, u[0] * gs, u[1] * gs, <floating*> c.g1 + i * D)
            axpby(x1, x2, D, u[2] * gs, u[3] * gs, <floating*> c.g2 + i * D)
    return -1


# =====================================================================================================
# contrastive_loss (SPEC §6): y d^2 + (1 - y) max(0, margin - d)^2, d = ||x1 - x2||_2
# =====================================================================================================
#   dloss/dd = 2 y d - 2 (1 - y) max(0, margin - d);  dd/dx1 = (x1 - x2) / d (0 at d = 0)
# The similar term is differentiated as d^2 directly (gradient 2 y (x1 - x2), finite at d = 0).

cdef inline double contrastive_point(double d, double y, double margin, double* dd) noexcept nogil:
    """Returns the loss; dd[0] = dloss/dd from the hinge term only, dd[1] = dloss/d(d^2) (similar)."""
    cdef double h = margin - d
    h = 0.0 if h < 0 else h
    dd[0] = -2.0 * (1.0 - y) * h
    dd[1] = y
    return y * d * d + (1.0 - y) * h * h


cdef Py_ssize_t contrastive_block(const PairCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                  floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t D = c.D, i
    cdef const floating* x1
    cdef const floating* x2
    cdef floating* g1
    cdef floating* g2
    cdef double d, gs = c.grad_scale
    cdef double dd[2]
    for i in range(start, stop):
        x1 = <const floating*> c.x1 + i * D
        x2 = <const floating*> c.x2 + i * D
        d = norm_diff(x1, x2, D, 0.0, 2.0)
        loss[i - start] = <floating> contrastive_point(d, (<const floating*> c.y)[i], c.margin, dd)
        if c.g1 != NULL:
            g1 = <floating*> c.g1 + i * D
            g2 = <floating*> c.g2 + i * D
            # d(y d^2)/dx1 = 2 y (x1 - x2); the hinge term goes through the norm's gradient
            axpby(x1, x2, D, 2.0 * dd[1] * gs, -2.0 * dd[1] * gs, g1)
            axpby(x1, x2, D, -2.0 * dd[1] * gs, 2.0 * dd[1] * gs, g2)
            norm_diff_grad(x1, x2, D, 0.0, 2.0, d, dd[0] * gs, g1, g2)
    return -1


def pair_rows(str kind, x1, x2, y, double margin, out, g1, g2, double grad_scale, int num_threads):
    """Kernel entry of the losses on pairs of rows with a per-row target: kind "cosine_embedding" or
    "contrastive"; x1, x2 (N, D), y (N,) of one float dtype.  Returns (loss_sum, 0)."""
    cdef PairCtx c
    c.x1, c.x2, c.y = data_ptr(x1), data_ptr(x2), data_ptr(y)
    c.D = x1.shape[1]
    c.margin = margin
    c.g1, c.g2 = data_ptr(g1), data_ptr(g2)
    c.grad_scale = grad_scale
    cdef bint f32 = x1.dtype.itemsize == 4
    cdef BlockFn fn
    if kind == "cosine_embedding":
        fn = <BlockFn> cosine_embedding_block[float] if f32 else <BlockFn> cosine_embedding_block[double]
    else:
        fn = <BlockFn> contrastive_block[float] if f32 else <BlockFn> contrastive_block[double]
    return drive(fn, &c, x1.shape[0], 2 * c.D, x1.dtype.itemsize, num_threads, out, False)


# =====================================================================================================
# Elementwise score losses: margin_ranking_loss, hinge_embedding_loss (torch.nn.functional)
# =====================================================================================================
# margin_ranking: z = margin - y (x1 - x2);  loss = max(0, z);  dloss/dx1 = -y [z >= 0] = -dloss/dx2
# hinge_embedding: loss = [y != 1] max(0, margin - x) + [y != -1] x
#                  dloss/dx = [y != -1] - [y != 1] [margin - x >= 0]

cdef inline floating margin_ranking_point(floating x1, floating x2, floating y, floating margin,
                                          floating* dx1) noexcept nogil:
    cdef floating z = margin - y * (x1 - x2)
    dx1[0] = -y if z >= 0 else 0
    return 0 if z < 0 else z


cdef inline floating hinge_embedding_point(floating x, floating y, floating margin, floating* dx) noexcept nogil:
    cdef floating h = margin - x
    cdef floating not_pos = 1 if y != 1 else 0
    cdef floating not_neg = 1 if y != -1 else 0
    dx[0] = not_neg - (not_pos if h >= 0 else 0)
    return not_pos * (0 if h < 0 else h) + not_neg * x


cdef struct ScoreCtx:
    const void* x1
    const void* x2          # NULL for hinge_embedding
    const void* y
    double margin
    void* g1
    void* g2
    double grad_scale


cdef Py_ssize_t score_block(const ScoreCtx* c, Py_ssize_t start, Py_ssize_t stop,
                            floating* loss, floating* denom) noexcept nogil:
    cdef const floating* x1 = <const floating*> c.x1 + start
    cdef const floating* x2 = <const floating*> c.x2 + start if c.x2 != NULL else NULL
    cdef const floating* y = <const floating*> c.y + start
    cdef floating* g1 = <floating*> c.g1 + start if c.g1 != NULL else NULL
    cdef floating* g2 = <floating*> c.g2 + start if c.g2 != NULL else NULL
    cdef floating m = <floating> c.margin, gs = <floating> c.grad_scale, d
    cdef Py_ssize_t k, L = stop - start
    if x2 != NULL:
        if g1 != NULL:
            for k in range(L):
                loss[k] = margin_ranking_point(x1[k], x2[k], y[k], m, &d)
                g1[k] = d * gs
                g2[k] = -d * gs
        else:
            for k in range(L):
                loss[k] = margin_ranking_point(x1[k], x2[k], y[k], m, &d)
    elif g1 != NULL:
        for k in range(L):
            loss[k] = hinge_embedding_point(x1[k], y[k], m, &d)
            g1[k] = d * gs
    else:
        for k in range(L):
            loss[k] = hinge_embedding_point(x1[k], y[k], m, &d)
    return -1


def score_loss(x1, x2, y, double margin, out, g1, g2, double grad_scale, int num_threads):
    """Kernel entry: margin_ranking (x2 given) or hinge_embedding (x2 None); flat C-contiguous arrays
    of one float dtype.  Returns (loss_sum, 0)."""
    cdef ScoreCtx c
    c.x1, c.x2, c.y = data_ptr(x1), data_ptr(x2), data_ptr(y)
    c.margin = margin
    c.g1, c.g2 = data_ptr(g1), data_ptr(g2)
    c.grad_scale = grad_scale
    cdef BlockFn fn = <BlockFn> score_block[float] if x1.dtype.itemsize == 4 else <BlockFn> score_block[double]
    return drive(fn, &c, x1.shape[0], 1, x1.dtype.itemsize, num_threads, out, False)


def hinge_embedding(x, y, double margin, out, g, double grad_scale, int num_threads):
    """Kernel entry of hinge_embedding_loss (score_loss without a second input)."""
    return score_loss(x, None, y, margin, out, g, None, grad_scale, num_threads)
