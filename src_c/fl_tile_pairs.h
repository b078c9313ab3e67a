/*
 * fl_tile_pairs.h -- the pairwise row losses of metric.pyx (triplet_margin_loss, cosine_embedding_loss) on
 * rows of few features, along the rows.  A row of D = 2-16 floats is too short to vectorise along: the row
 * path paid one reduction call, its lane tree and a scalar finish per row (~25 ns for a triplet at D = 2,
 * slower than torch).  Here L rows at a time are turned feature-major (fl_tile.h's transposes: feature k of
 * row i at t[k * L + i]) and every loop runs along the L rows, in double lanes: the sums over k in feature
 * order, then the loss and the gradient's per-row coefficients, then the gradient rows, turned back.
 *
 * The terms are the row path's (same operations on the same doubles); only the order of the sums over k
 * differs from its FL_LANES lanes, so the last bits of a row's distance can.  Gradient elements are the
 * row path's too, term by term: each term rounded to T, then added to the others in T, a term skipped where
 * the row path skips it (a zero norm, or a zero coefficient at a finite norm; see fl_normdiff_grad in
 * metric.pyx) -- so a triplet with a = p = n still gets an exact 0, and an inf / nan lands where torch puts it.
 */
#ifndef FL_TILE_PAIRS_H
#define FL_TILE_PAIRS_H

#include <math.h>
#include <stddef.h>

/* GCC contracts a * b + c into an FMA across statements; the gradient terms must stay two roundings apart
 * (see above), so their functions turn contraction off. */
#if defined(__GNUC__) && !defined(__clang__)
#define FL_PAIRS_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define FL_PAIRS_NO_CONTRACT
#endif

#define FL_PAIRS_SQ(d) ((d) * (d))

/* ---- triplet_margin_loss: distances d_ap, d_an (and d_pn with swap) for p = 2 or p = 1 ---------------- */

/* r[0][i] = sum_k TERM(a_k - p_k + eps), r[1][i] the same for (a, n), r[2][i] for (p, n) when three (else
 * untouched), over feature-major tiles at, pt, nt (D x L); TERM = d^2 (p = 2) or |d| (p = 1). */
#define FL_TILE_DIST3(T, S, NAME, TERM)                                                                 \
static inline void NAME##_##S(const T* at, const T* pt, const T* nt, ptrdiff_t D, ptrdiff_t L,         \
                              double eps, int three, double* r0, double* r1, double* r2) {             \
    _Pragma("omp simd")                                                                               \
    for (ptrdiff_t i = 0; i < L; i++) r0[i] = r1[i] = r2[i] = 0.0;                                    \
    for (ptrdiff_t k = 0; k < D; k++) {                                                               \
        const T *a = at + k * L, *p = pt + k * L, *n = nt + k * L;                                    \
        if (three) {                                                                                  \
            _Pragma("omp simd")                                                                       \
            for (ptrdiff_t i = 0; i < L; i++) {                                                       \
                const double x = a[i], y = p[i], z = n[i];                                            \
                const double d = x - y + eps, e = x - z + eps, f = y - z + eps;                       \
                r0[i] += TERM(d); r1[i] += TERM(e); r2[i] += TERM(f);                                 \
            }                                                                                         \
        } else {                                                                                      \
            _Pragma("omp simd")                                                                       \
            for (ptrdiff_t i = 0; i < L; i++) {                                                       \
                const double x = a[i], y = p[i], z = n[i];                                            \
                const double d = x - y + eps, e = x - z + eps;                                        \
                r0[i] += TERM(d); r1[i] += TERM(e);                                                   \
            }                                                                                         \
        }                                                                                             \
    }                                                                                                 \
}
FL_TILE_DIST3(float, f32, fl_tile_sqdiff3, FL_PAIRS_SQ)
FL_TILE_DIST3(double, f64, fl_tile_sqdiff3, FL_PAIRS_SQ)
FL_TILE_DIST3(float, f32, fl_tile_absdiff3, fabs)
FL_TILE_DIST3(double, f64, fl_tile_absdiff3, fabs)
#undef FL_TILE_DIST3

