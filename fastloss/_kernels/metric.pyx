# cython: language_level=3
"""Metric-learning kernels: losses on embeddings (rows of D numbers) and on scalar scores.

Read ``_common.pxd`` first: every kernel here is a *block function* run by ``run_blocks``.

Items.
  * pairwise rows (triplet_margin_loss, cosine_embedding_loss, contrastive_loss): item = one row of
    each embedding argument; the distances are accumulated in ONE pass over the row (in double), the
    gradient rows are written in a second pass while the row is still in L1.  Rows of a few features
    (triplet with p = 1 or 2, cosine embedding; ``pair_tiles_win``) are turned feature-major in tiles of
    up to 256 rows instead, and every loop runs along the rows (``fl_tile_pairs.h``).
  * elementwise (margin_ranking_loss, hinge_embedding_loss): item = one score.
  * in-batch losses (batch_hard / batch_all triplet, info_nce, nt_xent, arcface): the (B x B)
    similarity is never materialised.  Each block of <= 64 rows (batch_hard: 128) of the Gram /
    similarity matrix is one single-threaded GEMM of SciPy's BLAS, called from the block function
    (``SimRows``; O(threads x block x B) memory); the same block function then does the mining /
    log-sum-exp / masking on it and
    writes per-row losses (and, for the gradient, per-row coefficients).  The per-row losses are then
    reduced by ``run_blocks`` in one final deterministic pass (``reduce_rows``).  batch_hard's loss
    without the gradient computes each Gram tile once, from the symmetric half ("Symmetric mining").

Entries.  Each ``def`` entry takes its buffers by position and its configuration by keyword, typed
(``double``, ``bint``, the enums ``MetricLoss`` and ``ArcMargin``); it fills the loss's context struct
and calls ``run`` (``_common.pxd``) with the block function ``block_for`` picks from ``METRIC_BLOCKS``
(end of file): ``MetricLoss`` -> block function, the one place a kernel is chosen (except the feature-major
tile variants, which the triplet and pair entries pick by ``pair_tiles_win``).

Precision.  Row sums (squared distances, dot products) accumulate in double for both float types:
the triplet hinge ``margin + d_ap - d_an`` cancels, and double sums keep float32 results within
SPEC §4.  ``omp simd reduction`` (C helpers below; Cython cannot emit the pragma) keeps those sums
vectorised and their order fixed by the ISA level alone; the triplet's distances use FL_LANES explicit
partial sums instead (one fixed order, and independent add chains).

Gradients at non-differentiable points follow torch's autograd: ``clamp_min`` passes the gradient
where its input is >= the bound, ``minimum`` splits a tie in half, a norm's gradient is 0 where the
norm is 0.
"""
from libc.math cimport sqrt, pow, log, log1p, exp, cos, sin, isinf, isfinite, INFINITY, NAN
from libc.stdlib cimport calloc, free
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset
import math
import threading

from cpython.pycapsule cimport PyCapsule_GetPointer, PyCapsule_GetName
import numpy as np

from cython.parallel cimport prange
from fastloss._kernels._common cimport floating, BlockFn, run, row_max, row_sumexp, ptr_or_null, to_tile, from_tile
from fastloss._kernels._common cimport fl_transpose_f32, fl_transpose_f64
from fastloss._kernels._common cimport BlockRun, init_run, run_blocks, finish_run, prefetch_end
from fastloss._kernels._common cimport (
    check_buffer, check_optional, check_ndim, check_count, check_enum, buffer_items,
)
from fastloss._kernels._common cimport (
    PyArrayObject, PyArray_Descr, PyArray_NDIM, PyArray_DIMS, PyArray_FLAGS, PyArray_DESCR,
    NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED, NPY_FLOAT, NPY_DOUBLE, NPY_OPPBYTE,
)
from cpython.object cimport Py_TYPE, PyTypeObject

# The losses of this module (the wrappers in fastloss/_metric.py name them: MetricLoss.CONTRASTIVE, ...);
# METRIC_BLOCKS below maps each to its block function.
cpdef enum MetricLoss:
    TRIPLET_MARGIN = 0
    COSINE_EMBEDDING = 1
    CONTRASTIVE = 2
    MARGIN_RANKING = 3
    HINGE_EMBEDDING = 4
    BATCH_HARD_TRIPLET = 5
    BATCH_ALL_TRIPLET = 6
    SOFTMAX_ROWS = 7          # info_nce, nt_xent, arcface: softmax cross-entropy over similarity rows
    ROW_SUMS = 8              # reduce_rows: the deterministic sum of per-row float64 losses

