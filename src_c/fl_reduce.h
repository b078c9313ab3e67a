/*
 * fl_reduce.h -- deterministic, vectorised summation and row primitives.
 *
 * Determinism: every function here adds in an order fixed by the code and the ISA level alone
 * (`omp simd` lanes are a compile-time property), never by the thread count.
 *
 * Precision: every sum accumulates in double, whatever the data type -- sums of per-item losses and
 * every float32 row sum (max aside, which is exact): a float32 running sum of C terms loses up to
 * ~C * 6e-8 relative (1.8e-4 at C = 32000, outside SPEC §4's 1e-5), and its rounding depends on the
 * vector width, so float32 rows gave different answers at different ISA levels.  The terms themselves
 * (exp, products) are formed in the row's precision, at full vector width; only the accumulator is
 * double.  Row sums of exp return the double sum: 1 + (small terms) must not be rounded to float32
 * before log1p(s - 1) (a confident row's loss is s - 1).
 * The same rule outside this file: the class-major runs of classification.pyx (ce_run, ce_probs_run:
 * per-position double sums of exp, targets and shifted logits), multi_margin's row sums, and
 * fl_overlap.h's overlap sums.  One float32 sum over classes is left: segmentation.pyx's softmax_run
 * (the denominator of a position's softmax, C terms <= 1 with one of them 1, relative error <= C 2^-24;
 * a double accumulator there cost 8% on W13, Dice over 4 classes).
 */
#ifndef FL_REDUCE_H
#define FL_REDUCE_H

#include <stddef.h>
#include "fl_math.h"

/* `omp simd reduction` lets the compiler keep one partial per vector lane (built with -fopenmp-simd,
 * which needs no OpenMP runtime): fixed order for a given ISA level, hence deterministic. */

