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

/* Row max.  NaN is skipped here but reaches the result through the exp-sum that follows. */
#define FL_ROW_MAX(T, name, VF, NEG_INF)                                                               \
static inline T name(const T* x, ptrdiff_t n) {                                                       \
    T m = NEG_INF;                                                                                    \
    ptrdiff_t nb = n & ~(ptrdiff_t)(VF - 1);                                                          \
    _Pragma("omp simd reduction(max:m)")                                                              \
    for (ptrdiff_t i = 0; i < nb; i++) m = x[i] > m ? x[i] : m;                                       \
    for (ptrdiff_t i = nb; i < n; i++) m = x[i] > m ? x[i] : m;                                       \
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

/* The float32 row sum of exps, the hot loop of cross-entropy.  Widening every exp to double before it is
 * added cost about as much as the exp (extract, two conversions, two double adds per vector), so each
 * vector lane sums its terms in float over a run of FL_SUMEXP_RUN vectors and the run's float lanes are
 * then folded into double lanes (no horizontal sum per run: that cost as much as the run).  Accuracy:
 * the max's exp(0) = 1 (and any tie's) is counted apart, exactly, so the float lanes hold only the rest
 * r = s - (number of maxima), and a lane's float sum of FL_SUMEXP_RUN positive terms is within
 * (FL_SUMEXP_RUN - 1) 2^-24 < 5e-7 of its value, relative: s - 1 (log_sum's log1p argument) keeps
 * that relative precision even for a confident row's tiny r.  The order is fixed by n and the ISA
 * level (deterministic).  The tail (n % VF values) is padded with -inf (exp gives exactly 0). */
#define FL_SUMEXP_RUN 8
#define FL_SUMEXP_TERM(xv, ev, fl_acc, k_acc, j)                                                      \
    { float d_ = (xv) - m, v_ = fl_expf_softmax(d_); ev; fl_acc[j] += d_ == 0.0f ? 0.0f : v_; k_acc[j] += d_ == 0.0f; }
static inline double fl_row_sumexp_f32(const float* x, ptrdiff_t n, float m, float* e) {
    enum { VF = FL_ROW_VF32 };
    double sd[VF];
    int32_t k[VF];
    float a[VF];
    ptrdiff_t nv = n / VF, rem = n - nv * VF;
    for (int j = 0; j < VF; j++) { sd[j] = 0.0; k[j] = 0; }
    for (ptrdiff_t v0 = 0; v0 < nv; v0 += FL_SUMEXP_RUN) {
        ptrdiff_t v1 = nv - v0 < FL_SUMEXP_RUN ? nv : v0 + FL_SUMEXP_RUN;
        for (int j = 0; j < VF; j++) a[j] = 0.0f;
        if (e) {
            for (ptrdiff_t v = v0; v < v1; v++) {
                const float* xv = x + v * VF;
                float* ev = e + v * VF;
                _Pragma("omp simd")
                for (int j = 0; j < VF; j++) FL_SUMEXP_TERM(xv[j], ev[j] = v_, a, k, j)
            }
        } else {
            for (ptrdiff_t v = v0; v < v1; v++) {
                const float* xv = x + v * VF;
                _Pragma("omp simd")
                for (int j = 0; j < VF; j++) FL_SUMEXP_TERM(xv[j], (void)0, a, k, j)
            }
        }
        _Pragma("omp simd")
        for (int j = 0; j < VF; j++) sd[j] += (double)a[j];
    }
    if (rem) {
        float pad[VF], out[VF];
        const float* xt = x + nv * VF;
        for (int j = 0; j < VF; j++) { pad[j] = j < rem ? xt[j] : -__builtin_inff(); a[j] = 0.0f; }
        _Pragma("omp simd")
        for (int j = 0; j < VF; j++) FL_SUMEXP_TERM(pad[j], out[j] = v_, a, k, j)
        if (e) for (int j = 0; j < rem; j++) e[nv * VF + j] = out[j];
        for (int j = 0; j < VF; j++) sd[j] += (double)a[j];
    }
    double s = 0.0;
    long ones = 0;
    for (int j = 0; j < VF; j++) { s += sd[j]; ones += k[j]; }
    return (double)ones + s;
}
#undef FL_SUMEXP_TERM

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