cdef enum:
    N_METRIC_LOSSES = 9

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>
    #include <stdint.h>
    #include <string.h>
    /* GCC contracts a * b + c into an FMA across statements (-ffp-contract=fast, its default); this turns
     * it off for one function.  Clang contracts only within one expression by default. */
    #if defined(__GNUC__) && !defined(__clang__)
    #define FL_NO_FP_CONTRACT __attribute__((optimize("fp-contract=off")))
    #else
    #define FL_NO_FP_CONTRACT
    #endif
    /* The triplet's row sums keep FL_LANES partial sums per distance: element k goes to lane
     * k % FL_LANES (FL_LANE_LOOP runs its body on element i, lane j), and the lanes are added in the
     * fixed tree of fl_lanes_sum: one order for every thread count (and every ISA level, up to the FMA
     * contraction of x86-64-v3). */
    #define FL_LANES 8
    #define FL_LANE_LOOP(n, ...)                                                                  \\
        {   ptrdiff_t k_ = 0;                                                                     \\
            for (; k_ + FL_LANES <= (n); k_ += FL_LANES) {                                        \\
                _Pragma("omp simd")                                                               \\
                for (int j = 0; j < FL_LANES; j++) { ptrdiff_t i = k_ + j; __VA_ARGS__ }          \\
            }                                                                                     \\
            for (int j = 0; k_ < (n); k_++, j++) { ptrdiff_t i = k_; __VA_ARGS__ } }
    static inline double fl_lanes_sum(const double* s) {
        return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    }
    /* The triplet's distance sums in ONE pass over its rows a, b, c (each converted once): r[0] =
     * sum_k TERM(a_k - b_k + eps), r[1] = the same for a, c and, with three, r[2] for b, c (else 0);
     * TERM is d^2 (fl_sqdiff3, p = 2) or |d| (fl_absdiff3, p = 1).  FL_LANES partial sums per
     * distance (FL_LANE_LOOP): a single vector accumulator made every element wait on the last add. */
    #define FL_SQ(d) ((d) * (d))
    #define FL_DIST3(NAME, TERM, T, S)                                                            \\
    static inline void NAME##_##S(const T* a, const T* b, const T* c, ptrdiff_t n, double eps,    \\
                                  int three, double* r) {                                         \\
        double s[FL_LANES] = {0}, u[FL_LANES] = {0}, v[FL_LANES] = {0};                           \\
        if (three) {                                                                              \\
            FL_LANE_LOOP(n, double x = a[i], y = b[i], z = c[i];                                  \\
                         double d = x - y + eps, e = x - z + eps, f = y - z + eps;                \\
                         s[j] += TERM(d); u[j] += TERM(e); v[j] += TERM(f);)                      \\
        } else {                                                                                  \\
            FL_LANE_LOOP(n, double x = a[i], y = b[i], z = c[i];                                  \\
                         double d = x - y + eps, e = x - z + eps;                                 \\
                         s[j] += TERM(d); u[j] += TERM(e);)                                       \\
        }                                                                                         \\
        r[0] = fl_lanes_sum(s); r[1] = fl_lanes_sum(u); r[2] = fl_lanes_sum(v);                   \\
    }
    /* AVX2 (x86-64-v3): fl_sqdiff3 for float32 rows with each half-vector converted straight from memory
     * (vcvtps2pd ymm, m128).  From FL_DIST3's loop GCC loads 8 floats and extracts the upper half before
     * converting it: 3 extracts per 8 elements on top of the 6 two-uop conversions that bound the loop;
     * without them a 100 x 128 triplet's rows take 18% less time (7.2 -> 5.9 us, standalone loop;
     * GCC's own vectorisation of the loop written in halves of 4 lanes was 2x slower).  The same lanes
     * (element k in lane k % FL_LANES: s0 holds lanes 0-3, s1 lanes 4-7) and the same operations
     * ((x - y) + eps, then fma(d, d, s) as GCC contracts s += d * d), so the same bits as FL_DIST3's. */
    /* (the hand-written forms' last n % FL_LANES elements, as FL_LANE_LOOP's, and the lanes' totals) */
    #define FL_SQDIFF3_FINISH                                                                     \\
        for (int j = 0; k < n; k++, j++) {                                                        \\
            double x = a[k], y = b[k], z = c[k];                                                  \\
            double d = x - y + eps, g = x - z + eps, h = y - z + eps;                             \\
            s[j] += FL_SQ(d); u[j] += FL_SQ(g);                                                   \\
            if (three) v[j] += FL_SQ(h);                                                          \\
        }                                                                                         \\
        r[0] = fl_lanes_sum(s); r[1] = fl_lanes_sum(u); r[2] = fl_lanes_sum(v);
    #if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
    #include <immintrin.h>
    #define FL_SQDIFF3_F32_AVX2 1
    #define FL_CVT4(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
    #define FL_SQ4(acc, x, y) { __m256d d_ = _mm256_add_pd(_mm256_sub_pd((x), (y)), e4); acc = _mm256_fmadd_pd(d_, d_, acc); }
    static inline void fl_sqdiff3_f32(const float* a, const float* b, const float* c, ptrdiff_t n, double eps,
                                      int three, double* r) {
        const __m256d e4 = _mm256_set1_pd(eps);
        __m256d s0 = _mm256_setzero_pd(), s1 = s0, u0 = s0, u1 = s0, v0 = s0, v1 = s0;
        double s[FL_LANES], u[FL_LANES], v[FL_LANES];
        ptrdiff_t k = 0;
        for (; k + FL_LANES <= n; k += FL_LANES) {
            const __m256d x0 = FL_CVT4(a + k), x1 = FL_CVT4(a + k + 4);
            const __m256d y0 = FL_CVT4(b + k), y1 = FL_CVT4(b + k + 4);
            const __m256d z0 = FL_CVT4(c + k), z1 = FL_CVT4(c + k + 4);
            FL_SQ4(s0, x0, y0) FL_SQ4(s1, x1, y1) FL_SQ4(u0, x0, z0) FL_SQ4(u1, x1, z1)
            if (three) { FL_SQ4(v0, y0, z0) FL_SQ4(v1, y1, z1) }
        }
        _mm256_storeu_pd(s, s0); _mm256_storeu_pd(s + 4, s1);
        _mm256_storeu_pd(u, u0); _mm256_storeu_pd(u + 4, u1);
        _mm256_storeu_pd(v, v0); _mm256_storeu_pd(v + 4, v1);
        FL_SQDIFF3_FINISH
    }
    #undef FL_CVT4
    #undef FL_SQ4
    #elif defined(__AVX512F__)
    /* AVX-512: the same, the FL_LANES = 8 lanes one zmm register per distance (each 8-float run converted
     * straight from memory, vcvtps2pd zmm, m256).  FL_DIST3's loop ran W12 (100 000 x 128) 1.2-1.5x slower
     * here than the AVX2 form above on the same Zen 4 core.  Same lanes, same operations (fma(d, d, s)),
     * so the same bits. */
    #include <immintrin.h>
    #define FL_SQ8(acc, x, y) { __m512d d_ = _mm512_add_pd(_mm512_sub_pd((x), (y)), e8); acc = _mm512_fmadd_pd(d_, d_, acc); }
    static inline void fl_sqdiff3_f32(const float* a, const float* b, const float* c, ptrdiff_t n, double eps,
                                      int three, double* r) {
        const __m512d e8 = _mm512_set1_pd(eps);
        __m512d s0 = _mm512_setzero_pd(), u0 = s0, v0 = s0;
        double s[FL_LANES], u[FL_LANES], v[FL_LANES];
        ptrdiff_t k = 0;
        for (; k + FL_LANES <= n; k += FL_LANES) {
            const __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(a + k));
            const __m512d y = _mm512_cvtps_pd(_mm256_loadu_ps(b + k));
            const __m512d z = _mm512_cvtps_pd(_mm256_loadu_ps(c + k));
            FL_SQ8(s0, x, y) FL_SQ8(u0, x, z)
            if (three) FL_SQ8(v0, y, z)
        }
        _mm512_storeu_pd(s, s0); _mm512_storeu_pd(u, u0); _mm512_storeu_pd(v, v0);
        FL_SQDIFF3_FINISH
    }
    #undef FL_SQ8
    #else
    FL_DIST3(fl_sqdiff3, FL_SQ, float, f32)
    #endif
    #undef FL_SQDIFF3_FINISH
    FL_DIST3(fl_sqdiff3, FL_SQ, double, f64)
    FL_DIST3(fl_absdiff3, fabs, float, f32)
    FL_DIST3(fl_absdiff3, fabs, double, f64)
    /* Row primitives on two rows a, b of n numbers, with d_k = a_k - b_k + eps (torch's
     * pairwise_distance places eps inside the norm: ||a - b + eps||_p).  Sums in double. */
    #define FL_METRIC_ROWS(T, S)                                                                  \\
    static inline double fl_sqdiff_##S(const T* a, const T* b, ptrdiff_t n, double eps) {        \\
        double s = 0.0;                                                                           \\
        _Pragma("omp simd reduction(+:s)")                                                        \\
        for (ptrdiff_t k = 0; k < n; k++) { double d = (double)a[k] - (double)b[k] + eps; s += d * d; } \\
        return s;                                                                                 \\
    }                                                                                             \\
    /* The triplet's gradient rows for p = 2 in one pass, when exactly the terms (a, b) and (a, c)  \\
     * are active (f0, f1 = c / norm of fl_normdiff_grad): ga = (0 + v0) + v1, gb = 0 - v0,          \\
     * gc = 0 - v1 with v = (T)(f d) -- the bits of zeroing the rows and two fl_normdiff_grad calls.  \\
     * No FMA contraction, as there. */                                                            \\
    static inline FL_NO_FP_CONTRACT                                                               \\
    void fl_sqdiff3_grad_##S(const T* a, const T* b, const T* c, ptrdiff_t n, double eps,         \\
                             double f0, double f1, T* ga, T* gb, T* gc) {                         \\
        _Pragma("omp simd")                                                                       \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                       \\
            double x = a[k];                                                                      \\
            T v0 = (T)(f0 * (x - (double)b[k] + eps)), v1 = (T)(f1 * (x - (double)c[k] + eps));   \\
            ga[k] = ((T)0 + v0) + v1; gb[k] = (T)0 - v0; gc[k] = (T)0 - v1;                       \\
        }                                                                                         \\
    }                                                                                             \\
    /* sum_k |d_k|^p for finite p != 0 (p = 1 vectorised), max_k |d_k| for p = inf, min_k |d_k|    \\
     * for p = -inf (nan propagates), the count of d_k != 0 for p = 0 (torch's norm: nan counts) */ \\
    static inline double fl_powdiff_##S(const T* a, const T* b, ptrdiff_t n, double eps, double p) { \\
        double s = p == -INFINITY ? INFINITY : 0.0;                                               \\
        if (isinf(p)) {                                                                           \\
            for (ptrdiff_t k = 0; k < n; k++) {                                                   \\
                double d = fabs((double)a[k] - (double)b[k] + eps);                               \\
                if (d != d) return d;                                                             \\
                s = (p > 0 ? d > s : d < s) ? d : s;                                              \\
            }                                                                                     \\
        } else if (p == 0.0) {                                                                    \\
            for (ptrdiff_t k = 0; k < n; k++) s += (double)a[k] - (double)b[k] + eps != 0.0;     \\
        } else if (p == 1.0) {                                                                    \\
            _Pragma("omp simd reduction(+:s)")                                                    \\
            for (ptrdiff_t k = 0; k < n; k++) s += fabs((double)a[k] - (double)b[k] + eps);      \\
        } else {                                                                                  \\
            for (ptrdiff_t k = 0; k < n; k++) s += pow(fabs((double)a[k] - (double)b[k] + eps), p); \\
        }                                                                                         \\
        return s;                                                                                 \\
    }                                                                                             \\
    /* ga += c * d||d||_p/dd, gb -= the same (either may be NULL).  torch's norm_backward: 0 where  \\
     * the norm is 0; for p = inf the gradient is shared equally by the entries attaining the max.   \\
     * A zero c skips the row only where the norm is finite: torch multiplies it through, so a row   \\
     * with a nan or inf entry gets nan there (0 * inf), as torch's does.                           \\
     * No FMA contraction (FL_NO_FP_CONTRACT): a row receives two such terms (the anchor of a       \\
     * triplet: +f d and -f d for a = p = n), and a fused ga + (-f) d left the rounding error of     \\
     * f d, +-1e-18, where the exact gradient -- and the unfused one -- is 0. */                     \\
    static inline FL_NO_FP_CONTRACT                                                               \\
    void fl_normdiff_grad_##S(const T* a, const T* b, ptrdiff_t n, double eps,                    \\
                                            double p, double norm, double c, T* ga, T* gb) {      \\
        if (norm == 0.0 || p == 0.0 || (c == 0.0 && isfinite(norm))) return;   /* p = 0, a count: 0 */ \\
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
            v = d > 0 ? v : (d < 0 ? -v : 0.0);            /* torch's sgn(d): 0 at a nan */      \\
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
    /* batch_hard's anchor i over its Gram row g (B entries): see "Triplet mining" below.  Pass 1 (one
     * vectorised reduction per chunk of the row, the label compare as a mask): the largest positive /
     * smallest negative Gram d^2 (clamped at 0) of each chunk and of the row, the positive / negative
     * counts and whether a nan d^2 is among them.  Pass 2 visits only the chunks that can hold a
     * candidate, i.e. a d^2 within the rounding band of the row's best (tol (|e_i|^2 + |e_j|^2) for j,
     * tol (|e_i|^2 + sqmax) for the best, sqmax >= every |e_j|^2: a superset of the exact bound's
     * candidates, so the same winner); there a vectorised pass flags the candidates, and only those
     * are recomputed from the rows, first index winning ties.  Returns 0 (no positive or no negative),
     * 1 (a nan distance) or 2 (r = {best positive d^2, best negative d^2}, jk their indices).
     * (64-bit masks, 0 or -1, as wide as the double lanes: GCC vectorises this form.) */
    #define FL_MINE_NCHUNK 64    /* chunks per row at most (pass 1's per-chunk bests) */
    #define FL_MINE_FLAGS 256    /* candidate flags per vectorised flag pass */
    #define FL_MINE_D2(T) double d2 = sqi + sq[j] - 2.0 * (double)g[j]; d2 = d2 < 0 ? 0.0 : d2;      \\
        int64_t same = -(int64_t)(lab[j] == li), pos = same & -(int64_t)(j != i), neg = ~same;
    /* pass 1 over j in [A, B1), j != i: npos, nnan, cp, cn of the enclosing FL_MINE_ROW */
    #define FL_MINE_PASS1(A, B1)                                                                  \\
        _Pragma("omp simd reduction(max:cp) reduction(min:cn) reduction(+:npos) reduction(|:nnan)") \\
        for (ptrdiff_t j = (A); j < (B1); j++) {                                                  \\
            double d2 = sqi + sq[j] - 2.0 * (double)g[j];                                         \\
            int64_t same = -(int64_t)(lab[j] == li);                                              \\
            npos -= same; nnan |= -(int64_t)(d2 != d2);                                           \\
            double vp = same ? d2 : -INFINITY, vn = same ? INFINITY : d2;                         \\
            cp = vp > cp ? vp : cp; cn = vn < cn ? vn : cn;                                       \\
        }
    #define FL_MINE_ROW(T, S, L, SL)                                                              \\
    static __attribute__((noinline)) int fl_hard_row_##S##_##SL(                                  \\
            const T* g, const T* emb, ptrdiff_t D, const double* sq, const L* lab, ptrdiff_t i,   \\
            ptrdiff_t B, double tol, double sqmax, ptrdiff_t* jk, double* r) {                    \\
        const L li = lab[i];                                                                      \\
        const double sqi = sq[i];                                                                 \\
        double gp = -INFINITY, gn = INFINITY, chp[FL_MINE_NCHUNK], chn[FL_MINE_NCHUNK];           \\
        int64_t npos = 0, nneg = 0, nnan = 0;                                                     \\
        ptrdiff_t cs = (B + FL_MINE_NCHUNK - 1) / FL_MINE_NCHUNK;                                 \\
        cs = cs < 64 ? 64 : (cs + 7) & ~(ptrdiff_t)7;                                             \\
        for (ptrdiff_t c0 = 0, c = 0; c0 < B; c0 += cs, c++) {                                    \\
            ptrdiff_t c1 = B - c0 < cs ? B : c0 + cs;                                             \\
            double cp = -INFINITY, cn = INFINITY;                                                 \\
            /* j = i skipped by splitting the range; the clamp at 0 applied to the bests (it is      \\
             * monotone: the clamped max / min is the max / min clamped) */                        \\
            FL_MINE_PASS1(c0, (i < c1 ? i : c1))                                                  \\
            FL_MINE_PASS1((i + 1 > c0 ? i + 1 : c0), c1)                                          \\
            cp = cp < 0 && cp > -INFINITY ? 0.0 : cp; cn = cn < 0 ? 0.0 : cn;                     \\
            chp[c] = cp; chn[c] = cn;                                                             \\
            gp = cp > gp ? cp : gp; gn = cn < gn ? cn : gn;                                       \\
        }                                                                                         \\
        nneg = B - 1 - npos;                                                                      \\
        if (npos == 0 || nneg == 0) return 0;                                                     \\
        if (nnan) return 1;                                                                       \\
        const double wide = tol * (2.0 * sqi + sqmax), tp = gp - wide, tn = gn + wide;            \\
        const double tmax = tol * sqmax;   /* >= every tol |e_j|^2 (rounding is monotone) */     \\
        const T* ei = emb + i * D;                                                                \\
        ptrdiff_t jp = -1, kn = -1;                                                               \\
        double bp = 0.0, bn = 0.0;                                                                \\
        unsigned char flag[FL_MINE_FLAGS] __attribute__((aligned(32)));                           \\
        for (ptrdiff_t c0 = 0, c = 0; c0 < B; c0 += cs, c++) {                                    \\
            /* no flag in the chunk: none of its d^2 + t reaches tp, nor d^2 - t tn, nor is a best */ \\
            if (!(chp[c] + tmax >= tp || chp[c] == gp || chn[c] - tmax <= tn || chn[c] == gn))    \\
                continue;                                                                         \\
            ptrdiff_t c1 = B - c0 < cs ? B : c0 + cs;                                             \\
            for (ptrdiff_t f0 = c0; f0 < c1; f0 += FL_MINE_FLAGS) {                               \\
                ptrdiff_t n = c1 - f0 < FL_MINE_FLAGS ? c1 - f0 : FL_MINE_FLAGS;                  \\
                _Pragma("omp simd")                                                               \\
                for (ptrdiff_t k = 0; k < n; k++) {                                               \\
                    ptrdiff_t j = f0 + k;                                                         \\
                    FL_MINE_D2(T)                                                                 \\
                    double t = tol * sq[j];                                                       \\
                    /* (d2 == gp / gn keeps the Gram's own best a candidate whatever the band) */ \\
                    int64_t fp = pos & -(int64_t)((d2 + t >= tp) | (d2 == gp));                   \\
                    int64_t fn = neg & -(int64_t)((d2 - t <= tn) | (d2 == gn));                   \\
                    flag[k] = (unsigned char)((fp & 1) | (fn & 2));                               \\
                }                                                                                 \\
                for (ptrdiff_t k0 = 0; k0 < n; k0 += 8) {                                         \\
                    unsigned long long w = 0;                                                     \\
                    memcpy(&w, flag + k0, n - k0 < 8 ? (size_t)(n - k0) : 8);                     \\
                    if (w == 0) continue;                                                         \\
                    for (ptrdiff_t k = k0; k < k0 + 8 && k < n; k++) {                            \\
                        if (!flag[k]) continue;                                                   \\
                        ptrdiff_t j = f0 + k;                                                     \\
                        double ex = fl_sqdiff_##S(ei, emb + j * D, D, 0.0);                       \\
                        if (flag[k] == 1) { if (jp < 0 || ex > bp) { jp = j; bp = ex; } }         \\
                        else if (kn < 0 || ex < bn) { kn = j; bn = ex; }                          \\
                    }                                                                             \\
                }                                                                                 \\
            }                                                                                     \\
        }                                                                                         \\
        jk[0] = jp; jk[1] = kn; r[0] = bp; r[1] = bn;                                             \\
        return 2;                                                                                 \\
    }
    FL_MINE_ROW(float, f32, int32_t, i32)
    FL_MINE_ROW(float, f32, int64_t, i64)
    FL_MINE_ROW(double, f64, int32_t, i32)
    FL_MINE_ROW(double, f64, int64_t, i64)
    /* batch_hard without the gradient on the symmetric Gram (see "Symmetric mining" below).
     * fl_mine_cols: the tile t (na x n, row-major, rows a0 + [0, na), columns b0 + [0, n)) reduced over
     * its rows for each column b: the largest positive d^2 (clamped at 0) of the column with its first
     * row index and the largest of its other rows (ties included), the smallest negative d^2 likewise,
     * and flags (1: a positive, 2: a negative, 4: a nan d^2 among them), into the column's slot of tile
     * row c: slot[(b0 + b) nb + c] (4 doubles p1 p2 n1 n2; 3 int64 ip kn flags).  d^2 is computed in
     * the tile's precision T from sq in T (float32: 8 lanes; the band covers its rounding); the column's
     * state lives in scratch (4 n T, 3 n IT) while the rows stream by (vectorised along b). */
    #define FL_MINE_COLS(T, S, IT)                                                                \\
    static __attribute__((noinline)) void fl_mine_cols_##S(                                       \\
            const T* t, ptrdiff_t a0, ptrdiff_t na, ptrdiff_t b0, ptrdiff_t n, const T* sq,       \\
            const int32_t* lab, void* scratch, ptrdiff_t nb, ptrdiff_t c, double* slot,           \\
            int64_t* sloti) {                                                                     \\
        T *p1 = (T*)scratch, *p2 = p1 + n, *n1 = p1 + 2 * n, *n2 = p1 + 3 * n;                    \\
        IT *ip = (IT*)(p1 + 4 * n), *in = ip + n, *fl = ip + 2 * n;                               \\
        const T inf = (T)INFINITY;                                                                \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                       \\
            p1[k] = p2[k] = -inf; n1[k] = n2[k] = inf; ip[k] = in[k] = -1; fl[k] = 0; }           \\
        for (ptrdiff_t a = 0; a < na; a++) {                                                      \\
            const T* row = t + a * n;                                                             \\
            const ptrdiff_t ga = a0 + a;                                                          \\
            const T sqa = sq[ga];                                                                 \\
            const int32_t la = lab[ga];                                                           \\
            const IT ia = (IT)ga, ka = (IT)(ga - b0);                                             \\
            _Pragma("omp simd")                                                                   \\
            for (ptrdiff_t k = 0; k < n; k++) {                                                   \\
                T d2 = sqa + sq[b0 + k] - (T)2 * row[k];                                          \\
                d2 = d2 < 0 ? (T)0 : d2;                                                          \\
                IT same = -(IT)(lab[b0 + k] == la), valid = -(IT)((IT)k != ka);                   \\
                IT pos = same & valid, neg = ~same & valid;                                       \\
                IT f = fl[k]; fl[k] = f | (pos & 1) | (neg & 2) | (valid & -(IT)(d2 != d2) & 4);  \\
                /* (a nan d^2 compares false: it changes no best) */                              \\
                T vp = pos ? d2 : -inf, vn = neg ? d2 : inf;                                      \\
                T a1 = p1[k], a2 = p2[k], b1 = n1[k], b2 = n2[k];                                 \\
                IT ja = ip[k], jb = in[k];                                                        \\
                IT up = -(IT)(vp > a1), un = -(IT)(vn < b1);                                      \\
                T q2 = vp > a2 ? vp : a2, m2 = vn < b2 ? vn : b2;                                 \\
                p2[k] = up ? a1 : q2; p1[k] = up ? vp : a1; ip[k] = up ? ia : ja;                 \\
                n2[k] = un ? b1 : m2; n1[k] = un ? vn : b1; in[k] = un ? ia : jb;                 \\
            }                                                                                     \\
        }                                                                                         \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                       \\
            double* s = slot + ((b0 + k) * nb + c) * 4;                                           \\
            int64_t* si = sloti + ((b0 + k) * nb + c) * 3;                                        \\
            s[0] = p1[k]; s[1] = p2[k]; s[2] = n1[k]; s[3] = n2[k];                               \\
            si[0] = ip[k]; si[1] = in[k]; si[2] = fl[k];                                          \\
        }                                                                                         \\
    }                                                                                             \\
    /* anchor i from its nb slots (tiles of R columns): fl_hard_row's contract (returns 0, 1 or 2;  \\
     * jk, r).  A tile can hold a candidate only if its best is within the band (or is the best);  \\
     * if its second best is not, its best's index is its only candidate, else every positive /  \\
     * negative of the tile is recomputed (near-ties: rare). */                                   \\
    static __attribute__((noinline)) int fl_hard_pick_##S(                                        \\
            const T* emb, ptrdiff_t D, const double* sq, const int32_t* lab, ptrdiff_t i,         \\
            ptrdiff_t B,                                                                          \\
            ptrdiff_t R, ptrdiff_t nb, const double* slot, const int64_t* sloti, double tol,      \\
            double sqmax, ptrdiff_t* jk, double* r) {                                             \\
        const double* s = slot + i * nb * 4;                                                      \\
        const int64_t* si = sloti + i * nb * 3;                                                   \\
        int64_t f = 0;                                                                            \\
        double gp = -INFINITY, gn = INFINITY;                                                     \\
        for (ptrdiff_t c = 0; c < nb; c++) {                                                      \\
            f |= si[3 * c + 2];                                                                   \\
            gp = s[4 * c] > gp ? s[4 * c] : gp; gn = s[4 * c + 2] < gn ? s[4 * c + 2] : gn; }     \\
        if (!(f & 1) || !(f & 2)) return 0;                                                       \\
        if (f & 4) return 1;                                                                      \\
        const int32_t li = lab[i];                                                                      \\
        const double sqi = sq[i];                                                                 \\
        const double wide = tol * (2.0 * sqi + sqmax), tp = gp - wide, tn = gn + wide;            \\
        const double tmax = tol * sqmax;                                                          \\
        const T* ei = emb + i * D;                                                                \\
        ptrdiff_t jp = -1, kn = -1;                                                               \\
        double bp = 0.0, bn = 0.0;                                                                \\
        for (ptrdiff_t c = 0; c < nb; c++) {                                                      \\
            ptrdiff_t j1 = (c + 1) * R < B ? (c + 1) * R : B;                                     \\
            const double p1 = s[4 * c], p2 = s[4 * c + 1], n1 = s[4 * c + 2], n2 = s[4 * c + 3];  \\
            if (p1 + tmax >= tp || p1 == gp) {                                                    \\
                ptrdiff_t lo = c * R, hi = j1;                                                    \\
                if (p2 + tmax < tp && p2 != gp) { lo = si[3 * c]; hi = lo < 0 ? lo : lo + 1; }   \\
                for (ptrdiff_t j = lo; j < hi; j++) {                                             \\
                    if (j == i || lab[j] != li) continue;                                         \\
                    double ex = fl_sqdiff_##S(ei, emb + j * D, D, 0.0);                           \\
                    if (jp < 0 || ex > bp) { jp = j; bp = ex; }                                   \\
                }                                                                                 \\
            }                                                                                     \\
            if (n1 - tmax <= tn || n1 == gn) {                                                    \\
                ptrdiff_t lo = c * R, hi = j1;                                                    \\
                if (n2 - tmax > tn && n2 != gn) { lo = si[3 * c + 1]; hi = lo < 0 ? lo : lo + 1; } \\
                for (ptrdiff_t j = lo; j < hi; j++) {                                             \\
                    if (lab[j] == li) continue;                                                   \\
                    double ex = fl_sqdiff_##S(ei, emb + j * D, D, 0.0);                           \\
                    if (kn < 0 || ex < bn) { kn = j; bn = ex; }                                   \\
                }                                                                                 \\
            }                                                                                     \\
        }                                                                                         \\
        jk[0] = jp; jk[1] = kn; r[0] = bp; r[1] = bn;                                             \\
        return 2;                                                                                 \\
    }
    FL_MINE_COLS(float, f32, int32_t)
    FL_MINE_COLS(double, f64, int64_t)
    """
    double fl_sqdiff_f32(const float* a, const float* b, Py_ssize_t n, double eps) nogil
    double fl_sqdiff_f64(const double* a, const double* b, Py_ssize_t n, double eps) nogil
    void fl_sqdiff3_f32(const float* a, const float* b, const float* c, Py_ssize_t n, double eps,
                        int three, double* r) nogil
    void fl_sqdiff3_f64(const double* a, const double* b, const double* c, Py_ssize_t n, double eps,
                        int three, double* r) nogil
    void fl_absdiff3_f32(const float* a, const float* b, const float* c, Py_ssize_t n, double eps,
                         int three, double* r) nogil
    void fl_absdiff3_f64(const double* a, const double* b, const double* c, Py_ssize_t n, double eps,
                         int three, double* r) nogil
    void fl_sqdiff3_grad_f32(const float* a, const float* b, const float* c, Py_ssize_t n, double eps,
                             double f0, double f1, float* ga, float* gb, float* gc) nogil
    void fl_sqdiff3_grad_f64(const double* a, const double* b, const double* c, Py_ssize_t n, double eps,
                             double f0, double f1, double* ga, double* gb, double* gc) nogil
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
    int fl_hard_row_f32_i32(const float* g, const float* emb, Py_ssize_t D, const double* sq, const int32_t* lab,
                            Py_ssize_t i, Py_ssize_t B, double tol, double sqmax, Py_ssize_t* jk, double* r) nogil
    int fl_hard_row_f32_i64(const float* g, const float* emb, Py_ssize_t D, const double* sq, const int64_t* lab,
                            Py_ssize_t i, Py_ssize_t B, double tol, double sqmax, Py_ssize_t* jk, double* r) nogil
    int fl_hard_row_f64_i32(const double* g, const double* emb, Py_ssize_t D, const double* sq, const int32_t* lab,
                            Py_ssize_t i, Py_ssize_t B, double tol, double sqmax, Py_ssize_t* jk, double* r) nogil
    int fl_hard_row_f64_i64(const double* g, const double* emb, Py_ssize_t D, const double* sq, const int64_t* lab,
                            Py_ssize_t i, Py_ssize_t B, double tol, double sqmax, Py_ssize_t* jk, double* r) nogil
    void fl_mine_cols_f32(const float* t, Py_ssize_t a0, Py_ssize_t na, Py_ssize_t b0, Py_ssize_t n,
                        const float* sq, const int32_t* lab, void* scratch, Py_ssize_t nb,
                        Py_ssize_t c, double* slot, int64_t* sloti) nogil
    int fl_hard_pick_f32(const float* emb, Py_ssize_t D, const double* sq, const int32_t* lab, Py_ssize_t i,
                         Py_ssize_t B, Py_ssize_t R, Py_ssize_t nb, const double* slot, const int64_t* sloti,
                         double tol, double sqmax, Py_ssize_t* jk, double* r) nogil
    void fl_mine_cols_f64(const double* t, Py_ssize_t a0, Py_ssize_t na, Py_ssize_t b0, Py_ssize_t n,
                        const double* sq, const int32_t* lab, void* scratch, Py_ssize_t nb,
                        Py_ssize_t c, double* slot, int64_t* sloti) nogil
    int fl_hard_pick_f64(const double* emb, Py_ssize_t D, const double* sq, const int32_t* lab, Py_ssize_t i,
                         Py_ssize_t B, Py_ssize_t R, Py_ssize_t nb, const double* slot, const int64_t* sloti,
                         double tol, double sqmax, Py_ssize_t* jk, double* r) nogil


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
    if p == 1.0 or p == 0.0 or isinf(p):
        return s
    return pow(s, 1.0 / p)


cdef inline void norm_diff_grad(const floating* a, const floating* b, Py_ssize_t n, double eps, double p,
                                double norm, double c, floating* ga, floating* gb) noexcept nogil:
    """ga += c * d(norm)/da, gb += c * d(norm)/db (= the negative)."""
    if floating is float:
        fl_normdiff_grad_f32(a, b, n, eps, p, norm, c, ga, gb)
    else:
        fl_normdiff_grad_f64(a, b, n, eps, p, norm, c, ga, gb)


cdef inline void row_dist3(const floating* a, const floating* b, const floating* c, Py_ssize_t n, double eps,
                           bint p2, bint three, double* r) noexcept nogil:
    """r[0..2]: the p-th power sums (p = 2: squares, p = 1: absolute values) of a - b, a - c and, with three,
    b - c (+ eps) of one triplet's rows, in one pass (fl_sqdiff3 / fl_absdiff3)."""
    if floating is float:
        if p2:
            fl_sqdiff3_f32(a, b, c, n, eps, three, r)
        else:
            fl_absdiff3_f32(a, b, c, n, eps, three, r)
    else:
        if p2:
            fl_sqdiff3_f64(a, b, c, n, eps, three, r)
        else:
            fl_absdiff3_f64(a, b, c, n, eps, three, r)


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