/* The loss of L triplets from their sums r (fl_tile_sqdiff3 / absdiff3; sqrt'ed here for p = 2), as
 * metric.pyx's triplet_point, branch-free: z = margin + d_ap - d_neg, d_neg = d_an or, with swap, min(d_an,
 * d_pn) (a tie splits the gradient in half); loss = max(0, z), nan kept.  With m0 (not NULL), the
 * gradient's factor of each term j = (a, p), (a, n), (p, n) overwrites r_j: f_j = c_j gs / d_j (p = 2) or
 * c_j gs (p = 1), c_j = d loss / d d_j; and m_j = 0 where the row path (fl_normdiff_grad) skips the term --
 * a zero norm, or c_j = 0 at a finite norm (torch multiplies a zero through: 0 * inf = nan), or no swap
 * for (p, n) -- else 1.
 * Two loops, the distances passed between them in r: GCC 12 vectorised neither the loss's T store beside
 * the factors' divisions nor the masks written as (c == 0) | (d == 0) -- hence the product of selects. */
/* 1 where a term of factor c over a norm d enters the gradient, else 0 (see above) */
#define FL_PAIRS_KEEP(c, d) (((d) != 0.0 ? 1.0 : 0.0) * fl_pairs_or((c) != 0.0 ? 1.0 : 0.0, (d) < INFINITY ? 0.0 : 1.0))
/* a or b of two 0 / 1 doubles, in arithmetic (GCC 12 vectorised no nested select of masks here) */
static inline double fl_pairs_or(double a, double b) { return a + b - a * b; }
#define FL_TILE_TRIPLET_FINISH(T, S)                                                                    \
static inline void fl_tile_triplet_finish_##S(double* r0, double* r1, double* r2, ptrdiff_t L, int p2,  \
                                              double margin, int swap, double gs, T* loss, double* m0,  \
                                              double* m1, double* m2) {                                \
    _Pragma("omp simd")                                                                               \
    for (ptrdiff_t i = 0; i < L; i++) {                                                               \
        const double s0 = r0[i], s1 = r1[i], s2 = r2[i];                                              \
        const double dap = p2 ? sqrt(s0) : s0, dan = p2 ? sqrt(s1) : s1;                              \
        /* no swap: d_pn = +inf is never d_neg (and ties d_an only where z is not >= 0: no gradient) */ \
        const double dpn = swap ? (p2 ? sqrt(s2) : s2) : INFINITY;                                    \
        const double z = margin + dap - (dpn < dan ? dpn : dan);                                      \
        loss[i] = (T)(z < 0 ? 0.0 : z);                                                               \
        r0[i] = dap; r1[i] = dan; r2[i] = dpn;                                                        \
    }                                                                                                 \
    if (!m0)                                                                                          \
        return;                                                                                       \
    const double has_pn = swap ? 1.0 : 0.0;                                                           \
    _Pragma("omp simd")                                                                               \
    for (ptrdiff_t i = 0; i < L; i++) {                                                               \
        const double dap = r0[i], dan = r1[i], dpn = r2[i];                                           \
        const double z = margin + dap - (dpn < dan ? dpn : dan);                                      \
        /* the weight of d_pn in d_neg: 0, 1, or 1/2 on a tie (d_an's: 1 - it) */                     \
        const double wpn = dpn < dan ? 1.0 : (dpn == dan ? 0.5 : 0.0);                                \
        const double act = z >= 0 ? gs : 0.0;                                                         \
        const double c0 = act, c1 = -act * (1.0 - wpn), c2 = -act * wpn;                              \
        r0[i] = c0 / (p2 ? dap : 1.0); m0[i] = FL_PAIRS_KEEP(c0, dap);                                \
        r1[i] = c1 / (p2 ? dan : 1.0); m1[i] = FL_PAIRS_KEEP(c1, dan);                                \
        r2[i] = c2 / (p2 ? dpn : 1.0); m2[i] = FL_PAIRS_KEEP(c2, dpn) * has_pn;                       \
    }                                                                                                 \
}
FL_TILE_TRIPLET_FINISH(float, f32)
FL_TILE_TRIPLET_FINISH(double, f64)
#undef FL_TILE_TRIPLET_FINISH
#undef FL_PAIRS_KEEP

