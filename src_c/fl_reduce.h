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

/* Row max.  NaN is skipped here but reaches the result through the exp-sum that follows. */
static inline float fl_row_max_f32(const float* x, ptrdiff_t n) {
    float m = -__builtin_inff();
    _Pragma("omp simd reduction(max:m)")
    for (ptrdiff_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}
static inline double fl_row_max_f64(const double* x, ptrdiff_t n) {
    double m = -__builtin_inf();
    _Pragma("omp simd reduction(max:m)")
    for (ptrdiff_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* sum_i exp(x_i - m) for m = max_i x_i (x_i - m <= 0: fl_expf_nonpos); if e != NULL also stores each
 * exp(x_i - m) there (the softmax numerator, reused by the gradient so that exp runs once per element). */
static inline double fl_row_sumexp_f32(const float* x, ptrdiff_t n, float m, float* e) {
    double s = 0.0;
    if (e) {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) { float v = fl_expf_nonpos(x[i] - m); e[i] = v; s += v; }
    } else {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) s += fl_expf_nonpos(x[i] - m);
    }
    return s;
}
static inline double fl_row_sumexp_f64(const double* x, ptrdiff_t n, double m, double* e) {
    double s = 0.0;
    if (e) {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) { double v = fl_exp_nonpos(x[i] - m); e[i] = v; s += v; }
    } else {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) s += fl_exp_nonpos(x[i] - m);
    }
    return s;
}

/* sum_i w_i * (x_i - m) (w may be NULL: weights 1): the label-smoothing sum over logits shifted by the
 * row max, so no large |x| cancels against m * sum w afterwards. */
static inline double fl_row_dot_shift_f32(const float* x, const float* w, ptrdiff_t n, float m) {
    double s = 0.0;
    if (w) { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += w[i] * (x[i] - m); }
    else   { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += x[i] - m; }
    return s;
}
static inline double fl_row_dot_shift_f64(const double* x, const double* w, ptrdiff_t n, double m) {
    double s = 0.0;
    if (w) { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += w[i] * (x[i] - m); }
    else   { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += x[i] - m; }
    return s;
}

/* Probability-target sums of one row: with tw_i = w_i * (keep * t_i + add) (w NULL: weights 1),
 *   A = sum_i tw_i,   D = sum_i tw_i * (x_i - m)        (x_i - m <= 0, so -D >= 0)
 * (cross-entropy with probability targets is A * log s - D: two non-negative terms). */
#define FL_SOFT_SUMS(T, name)                                                                          \
static inline void name(const T* x, const T* t, const T* w, ptrdiff_t n, T m, T keep, T add,         \
                        double* A_out, double* D_out) {                                              \
    double A = 0.0, D = 0.0;                                                                         \
    if (w) {                                                                                         \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (ptrdiff_t i = 0; i < n; i++) { T tw = w[i] * (keep * t[i] + add); A += tw; D += tw * (x[i] - m); } \
    } else {                                                                                         \
        _Pragma("omp simd reduction(+:A,D)")                                                         \
        for (ptrdiff_t i = 0; i < n; i++) { T tw = keep * t[i] + add; A += tw; D += tw * (x[i] - m); } \
    }                                                                                                \
    *A_out = A;                                                                                      \
    *D_out = D;                                                                                      \
}
FL_SOFT_SUMS(float, fl_row_soft_sums_f32)
FL_SOFT_SUMS(double, fl_row_soft_sums_f64)
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