# ---------------------------------------------------------------- the row losses' usual call, recognised
cdef PyTypeObject* NDARRAY = <PyTypeObject*> np.ndarray


cdef inline bint plain_row(object x, PyArrayObject* first) noexcept:
    """x is exactly a numpy.ndarray, C-contiguous and aligned, of first's ndim, dims and type number."""
    if Py_TYPE(x) != NDARRAY:
        return False
    cdef PyArrayObject* a = <PyArrayObject*> x
    cdef int need = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED
    if PyArray_FLAGS(a) & need != need or PyArray_NDIM(a) != 2 or PyArray_DESCR(a) != PyArray_DESCR(first):
        return False
    return PyArray_DIMS(a)[0] == PyArray_DIMS(first)[0] and PyArray_DIMS(a)[1] == PyArray_DIMS(first)[1]


cdef object NO_THIRD = object()    # plain_rows' default: only two arrays (None is a bad argument, not "absent")


def plain_rows(a, b, c=NO_THIRD):
    """Whether a, b (and c when given) are already what the wrapper's ``_rows`` makes of its arguments:
    exactly numpy.ndarray, 2-d, of one native float32/float64 dtype (one descriptor object: NumPy's
    canonical ones) and one shape, C-contiguous and aligned.  Read from the array structs: ~0.1 us where
    the same test by attribute reads cost ~1 us of a 100-row call (``a.flags`` builds an object)."""
    if Py_TYPE(a) != NDARRAY:
        return False
    cdef PyArrayObject* first = <PyArrayObject*> a
    cdef PyArray_Descr* d = PyArray_DESCR(first)
    if (d.type_num != NPY_FLOAT and d.type_num != NPY_DOUBLE) or d.byteorder == NPY_OPPBYTE:
        return False
    return plain_row(a, first) and plain_row(b, first) and (c is NO_THIRD or plain_row(c, first))


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
    Py_ssize_t pf_end       # rows below which the row loops prefetch a, p, n pf_rows rows ahead (prefetch_end)
    Py_ssize_t pf_rows


cdef extern from "fl_stream.h" nogil:
    void fl_prefetch_range3(const void* a, const void* b, const void* c, Py_ssize_t off, Py_ssize_t nbytes)

cdef enum:
    # The row loops (triplet_block, triplet_rows_loss_block) prefetch the rows of a, p and n this many bytes
    # ahead (whole rows, at least one) where the three inputs pass one core's L2.  W12 (10^5 x 128 float32
    # rows, 150 MB, from this machine's large L3; wall-clock minima, Intel Xeon, AVX-512): the loss 0.92 of
    # the time at T=1, 0.84 at T=2 (2 rows ahead: 0.92 / 0.92); with the gradient 0.92-0.94 (its writes
    # dominate).
    TRIPLET_PREFETCH_BYTES = 2048