/* sum of n values, in double */
static inline double fl_sum_f32(const float* x, ptrdiff_t n) {
    double s = 0.0;
    _Pragma("omp simd reduction(+:s)")
    for (ptrdiff_t i = 0; i < n; i++) s += (double)x[i];
    return s;
}
static inline double fl_sum_f64(const double* x, ptrdiff_t n) {
    double s = 0.0;
    _Pragma("omp simd reduction(+:s)")
    for (ptrdiff_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* Pairwise sum of block partials: O(log n) error growth, fixed order. */
static double fl_pairwise_sum(const double* x, ptrdiff_t n) {
    if (n <= 8) {
        double s = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) s += x[i];
        return s;
    }
    ptrdiff_t h = n / 2;
    return fl_pairwise_sum(x, h) + fl_pairwise_sum(x + h, n - h);
}

/* Row loops and their tails.  A row's main loop runs over whole vectors (FL_ROW_VF32 / FL_ROW_VF64 values,
 * the vector width of the ISA level), so the compiler emits no scalar epilogue; the last n % VF values are
 * copied into one padded vector's worth and go through the same vectorised code (padding that adds
 * exactly 0), instead of up to VF - 1 scalar exps: a row of 71 logits cost 1.7x one of 72 without this.
 * The sum order is fixed by n and the ISA level, as before. */
#if defined(__AVX512F__)
#define FL_ROW_VF32 16
#elif defined(__AVX__)
#define FL_ROW_VF32 8
#else
#define FL_ROW_VF32 4
#endif
#define FL_ROW_VF64 (FL_ROW_VF32 / 2)

/* Row max.  NaN is skipped here but reaches the result through the exp-sum that follows.  Two vectors
 * of lanes at a time, each lane its own running max (one chain of compares was latency-bound); the last
 * n % B values are taken as the last B values of the row (max is idempotent: values seen twice change
 * nothing); the lanes are then reduced (a vector max of the two halves, then a simd max reduction).  Max
 * is exact, so the order changes nothing. */
#define FL_ROW_MAX(T, name, VF, NEG_INF)                                                               \
static inline T name(const T* x, ptrdiff_t n) {                                                       \
    enum { B = 2 * VF };                                                                              \
    T mv[B];                                                                                          \
    if (n < B) {                                                                                      \
        T m = NEG_INF;                                                                                \
        for (ptrdiff_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;                                    \
        return m;                                                                                     \
    }                                                                                                 \
    for (int j = 0; j < B; j++) mv[j] = NEG_INF;                                                      \
    ptrdiff_t i = 0;                                                                                  \
    for (; i + B <= n; i += B) {                                                                      \
        _Pragma("omp simd")                                                                           \
        for (int j = 0; j < B; j++) mv[j] = x[i + j] > mv[j] ? x[i + j] : mv[j];                      \
    }                                                                                                 \
    if (i < n) {                                                                                      \
        const T* xt = x + n - B;                                                                      \
        _Pragma("omp simd")                                                                           \
        for (int j = 0; j < B; j++) mv[j] = xt[j] > mv[j] ? xt[j] : mv[j];                            \
    }                                                                                                 \
    T m = NEG_INF;                                                                                    \
    _Pragma("omp simd reduction(max:m)")                                                              \
    for (int j = 0; j < VF; j++) {                                                                    \
        T a = mv[j + VF] > mv[j] ? mv[j + VF] : mv[j];                                                \
        m = a > m ? a : m;                                                                            \
    }                                                                                                 \
    return m;                                                                                         \
}
FL_ROW_MAX(float, fl_row_max_f32, FL_ROW_VF32, -__builtin_inff())
FL_ROW_MAX(double, fl_row_max_f64, FL_ROW_VF64, -__builtin_inf())
#undef FL_ROW_MAX

/* sum_i exp(x_i - m) for m = max_i x_i (x_i - m <= 0: fl_exp_nonpos); if e != NULL also stores each
 * exp(x_i - m) there (the softmax numerator, reused by the gradient so that exp runs once per element).
 * The tail is padded with -inf (exp gives exactly 0). */
#define FL_ROW_SUMEXP(T, name, EXP, VF, NEG_INF)                                                       \
static inline double name(const T* x, ptrdiff_t n, T m, T* e) {                                      \
    double s = 0.0;                                                                                   \
    ptrdiff_t nb = n & ~(ptrdiff_t)(VF - 1), rem = n - nb;                                            \
    if (e) {                                                                                          \
        _Pragma("omp simd reduction(+:s)")                                                            \
        for (ptrdiff_t i = 0; i < nb; i++) { T v = EXP(x[i] - m); e[i] = v; s += v; }                 \
    } else {                                                                                          \
        _Pragma("omp simd reduction(+:s)")                                                            \
        for (ptrdiff_t i = 0; i < nb; i++) s += EXP(x[i] - m);                                        \
    }                                                                                                 \
    if (rem) {                                                                                        \
        T pad[VF], out[VF];                                                                           \
        for (int j = 0; j < VF; j++) pad[j] = j < rem ? x[nb + j] : NEG_INF;                          \
        _Pragma("omp simd reduction(+:s)")                                                            \
        for (int j = 0; j < VF; j++) { T v = EXP(pad[j] - m); out[j] = v; s += v; }                   \
        if (e) for (int j = 0; j < rem; j++) e[nb + j] = out[j];                                      \
    }                                                                                                 \
    return s;                                                                                         \
}
FL_ROW_SUMEXP(double, fl_row_sumexp_f64, fl_exp_nonpos, FL_ROW_VF64, -__builtin_inf())
#undef FL_ROW_SUMEXP

/* The float32 row pass of cross-entropy: s = sum_j exp(x_j - m) (m the row max), the softmax numerators
 * exp(x_j - m) into e if e != NULL, and fused into the same loop (the row is read once) the sums that the
 * loss needs besides s:
 *   FL_RS_DOT   dot = sum_j w_j (x_j - m)                       (label smoothing; w NULL: weights 1)
 *   FL_RS_SOFT  A = sum_j tw_j,  D = sum_j tw_j (x_j - m)       (probability targets,
 *               tw_j = w_j (keep t_j + add), as fl_row_soft_sums)
 * Summation.  Widening every term to double before it is added cost about as much as the exp (extract,
 * two conversions, two double adds per vector), so terms are summed in float lanes and each run of
 * FL_SUMEXP_RUN blocks is then folded into double lanes (no horizontal sum per run: that cost as much
 * as the run).  A block is B = 4 vectors of lanes; a lane adds its block's 4 terms as a tree, (y0 + y1)
 * + (y2 + y3), onto the run's float accumulator, so every term passes through at most 2 + FL_SUMEXP_RUN
 * = 6 float roundings (the first addition onto 0 is exact) before the exact widening.  Accuracy: the
 * max's exp(0) = 1 (and any tie's) is counted apart, exactly, so the float lanes of s hold only the rest
 * r = s - (number of maxima); a sum of positive terms, each through at most 6 roundings, is within
 * 6 2^-24 < 5e-7 of its value, relative: s - 1 (log_sum's log1p argument) keeps that relative
 * precision even for a confident row's tiny r.  The same holds for dot, A and D (terms of one sign
 * when w, t >= 0).  Lanes are folded in halves at the end.  The order is fixed by n and the ISA level
 * (deterministic).
 * The tail (n % B values) runs as vectors of VF lanes; the last, partial one is taken as the row's last
 * VF values with the lanes already counted dropped from the sums and not stored to e (e may be x itself,
 * overwritten in place: the dropped lanes may read values already replaced, and are discarded); a row
 * shorter than VF is padded. */
#define FL_SUMEXP_RUN 4
/* The row after this one is read in by the same loop, a cache line per 16 values computed (a hint: a
 * prefetch never faults, so the address may lie past the array, and is formed as an integer for that
 * reason).  The row max that starts the next row then reads cache, not memory: rows that do not fit in
 * L2 (an 8 MiB batch) spent a third of the row max's time waiting for memory, while the exps here are
 * compute-bound and leave the loads idle. */
#define FL_LINE_FLOATS 16
#if defined(__GNUC__)
#define FL_PREFETCH(x, i) __builtin_prefetch((const void*)((uintptr_t)(x) + (uintptr_t)(i) * sizeof(*(x))), 0, 3)
#else
#define FL_PREFETCH(x, i) ((void)0)
#endif
enum { FL_RS_PLAIN = 0, FL_RS_DOT = 1, FL_RS_SOFT = 2 };
/* lane j of the values at xp (weights wp, targets tp, exps to ep; counted when `keep`): its exp into y[o],
 * a tie with the max into u[o], its dot / A / D terms into q1[o], q2[o] */
#define FL_RS_LANE(xp, wp, tp, ep, j, o, keep)                                                         \
    {                                                                                                 \
        float d_ = (xp)[j] - m, v_ = fl_expf_softmax(d_);                                            \
        if (has_e) (ep)[j] = v_;                                                                      \
        int k_ = (keep);                                                                              \
        y[o] = (k_ && d_ != 0.0f) ? v_ : 0.0f;                                                        \
        u[o] = k_ && d_ == 0.0f;                                                                      \
        if (mode == FL_RS_DOT) {                                                                      \
            float q_ = has_w ? (wp)[j] * d_ : d_;                                                     \
            q1[o] = k_ ? q_ : 0.0f;                                                                   \
        } else if (mode == FL_RS_SOFT) {                                                              \
            float tw_ = keep_t * (tp)[j] + add_t;                                                     \
            tw_ = has_w ? (wp)[j] * tw_ : tw_;                                                        \
            q1[o] = k_ ? tw_ : 0.0f;                                                                  \
            q2[o] = k_ ? tw_ * d_ : 0.0f;                                                             \
        }                                                                                             \
    }
FL_INLINE double fl_row_pass_f32(const float* x, const float* w, const float* t, ptrdiff_t n, float m,
                                 float* e, int mode, int has_e, int has_w, float keep_t, float add_t,
                                 double* o1, double* o2) {
    enum { VF = FL_ROW_VF32, B = 4 * FL_ROW_VF32 };
    double sd[VF], s1[VF], s2[VF];
    int32_t k[VF], u[B];
    float a[VF], a1[VF], a2[VF], y[B], q1[B], q2[B];
    ptrdiff_t nb = n / B;
    for (int j = 0; j < VF; j++) { sd[j] = 0.0; s1[j] = 0.0; s2[j] = 0.0; k[j] = 0; }
    for (int j = 0; j < B; j++) { q1[j] = 0.0f; q2[j] = 0.0f; }
    for (ptrdiff_t v0 = 0; v0 < nb; v0 += FL_SUMEXP_RUN) {
        ptrdiff_t v1 = nb - v0 < FL_SUMEXP_RUN ? nb : v0 + FL_SUMEXP_RUN;
        for (int j = 0; j < VF; j++) { a[j] = 0.0f; a1[j] = 0.0f; a2[j] = 0.0f; }
        for (ptrdiff_t v = v0; v < v1; v++) {
            const ptrdiff_t o = v * B;
            for (int l = 0; l < B; l += FL_LINE_FLOATS) FL_PREFETCH(x, n + o + l);
            _Pragma("omp simd")
            for (int j = 0; j < B; j++) FL_RS_LANE(x + o, w + o, t + o, e + o, j, j, 1)
            _Pragma("omp simd")
            for (int j = 0; j < VF; j++) {
                a[j] += (y[j] + y[VF + j]) + (y[2 * VF + j] + y[3 * VF + j]);
                k[j] += (u[j] + u[VF + j]) + (u[2 * VF + j] + u[3 * VF + j]);
                if (mode != FL_RS_PLAIN) a1[j] += (q1[j] + q1[VF + j]) + (q1[2 * VF + j] + q1[3 * VF + j]);
                if (mode == FL_RS_SOFT) a2[j] += (q2[j] + q2[VF + j]) + (q2[2 * VF + j] + q2[3 * VF + j]);
            }
        }
        _Pragma("omp simd")
        for (int j = 0; j < VF; j++) { sd[j] += (double)a[j]; s1[j] += (double)a1[j]; s2[j] += (double)a2[j]; }
    }
    if (nb * B < n) {                         /* the tail: at most 4 vectors */
        for (int j = 0; j < VF; j++) { a[j] = 0.0f; a1[j] = 0.0f; a2[j] = 0.0f; }
        for (ptrdiff_t o = nb * B; o < n; o += VF) {
            if (o + VF <= n) {
                _Pragma("omp simd")
                for (int j = 0; j < VF; j++) FL_RS_LANE(x + o, w + o, t + o, e + o, j, j, 1)
            } else if (n >= VF) {             /* the last VF values, the first VF - (n - o) already counted */
                const ptrdiff_t ot = n - VF, drop = o - ot;
                float ep[VF];
                _Pragma("omp simd")
                for (int j = 0; j < VF; j++) FL_RS_LANE(x + ot, w + ot, t + ot, ep, j, j, j >= drop)
                if (has_e) for (ptrdiff_t j = drop; j < VF; j++) e[ot + j] = ep[j];
            } else {                          /* a row shorter than VF: padded */
                const ptrdiff_t rem = n - o;
                float xp[VF], wp[VF], tp[VF], ep[VF];
                for (int j = 0; j < VF; j++) {
                    xp[j] = j < rem ? x[o + j] : 0.0f;
                    wp[j] = j < rem && has_w ? w[o + j] : 0.0f;
                    tp[j] = j < rem && mode == FL_RS_SOFT ? t[o + j] : 0.0f;
                }
                _Pragma("omp simd")
                for (int j = 0; j < VF; j++) FL_RS_LANE(xp, wp, tp, ep, j, j, j < rem)
                if (has_e) for (int j = 0; j < rem; j++) e[o + j] = ep[j];
            }
            _Pragma("omp simd")
            for (int j = 0; j < VF; j++) {
                a[j] += y[j];
                k[j] += u[j];
                if (mode != FL_RS_PLAIN) a1[j] += q1[j];
                if (mode == FL_RS_SOFT) a2[j] += q2[j];
            }
        }
        _Pragma("omp simd")
        for (int j = 0; j < VF; j++) { sd[j] += (double)a[j]; s1[j] += (double)a1[j]; s2[j] += (double)a2[j]; }
    }
    for (int h = VF / 2; h >= 1; h /= 2)
        for (int j = 0; j < h; j++) { sd[j] += sd[j + h]; s1[j] += s1[j + h]; s2[j] += s2[j + h]; k[j] += k[j + h]; }
    if (o1) *o1 = s1[0];
    if (o2) *o2 = s2[0];
    return (double)k[0] + sd[0];
}
#undef FL_RS_LANE
static inline double fl_row_sumexp_f32(const float* x, ptrdiff_t n, float m, float* e) {
    if (e) return fl_row_pass_f32(x, NULL, NULL, n, m, e, FL_RS_PLAIN, 1, 0, 0.0f, 0.0f, NULL, NULL);
    return fl_row_pass_f32(x, NULL, NULL, n, m, NULL, FL_RS_PLAIN, 0, 0, 0.0f, 0.0f, NULL, NULL);
}
/* s, and dot = sum_j w_j (x_j - m) (w NULL: weights 1) */
static inline double fl_row_sumexp_dot_f32(const float* x, const float* w, ptrdiff_t n, float m, float* e,
                                           double* dot) {
    if (e && w) return fl_row_pass_f32(x, w, NULL, n, m, e, FL_RS_DOT, 1, 1, 0.0f, 0.0f, dot, NULL);
    if (e) return fl_row_pass_f32(x, NULL, NULL, n, m, e, FL_RS_DOT, 1, 0, 0.0f, 0.0f, dot, NULL);
    if (w) return fl_row_pass_f32(x, w, NULL, n, m, NULL, FL_RS_DOT, 0, 1, 0.0f, 0.0f, dot, NULL);
    return fl_row_pass_f32(x, NULL, NULL, n, m, NULL, FL_RS_DOT, 0, 0, 0.0f, 0.0f, dot, NULL);
}
/* s, and the probability-target sums A, D of fl_row_soft_sums */
static inline double fl_row_sumexp_soft_f32(const float* x, const float* t, const float* w, ptrdiff_t n,
                                            float m, float keep, float add, float* e, double* A, double* D) {
    if (e && w) return fl_row_pass_f32(x, w, t, n, m, e, FL_RS_SOFT, 1, 1, keep, add, A, D);
    if (e) return fl_row_pass_f32(x, NULL, t, n, m, e, FL_RS_SOFT, 1, 0, keep, add, A, D);
    if (w) return fl_row_pass_f32(x, w, t, n, m, NULL, FL_RS_SOFT, 0, 1, keep, add, A, D);
    return fl_row_pass_f32(x, NULL, t, n, m, NULL, FL_RS_SOFT, 0, 0, keep, add, A, D);
}

/* sum_i w_i * (x_i - m) (w may be NULL: weights 1): the label-smoothing sum over logits shifted by the
 * row max, so no large |x| cancels against m * sum w afterwards.  Tail padded with x = m, w = 0. */
#define FL_ROW_DOT_SHIFT(T, name, VF)                                                                  \
static inline double name(const T* x, const T* w, ptrdiff_t n, T m) {                                 \
    double s = 0.0;                                                                                   \
    ptrdiff_t nb = n & ~(ptrdiff_t)(VF - 1), rem = n - nb;                                            \
    if (w) { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < nb; i++) s += w[i] * (x[i] - m); } \
    else   { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < nb; i++) s += x[i] - m; }  \
    if (rem) {                                                                                        \
        T xp[VF], wp[VF];                                                                             \
        for (int j = 0; j < VF; j++) {                                                                \
            xp[j] = j < rem ? x[nb + j] : m;                                                          \
            wp[j] = j < rem ? (w ? w[nb + j] : (T)1) : (T)0;                                          \
        }                                                                                             \
        _Pragma("omp simd reduction(+:s)") for (int j = 0; j < VF; j++) s += wp[j] * (xp[j] - m);     \
    }                                                                                                 \
    return s;                                                                                         \
}
FL_ROW_DOT_SHIFT(float, fl_row_dot_shift_f32, FL_ROW_VF32)
FL_ROW_DOT_SHIFT(double, fl_row_dot_shift_f64, FL_ROW_VF64)
#undef FL_ROW_DOT_SHIFT