/* The gradient tiles ga, gp, gn (D x L, feature-major) of L triplets from the factors f_j and masks m_j of
 * fl_tile_triplet_finish: with v_j = (T)(f_j d_j) (p = 2; p = 1: (T)(sgn(d_j) f_j), torch's sgn: 0 at 0
 * and at nan) where m_j, else 0: ga = (0 + v0) + v1, gp = (0 - v0) + v2, gn = (0 - v1) - v2 -- metric.pyx's
 * zeroed rows and its fl_normdiff_grad calls, in their order. */
#define FL_PAIRS_TERM2(f, d) ((f) * (d))                                     /* p = 2: f = c / norm */
#define FL_PAIRS_TERM1(f, d) ((d) > 0 ? (f) : ((d) < 0 ? -(f) : 0.0))     /* p = 1: sgn(d) c, sgn(nan) = 0 */
#define FL_TRIPLET_GRAD_LOOP(T, TERM)                                                                   \
    for (ptrdiff_t k = 0; k < D; k++) {                                                               \
        const T *a = at + k * L, *p = pt + k * L, *n = nt + k * L;                                    \
        T *A = ga + k * L, *P = gp + k * L, *N = gn + k * L;                                          \
        _Pragma("omp simd")                                                                           \
        for (ptrdiff_t i = 0; i < L; i++) {                                                           \
            const double x = a[i], y = p[i], z = n[i];                                                \
            const double d0 = x - y + eps, d1 = x - z + eps, d2 = y - z + eps;                        \
            const T v0 = m0[i] != 0.0 ? (T)TERM(f0[i], d0) : (T)0;                                    \
            const T v1 = m1[i] != 0.0 ? (T)TERM(f1[i], d1) : (T)0;                                    \
            const T v2 = m2[i] != 0.0 ? (T)TERM(f2[i], d2) : (T)0;                                    \
            A[i] = ((T)0 + v0) + v1;                                                                  \
            P[i] = ((T)0 - v0) + v2;                                                                  \
            N[i] = ((T)0 - v1) - v2;                                                                  \
        }                                                                                             \
    }
#define FL_TILE_TRIPLET_GRAD(T, S)                                                                      \
static inline FL_PAIRS_NO_CONTRACT                                                                      \
void fl_tile_triplet_grad_##S(const T* at, const T* pt, const T* nt, ptrdiff_t D, ptrdiff_t L,         \
                              double eps, int p2, const double* f0, const double* f1, const double* f2, \
                              const double* m0, const double* m1, const double* m2, T* ga, T* gp,      \
                              T* gn) {                                                                 \
    if (p2) FL_TRIPLET_GRAD_LOOP(T, FL_PAIRS_TERM2)                                                   \
    else FL_TRIPLET_GRAD_LOOP(T, FL_PAIRS_TERM1)                                                      \
}
FL_TILE_TRIPLET_GRAD(float, f32)
FL_TILE_TRIPLET_GRAD(double, f64)
#undef FL_TILE_TRIPLET_GRAD
#undef FL_TRIPLET_GRAD_LOOP
#undef FL_PAIRS_TERM1
#undef FL_PAIRS_TERM2

/* ---- cosine_embedding_loss ---------------------------------------------------------------------------- */

/* r0[i] = <x1, x2>, r1[i] = |x1|^2, r2[i] = |x2|^2 of L rows over feature-major tiles x1t, x2t (D x L). */
#define FL_TILE_DOT3(T, S)                                                                              \
static inline void fl_tile_dot3_##S(const T* x1t, const T* x2t, ptrdiff_t D, ptrdiff_t L, double* r0,  \
                                    double* r1, double* r2) {                                          \
    _Pragma("omp simd")                                                                               \
    for (ptrdiff_t i = 0; i < L; i++) r0[i] = r1[i] = r2[i] = 0.0;                                    \
    for (ptrdiff_t k = 0; k < D; k++) {                                                               \
        const T *a = x1t + k * L, *b = x2t + k * L;                                                   \
        _Pragma("omp simd")                                                                           \
        for (ptrdiff_t i = 0; i < L; i++) {                                                           \
            const double x = a[i], y = b[i];                                                          \
            r0[i] += x * y; r1[i] += x * x; r2[i] += y * y;                                           \
        }                                                                                             \
    }                                                                                                 \
}
FL_TILE_DOT3(float, f32)
FL_TILE_DOT3(double, f64)
#undef FL_TILE_DOT3