cdef Py_ssize_t triplet_block(const TripletCtx* c, Py_ssize_t start, Py_ssize_t stop,
                              floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t D = c.D, i
    cdef const floating* a
    cdef const floating* p
    cdef const floating* n
    cdef floating* ga
    cdef floating* gp
    cdef floating* gn
    cdef double dap, dan, dpn = 0.0, gs = c.grad_scale, f0, f1
    cdef double coef[3]
    cdef double d2[3]
    for i in range(start, stop):
        a = <const floating*> c.a + i * D
        p = <const floating*> c.p + i * D
        n = <const floating*> c.n + i * D
        if i + c.pf_rows < c.pf_end:     # (written out here: fl_stream.h says why)
            fl_prefetch_range3(c.a, c.p, c.n, (i + c.pf_rows) * D * sizeof(floating), D * sizeof(floating))
        if c.pnorm == 2.0:          # the two (three) distances in one pass over the rows
            row_dist3(a, p, n, D, c.eps, True, c.swap, d2)
            dap, dan, dpn = sqrt(d2[0]), sqrt(d2[1]), sqrt(d2[2])
        elif c.pnorm == 1.0:
            row_dist3(a, p, n, D, c.eps, False, c.swap, d2)
            dap, dan, dpn = d2[0], d2[1], d2[2]
        else:
            dap = norm_diff(a, p, D, c.eps, c.pnorm)
            dan = norm_diff(a, n, D, c.eps, c.pnorm)
            if c.swap:
                dpn = norm_diff(p, n, D, c.eps, c.pnorm)
        loss[i - start] = <floating> triplet_point(dap, dan, dpn, c.margin, c.swap, coef)
        if c.ga != NULL:
            ga = <floating*> c.ga + i * D
            gp = <floating*> c.gp + i * D
            gn = <floating*> c.gn + i * D
            f0, f1 = coef[0] * gs, coef[1] * gs
            if (c.pnorm == 2.0 and dap != 0.0 and dan != 0.0 and f0 != 0.0 and f1 != 0.0
                    and (not c.swap or (coef[2] == 0.0 and isfinite(dpn)))):
                # the common active row: both terms in one pass, no zeroing (fl_sqdiff3_grad); a swap term
                # of factor 0 adds nothing unless its norm is inf / nan (fl_normdiff_grad)
                if floating is float:
                    fl_sqdiff3_grad_f32(a, p, n, D, c.eps, f0 / dap, f1 / dan, ga, gp, gn)
                else:
                    fl_sqdiff3_grad_f64(a, p, n, D, c.eps, f0 / dap, f1 / dan, ga, gp, gn)
                continue
            memset(ga, 0, D * sizeof(floating))
            memset(gp, 0, D * sizeof(floating))
            memset(gn, 0, D * sizeof(floating))
            norm_diff_grad(a, p, D, c.eps, c.pnorm, dap, coef[0] * gs, ga, gp)
            norm_diff_grad(a, n, D, c.eps, c.pnorm, dan, coef[1] * gs, ga, gn)
            if c.swap:
                norm_diff_grad(p, n, D, c.eps, c.pnorm, dpn, coef[2] * gs, gp, gn)
    return -1


# ---------------------------------------------------------------- rows of few features: feature-major tiles
# A row of a few features is too short to vectorise along (the row path's reduction call, lane tree and
# scalar finish cost ~25 ns a triplet row, slower than torch at D = 2-3): PAIR_ROWS rows at a time are
# turned feature-major (to_tile) and fl_tile_pairs.h's loops run along the rows.  pair_tiles_win says where.
cdef extern from "fl_tile_pairs.h" nogil:
    void fl_tile_sqdiff3_f32(const float* at, const float* pt, const float* nt, Py_ssize_t D, Py_ssize_t L,
                             double eps, int three, double* r0, double* r1, double* r2)
    void fl_tile_sqdiff3_f64(const double* at, const double* pt, const double* nt, Py_ssize_t D, Py_ssize_t L,
                             double eps, int three, double* r0, double* r1, double* r2)
    void fl_tile_absdiff3_f32(const float* at, const float* pt, const float* nt, Py_ssize_t D, Py_ssize_t L,
                              double eps, int three, double* r0, double* r1, double* r2)
    void fl_tile_absdiff3_f64(const double* at, const double* pt, const double* nt, Py_ssize_t D, Py_ssize_t L,
                              double eps, int three, double* r0, double* r1, double* r2)
    void fl_tile_triplet_finish_f32(double* r0, double* r1, double* r2, Py_ssize_t L, int p2, double margin,
                                    int swap, double gs, float* loss, double* m0, double* m1, double* m2)
    void fl_tile_triplet_finish_f64(double* r0, double* r1, double* r2, Py_ssize_t L, int p2, double margin,
                                    int swap, double gs, double* loss, double* m0, double* m1, double* m2)
    void fl_tile_triplet_grad_f32(const float* at, const float* pt, const float* nt, Py_ssize_t D, Py_ssize_t L,
                                  double eps, int p2, const double* f0, const double* f1, const double* f2,
                                  const double* m0, const double* m1, const double* m2, float* ga, float* gp,
                                  float* gn)
    void fl_tile_triplet_grad_f64(const double* at, const double* pt, const double* nt, Py_ssize_t D,
                                  Py_ssize_t L, double eps, int p2, const double* f0, const double* f1,
                                  const double* f2, const double* m0, const double* m1, const double* m2,
                                  double* ga, double* gp, double* gn)
    void fl_tile_dot3_f32(const float* x1t, const float* x2t, Py_ssize_t D, Py_ssize_t L, double* r0, double* r1,
                          double* r2)
    void fl_tile_dot3_f64(const double* x1t, const double* x2t, Py_ssize_t D, Py_ssize_t L, double* r0,
                          double* r1, double* r2)
    void fl_tile_cos_finish_f32(double* r0, double* r1, double* r2, const float* y, Py_ssize_t L, double E,
                                double margin, double gs, float* loss, int grad)
    void fl_tile_cos_finish_f64(double* r0, double* r1, double* r2, const double* y, Py_ssize_t L, double E,
                                double margin, double gs, double* loss, int grad)
    void fl_tile_cos_grad_f32(const float* x1t, const float* x2t, Py_ssize_t D, Py_ssize_t L, const double* u0,
                              const double* u1, const double* u3, float* g1, float* g2)
    void fl_tile_cos_grad_f64(const double* x1t, const double* x2t, Py_ssize_t D, Py_ssize_t L, const double* u0,
                              const double* u1, const double* u3, double* g1, double* g2)


cdef enum:
    PAIR_TILE = 2048    # values per feature-major tile (8 KiB float32; six of them with the gradient)
    PAIR_ROWS = 256     # rows per tile at most (the per-row double arrays)


# (fused wrappers of fl_tile_pairs.h: one name per function, as norm_diff / dot3 above)
cdef inline void tile_dist3(const floating* at, const floating* pt, const floating* nt, Py_ssize_t D, Py_ssize_t L,
                            double eps, bint p2, bint three, double* r0, double* r1, double* r2) noexcept nogil:
    """r_j[i] = the p-th power sums (p = 2: squares, p = 1: absolute values) of the triplet's differences."""
    if floating is float:
        if p2:
            fl_tile_sqdiff3_f32(at, pt, nt, D, L, eps, three, r0, r1, r2)
        else:
            fl_tile_absdiff3_f32(at, pt, nt, D, L, eps, three, r0, r1, r2)
    else:
        if p2:
            fl_tile_sqdiff3_f64(at, pt, nt, D, L, eps, three, r0, r1, r2)
        else:
            fl_tile_absdiff3_f64(at, pt, nt, D, L, eps, three, r0, r1, r2)


cdef inline void tile_triplet_finish(double* r0, double* r1, double* r2, Py_ssize_t L, bint p2, double margin,
                                     bint swap, double gs, floating* loss, double* m0, double* m1,
                                     double* m2) noexcept nogil:
    if floating is float:
        fl_tile_triplet_finish_f32(r0, r1, r2, L, p2, margin, swap, gs, loss, m0, m1, m2)
    else:
        fl_tile_triplet_finish_f64(r0, r1, r2, L, p2, margin, swap, gs, loss, m0, m1, m2)


cdef inline void tile_triplet_grad(const floating* at, const floating* pt, const floating* nt, Py_ssize_t D,
                                   Py_ssize_t L, double eps, bint p2, const double* f0, const double* f1,
                                   const double* f2, const double* m0, const double* m1, const double* m2,
                                   floating* ga, floating* gp, floating* gn) noexcept nogil:
    if floating is float:
        fl_tile_triplet_grad_f32(at, pt, nt, D, L, eps, p2, f0, f1, f2, m0, m1, m2, ga, gp, gn)
    else:
        fl_tile_triplet_grad_f64(at, pt, nt, D, L, eps, p2, f0, f1, f2, m0, m1, m2, ga, gp, gn)


cdef inline void tile_dot3(const floating* x1t, const floating* x2t, Py_ssize_t D, Py_ssize_t L, double* r0,
                           double* r1, double* r2) noexcept nogil:
    if floating is float:
        fl_tile_dot3_f32(x1t, x2t, D, L, r0, r1, r2)
    else:
        fl_tile_dot3_f64(x1t, x2t, D, L, r0, r1, r2)


cdef inline void tile_cos_finish(double* r0, double* r1, double* r2, const floating* y, Py_ssize_t L, double E,
                                 double margin, double gs, floating* loss, bint grad) noexcept nogil:
    if floating is float:
        fl_tile_cos_finish_f32(r0, r1, r2, y, L, E, margin, gs, loss, grad)
    else:
        fl_tile_cos_finish_f64(r0, r1, r2, y, L, E, margin, gs, loss, grad)


cdef inline void tile_cos_grad(const floating* x1t, const floating* x2t, Py_ssize_t D, Py_ssize_t L,
                               const double* u0, const double* u1, const double* u3, floating* g1,
                               floating* g2) noexcept nogil:
    if floating is float:
        fl_tile_cos_grad_f32(x1t, x2t, D, L, u0, u1, u3, g1, g2)
    else:
        fl_tile_cos_grad_f64(x1t, x2t, D, L, u0, u1, u3, g1, g2)


cdef inline bint pair_tiles_win(Py_ssize_t D, Py_ssize_t itemsize, bint grad, bint cosine) noexcept nogil:
    """Whether rows of D features go through feature-major tiles (triplet p = 1, 2; cosine embedding): where
    the tiles beat the rows at both AVX-512 and AVX2 (Zen 4, thread time, 2^19 values, gradients into
    grad_out, 2026-12-04).  ns a row, tiles / rows, float32 at AVX-512:
      triplet, loss alone: 3.6 / 25 at D = 2, 6.8 / 16 at 8, 11.5 / 17 at 16, 22-24 / 19 at 32;
      triplet with the gradient: 10.7 / 27 at D = 2, 15 / 29 at 4, 37 / 37 at 6 (float64: 17 / 22 at 2,
        25 / 23 at 4) -- six transposes per row (three in, three out) against one-pass row kernels;
      cosine, loss alone: 2.3 / 37 at D = 2, 7.7 / 30 at 16, 28 / 30 at 64, 37 / 37 at 96 (float64: 12 / 17
        at 16, 18 / 18 at 24);
      cosine with the gradient: 13 / 43 at D = 8, 18 / 39 at 16, 57 / 57 at 24 (float64: 18 / 22 at 4,
        26.5 / 26 at 6)."""
    if D < 1:
        return False
    if cosine:
        if itemsize == 4:
            return D <= (16 if grad else 64)
        return D <= (4 if grad else 16)
    if grad:
        return D <= (4 if itemsize == 4 else 3)
    return D <= 16


cdef inline Py_ssize_t pair_tile_rows(Py_ssize_t D) noexcept nogil:
    """Rows per tile: PAIR_TILE / D in whole 16-row vectors (fl_tile.h's blocks are 8 rows), at most PAIR_ROWS."""
    return min(max((PAIR_TILE // D) & ~15, 16), <Py_ssize_t> PAIR_ROWS)


cdef Py_ssize_t triplet_tile_block(const TripletCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                   floating* loss, floating* denom) noexcept nogil:
    """triplet_block for p = 2 or 1 over feature-major tiles of L rows (fl_tile_pairs.h): the distance sums
    along the rows, the branch-free finish, the gradient tiles turned back to rows."""
    cdef Py_ssize_t D = c.D, i0 = start, L, Lmax = pair_tile_rows(c.D)
    cdef bint p2 = c.pnorm == 2.0
    cdef floating at[PAIR_TILE]
    cdef floating pt[PAIR_TILE]
    cdef floating nt[PAIR_TILE]
    cdef floating gat[PAIR_TILE]
    cdef floating gpt[PAIR_TILE]
    cdef floating gnt[PAIR_TILE]
    cdef double r0[PAIR_ROWS]
    cdef double r1[PAIR_ROWS]
    cdef double r2[PAIR_ROWS]
    cdef double m0[PAIR_ROWS]
    cdef double m1[PAIR_ROWS]
    cdef double m2[PAIR_ROWS]
    cdef bint grad = c.ga != NULL
    cdef double* mask = m0 if grad else NULL      # NULL: no gradient factors
    while i0 < stop:
        L = min(stop - i0, Lmax)
        to_tile(<const floating*> c.a + i0 * D, D, L, at)
        to_tile(<const floating*> c.p + i0 * D, D, L, pt)
        to_tile(<const floating*> c.n + i0 * D, D, L, nt)
        tile_dist3(at, pt, nt, D, L, c.eps, p2, c.swap, r0, r1, r2)
        tile_triplet_finish(r0, r1, r2, L, p2, c.margin, c.swap, c.grad_scale, loss + (i0 - start), mask, m1, m2)
        if grad:
            tile_triplet_grad(at, pt, nt, D, L, c.eps, p2, r0, r1, r2, m0, m1, m2, gat, gpt, gnt)
            from_tile(gat, D, L, <floating*> c.ga + i0 * D)
            from_tile(gpt, D, L, <floating*> c.gp + i0 * D)
            from_tile(gnt, D, L, <floating*> c.gn + i0 * D)
        i0 += L
    return -1


cdef Py_ssize_t triplet_rows_loss_block(const TripletCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                       floating* loss, floating* denom) noexcept nogil:
    """The loss alone for p = 2 or 1 over rows too long for the tiles: the distance sums of up to PAIR_ROWS
    rows, one pass over each row (row_dist3, as triplet_block), then the tiles' branch-free
    finish over all of them (fl_tile_triplet_finish: triplet_point's values, vectorised).  triplet_block's
    finish per row branches on the sign of z, which random triplets mispredict half the time, and waits on
    each row's sqrt: float32 400 x 128 rows took 57-59 ns a row there, 50-53 here, and W12's 1000 rows at
    T = 2 36-37 us against 32 (Intel AVX-512, L2-resident; two accumulators per distance in fl_sqdiff3 or
    its lanes summed in registers changed nothing measurable).  With the gradient, triplet_block."""
    cdef Py_ssize_t D = c.D, i0 = start, L, k, off
    cdef bint p2 = c.pnorm == 2.0
    cdef const floating* a = <const floating*> c.a
    cdef const floating* p = <const floating*> c.p
    cdef const floating* n = <const floating*> c.n
    cdef double r0[PAIR_ROWS]
    cdef double r1[PAIR_ROWS]
    cdef double r2[PAIR_ROWS]
    cdef double d3[3]
    while i0 < stop:
        L = min(stop - i0, <Py_ssize_t> PAIR_ROWS)
        for k in range(L):
            off = (i0 + k) * D
            if i0 + k + c.pf_rows < c.pf_end:
                fl_prefetch_range3(c.a, c.p, c.n, (off + c.pf_rows * D) * sizeof(floating), D * sizeof(floating))
            row_dist3(a + off, p + off, n + off, D, c.eps, p2, c.swap, d3)
            r0[k], r1[k], r2[k] = d3[0], d3[1], d3[2]
        tile_triplet_finish(r0, r1, r2, L, p2, c.margin, c.swap, c.grad_scale, loss + (i0 - start),
                            NULL, NULL, NULL)
        i0 += L
    return -1


def triplet_margin(a, p, n, out=None, ga=None, gp=None, gn=None, *, double margin, double pnorm, double eps,
                   bint swap, double grad_scale=1.0, int num_threads=1):
    """Kernel entry: a, p, n (N, D) C-contiguous of one float dtype; out (N,) or None; ga/gp/gn like a
    or None.  Returns (loss_sum, 0, -1)."""
    cdef TripletCtx c
    # boundary checks (_common.pxd)
    cdef Py_ssize_t itemsize = check_buffer(a, "a", b'f', 0, -1, False)
    check_ndim(a, "a", 2)
    cdef Py_ssize_t size = buffer_items(a)
    check_buffer(p, "p", b'f', itemsize, size, False)
    check_buffer(n, "n", b'f', itemsize, size, False)
    if (ga is None) != (gp is None) or (ga is None) != (gn is None):
        raise ValueError("fastloss kernel: ga, gp and gn must be given together")
    check_optional(ga, "ga", b'f', itemsize, size, True)
    check_optional(gp, "gp", b'f', itemsize, size, True)
    check_optional(gn, "gn", b'f', itemsize, size, True)
    check_optional(out, "out", b'f', itemsize, a.shape[0], True)
    c.a, c.p, c.n = ptr_or_null(a), ptr_or_null(p), ptr_or_null(n)
    c.D = a.shape[1]
    if c.D == 0 and (pnorm < 0 or isinf(pnorm)):
        # torch (linalg.vector_norm): a max, a min or a negative power has no value over no entries
        raise ValueError(f"p = {pnorm} needs at least one entry per vector: the last axis of anchor, "
                         f"positive and negative is empty")
    c.margin, c.pnorm, c.eps, c.swap = margin, pnorm, eps, swap
    c.ga, c.gp, c.gn = ptr_or_null(ga), ptr_or_null(gp), ptr_or_null(gn)
    c.grad_scale = grad_scale
    c.pf_end = prefetch_end(a.shape[0], 3 * size * itemsize)
    c.pf_rows = max(1, TRIPLET_PREFETCH_BYTES // max(1, c.D * itemsize))
    cdef BlockFn fn = block_for(TRIPLET_MARGIN, itemsize)
    if (pnorm == 2.0 or pnorm == 1.0) and pair_tiles_win(c.D, itemsize, ga is not None, False):
        fn = <BlockFn> triplet_tile_block[float] if itemsize == 4 else <BlockFn> triplet_tile_block[double]
    elif (pnorm == 2.0 or pnorm == 1.0) and ga is None:
        fn = <BlockFn> triplet_rows_loss_block[float] if itemsize == 4 else \
            <BlockFn> triplet_rows_loss_block[double]
    return run(fn, &c, a.shape[0], c.D * (3 if swap else 2), itemsize, num_threads, out, False)


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


cdef Py_ssize_t cosine_embedding_tile_block(const PairCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                            floating* loss, floating* denom) noexcept nogil:
    """cosine_embedding_block over feature-major tiles of L rows (fl_tile_pairs.h; pair_tiles_win)."""
    cdef Py_ssize_t D = c.D, i0 = start, L, Lmax = pair_tile_rows(c.D)
    cdef floating x1t[PAIR_TILE]
    cdef floating x2t[PAIR_TILE]
    cdef floating g1t[PAIR_TILE]
    cdef floating g2t[PAIR_TILE]
    cdef double r0[PAIR_ROWS]
    cdef double r1[PAIR_ROWS]
    cdef double r2[PAIR_ROWS]
    cdef bint grad = c.g1 != NULL
    while i0 < stop:
        L = min(stop - i0, Lmax)
        to_tile(<const floating*> c.x1 + i0 * D, D, L, x1t)
        to_tile(<const floating*> c.x2 + i0 * D, D, L, x2t)
        tile_dot3(x1t, x2t, D, L, r0, r1, r2)
        tile_cos_finish(r0, r1, r2, <const floating*> c.y + i0, L, COS_EPSILON, c.margin, c.grad_scale,
                        loss + (i0 - start), grad)
        if grad:
            tile_cos_grad(x1t, x2t, D, L, r0, r1, r2, g1t, g2t)
            from_tile(g1t, D, L, <floating*> c.g1 + i0 * D)
            from_tile(g2t, D, L, <floating*> c.g2 + i0 * D)
        i0 += L
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


def pair_rows(x1, x2, y, out=None, g1=None, g2=None, *, MetricLoss kind, double margin, double grad_scale=1.0,
              int num_threads=1):
    """Kernel entry of the losses on pairs of rows with a per-row target: kind COSINE_EMBEDDING or
    CONTRASTIVE; x1, x2 (N, D), y (N,) of one float dtype.  Returns (loss_sum, 0, -1)."""
    # boundary checks (_common.pxd)
    if kind != COSINE_EMBEDDING and kind != CONTRASTIVE:
        raise ValueError(f"fastloss kernel: pair_rows computes COSINE_EMBEDDING or CONTRASTIVE, got {kind}")
    cdef Py_ssize_t itemsize = check_buffer(x1, "x1", b'f', 0, -1, False)
    check_ndim(x1, "x1", 2)
    check_buffer(x2, "x2", b'f', itemsize, buffer_items(x1), False)
    check_buffer(y, "y", b'f', itemsize, x1.shape[0], False)
    check_optional(out, "out", b'f', itemsize, x1.shape[0], True)
    if (g1 is None) != (g2 is None):
        raise ValueError("fastloss kernel: g1 and g2 must be given together")
    check_optional(g1, "g1", b'f', itemsize, buffer_items(x1), True)
    check_optional(g2, "g2", b'f', itemsize, buffer_items(x1), True)
    cdef PairCtx c
    c.x1, c.x2, c.y = ptr_or_null(x1), ptr_or_null(x2), ptr_or_null(y)
    c.D = x1.shape[1]
    c.margin = margin
    c.g1, c.g2 = ptr_or_null(g1), ptr_or_null(g2)
    c.grad_scale = grad_scale
    cdef BlockFn fn = block_for(kind, itemsize)
    if kind == COSINE_EMBEDDING and pair_tiles_win(c.D, itemsize, g1 is not None, True):
        fn = (<BlockFn> cosine_embedding_tile_block[float] if itemsize == 4
              else <BlockFn> cosine_embedding_tile_block[double])
    return run(fn, &c, x1.shape[0], 2 * c.D, itemsize, num_threads, out, False)


# =====================================================================================================
# Elementwise score losses: margin_ranking_loss, hinge_embedding_loss (torch.nn.functional)
# =====================================================================================================
# margin_ranking: z = margin - y (x1 - x2);  loss = max(0, z);  dloss/dx1 = -y [z >= 0] = -dloss/dx2
# hinge_embedding: loss = [y != 1] max(0, margin - x) + [y != -1] x
#                  dloss/dx = [y != -1] - [y != 1] [margin - x >= 0]

cdef inline floating margin_ranking_point(floating x1, floating x2, floating y, floating margin,
                                          floating* dx1) noexcept nogil:
    cdef floating z = margin - y * (x1 - x2)
    cdef floating one = 1, zero = 0
    # torch's clamp_min backward times -y, a product (not a select): a nan target makes nan (0 * nan), a nan
    # score with a finite target 0 (the mask of z >= 0 is 0 for a nan z)
    dx1[0] = (one if z >= 0 else zero) * -y
    return 0 if z < 0 else z


cdef inline floating hinge_embedding_point(floating x, floating y, floating margin, floating* dx) noexcept nogil:
    cdef floating h = margin - x
    cdef floating zero = 0
    cdef floating not_pos = 1 if y != 1 else 0
    cdef floating not_neg = 1 if y != -1 else 0
    dx[0] = not_neg - (not_pos if h >= 0 else 0)
    # selects, as torch's at::where: a 0 * inf product would turn x = -inf (y = 1) into nan
    return ((zero if h < 0 else h) if y != 1 else zero) + (x if y != -1 else zero)


cdef struct ScoreCtx:
    const void* x1
    const void* x2          # margin_ranking only
    const void* y
    double margin
    void* g1
    void* g2                # margin_ranking only
    double grad_scale


cdef Py_ssize_t margin_ranking_block(const ScoreCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                     floating* loss, floating* denom) noexcept nogil:
    cdef const floating* x1 = <const floating*> c.x1 + start
    cdef const floating* x2 = <const floating*> c.x2 + start
    cdef const floating* y = <const floating*> c.y + start
    cdef floating* g1 = <floating*> c.g1 + start if c.g1 != NULL else NULL
    cdef floating* g2 = <floating*> c.g2 + start if c.g2 != NULL else NULL
    cdef floating m = <floating> c.margin, gs = <floating> c.grad_scale, d
    cdef Py_ssize_t k, L = stop - start
    if g1 != NULL:
        for k in range(L):
            loss[k] = margin_ranking_point(x1[k], x2[k], y[k], m, &d)
            g1[k] = d * gs
            g2[k] = -d * gs
    else:
        for k in range(L):
            loss[k] = margin_ranking_point(x1[k], x2[k], y[k], m, &d)
    return -1


cdef Py_ssize_t hinge_embedding_block(const ScoreCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                      floating* loss, floating* denom) noexcept nogil:
    cdef const floating* x1 = <const floating*> c.x1 + start
    cdef const floating* y = <const floating*> c.y + start
    cdef floating* g1 = <floating*> c.g1 + start if c.g1 != NULL else NULL
    cdef floating m = <floating> c.margin, gs = <floating> c.grad_scale, d
    cdef Py_ssize_t k, L = stop - start
    if g1 != NULL:
        for k in range(L):
            loss[k] = hinge_embedding_point(x1[k], y[k], m, &d)
            g1[k] = d * gs
    else:
        for k in range(L):
            loss[k] = hinge_embedding_point(x1[k], y[k], m, &d)
    return -1


def score_loss(x1, y, x2=None, out=None, g1=None, g2=None, *, MetricLoss kind, double margin, double grad_scale=1.0,
               int num_threads=1):
    """Kernel entry of the losses on scores: kind MARGIN_RANKING (x1, x2, y; gradients g1, g2) or
    HINGE_EMBEDDING (x1, y; no x2 or g2); flat C-contiguous arrays of one float dtype.  Returns
    (loss_sum, 0, -1)."""
    # boundary checks (_common.pxd)
    if kind != MARGIN_RANKING and kind != HINGE_EMBEDDING:
        raise ValueError(f"fastloss kernel: score_loss computes MARGIN_RANKING or HINGE_EMBEDDING, got {kind}")
    cdef bint ranking = kind == MARGIN_RANKING
    cdef Py_ssize_t itemsize = check_buffer(x1, "x1", b'f', 0, -1, False)
    cdef Py_ssize_t size = buffer_items(x1)
    if ranking:
        check_buffer(x2, "x2", b'f', itemsize, size, False)
    elif x2 is not None or g2 is not None:
        raise ValueError("fastloss kernel: hinge_embedding takes no x2 or g2")
    check_buffer(y, "y", b'f', itemsize, size, False)
    check_optional(out, "out", b'f', itemsize, size, True)
    check_optional(g1, "g1", b'f', itemsize, size, True)
    if ranking and (g1 is None) != (g2 is None):
        raise ValueError("fastloss kernel: g1 and g2 must be given together")
    check_optional(g2, "g2", b'f', itemsize, size, True)
    cdef ScoreCtx c
    c.x1, c.x2, c.y = ptr_or_null(x1), ptr_or_null(x2), ptr_or_null(y)
    c.margin = margin
    c.g1, c.g2 = ptr_or_null(g1), ptr_or_null(g2)
    c.grad_scale = grad_scale
    return run(block_for(kind, itemsize), &c, size, 1, itemsize, num_threads, out, False)


# =====================================================================================================
# In-batch losses on row blocks of a Gram / similarity matrix (batch_hard / batch_all triplet,
# info_nce, nt_xent, arcface).  A block function computes its rows (R x B) by one GEMM (SimRows below)
# and turns them, row by row (item = one anchor / query row), into the row's loss and -- for the
# gradient -- into the row's coefficients, written over the block in place, then S @ cols by a second
# GEMM; S^T rows is gemm_tn_add's.  Memory stays O(R x B).
# =====================================================================================================
# ---------------------------------------------------------------- similarity rows by single-threaded GEMMs
# The similarity / Gram rows come from SciPy's BLAS (scipy.linalg.cython_blas's sgemm / dgemm, the C
# functions its Cython API exports, fetched once from its capsules: no build-time SciPy), called from
# inside the blocked driver: each block of rows is ONE GEMM on one thread, the blocks run in parallel
# under ``run_blocks``.  Blocks are fixed by the sizes alone, and every GEMM is single-threaded (the
# wrapper pins SciPy's OpenBLAS -- a library of its own, not NumPy's -- to one thread while a call runs:
# fastloss/_blas.py), so the numbers are the same for every num_threads and from any Python thread.
ctypedef void (*sgemm_t)(char*, char*, int*, int*, int*, float*, float*, int*, float*, int*, float*,
                         float*, int*) noexcept nogil
ctypedef void (*dgemm_t)(char*, char*, int*, int*, int*, double*, double*, int*, double*, int*, double*,
                         double*, int*) noexcept nogil
cdef sgemm_t SGEMM = NULL
cdef dgemm_t DGEMM = NULL

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define fl_thread_num() omp_get_thread_num()
    #define fl_team_size() omp_get_num_threads()
    #define fl_num_procs() omp_get_num_procs()
    #else
    #define fl_thread_num() 0
    #define fl_team_size() 1
    #define fl_num_procs() 1
    #endif
    """
    int fl_thread_num() nogil
    int fl_team_size() nogil
    int fl_num_procs() nogil


cdef Py_ssize_t thread_slots(int num_threads) noexcept:
    """Per-thread scratch slots for a call on num_threads threads: a block finds its slot by
    omp_get_thread_num() -- in run_blocks' own team, or, on the serial path, the caller's number in an
    enclosing OpenMP team (a loss called from someone else's parallel region): as many as either."""
    return max(num_threads, fl_team_size(), 1)


cdef int GEMM_WARM_THREADS = 0     # concurrent threads whose OpenBLAS buffers gemm_ready has warmed
cdef enum:
    WARM_ROWS = 1024                 # the warm-up product: (WARM_ROWS x 128) (128 x 128), taller than P


cdef void gemm_ready(int num_threads) except *:
    """Fetches the GEMMs (blas_address) and warms SciPy's OpenBLAS for calls on up to num_threads
    threads: once per process and thread count, each of num_threads threads (at most the processors) runs one sgemm and one dgemm
    of 1024 x 128 x 128 at the same time (~5 ms on a Zen 1 core, once).  Until an OpenBLAS buffer has
    served a product whose first operand is taller than its block height P (a few hundred rows), the
    single-threaded products of fewer rows that it serves -- the in-batch kernels' shape: a 256-row panel
    or block against 512 or more candidates -- ran 2.5-3x slower, for the life of the process (Zen 1,
    scipy-openblas: sgemm 256 x 512 x 128 at 12 GFLOP/s, 33-36 after; W15 229 -> 102 ms, W14 N=4096
    591 -> 316 ms at one thread).  Those short products pack B into the first bytes of the buffer only
    (its l1stride = 0 path); the kernel's prefetches past them meet pages never touched -- the likely
    cause; a tall product packs B across them.  The state is the buffer's, and concurrent calls take
    distinct buffers from OpenBLAS's pool: warmed by one thread only, W14 ran 1.3x faster at two threads
    than at one (the second thread's buffer cold), 1.8x with both warmed.  Called under the wrapper's
    single-thread pin (fastloss/_blas.py), inside the kernel entries."""
    global GEMM_WARM_THREADS
    if SGEMM == NULL:
        blas_address()
    # (at most one thread per processor: num_threads may be any count, and more calls than processors
    # do not run at once)
    cdef int nt = max(min(num_threads, fl_num_procs()), 1)
    if nt <= GEMM_WARM_THREADS:
        return
    # one read-only operand for all (WARM_ROWS x 128: A and, its first 128 rows, B), an output per thread
    cdef double[::1] buf = np.zeros((1 + nt) * WARM_ROWS * 128)
    cdef double* a = &buf[0]
    cdef int t
    with nogil:
        for t in prange(nt, num_threads=nt, schedule="static", chunksize=1):
            gemm[float](True, False, WARM_ROWS, 128, 128, <float*> a, 128, <float*> a, 128, 0.0,
                        <float*> (a + (1 + t) * WARM_ROWS * 128), WARM_ROWS)
            gemm[double](True, False, WARM_ROWS, 128, 128, a, 128, a, 128, 0.0,
                         a + (1 + t) * WARM_ROWS * 128, WARM_ROWS)
    GEMM_WARM_THREADS = nt


def blas_address():
    """The address of the sgemm the in-batch kernels call (fetched from SciPy on first use): the
    wrapper finds its library from it (fastloss/_blas.py)."""
    global SGEMM, DGEMM
    if SGEMM == NULL:
        from scipy.linalg.cython_blas import __pyx_capi__ as capi
        DGEMM = <dgemm_t> PyCapsule_GetPointer(capi["dgemm"], PyCapsule_GetName(capi["dgemm"]))
        SGEMM = <sgemm_t> PyCapsule_GetPointer(capi["sgemm"], PyCapsule_GetName(capi["sgemm"]))
    return <size_t> SGEMM


cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb, double beta,
                      floating* c, Py_ssize_t ldc, double alpha=1.0) noexcept nogil:
    """BLAS's column-major C (m x n) = alpha op(A) op(B) + beta C.  (Row-major X is column-major X^T: the
    callers below say which product of row-major arrays each call is.)  k = 0 gives beta C.  With
    beta = 0, alpha (in the floating type) scales each rounded dot product once: the same numbers as
    the product times alpha afterwards (OpenBLAS stores alpha * sum)."""
    cdef char ta = b'T' if trans_a else b'N', tb = b'T' if trans_b else b'N'
    cdef int im = <int> m, jn = <int> n, ik = <int> k, ia = <int> lda, ib = <int> ldb, ic = <int> ldc
    cdef floating falpha = <floating> alpha, fbeta = <floating> beta
    cdef Py_ssize_t j
    if m <= 0 or n <= 0:
        return
    if k <= 0:                      # (BLAS refuses lda = 0; the product of no terms is 0)
        for j in range(n):
            if beta == 0.0:
                memset(c + j * ldc, 0, m * sizeof(floating))
        return
    if floating is float:
        SGEMM(&ta, &tb, &im, &jn, &ik, &falpha, <float*> a, &ia, <float*> b, &ib, &fbeta, c, &ic)
    else:
        DGEMM(&ta, &tb, &im, &jn, &ik, &falpha, <double*> a, &ia, <double*> b, &ib, &fbeta, c, &ic)


cdef struct SimRows:
    # The similarity rows S = rows[row0 + r] . cols[j] of a call, computed block by block
    const void* rows         # (N, D) the queries / anchors (global row index)
    const void* cols         # (M, D) the candidates
    Py_ssize_t D
    Py_ssize_t M
    Py_ssize_t block_rows    # rows per block (the driver's block_items)
    void* block              # with the gradient: the caller's (n_rows, M) block, kept for S^T rows
    void* scratch            # without: (threads, block_rows, M), one block per thread
    void* s_cols             # with the gradient: (N, D) rows of S @ cols, written at the global row


cdef inline void* sim_dest(const SimRows* s, Py_ssize_t start, Py_ssize_t itemsize) noexcept nogil:
    """Where the rows [start, ...) of the call go: the caller's block, or this thread's scratch."""
    if s.block != NULL:
        return <char*> s.block + start * s.M * itemsize
    return <char*> s.scratch + fl_thread_num() * s.block_rows * s.M * itemsize


cdef inline void sim_rows(const SimRows* s, Py_ssize_t row0, Py_ssize_t start, Py_ssize_t stop,
                          floating* out) noexcept nogil:
    """Rows row0 + [start, stop) of S into out by one GEMM.  Row-major S (R x M) = Q (R x D) C^T:
    column-major S^T = C^T' Q^T'."""
    gemm(True, False, s.M, stop - start, s.D, <const floating*> s.cols, s.D,
         <const floating*> s.rows + (row0 + start) * s.D, s.D, 0.0, out, s.M)


cdef inline void sim_grad_rows(const SimRows* s, Py_ssize_t row0, Py_ssize_t start, Py_ssize_t stop,
                               const floating* coef) noexcept nogil:
    """With the gradient: rows row0 + [start, stop) of S @ C from the block's coefficients.  Row-major
    G (R x D) = S (R x M) C (M x D): column-major G^T = C^T' S^T'."""
    if s.s_cols != NULL:
        gemm(False, False, s.D, stop - start, s.M, <const floating*> s.cols, s.D, coef, s.M, 0.0,
             <floating*> s.s_cols + (row0 + start) * s.D, s.D)


# Per-thread workspace.  glibc hands large freed arrays back to the system (unmapped, or its heap top
# trimmed), so each call's fresh u / scratch / column parts cost a page fault (and a page of zeros) per
# 4 KiB: ~320 faults, 0.5 ms of nt_xent's 4 ms at N = 768 (14% at one thread, 20% at two).  The in-batch
# kernels take these buffers from here instead: kept per Python thread (concurrent callers never
# share one), each up to WORK_KEEP; a larger one is allocated afresh (its faults are a small share of
# a call that size).
_WORK = threading.local()
cdef Py_ssize_t WORK_KEEP = 4 << 20


def workspace(str name, Py_ssize_t nbytes):
    """``nbytes`` bytes (uint8, 64-byte aligned) of the calling thread's buffer ``name``, valid until the
    thread next asks for ``name`` -- one call's scratch, never returned to the user.  Contents are
    undefined."""
    cdef dict bufs = _WORK.__dict__
    buf = bufs.get(name) if nbytes <= WORK_KEEP else None
    if buf is None or buf.nbytes < nbytes + 64:
        buf = np.empty(nbytes + 64, dtype=np.uint8)
        if nbytes <= WORK_KEEP:
            bufs[name] = buf
    cdef Py_ssize_t off = (-(<size_t> ptr_or_null(buf))) & 63
    return buf[off:off + nbytes]


cdef object set_sim_rows(SimRows* s, rows, cols, block, s_cols, Py_ssize_t row0, Py_ssize_t n_rows,
                         Py_ssize_t itemsize, bint want_grad, int num_threads, Py_ssize_t max_rows=64,
                         Py_ssize_t slot_items=-1):
    """Checks the operands of a similarity-row entry (boundary checks, _common.pxd) and fills ``s``;
    returns the scratch array that ``s.scratch`` points into (keep it alive over the call).  max_rows:
    the most rows per block (a constant of the loss: the blocks never depend on num_threads);
    slot_items: numbers per thread's scratch slot where not one block of rows (block_rows x M)."""
    gemm_ready(num_threads)
    check_buffer(rows, "rows", b'f', itemsize, -1, False)
    check_ndim(rows, "rows", 2)
    check_buffer(cols, "cols", b'f', itemsize, -1, False)
    check_ndim(cols, "cols", 2)
    s.D, s.M = rows.shape[1], cols.shape[0]
    if cols.shape[1] != s.D:
        raise ValueError(f"fastloss kernel: rows {rows.shape} and cols {cols.shape} differ in D")
    if check_count(row0, "row0") + check_count(n_rows, "n_rows") > rows.shape[0]:
        raise ValueError(f"fastloss kernel: rows {row0} .. {row0 + n_rows} of {rows.shape[0]}")
    if max(s.D, s.M, n_rows) >= 2 ** 31 or s.M * s.D >= 2 ** 62:
        raise ValueError("fastloss kernel: BLAS takes 32-bit sizes")
    s.rows, s.cols = ptr_or_null(rows), ptr_or_null(cols)
    # rows per block: max_rows, fewer where the candidates are many (a block's S stays ~1 MiB of float32)
    s.block_rows = max_rows
    while s.block_rows > 1 and s.block_rows * s.M > (1 << 18):
        s.block_rows //= 2
    s.block = s.scratch = s.s_cols = NULL
    if want_grad:
        check_buffer(block, "block", b'f', itemsize, n_rows * s.M, True)
        check_buffer(s_cols, "s_cols", b'f', itemsize, rows.shape[0] * s.D, True)
        s.block, s.s_cols = ptr_or_null(block), ptr_or_null(s_cols)
        return None
    if block is not None or s_cols is not None:
        raise ValueError("fastloss kernel: block and s_cols only with want_grad")
    if slot_items < 0:
        slot_items = s.block_rows * s.M
    scratch = workspace("sim_scratch", thread_slots(num_threads) * slot_items * itemsize)
    s.scratch = ptr_or_null(scratch)
    return scratch


cdef object run_sim(BlockFn fn, const void* ctx, const SimRows* s, Py_ssize_t n_rows, Py_ssize_t itemsize,
                    int num_threads):
    """``run`` (_common.pxd) over n_rows rows in blocks of s.block_rows (one GEMM each) with the GIL
    released; the cost of a row is its M x D multiply-adds (the serial threshold)."""
    cdef BlockRun r
    cdef int status
    init_run(&r, n_rows, s.M * max(s.D, 1), itemsize, num_threads, NULL, False)
    r.block_items = s.block_rows
    with nogil:
        status = run_blocks(fn, ctx, &r)
    return finish_run(status, &r)


cdef struct GemmTnCtx:
    const void* block        # (R, M) coefficients S
    const void* rows         # (R, D)
    void* acc                # (M, D) += S^T rows
    Py_ssize_t R
    Py_ssize_t M
    Py_ssize_t D


cdef Py_ssize_t gemm_tn_block(const GemmTnCtx* c, Py_ssize_t start, Py_ssize_t stop,
                              floating* loss, floating* denom) noexcept nogil:
    """Rows [start, stop) of acc += S^T rows.  Row-major A (m x D) += S[:, start:stop]^T (m x R)
    rows (R x D): column-major A^T += rows^T' (S[:, start:stop])^T'."""
    gemm(False, True, c.D, stop - start, c.R, <const floating*> c.rows, c.D,
         <const floating*> c.block + start, c.M, 1.0, <floating*> c.acc + start * c.D, c.D)
    return -1


def gemm_tn_add(block, rows, acc, *, int num_threads=1, Py_ssize_t block_rows=64):
    """acc (M, D) += block (R, M)^T @ rows (R, D): C-contiguous, one float dtype; in blocks of
    ``block_rows`` rows of acc, one single-threaded GEMM each (the same numbers for every num_threads).
    (``linear_cross_entropy``'s weight gradient uses it too, with blocks of its vocabulary blocks.)"""
    gemm_ready(num_threads)
    cdef Py_ssize_t itemsize = check_buffer(block, "block", b'f', 0, -1, False)
    check_ndim(block, "block", 2)
    check_buffer(rows, "rows", b'f', itemsize, -1, False)
    check_ndim(rows, "rows", 2)
    check_buffer(acc, "acc", b'f', itemsize, -1, True)
    check_ndim(acc, "acc", 2)
    cdef GemmTnCtx c
    c.R, c.M, c.D = block.shape[0], block.shape[1], rows.shape[1]
    if rows.shape[0] != c.R or acc.shape[0] != c.M or acc.shape[1] != c.D:
        raise ValueError(f"fastloss kernel: block {block.shape}, rows {rows.shape}, acc {acc.shape}")
    if max(c.R, c.M, c.D) >= 2 ** 31:
        raise ValueError("fastloss kernel: BLAS takes 32-bit sizes")
    c.block, c.rows, c.acc = ptr_or_null(block), ptr_or_null(rows), ptr_or_null(acc)
    cdef BlockRun r
    cdef int status
    if block_rows < 1:
        raise ValueError(f"fastloss kernel: block_rows {block_rows} < 1")
    init_run(&r, c.M, c.R * max(c.D, 1), itemsize, num_threads, NULL, False)
    r.block_items = block_rows
    cdef BlockFn fn = <BlockFn> gemm_tn_block[double]
    if itemsize == 4:
        fn = <BlockFn> gemm_tn_block[float]
    with nogil:
        status = run_blocks(fn, &c, &r)
    finish_run(status, &r)


cdef inline int64_t read_label(const void* labels, bint is64, Py_ssize_t i) noexcept nogil:
    if is64:
        return (<const int64_t*> labels)[i]
    return (<const int32_t*> labels)[i]


# Triplet mining.  Distances from the Gram block: d_ij^2 = max(|e_i|^2 + |e_j|^2 - 2 <e_i, e_j>, 0),
# d_ij = sqrt of that unless squared.  Positives of anchor i: j != i with the same label; negatives:
# other labels.
#   batch_hard: loss_i = max(0, max_pos d_ij - min_neg d_ik + margin); the first index attaining the
#               max / min takes the gradient; an anchor without a positive or a negative has loss 0
#               and denominator 0 (skipped by the mean).
#   batch_all:  loss_i = sum over (j pos, k neg) of max(0, d_ij - d_ik + margin); denominator = the
#               number of those triplets with a loss > 0.
#   A nan distance among an anchor's positives / negatives makes its loss nan (torch's max / min and
#   clamp_min propagate nan; a comparison would silently skip it).
# Gradient coefficients written over the block: S_ij = (dloss_i/dd_ij) * (dd_ij/d(d_ij^2)) * 2, so that
# dloss/de_i = sum_j S_ij (e_i - e_j) and dloss/de_j = -S_ij (e_i - e_j)  (0 where d_ij = 0).
#
# Precision.  The Gram form cancels: d^2 is a difference of terms ~|e|^2, and the block is in the
# input's precision (float32 BLAS for float32 input: 1.8e-5 relative seen on the loss).  batch_hard
# therefore mines on the Gram distances but takes the two distances it uses from the rows themselves,
# sum_k (e_ik - e_jk)^2 in double: every candidate whose Gram d^2 is within the Gram's rounding bound
# of the best (|error| <= tol_ij = gram_tol (|e_i|^2 + |e_j|^2), gram_tol = (D + 2) u for dot products
# of D terms rounded to the block's unit roundoff u) is recomputed exactly and the best exact one wins
# (first index on ties) -- so the result is the exact hardest pair's, and usually one or two rows per
# anchor are recomputed.  fl_hard_row (C, above) does this per anchor with vectorised passes; it takes
# the best's |e|^2 as max_j |e_j|^2 (a wider band: a superset of candidates, the same winner).
# (batch_all uses every distance: Python gives it a float64 block.)
cdef struct MiningCtx:
    SimRows sim              # the Gram rows' GEMM (rows = cols = emb)
    void* block              # (R, B) Gram rows of one block, overwritten with distances, then coefficients
    const double* sqnorm     # (B,) |e_j|^2
    const void* emb          # (B, D) the embeddings of the Gram block (its dtype)
    Py_ssize_t D
    double gram_tol          # see Precision above
    double sqmax             # max_j |e_j|^2 (nan ignored; batch_hard's band, fl_hard_row)
    const void* labels       # (B,)
    bint labels64
    Py_ssize_t B
    Py_ssize_t row0          # global index of the block's first row
    double margin
    bint squared
    bint want_grad
    double* row_loss         # (B,) per-anchor loss and mean denominator, written at the global row
    double* row_count


cdef inline double mining_coef(double dloss_dd, double d, bint squared) noexcept nogil:
    """dloss/dd times dd/d(d^2) times 2 (see S above)."""
    if squared:
        return 2.0 * dloss_dd
    return dloss_dd / d if d > 0 else 0.0


cdef inline double gram_d2(const MiningCtx* c, Py_ssize_t i, Py_ssize_t j, double g) noexcept nogil:
    """d_ij^2 from the Gram entry g = <e_i, e_j> (clamped at 0; nan stays nan)."""
    cdef double d2 = c.sqnorm[i] + c.sqnorm[j] - 2.0 * g
    return 0.0 if d2 < 0 else d2


cdef inline double exact_d2(const MiningCtx* c, const floating* ei, Py_ssize_t j) noexcept nogil:
    """sum_k (e_ik - e_jk)^2, accumulated in double from the rows."""
    if floating is float:
        return fl_sqdiff_f32(ei, <const float*> c.emb + j * c.D, c.D, 0.0)
    else:
        return fl_sqdiff_f64(ei, <const double*> c.emb + j * c.D, c.D, 0.0)


cdef inline double hard_hinge(const MiningCtx* c, const double* best, double* dp, double* dn) noexcept nogil:
    """z = d_ap - d_an + margin of the hardest pair's squared distances best[0], best[1] (dp, dn: d)."""
    dp[0] = best[0] if c.squared else sqrt(best[0])
    dn[0] = best[1] if c.squared else sqrt(best[1])
    return dp[0] - dn[0] + c.margin


cdef double batch_hard_row(const MiningCtx* c, Py_ssize_t i, floating* row, double* count) noexcept nogil:
    """The loss of anchor i and its mean denominator (count: 1, or 0 without a positive or a negative);
    with the gradient, its coefficients over row.  The mining itself is fl_hard_row (above)."""
    cdef Py_ssize_t B = c.B, j, jp, kn
    cdef Py_ssize_t jk[2]
    cdef double best[2]
    cdef double dp, dn, z
    cdef int found
    if floating is float:
        if c.labels64:
            found = fl_hard_row_f32_i64(row, <const float*> c.emb, c.D, c.sqnorm, <const int64_t*> c.labels,
                                        i, B, c.gram_tol, c.sqmax, jk, best)
        else:
            found = fl_hard_row_f32_i32(row, <const float*> c.emb, c.D, c.sqnorm, <const int32_t*> c.labels,
                                        i, B, c.gram_tol, c.sqmax, jk, best)
    else:
        if c.labels64:
            found = fl_hard_row_f64_i64(row, <const double*> c.emb, c.D, c.sqnorm, <const int64_t*> c.labels,
                                        i, B, c.gram_tol, c.sqmax, jk, best)
        else:
            found = fl_hard_row_f64_i32(row, <const double*> c.emb, c.D, c.sqnorm, <const int32_t*> c.labels,
                                        i, B, c.gram_tol, c.sqmax, jk, best)
    count[0] = 1.0 if found != 0 else 0.0
    if found != 2:
        if c.want_grad:
            for j in range(B):
                row[j] = <floating> (NAN if found == 1 else 0.0)
        return NAN if found == 1 else 0.0
    jp, kn = jk[0], jk[1]
    z = hard_hinge(c, best, &dp, &dn)
    if c.want_grad:
        memset(row, 0, B * sizeof(floating))
        row[jp] = <floating> mining_coef(1.0 if z >= 0 else 0.0, dp, c.squared)   # clamp_min passes
        row[kn] = <floating> mining_coef(-1.0 if z >= 0 else 0.0, dn, c.squared)  # the gradient at 0
    return 0.0 if z < 0 else z


cdef inline Py_ssize_t mining_rows(const MiningCtx* c, bint batch_all, Py_ssize_t start, Py_ssize_t stop,
                                   floating* loss) noexcept nogil:
    """Anchors [start, stop) of the block (batch_all: a constant of each block function below)."""
    cdef Py_ssize_t B = c.B, r, i, j
    cdef floating* row
    cdef const floating* ei
    cdef double d2, total, cnt
    cdef int64_t li
    for r in range(start, stop):
        i = c.row0 + r
        row = <floating*> c.block + r * B
        li = read_label(c.labels, c.labels64, i)
        if not batch_all:
            total = batch_hard_row(c, i, row, &cnt)
        else:
            ei = <const floating*> c.emb + i * c.D
            for j in range(B):
                d2 = gram_d2(c, i, j, row[j])
                # within the Gram's rounding of 0 (identical or near-identical rows): from the rows.  A Gram
                # d^2 of pure rounding noise would make d a noise of ~1e-8 |e| and the gradient's 1/d huge
                # (S (e_i - e_j) by a GEMM then cancels to noise: 5e-10 seen for identical rows, not 0)
                if d2 <= c.gram_tol * (c.sqnorm[i] + c.sqnorm[j]):
                    d2 = exact_d2(c, ei, j)
                row[j] = <floating> (d2 if c.squared else sqrt(d2))
            total, cnt = batch_all_row(c, i, li, row)
        loss[r - start] = <floating> total
        c.row_loss[i] = total
        c.row_count[i] = cnt
    return -1


cdef (double, double) batch_all_row(const MiningCtx* c, Py_ssize_t i, int64_t li, floating* row) noexcept nogil:
    """Sum and count of the positive triplet losses of anchor i.  With the gradient, overwrites the
    distance row with S: dloss/dd_ij = (active triplets with j as positive) - (active ones with j as
    negative), active meaning z >= 0 (clamp_min passes the gradient at 0)."""
    cdef Py_ssize_t B = c.B, j, k
    cdef double total = 0.0, cnt = 0.0, z, dj, act
    cdef double* coef = NULL
    if c.want_grad:
        coef = <double*> calloc(B, sizeof(double))
        if coef == NULL:                 # no scratch: report nan rather than a wrong gradient
            for j in range(B):
                row[j] = <floating> NAN
            return NAN, 1.0
    for j in range(B):
        if j == i or read_label(c.labels, c.labels64, j) != li:
            continue
        dj = row[j]
        for k in range(B):
            if read_label(c.labels, c.labels64, k) == li:
                continue
            z = dj - row[k] + c.margin
            if z > 0:
                total += z
                cnt += 1.0
            elif z != z:                 # clamp_min(nan) is nan: the sum is nan (not a loss > 0)
                total += z
            if coef != NULL and z >= 0:
                coef[j] += 1.0
                coef[k] -= 1.0
            elif coef != NULL and z != z:
                coef[j] += z
                coef[k] += z
    if coef != NULL:
        for j in range(B):
            row[j] = <floating> mining_coef(coef[j], row[j], c.squared)
        free(coef)
    return total, cnt


cdef inline Py_ssize_t mining_block(const MiningCtx* c, bint batch_all, Py_ssize_t start, Py_ssize_t stop,
                                    floating* loss) noexcept nogil:
    """Anchors row0 + [start, stop): their Gram rows by one GEMM, then mining_rows on them."""
    cdef MiningCtx local = c[0]
    local.block = sim_dest(&c.sim, start, sizeof(floating))
    sim_rows(&c.sim, c.row0, start, stop, <floating*> local.block)
    local.row0 = c.row0 + start
    mining_rows(&local, batch_all, 0, stop - start, loss)
    if c.want_grad:
        sim_grad_rows(&c.sim, c.row0, start, stop, <const floating*> local.block)
    return -1


cdef Py_ssize_t batch_hard_block(const MiningCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                 floating* loss, floating* denom) noexcept nogil:
    return mining_block(c, False, start, stop, loss)


cdef Py_ssize_t batch_all_block(const MiningCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                floating* loss, floating* denom) noexcept nogil:
    return mining_block(c, True, start, stop, loss)


# Symmetric mining (batch_hard without the gradient).  The Gram is symmetric, so it is computed once per
# tile (I, J), I <= J, of R x R (one single-threaded GEMM each, the tiles in parallel): the tile serves
# the rows of J (reduced over its rows, fl_mine_cols) and, transposed, the rows of I.  Each (row, tile)
# pair keeps a slot: the tile's best positive / negative Gram d^2 with its first index and its second
# best (O(B x B / R) numbers; R grows with B so that a row has at most SYM_TILES slots).  A second
# parallel pass over the rows (fl_hard_pick) then takes the band of fl_hard_row over the slots: a tile
# whose best is outside the band holds no candidate, one whose second best is outside it holds one (its
# best's index), and any other tile has all its positives / negatives recomputed.  The candidates are
# a superset of fl_hard_row's, so the winner -- the exact hardest pair, first index on ties -- and the
# loss are the same bits; they no longer depend on the Gram's values at all, nor on the thread count.
# (~B^2 D / 2 multiply-adds instead of B^2 D.)
cdef enum:
    SYM_TILE = 128           # tile rows R at least
    SYM_TILES = 16           # tiles per row at most (B = 4096: R = 256 measured ~7% faster than 128)


cdef struct SymMineCtx:
    MiningCtx m              # labels, emb, D, sqnorm, gram_tol, sqmax, B, margin, squared, row_loss, row_count
    Py_ssize_t R             # tile rows
    Py_ssize_t nb            # tiles per row: ceil(B / R)
    const int32_t* tiles     # (n_tiles, 2): (I, J), I <= J
    const void* sq           # (B,) |e_j|^2 in the input's precision (fl_mine_cols)
    const int32_t* lab       # (B,) the labels as int32 class ids (equal where the labels are equal)
    double tol               # the band of the slots' d^2 (gram_tol + their own rounding in T)
    char* scratch            # per thread: two R x R tiles, then 4 R T and 3 R int64 of fl_mine_cols
    Py_ssize_t scratch_bytes # per thread (a multiple of 64)
    double* slot             # (B, nb, 4)
    int64_t* sloti           # (B, nb, 3)


cdef inline void mine_cols(const SymMineCtx* c, const floating* t, Py_ssize_t a0, Py_ssize_t na,
                           Py_ssize_t b0, Py_ssize_t n, Py_ssize_t tile, void* st) noexcept nogil:
    """fl_mine_cols of the tile t (rows a0 + [0, na), columns b0 + [0, n)) into the columns' slots of
    tile row ``tile``."""
    if floating is float:
        fl_mine_cols_f32(t, a0, na, b0, n, <const float*> c.sq, c.lab, st, c.nb, tile, c.slot, c.sloti)
    else:
        fl_mine_cols_f64(t, a0, na, b0, n, <const double*> c.sq, c.lab, st, c.nb, tile, c.slot, c.sloti)


cdef Py_ssize_t sym_tiles_block(const SymMineCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                floating* loss, floating* denom) noexcept nogil:
    """Tiles [start, stop): each tile's Gram by one GEMM, reduced into the slots of both its sides."""
    cdef Py_ssize_t R = c.R, B = c.m.B, D = c.m.D, t, I, J, i0, j0, ni, nj
    cdef char* mine = c.scratch + fl_thread_num() * c.scratch_bytes
    cdef floating* g = <floating*> mine
    cdef floating* gt = g + R * R
    cdef void* st = <void*> (gt + R * R)
    cdef const floating* e = <const floating*> c.m.emb
    for t in range(start, stop):
        loss[t - start] = 0
        I, J = c.tiles[2 * t], c.tiles[2 * t + 1]
        i0, j0 = I * R, J * R
        ni, nj = min(R, B - i0), min(R, B - j0)
        # row-major g (ni x nj) = E[I] E[J]^T: column-major g^T = E[J]^T' E[I]^T'
        gemm(True, False, nj, ni, D, e + j0 * D, D, e + i0 * D, D, 0.0, g, nj)
        mine_cols(c, g, i0, ni, j0, nj, I, st)          # the rows of J over the columns of I
        if I != J:
            if floating is float:       # gt (nj x ni) = g^T (fl_tile.h)
                fl_transpose_f32(g, nj, gt, ni, ni, nj)
            else:
                fl_transpose_f64(g, nj, gt, ni, ni, nj)
            mine_cols(c, gt, j0, nj, i0, ni, J, st)     # the rows of I over the columns of J
    return -1


cdef Py_ssize_t sym_pick_block(const SymMineCtx* c, Py_ssize_t start, Py_ssize_t stop,
                               floating* loss, floating* denom) noexcept nogil:
    """Anchors [start, stop) from their slots: their losses and mean denominators."""
    cdef Py_ssize_t i
    cdef Py_ssize_t jk[2]
    cdef double best[2]
    cdef double dp, dn, z, total
    cdef int found
    cdef const MiningCtx* m = &c.m
    for i in range(start, stop):
        if floating is float:
            found = fl_hard_pick_f32(<const float*> m.emb, m.D, m.sqnorm, c.lab, i, m.B, c.R, c.nb, c.slot,
                                     c.sloti, c.tol, m.sqmax, jk, best)
        else:
            found = fl_hard_pick_f64(<const double*> m.emb, m.D, m.sqnorm, c.lab, i, m.B, c.R, c.nb, c.slot,
                                     c.sloti, c.tol, m.sqmax, jk, best)
        if found == 2:
            z = hard_hinge(m, best, &dp, &dn)
            total = 0.0 if z < 0 else z
        else:
            total = NAN if found == 1 else 0.0
        loss[i - start] = <floating> total
        m.row_loss[i] = total
        m.row_count[i] = 1.0 if found != 0 else 0.0
    return -1


cdef object batch_hard_symmetric(MiningCtx* m, sqnorm, labels, Py_ssize_t itemsize, int num_threads):
    """batch_hard's loss (no gradient) of every anchor by symmetric mining (above); m is filled but for
    its sim member; sqnorm, labels: the arrays m.sqnorm, m.labels point into."""
    cdef SymMineCtx c
    cdef Py_ssize_t B = m.B, D = m.D, t, I, J
    c.m = m[0]
    c.R = SYM_TILE
    while c.R * SYM_TILES < B:
        c.R *= 2
    c.nb = (B + c.R - 1) // c.R
    tiles = np.empty(c.nb * (c.nb + 1), dtype=np.int32)
    cdef int32_t* tp = <int32_t*> ptr_or_null(tiles)
    t = 0
    for I in range(c.nb):
        for J in range(I, c.nb):
            tp[2 * t], tp[2 * t + 1] = <int32_t> I, <int32_t> J
            t += 1
    c.tiles = tp
    c.scratch_bytes = (2 * c.R * c.R * itemsize + 7 * c.R * 8 + 63) // 64 * 64
    # sq in T; d^2 = sq_a + sq_b - 2 g rounded in T: 4 u (sq_a + sq_b) at most (|2 g| <= sq_a + sq_b),
    # over the rounding of sq to T -- a band of (D + 8) u in all for float32 (fl_hard_pick)
    sq_t = sqnorm.astype(np.float32) if itemsize == 4 else sqnorm
    c.sq = ptr_or_null(sq_t)
    c.tol = m.gram_tol + 6.0 * (2.0 ** -24 if itemsize == 4 else 2.0 ** -53)
    # int32 labels keep the tile pass 32-bit wide (8 float lanes); only equality is used
    lab32 = labels
    if labels.dtype.itemsize == 8:
        if B == 0 or (labels.min() >= -2 ** 31 and labels.max() < 2 ** 31):
            lab32 = labels.astype(np.int32)
        else:
            lab32 = np.unique(labels, return_inverse=True)[1].astype(np.int32)
    c.lab = <const int32_t*> ptr_or_null(lab32)
    scratch = np.empty(thread_slots(num_threads) * c.scratch_bytes + 64, dtype=np.uint8)
    c.scratch = <char*> ((<size_t> ptr_or_null(scratch) + 63) & ~(<size_t> 63))     # (64-byte aligned)
    slot = np.empty(B * c.nb * 4)
    sloti = np.empty(B * c.nb * 3, dtype=np.int64)
    c.slot, c.sloti = <double*> ptr_or_null(slot), <int64_t*> ptr_or_null(sloti)
    cdef BlockRun r
    cdef int status
    init_run(&r, t, c.R * c.R * max(D, 1), itemsize, num_threads, NULL, False)
    r.block_items = 1
    cdef BlockFn tiles_fn = <BlockFn> sym_tiles_block[double]
    cdef BlockFn pick_fn = <BlockFn> sym_pick_block[double]
    if itemsize == 4:
        tiles_fn, pick_fn = <BlockFn> sym_tiles_block[float], <BlockFn> sym_pick_block[float]
    with nogil:
        status = run_blocks(tiles_fn, &c, &r)
    finish_run(status, &r)
    run(pick_fn, &c, B, 2 * max(D, 1) + 4 * c.nb, itemsize, num_threads, None, False)


def triplet_mining(emb, sqnorm, labels, row_loss, row_count, block=None, s_cols=None, *, MetricLoss kind,
                   Py_ssize_t row0, Py_ssize_t n_rows, double margin, bint squared, bint want_grad,
                   int num_threads=1):
    """Kernel entry of batch_hard / batch_all triplet mining (kind BATCH_HARD_TRIPLET or
    BATCH_ALL_TRIPLET) of anchors row0 .. row0 + n_rows of the embeddings emb (B, D), C-contiguous,
    float32 or float64: their Gram rows come from single-threaded GEMMs on fixed blocks (see SimRows).
    sqnorm (B,) float64, labels (B,) int32/int64; each row's loss and mean denominator go to
    row_loss / row_count (B,) float64 at the row's global index (reduce them with reduce_rows).
    want_grad: the gradient coefficients S of those rows are left in block (n_rows, B) and S @ emb
    goes to rows row0 .. of s_cols (B, D) (both of emb's dtype)."""
    # boundary checks (_common.pxd)
    if kind != BATCH_HARD_TRIPLET and kind != BATCH_ALL_TRIPLET:
        raise ValueError(f"fastloss kernel: triplet_mining computes BATCH_HARD_TRIPLET or BATCH_ALL_TRIPLET, "
                         f"got {kind}")
    cdef Py_ssize_t itemsize = check_buffer(emb, "emb", b'f', 0, -1, False)
    check_ndim(emb, "emb", 2)
    cdef Py_ssize_t B = emb.shape[0]
    check_buffer(sqnorm, "sqnorm", b'f', 8, B, False)
    check_buffer(labels, "labels", b'i', 0, B, False)
    check_buffer(row_loss, "row_loss", b'f', 8, B, True)
    check_buffer(row_count, "row_count", b'f', 8, B, True)
    cdef MiningCtx c
    cdef Py_ssize_t r
    # batch_hard's loss alone over every anchor: symmetric mining (above), no row blocks
    cdef bint symmetric = kind == BATCH_HARD_TRIPLET and not want_grad and row0 == 0 and n_rows == B
    if symmetric:
        if block is not None or s_cols is not None:
            raise ValueError("fastloss kernel: block and s_cols only with want_grad")
        if max(B, emb.shape[1]) >= 2 ** 31 or B * emb.shape[1] >= 2 ** 62:
            raise ValueError("fastloss kernel: BLAS takes 32-bit sizes")
        gemm_ready(num_threads)
    else:
        # batch_hard: blocks of up to 128 rows -- each GEMM packs all B rows of emb again (OpenBLAS's
        # copy was ~10% of the call at B = 768 with 64), and its cheap mining leaves the GEMM the larger part
        scratch = set_sim_rows(&c.sim, emb, emb, block, s_cols, row0, n_rows, itemsize, want_grad, num_threads,
                               128 if kind == BATCH_HARD_TRIPLET else 64)
    c.block = NULL
    c.emb = ptr_or_null(emb)
    c.D = emb.shape[1]
    # (D + 2) u: the dot product's rounding (D terms) and the Gram entry stored in the block's dtype
    c.gram_tol = (c.D + 2) * (2.0 ** -24 if itemsize == 4 else 2.0 ** -53)
    c.sqnorm = <const double*> ptr_or_null(sqnorm)
    c.sqmax = 0.0
    for r in range(B):
        if c.sqnorm[r] > c.sqmax:
            c.sqmax = c.sqnorm[r]
    c.labels = ptr_or_null(labels)
    c.labels64 = labels.dtype.itemsize == 8
    c.B = B
    c.row0 = row0
    c.margin, c.squared, c.want_grad = margin, squared, want_grad
    c.row_loss = <double*> ptr_or_null(row_loss)
    c.row_count = <double*> ptr_or_null(row_count)
    if symmetric:
        batch_hard_symmetric(&c, sqnorm, labels, itemsize, num_threads)
        return
    run_sim(block_for(kind, itemsize), &c, &c.sim, n_rows, itemsize, num_threads)


cdef struct RowsCtx:
    const double* loss
    const double* count


cdef Py_ssize_t copy_rows_block(const RowsCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                double* loss, double* denom) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(start, stop):
        loss[i - start] = c.loss[i]
        if denom != NULL:
            denom[i - start] = c.count[i] if c.count != NULL else 1.0
    return -1


def reduce_rows(row_loss, row_count=None, *, int num_threads=1):
    """Deterministic (loss_sum, count_sum, -1) of per-row float64 losses and denominators (count may be
    None: 1 per row), by run_blocks."""
    check_buffer(row_loss, "row_loss", b'f', 8, -1, False)     # boundary checks (_common.pxd)
    check_optional(row_count, "row_count", b'f', 8, buffer_items(row_loss), False)
    cdef RowsCtx c
    c.loss = <const double*> ptr_or_null(row_loss)
    c.count = <const double*> ptr_or_null(row_count)
    return run(block_for(ROW_SUMS, 8), &c, row_loss.shape[0], 1, 8, num_threads, None, True)


# Softmax cross-entropy over similarity rows (info_nce, nt_xent, arcface).  Row i of the block holds
# the similarities s_ij of query i with every candidate j; with x_ij = s_ij / tau (arcface: s_ij * scale),
# the self pair x_ii set to -inf when masked (nt_xent) and the positive p(i) = (i + pos_shift) mod M, or
# the row's class label when labels are given (arcface; a label outside [0, M) is reported by index):
#   loss_i = logsumexp_j x_ij - x_i,p(i)        (shifted by the row max: stable)
#   dloss_i/ds_ij = (softmax_j(x_i) - [j = p(i)]) / tau     -- written over the row (without the 1/tau)
# With the additive angular margin (arcface) the positive's logit is phi(s_ip) / tau instead (see
# arc_margin_point) and its coefficient is multiplied by phi'(s_ip).

# ArcFace's additive angular margin m on the positive's cosine c = cos(theta), sin(theta) = s given
# (computed accurately by the caller, see _metric.py's _positive_angle):
#   phi(c) = cos(theta + m) = c cos m - s sin m,    phi'(c) = cos m + sin m * c / s   (s > 0)
#   phi'(c) = cos m where s = 0 (theta = 0 or pi): the sin term's derivative, infinite there, is taken
#   as 0 -- autograd would give inf/nan.
# ARC_PLAIN uses that for every theta (NO_MARGIN: info_nce and nt_xent, phi(c) = c).  ARC_FALLBACK (insightface's ArcMarginProduct and arcface_torch,
# the default): where c <= th = cos(pi - m), i.e. theta + m >= pi, where cos(theta + m) would grow again
# with theta, phi = c - mm, mm = sin(pi - m) m, phi' = 1.  ARC_EASY (easy_margin=True): phi = c where
# c <= 0, phi' = 1.  (Selects on c > th / c > 0 as insightface's torch.where: a nan c takes the fallback,
# which is nan too.)
cpdef enum ArcMargin:
    NO_MARGIN = 0
    ARC_PLAIN = 1
    ARC_FALLBACK = 2
    ARC_EASY = 3

cdef enum:
    N_ARC_MARGINS = 4


cdef inline double arc_margin_point(double c, double s, double cos_m, double sin_m, int mode, double th,
                                    double mm, double* dphi) noexcept nogil:
    """Returns phi(c); dphi[0] = phi'(c)."""
    if mode == ARC_FALLBACK and not (c > th):
        dphi[0] = 1.0
        return c - mm
    if mode == ARC_EASY and not (c > 0):
        dphi[0] = 1.0
        return c
    dphi[0] = cos_m + sin_m * c / s if s > 0 else cos_m
    return c * cos_m - s * sin_m


cdef struct SoftmaxRowsCtx:
    SimRows sim              # the similarity rows' GEMM
    void* block              # (R, M) similarities of one block, overwritten with softmax - onehot (want_grad)
    Py_ssize_t M
    Py_ssize_t row0
    double inv_tau
    bint mask_self
    Py_ssize_t pos_shift
    const void* labels       # (N,) int32/int64 positives, or NULL: p(i) = (i + pos_shift) mod M
    bint labels64
    bint arc_margin          # apply arc_margin_point to the positive (arc_mode is not NO_MARGIN)
    const double* pos_cos    # (N,) the positive's cos(theta) and sin(theta), in double (arc_margin)
    const double* pos_sin
    int arc_mode             # ArcMargin
    double cos_m
    double sin_m
    double arc_th
    double arc_mm
    bint want_grad
    double* row_loss


cdef Py_ssize_t softmax_rows_block(const SoftmaxRowsCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                   floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t M = c.M, r, i, j, p, first_bad = -1
    cdef int64_t label
    cdef floating* x
    cdef floating it = <floating> c.inv_tau, m, s, xp, inv
    cdef double dphi = 1.0, ep
    for r in range(start, stop):
        i = c.row0 + r
        x = <floating*> c.block + r * M
        if c.labels != NULL:
            label = read_label(c.labels, c.labels64, i)
            if label < 0 or label >= M:
                first_bad = i if first_bad < 0 else first_bad
                c.row_loss[i] = NAN
                loss[r - start] = <floating> NAN
                if c.want_grad:
                    memset(x, 0, M * sizeof(floating))
                continue
            p = <Py_ssize_t> label
        else:
            p = (i + c.pos_shift) % M
        if c.arc_margin:
            xp = <floating> (c.inv_tau * arc_margin_point(c.pos_cos[i], c.pos_sin[i], c.cos_m, c.sin_m,
                                                          c.arc_mode, c.arc_th, c.arc_mm, &dphi))
        for j in range(M):
            x[j] = x[j] * it
        if c.mask_self:
            x[i] = -INFINITY
        if c.arc_margin:
            x[p] = xp
        xp = x[p]
        m = row_max(x, M)
        # The positive's term apart: s = sum_{j != p} exp(x_j - m), ep = exp(x_p - m), so
        #   loss = log(s + ep) + m - x_p = log1p(s / ep)        (log ep = x_p - m)
        # The second form keeps the digits of a small loss (a confident row: x_p = m, s << 1), which
        # log(s + ep) with s + ep ~ 1 rounds away (1e-2 relative at a loss of 1e-5 in float32); the first
        # is used where ep is small (s / ep could overflow).  The positive's softmax coefficient likewise:
        # ep / (s + ep) - 1 = -s / (s + ep), without the cancellation.
        x[p] = -INFINITY
        s = row_sumexp(x, M, m, x if c.want_grad else NULL)
        ep = exp(<double> xp - <double> m)
        c.row_loss[i] = log1p(<double> s / ep) if <double> xp - <double> m > -1.0 else log(<double> s + ep) + m - xp
        loss[r - start] = <floating> c.row_loss[i]
        if c.want_grad:
            inv = <floating> (1.0 / (<double> s + ep))
            for j in range(M):
                x[j] = x[j] * inv
            x[p] = -s * inv
            if c.arc_margin:
                x[p] = <floating> (x[p] * dphi)
    return first_bad


cdef Py_ssize_t softmax_sim_block(const SoftmaxRowsCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                  floating* loss, floating* denom) noexcept nogil:
    """Queries row0 + [start, stop): their similarity rows by one GEMM, then softmax_rows_block."""
    cdef SoftmaxRowsCtx local = c[0]
    local.block = sim_dest(&c.sim, start, sizeof(floating))
    sim_rows(&c.sim, c.row0, start, stop, <floating*> local.block)
    local.row0 = c.row0 + start
    cdef Py_ssize_t bad = softmax_rows_block(&local, 0, stop - start, loss, denom)
    if c.want_grad:
        sim_grad_rows(&c.sim, c.row0, start, stop, <const floating*> local.block)
    return bad


def softmax_rows(rows, cols, row_loss, labels=None, pos_cos=None, pos_sin=None, block=None, s_cols=None, *,
                 Py_ssize_t row0, Py_ssize_t n_rows, double inv_tau, bint mask_self, Py_ssize_t pos_shift=0,
                 bint want_grad, ArcMargin arc=NO_MARGIN, double margin=0.0, int num_threads=1):
    """Kernel entry: queries row0 .. row0 + n_rows of rows (N, D) against the candidates cols (M, D)
    (C-contiguous, one float dtype), their similarity rows by single-threaded GEMMs on fixed blocks
    (see SimRows); each row's loss goes to row_loss (N,) float64 at its global index.  ``labels`` (N,)
    int32/int64 name the positives instead of pos_shift; ``arc`` (ARC_PLAIN, ARC_FALLBACK or ARC_EASY,
    see arc_margin_point) applies the additive angular ``margin`` to them, with the positives' cos / sin
    from pos_cos / pos_sin ((N,) float64, required then).  want_grad: the coefficients of those rows are
    left in block (n_rows, M) and their S @ cols goes to s_cols (N, D) (both of rows' dtype).
    Returns the first row with a label outside [0, M), or -1."""
    # boundary checks (_common.pxd)
    check_enum(arc, N_ARC_MARGINS, "arc")
    cdef Py_ssize_t itemsize = check_buffer(rows, "rows", b'f', 0, -1, False)
    check_ndim(rows, "rows", 2)
    cdef Py_ssize_t N = rows.shape[0]
    check_buffer(row_loss, "row_loss", b'f', 8, N, True)
    cdef SoftmaxRowsCtx c
    scratch = set_sim_rows(&c.sim, rows, cols, block, s_cols, row0, n_rows, itemsize, want_grad, num_threads)
    cdef Py_ssize_t M = c.sim.M
    if mask_self and row0 + n_rows > M:
        raise ValueError(f"fastloss kernel: rows {row0} .. {row0 + n_rows} of {N} queries against {M} candidates")
    check_optional(labels, "labels", b'i', 0, N, False)
    check_count(pos_shift, "pos_shift")
    if labels is None and n_rows and M == 0:
        raise ValueError("fastloss kernel: no candidate to be the positive")
    if arc != NO_MARGIN:
        check_buffer(pos_cos, "pos_cos", b'f', 8, N, False)
        check_buffer(pos_sin, "pos_sin", b'f', 8, N, False)
    c.block = NULL
    c.M = M
    c.row0 = row0
    c.inv_tau, c.mask_self, c.pos_shift, c.want_grad = inv_tau, mask_self, pos_shift, want_grad
    c.labels = ptr_or_null(labels)
    c.labels64 = labels is not None and labels.dtype.itemsize == 8
    c.arc_margin = arc != NO_MARGIN
    c.pos_cos = <const double*> ptr_or_null(pos_cos)
    c.pos_sin = <const double*> ptr_or_null(pos_sin)
    c.arc_mode = arc
    c.cos_m = cos(margin) if c.arc_margin else 1.0
    c.sin_m = sin(margin) if c.arc_margin else 0.0
    # insightface's constants, as it computes them (math.cos / math.sin of pi - m)
    c.arc_th = math.cos(math.pi - margin) if c.arc_margin else 0.0
    c.arc_mm = math.sin(math.pi - margin) * margin if c.arc_margin else 0.0
    c.row_loss = <double*> ptr_or_null(row_loss)
    return run_sim(block_for(SOFTMAX_ROWS, itemsize), &c, &c.sim, n_rows, itemsize, num_threads)[2]


# Unit rows (nt_xent, arcface; info_nce's bound): u_i = z_i / max(|z_i|, eps), as F.normalize, with
# |z_i| summed in double from the row (FL_LANES partial sums in one fixed order and no FMA contraction:
# the same bits on every ISA level -- arcface's near-pi gradients amplify a last-bit difference of u
# beyond SPEC §4, tests/test_accuracy.py) and the quotient taken in double, rounded once to u's type -- the wrapper's former NumPy pass (einsum, a float64 divide, a cast),
# now one pass per row on the call's threads.  A nan row stays nan (nan < eps is false), an inf row
# gives inf / inf = nan, as torch.
cdef extern from *:
    """
    #define FL_UNIT_ROW(T, S)                                                                     \\
    static inline FL_NO_FP_CONTRACT                                                               \\
    double fl_unit_row_##S(const T* z, ptrdiff_t n, double eps, T* u) {                           \\
        double s[FL_LANES] = {0};                                                                 \\
        FL_LANE_LOOP(n, double x = z[i]; s[j] += x * x;)                                          \\
        double norm = sqrt(fl_lanes_sum(s)), den = norm < eps ? eps : norm;                       \\
        if (u) {                                                                                  \\
            _Pragma("omp simd")                                                                   \\
            for (ptrdiff_t k = 0; k < n; k++) u[k] = (T)((double)z[k] / den);                    \\
        }                                                                                         \\
        return norm;                                                                              \\
    }
    FL_UNIT_ROW(float, f32)
    FL_UNIT_ROW(double, f64)
    /* nt_xent's symmetric panel (SymCtx below), its exps z (W x R, row k = candidate r0 + k, column r =
     * query r0 + r): rowacc[r] += sum_k z[k][r] (in k order) and colsum[k] = sum_r z[k][r], in double. */
    #define FL_PANEL_SUMS(T, S)                                                                   \\
    static inline void fl_panel_sums_##S(const T* z, ptrdiff_t W, ptrdiff_t R, double* rowacc,    \\
                                         double* colsum) {                                        \\
        for (ptrdiff_t k = 0; k < W; k++) {                                                       \\
            const T* zk = z + k * R;                                                              \\
            double s = 0.0;                                                                       \\
            _Pragma("omp simd reduction(+:s)")                                                    \\
            for (ptrdiff_t r = 0; r < R; r++) { double v = zk[r]; s += v; rowacc[r] += v; }       \\
            colsum[k] = s;                                                                        \\
        }                                                                                         \\
    }
    FL_PANEL_SUMS(float, f32)
    FL_PANEL_SUMS(double, f64)
    """
    double fl_unit_row_f32(const float* z, Py_ssize_t n, double eps, float* u) nogil
    double fl_unit_row_f64(const double* z, Py_ssize_t n, double eps, double* u) nogil
    void fl_panel_sums_f32(const float* z, Py_ssize_t W, Py_ssize_t R, double* rowacc, double* colsum) nogil
    void fl_panel_sums_f64(const double* z, Py_ssize_t W, Py_ssize_t R, double* rowacc, double* colsum) nogil


cdef struct UnitRowsCtx:
    const void* z            # (n, D) input rows
    void* u                  # (n, D) unit rows (already offset to the first), or NULL: norms only
    double* norm             # (n,) |z_i| (already offset)
    Py_ssize_t D
    double eps


cdef Py_ssize_t unit_rows_block(const UnitRowsCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t i, D = c.D
    for i in range(start, stop):
        if floating is float:
            c.norm[i] = fl_unit_row_f32(<const float*> c.z + i * D, D, c.eps,
                                        <float*> c.u + i * D if c.u != NULL else NULL)
        else:
            c.norm[i] = fl_unit_row_f64(<const double*> c.z + i * D, D, c.eps,
                                        <double*> c.u + i * D if c.u != NULL else NULL)
    return -1


def unit_rows(z, u, norm, *, Py_ssize_t row0=0, double eps=1e-12, int num_threads=1):
    """Kernel entry: the norms |z_i| of the rows of z (n, D) into norm[row0 : row0 + n] ((N,) float64,
    N = u's rows, else n) and, unless u is None, the unit rows z_i / max(|z_i|, eps) into rows row0 ..
    row0 + n of u (N, D) (z's dtype; C-contiguous).  Rows are independent: the same bits for every
    num_threads."""
    # boundary checks (_common.pxd)
    cdef Py_ssize_t itemsize = check_buffer(z, "z", b'f', 0, -1, False)
    check_ndim(z, "z", 2)
    cdef Py_ssize_t n = z.shape[0], D = z.shape[1], N = n
    cdef UnitRowsCtx c
    c.u = NULL
    if u is not None:
        check_buffer(u, "u", b'f', itemsize, -1, True)
        check_ndim(u, "u", 2)
        N = u.shape[0]
        if u.shape[1] != D:
            raise ValueError(f"fastloss kernel: u {u.shape} and z {z.shape} differ in D")
    check_buffer(norm, "norm", b'f', 8, N, True)       # (N,): u's rows, or z's without u
    if check_count(row0, "row0") + n > N:
        raise ValueError(f"fastloss kernel: rows {row0} .. {row0 + n} of {N}")
    if u is not None:
        c.u = <char*> ptr_or_null(u) + row0 * D * itemsize
    c.z = ptr_or_null(z)
    c.norm = <double*> ptr_or_null(norm) + row0
    c.D, c.eps = D, eps
    cdef BlockFn fn = <BlockFn> unit_rows_block[double]
    if itemsize == 4:
        fn = <BlockFn> unit_rows_block[float]
    run(fn, &c, n, 2 * max(D, 1), itemsize, num_threads, None, False, True)     # (no loss: fn_sums)


# NT-Xent without the gradient, on the symmetric similarity u u^T: half the GEMM work.  Panel I (rows
# [r0, r1), one GEMM) computes S[i, j] for j >= r0 only; the entries left of the panel are the same
# numbers already computed by earlier panels as S[j, i] (a dot product is symmetric bit for bit: the
# same products in the same order).  The log-sum-exp is shifted by a fixed c just above 1 / tau, the
# largest logit of unit rows (F.normalize'd: |u_i . u_j| <= 1 up to rounding; a shorter zero row only
# lowers it), so a row's sum needs no row max and can be summed in parts: its own panel's part over
# j >= r0 (rowpart) and, for j < r0, the column sums of earlier panels (colpart[I][i]), added in panel
# order -- fixed, whatever the thread count.  The self pair and the positive pair are set to -inf
# (exp gives 0); the positive's logit is kept in posval by the panel that holds the pair.  The wrapper
# takes this path only where exp(-2c) stays a normal number (c <= 40 in float32, 300 in float64).
# A panel's GEMM packs its long operand U[r0:M] once (OpenBLAS's sgemm_oncopy: a copy of W x D numbers
# for P x W x D multiply-adds): at 16 rows a panel (M = 16384, when a panel's S was kept whole in 1 MiB)
# the copy took more time than the multiply, and the column parts were 128 MiB of fresh pages (page
# faults: 14% of the time).  So a panel is taller (sym_panel_rows: up to 64 panels, for balance) and runs
# in chunks of C columns (C x P numbers of S at a time, 0.5 MiB of float32), in column order: the row
# parts run on in the same order.  Panels and chunks are fixed by M alone: the same bits for every
# num_threads (OpenBLAS may round a product of another shape differently -- its small-matrix and GEMV
# paths --, so the chunk width is part of the result, as the panel height is).
cdef struct SymCtx:
    SimRows sim              # rows = cols = u (M, D); scratch (threads, C, P)
    Py_ssize_t M
    Py_ssize_t P             # rows per panel (sym_panel_rows)
    Py_ssize_t C             # columns per chunk of a panel
    Py_ssize_t pos_shift     # the positive of row i: (i + pos_shift) mod M
    double inv_tau
    double shift             # c, in the kernel's floating type (widened)
    double* rowpart          # (M,)
    double* colpart          # (n_panels, M): colpart[I * M + j], j >= r1 of panel I
    void* posval             # (M,) the positive's logit, floating
    double* row_loss         # (M,)


cdef Py_ssize_t sym_panel_block(const SymCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                floating* loss, floating* denom) noexcept nogil:
    """Work items [start, stop), each a panel: its S[i, j >= r0], chunk by chunk of columns, by one GEMM
    each (alpha = 1 / tau: the scaled similarities, the same numbers as a pass of its own, which took 3%
    of W14's time at one thread and 6% at two), masked, exp'd in place; the row parts, column parts and
    positive logits (see above).
    Panel I costs ~(M - I P): items alternate between the two ends (0, n-1, 1, n-2, ...), so that any run
    of consecutive items -- what a thread takes from the schedule -- holds heavy and light panels alike
    (in panel order, thread 0 took the heavy half: 1.15x from 1 to 2 threads).  Each panel writes only
    its own parts: same bits."""
    cdef Py_ssize_t M = c.M, P = c.P, I, r0, r1, R, W, r, k, k0, Wc, i, p, b
    cdef Py_ssize_t n_panels = (M + P - 1) // P
    cdef floating it = <floating> c.inv_tau, cs = <floating> c.shift
    cdef floating* x = <floating*> c.sim.scratch + fl_thread_num() * c.C * P
    cdef floating* posval = <floating*> c.posval
    cdef const floating* u = <const floating*> c.sim.rows
    for b in range(start, stop):
        I = (b >> 1) if (b & 1) == 0 else n_panels - 1 - (b >> 1)
        r0 = I * P
        r1 = min(r0 + P, M)
        R, W = r1 - r0, M - r0
        k0 = 0
        while k0 < W:
            Wc = min(c.C, W - k0)
            # the chunk transposed, row-major Z (Wc x R): Z[k][r] = S[r0 + r, r0 + k0 + k], i.e.
            # column-major Z^T (R x Wc) = U[r0:r1]^T' U[r0+k0:...]^T' -- the long operand second, whose
            # packing copies rows as they lie (the first operand's, a transposing copy, took a third
            # of the GEMM's time when the long one was first: OpenBLAS's sgemm_incopy)
            gemm(True, False, R, Wc, c.sim.D, u + r0 * c.sim.D, c.sim.D, u + (r0 + k0) * c.sim.D, c.sim.D,
                 0.0, x, R, it)                              # S / tau
            for r in range(R):
                i = r0 + r
                if k0 <= r < k0 + Wc:
                    x[(r - k0) * R + r] = -INFINITY          # the self pair
                p = (i + c.pos_shift) % M
                k = p - r0 - k0
                if p >= r0 and 0 <= k < Wc:
                    posval[i] = x[k * R + r]
                    if p >= r1:                              # (row p's own panel does not hold the pair)
                        posval[p] = x[k * R + r]
                    x[k * R + r] = -INFINITY
            row_sumexp(x, Wc * R, cs, x)                     # the exps in place (their sum unused)
            # row parts (over k, on from the previous chunk) and the column parts of candidates
            # j = r0 + k0 + k (those with j >= r1 are read; the panel's own slots j < r1 are written
            # only here, and never read)
            if floating is float:
                fl_panel_sums_f32(x, Wc, R, c.rowpart + r0, c.colpart + I * M + r0 + k0)
            else:
                fl_panel_sums_f64(x, Wc, R, c.rowpart + r0, c.colpart + I * M + r0 + k0)
            k0 += Wc
    return -1


cdef Py_ssize_t sym_rows_block(const SymCtx* c, Py_ssize_t start, Py_ssize_t stop,
                               floating* loss, floating* denom) noexcept nogil:
    """Rows [start, stop): the row's sum from its parts, in panel order, then its loss
    log(s + e_p) - log(e_p) = log1p(s / e_p), e_p = exp(x_p - c): in the one form for every row (a
    fixed shift leaves x_p - c anywhere in [-2c, 0], and log(s + e_p) + c - x_p cancels where the loss
    is small; s / e_p <= M e^(2c) stays finite for c <= 300)."""
    cdef Py_ssize_t i, I, J
    cdef double s, xp, ep, m = c.shift
    for i in range(start, stop):
        J = i // c.P
        s = c.rowpart[i]
        for I in range(J):
            s += c.colpart[I * c.M + i]
        xp = (<floating*> c.posval)[i]
        ep = exp(xp - m)
        c.row_loss[i] = log1p(s / ep)
        loss[i - start] = <floating> c.row_loss[i]
    return -1


cdef Py_ssize_t sym_panel_rows(Py_ssize_t M) noexcept:
    """Rows per panel of nt_xent_symmetric: 64 up to M = 4096 (up to 64 panels), then M / 64 up to 256
    (M = 16384: 64 panels of 256 rows, each GEMM chunk 256 x 512 x D)."""
    cdef Py_ssize_t P = 64
    while P < 256 and P * 64 < M:
        P *= 2
    return P


def nt_xent_symmetric(u, row_loss, *, double inv_tau, Py_ssize_t pos_shift, int num_threads=1,
                      Py_ssize_t panel_rows=0, Py_ssize_t chunk_cols=0):
    """Kernel entry: NT-Xent's per-row losses (no gradient) of the unit rows u (M, D), C-contiguous
    float32/float64, the self pair masked and the positive of row i at (i + pos_shift) mod M, into
    row_loss (M,) float64 -- from the symmetric u u^T, half of it computed (see SymCtx).  panel_rows,
    chunk_cols (tests): the panel height and chunk width where not the defaults (sym_panel_rows;
    2^17 numbers of S a chunk)."""
    # boundary checks (_common.pxd)
    cdef Py_ssize_t itemsize = check_buffer(u, "u", b'f', 0, -1, False)
    check_ndim(u, "u", 2)
    cdef Py_ssize_t M = u.shape[0]
    check_buffer(row_loss, "row_loss", b'f', 8, M, True)
    if check_count(pos_shift, "pos_shift") and (2 * pos_shift) % M != 0:
        raise ValueError(f"fastloss kernel: nt_xent_symmetric pairs rows: pos_shift {pos_shift} must be "
                         f"half of M = {M}")
    if not inv_tau > 0 or inv_tau > (40.0 if itemsize == 4 else 300.0):
        raise ValueError(f"fastloss kernel: nt_xent_symmetric takes 0 < inv_tau <= 40 (float32) / 300, "
                         f"got {inv_tau}")
    cdef SymCtx c
    c.P = panel_rows if panel_rows > 0 else sym_panel_rows(M)
    c.C = min(chunk_cols if chunk_cols > 0 else max((1 << 17) // c.P, 1), max(M, 1))
    scratch = set_sim_rows(&c.sim, u, u, None, None, 0, M, itemsize, False, num_threads, 64, c.C * c.P)
    c.M = M
    cdef Py_ssize_t n_panels = (M + c.P - 1) // c.P
    c.pos_shift, c.inv_tau = pos_shift, inv_tau
    # c just above the largest logit (1 + 2^-10 over 1 / tau: every x - c < 0), in the kernel's type
    c.shift = <double> <float> (inv_tau * (1.0 + 2.0 ** -10)) if itemsize == 4 else inv_tau * (1.0 + 2.0 ** -10)
    # (colpart and posval are written before they are read: no zeros)
    rowpart = workspace("sym_rowpart", M * 8).view(np.float64)
    rowpart[:] = 0.0
    colpart = workspace("sym_colpart", n_panels * M * 8)
    posval = workspace("sym_posval", M * itemsize)
    c.rowpart = <double*> ptr_or_null(rowpart)
    c.colpart = <double*> ptr_or_null(colpart)
    c.posval = ptr_or_null(posval)
    c.row_loss = <double*> ptr_or_null(row_loss)
    cdef BlockFn panels = <BlockFn> sym_panel_block[double]
    cdef BlockFn rows_fn = <BlockFn> sym_rows_block[double]
    if itemsize == 4:
        panels, rows_fn = <BlockFn> sym_panel_block[float], <BlockFn> sym_rows_block[float]
    cdef BlockRun r
    cdef int status
    init_run(&r, n_panels, c.P * M * max(c.sim.D, 1), itemsize, num_threads, NULL, False)
    r.block_items = 1
    with nogil:
        status = run_blocks(panels, &c, &r)
    finish_run(status, &r)
    init_run(&r, M, n_panels, itemsize, num_threads, NULL, False)
    r.block_items = 64
    with nogil:
        status = run_blocks(rows_fn, &c, &r)
    finish_run(status, &r)


# =====================================================================================================
# Choosing the kernel, in one place: MetricLoss -> block function, per floating type
# =====================================================================================================
cdef BlockFn METRIC_BLOCKS[N_METRIC_LOSSES][2]     # [loss][0] float32, [loss][1] float64

cdef void add_blocks(int loss, BlockFn f32, BlockFn f64) noexcept:
    METRIC_BLOCKS[loss][0] = f32
    METRIC_BLOCKS[loss][1] = f64

add_blocks(TRIPLET_MARGIN, <BlockFn> triplet_block[float], <BlockFn> triplet_block[double])
add_blocks(COSINE_EMBEDDING, <BlockFn> cosine_embedding_block[float], <BlockFn> cosine_embedding_block[double])
add_blocks(CONTRASTIVE, <BlockFn> contrastive_block[float], <BlockFn> contrastive_block[double])
add_blocks(MARGIN_RANKING, <BlockFn> margin_ranking_block[float], <BlockFn> margin_ranking_block[double])
add_blocks(HINGE_EMBEDDING, <BlockFn> hinge_embedding_block[float], <BlockFn> hinge_embedding_block[double])
add_blocks(BATCH_HARD_TRIPLET, <BlockFn> batch_hard_block[float], <BlockFn> batch_hard_block[double])
add_blocks(BATCH_ALL_TRIPLET, <BlockFn> batch_all_block[float], <BlockFn> batch_all_block[double])
add_blocks(SOFTMAX_ROWS, <BlockFn> softmax_sim_block[float], <BlockFn> softmax_sim_block[double])
add_blocks(ROW_SUMS, NULL, <BlockFn> copy_rows_block)          # float64 per-row sums only


cdef inline BlockFn block_for(int loss, Py_ssize_t itemsize) noexcept:
    """The block function of a loss (one the entry accepts) for float32 (itemsize 4) or float64 data."""
    return METRIC_BLOCKS[loss][itemsize == 8]
