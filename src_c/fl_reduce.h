/*
 * fl_reduce.h -- deterministic, vectorised summation and row primitives.
 *
 * Determinism: every function here adds in an order fixed by the code and the ISA level alone
 * (`omp simd` lanes are a compile-time property), never by the thread count.  Sums of per-item
 * losses accumulate in double.  Row primitives (max, sum of exp over one row of logits) accumulate
 * in the row's own precision across vector lanes: for C <= 10^5 the float32 relative error stays
 * below ~1e-6, far inside SPEC §4's 1e-5.
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

/* sum_i exp(x_i - m); if e != NULL also stores each exp(x_i - m) there (the softmax numerator,
 * reused by the gradient so that exp runs once per element). */
/* float32 rows accumulate in double: a float32 running sum of C ~ 3e4 terms loses ~1e-5 relative
 * when the loop is not vectorised (the sanitizer build at -O1 failed test_large_vocabulary); the
 * double sum does not depend on the vector width. */
static inline float fl_row_sumexp_f32(const float* x, ptrdiff_t n, float m, float* e) {
    double s = 0.0;
    if (e) {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) { float v = fl_expf(x[i] - m); e[i] = v; s += v; }
    } else {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) s += fl_expf(x[i] - m);
    }
    return (float)s;
}
static inline double fl_row_sumexp_f64(const double* x, ptrdiff_t n, double m, double* e) {
    double s = 0.0;
    if (e) {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) { double v = fl_exp(x[i] - m); e[i] = v; s += v; }
    } else {
        _Pragma("omp simd reduction(+:s)")
        for (ptrdiff_t i = 0; i < n; i++) s += fl_exp(x[i] - m);
    }
    return s;
}

/* sum_i w_i * x_i (w may be NULL: plain sum), in the row's precision */
static inline float fl_row_dot_f32(const float* x, const float* w, ptrdiff_t n) {
    float s = 0.0f;
    if (w) { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += w[i] * x[i]; }
    else   { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += x[i]; }
    return s;
}
static inline double fl_row_dot_f64(const double* x, const double* w, ptrdiff_t n) {
    double s = 0.0;
    if (w) { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += w[i] * x[i]; }
    else   { _Pragma("omp simd reduction(+:s)") for (ptrdiff_t i = 0; i < n; i++) s += x[i]; }
    return s;
}

/* sum_i w_i * (x_i - m) (w may be NULL: weights 1): the label-smoothing sum over logits shifted by the
 * row max, so no large |x| cancels against m * sum w afterwards. */
static inline float fl_row_dot_shift_f32(const float* x, const float* w, ptrdiff_t n, float m) {
    float s = 0.0f;
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

#endif /* FL_REDUCE_H */