/* The loss of L cosine-embedding rows from their sums (fl_tile_dot3), targets y, as metric.pyx's
 * cosine_embedding_point, branch-free: m1 = |x1|^2 + E, m2 = |x2|^2 + E, cos = <x1, x2> / sqrt(m1 m2);
 * y = 1: 1 - cos; y = -1: max(0, cos - margin) (nan kept); other y: 0.  With grad, the gradient's
 * coefficients times gs overwrite r0, r1, r2 as u0, u1, u3: g1 = u0 x1 + u1 x2, g2 = u1 x1 + u3 x2
 * (fl_tile_cos_grad). */
#define FL_COS_TERMS                                                                                    \
        const double m1 = r1[i] + E, m2 = r2[i] + E, den = sqrt(m1 * m2), cos = r0[i] / den;          \
        const double yy = y[i], h = cos - margin;                                                     \
        const int pos = yy == 1.0, neg = yy == -1.0;
#define FL_TILE_COS_FINISH(T, S)                                                                        \
static inline void fl_tile_cos_finish_##S(double* r0, double* r1, double* r2, const T* y, ptrdiff_t L,  \
                                          double E, double margin, double gs, T* loss, int grad) {     \
    _Pragma("omp simd")                                                                               \
    for (ptrdiff_t i = 0; i < L; i++) {                                                               \
        FL_COS_TERMS                                                                                  \
        loss[i] = (T)(pos ? 1.0 - cos : (neg ? (h < 0 ? 0.0 : h) : 0.0));                             \
    }                                                                                                 \
    if (!grad)                                                                                        \
        return;                                                                                       \
    _Pragma("omp simd")   /* (a loop of its own, as fl_tile_triplet_finish's) */                    \
    for (ptrdiff_t i = 0; i < L; i++) {                                                               \
        FL_COS_TERMS                                                                                  \
        const double dc = pos ? -1.0 : (neg && h >= 0 ? 1.0 : 0.0);                                   \
        r0[i] = (-dc * cos / m1) * gs; r1[i] = (dc / den) * gs; r2[i] = (-dc * cos / m2) * gs;        \
    }                                                                                                 \
}
FL_TILE_COS_FINISH(float, f32)
FL_TILE_COS_FINISH(double, f64)
#undef FL_TILE_COS_FINISH
#undef FL_COS_TERMS

/* The gradient tiles g1, g2 (D x L) of L cosine-embedding rows: g1 = (T)(u0 x1 + u1 x2), g2 = (T)(u1 x1 +
 * u3 x2), the coefficients (already times grad_scale) per row in u0, u1, u3 (metric.pyx's axpby). */
#define FL_TILE_COS_GRAD(T, S)                                                                          \
static inline void fl_tile_cos_grad_##S(const T* x1t, const T* x2t, ptrdiff_t D, ptrdiff_t L,          \
                                        const double* u0, const double* u1, const double* u3, T* g1,   \
                                        T* g2) {                                                       \
    for (ptrdiff_t k = 0; k < D; k++) {                                                               \
        const T *a = x1t + k * L, *b = x2t + k * L;                                                   \
        T *G1 = g1 + k * L, *G2 = g2 + k * L;                                                         \
        _Pragma("omp simd")                                                                           \
        for (ptrdiff_t i = 0; i < L; i++) {                                                           \
            const double x = a[i], y = b[i];                                                          \
            G1[i] = (T)(u0[i] * x + u1[i] * y);                                                       \
            G2[i] = (T)(u1[i] * x + u3[i] * y);                                                       \
        }                                                                                             \
    }                                                                                                 \
}
FL_TILE_COS_GRAD(float, f32)
FL_TILE_COS_GRAD(double, f64)
#undef FL_TILE_COS_GRAD

#endif