/* Probability-target sums of one row: with tw_i = w_i * (keep * t_i + add) (w NULL: weights 1),
 *   A = sum_i tw_i,   D = sum_i tw_i * (x_i - m)        (x_i - m <= 0, so -D >= 0)
 * (cross-entropy with probability targets is A * log s - D: two non-negative terms).  Tail padded with
 * w = 0 (and t = 0, x = m). */
#define FL_SOFT_SUMS(T, name, VF)                                                                      \
static inline void name(const T* x, const T* t, const T* w, ptrdiff_t n, T m, T keep, T add,         \
                        double* A_out, double* D_out) {                                              \
    double A = 0.0, D = 0.0;                                                                         \
    ptrdiff_t nb = n & ~(ptrdiff_t)(VF - 1), rem = n - nb;                                           \
    if (w) {                                                                                         \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (ptrdiff_t i = 0; i < nb; i++) { T tw = w[i] * (keep * t[i] + add); A += tw; D += tw * (x[i] - m); } \
    } else {                                                                                         \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (ptrdiff_t i = 0; i < nb; i++) { T tw = keep * t[i] + add; A += tw; D += tw * (x[i] - m); } \
    }                                                                                                \
    if (rem) {                                                                                       \
        T xp[VF], tp[VF], wp[VF];                                                                    \
        for (int j = 0; j < VF; j++) {                                                               \
            xp[j] = j < rem ? x[nb + j] : m;                                                         \
            tp[j] = j < rem ? t[nb + j] : (T)0;                                                      \
            wp[j] = j < rem ? (w ? w[nb + j] : (T)1) : (T)0;                                         \
        }                                                                                            \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (int j = 0; j < VF; j++) { T tw = wp[j] * (keep * tp[j] + add); A += tw; D += tw * (xp[j] - m); } \
    }                                                                                                \
    *A_out = A;                                                                                      \
    *D_out = D;                                                                                      \
}
FL_SOFT_SUMS(float, fl_row_soft_sums_f32, FL_ROW_VF32)
FL_SOFT_SUMS(double, fl_row_soft_sums_f64, FL_ROW_VF64)
#undef FL_SOFT_SUMS

/* Distillation sums of one student row x and teacher row u, both shifted by their row max and scaled
 * by 1/T, in double whatever the data type (the loss T^2 KL cancels by a factor ~T, see
 * classification.pyx):  a_i = (x_i - mx) / T,  b_i = (u_i - mu) / T,
 *   ss = sum_i exp(a_i),  st = sum_i exp(b_i),  W = sum_i exp(b_i) * (b_i - a_i). */
#define FL_KL_SUMS(T, name)                                                                            \
static inline void name(const T* x, const T* u, ptrdiff_t n, double mx, double mu, double inv_t,      \
                        double* ss_out, double* st_out, double* W_out) {                             \
    double ss = 0.0, st = 0.0, W = 0.0;                                                              \
    _Pragma("omp simd reduction(+:ss,st,W)")                                                         \
    for (ptrdiff_t i = 0; i < n; i++) {                                                              \
        double a = ((double)x[i] - mx) * inv_t, b = ((double)u[i] - mu) * inv_t;                     \
        double eb = fl_exp_nonpos(b);                                                                \
        ss += fl_exp_nonpos(a);                                                                      \
        st += eb;                                                                                    \
        W += eb * (b - a);                                                                           \
    }                                                                                                \
    *ss_out = ss;                                                                                    \
    *st_out = st;                                                                                    \
    *W_out = W;                                                                                      \
}
FL_KL_SUMS(float, fl_row_kl_sums_f32)
FL_KL_SUMS(double, fl_row_kl_sums_f64)
#undef FL_KL_SUMS

#endif /* FL_REDUCE_H */
