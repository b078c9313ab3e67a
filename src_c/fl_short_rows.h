/*
 * fl_short_rows.h -- cross-entropy of short rows in registers: (N, C) logits with 8 <= C <= 40 classes
 * (float32) or 4 <= C <= 48 (float64, below), class-index targets, the loss alone (no gradient, no label
 * smoothing, no focal term), at the AVX2 level (8 float lanes; FL_SHORT_ROWS is 1 only there).
 *
 * The class-major tile path (fl_tile.h, fl_tile_ce.h) transposes a tile of rows through memory, then runs a
 * max pass and an exp pass over it and the epilogue's loops: every value is stored and loaded again several
 * times.  Here 8 rows at a time are transposed as 8 x 8 blocks -- classes 0-7, 8-15, ..., and the last block
 * at classes C-8 .. C-1 (overlapping the one before it unless 8 divides C), so each class is one vector, lane
 * r = row r -- and the max, the target's logit and the sum of exps come from those vectors (in registers up to
 * 16 classes, beyond that partly spilled to the stack, still one store and load per value against the
 * tile's several).  Four such groups of 8 rows run before their 32 logs, which then run side by side: one
 * group's chain (transpose -> max -> exps -> log) is longer than a core's reorder window can overlap with the
 * next group's, so a group's logs run right after it left the core waiting (a C harness of the formula at
 * C = 10, Zen 3: 0.82 -> 0.58 ns per logit).  From C = 44 on (6 blocks) GCC no longer keeps the classes'
 * vectors apart and the rows ran 1.35-2x slower than the tiles (Zen 3).
 *
 * Bit for bit the same loss as the tile path at this level (ce_run in classification.pyx over
 * fl_tile_ce_f32): the max in class order (x > m ? x : m, NaN skipped), the target's logit by a gather, the
 * exps by fl_expf_softmax_vn with the ties d == 0 counted apart, the classes summed in groups of 4
 * ((y0 + y1) + (y2 + y3)) onto a float partial of up to FL_TILE_SUMEXP_RUN groups, each partial widened onto
 * the double sums, the last C % 4 classes as their own partial ((y0 + y1) + y2), then the ties' count; the
 * log as fl_tile_log_sum_f32 and the loss as ce_point, w_y (log s - (x_y - m)).
 */
#ifndef FL_SHORT_ROWS_H
#define FL_SHORT_ROWS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "fl_tile.h"

#if defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__) && defined(FL_TILE_AVX) && FL_V_W == 8
#define FL_SHORT_ROWS 1
#define FL_SR_MIN_C 8
#define FL_SR_MAX_C 40
#define FL_SR_GROUPS 4                      /* groups of 8 rows before their logs */
#define FL_SR_STEP (8 * FL_SR_GROUPS)       /* rows per step */

/* the number of W x W blocks of a row of C classes, and class j's vector among the blocks' o[]: blocks
 * b < FL_SR_NBW(C, W) - 1 hold classes W b .. W b + W - 1, the last one classes C-W .. C-1 */
#define FL_SR_NBW(C, W) (((C) + (W) - 1) / (W))
#define FL_SR_CLASSW(o, j, C, W) ((j) < (W) * (FL_SR_NBW(C, W) - 1) ? (o)[j] : (o)[(j) + (W) * FL_SR_NBW(C, W) - (C)])
#define FL_SR_NB(C) FL_SR_NBW(C, 8)
#define FL_SR_CLASS(o, j, C) FL_SR_CLASSW(o, j, C, 8)
/* declares o[], the W rows at xr as class vectors (W x W blocks by BLOCK), and m, their max in class order
 * (VMAX(x, m) = x > m ? x : m, NaN skipped); MAX_C sizes o[] */
#define FL_SR_CLASSES_MAX(V, W, BLOCK, VMAX, MAX_C, xr, C, o, m)                                          \
    V o[(W) * FL_SR_NBW(MAX_C, W)];                                                                   \
    for (int b_ = 0; b_ + 1 < FL_SR_NBW(C, W); b_++) BLOCK((xr) + (W) * b_, C, o + (W) * b_);       \
    BLOCK((xr) + (C) - (W), C, o + (W) * (FL_SR_NBW(C, W) - 1));                                      \
    V m = o[0];                                                                                       \
    for (int j_ = 1; j_ < (C); j_++) m = VMAX(FL_SR_CLASSW(o, j_, C, W), m);

/* the loss of the 8 * FL_SR_GROUPS rows at x (row stride C), labels ys (-1: none), weights wy (0 where
 * ys < 0) into loss; C a constant of each copy */
FL_INLINE void fl_sr_step(const float* x, const int C, const int32_t* ys, const float* wy, float* loss) {
    double sums[8 * FL_SR_GROUPS];
    float dys[8 * FL_SR_GROUPS];
    const __m256i rowc = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(C));
    const __m256 zero = _mm256_setzero_ps();
    for (int g = 0; g < FL_SR_GROUPS; g++) {
        const float* xr = x + g * 8 * C;
        FL_SR_CLASSES_MAX(__m256, 8, fl_block8_f32, _mm256_max_ps, FL_SR_MAX_C, xr, C, o, m)
        /* the target's logit (0 where ys < 0: the gather's lanes masked off) */
        const __m256i y = _mm256_loadu_si256((const __m256i*)(ys + g * 8));
        const __m256i has = _mm256_cmpgt_epi32(y, _mm256_set1_epi32(-1));
        const __m256 xy = _mm256_mask_i32gather_ps(zero, xr, _mm256_add_epi32(rowc, y), _mm256_castsi256_ps(has), 4);
        /* the sum of exps: ties (d == 0) apart, counted in nt's complement */
        __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
        fl_vi nt = fl_v_izero();
        int j = 0;
        while (j < C) {
            __m256 a = zero;
            if (j + 4 <= C) {
                for (int r = 0; r < FL_TILE_SUMEXP_RUN && j + 4 <= C; r++, j += 4) {
                    fl_vf d[4], e[4];
                    fl_vm ne[4];
                    for (int i = 0; i < 4; i++) {
                        d[i] = _mm256_sub_ps(FL_SR_CLASS(o, j + i, C), m);
                        ne[i] = fl_v_ne(d[i], zero);
                        nt = fl_v_count(nt, ne[i]);
                    }
                    fl_expf_softmax_vn(4, d, ne, 1, e);
                    a = _mm256_add_ps(a, fl_v_sum4_f32(e));           /* the tiles' sums (fl_tile_ce.h) */
                }
            } else {
                const int R = C - j;
                fl_vf d[3], e[3];
                fl_vm ne[3];
                for (int i = 0; i < R; i++) {
                    d[i] = _mm256_sub_ps(FL_SR_CLASS(o, j + i, C), m);
                    ne[i] = fl_v_ne(d[i], zero);
                    nt = fl_v_count(nt, ne[i]);
                }
                fl_expf_softmax_vn(R, d, ne, 1, e);
                a = _mm256_add_ps(a, fl_v_sum_rest_f32(e, R));
                j = C;
            }
            fl_v_widen_add(&s0, &s1, a);
        }
        fl_v_widen_add_i(&s0, &s1, fl_v_isub(fl_v_iset1(C), nt));             /* the ties' exp(0) = 1 */
        fl_v_store_d(sums + 8 * g, s0, s1);
        _mm256_storeu_ps(dys + 8 * g, _mm256_sub_ps(xy, m));
    }
    /* the logs of the step's rows side by side (GCC vectorises fl_tile_log_sum_f32 here: the same bits);
     * 0 where there is no target (ce_run's select on valid: the product may be nan there) */
#pragma omp simd
    for (int i = 0; i < 8 * FL_SR_GROUPS; i++) {
        const float v = wy[i] * (fl_tile_log_sum_f32(sums[i]) - dys[i]);
        loss[i] = ys[i] >= 0 ? v : 0.0f;
    }
}

/* rows [0, L) of C classes at x (L <= 256): whole steps in place, the last L % STEP rows through a
 * zero-padded copy (no read past the rows; the padding rows have no target).  One definition per type. */
#define FL_SR_DEFINE_ROWS(NAME, T, STEP_FN, STEP, MAX_C)                                                  \
    FL_INLINE void NAME(const T* x, const int C, ptrdiff_t L, const int32_t* ys, const T* wy, T* loss) { \
        ptrdiff_t k = 0;                                                                                \
        for (; k + (STEP) <= L; k += (STEP)) STEP_FN(x + k * C, C, ys + k, wy + k, loss + k);           \
        if (k < L) {                                                                                    \
            const ptrdiff_t n = L - k;                                                                  \
            T xb[(STEP) * (MAX_C)], wb[STEP], lb[STEP];                                                 \
            int32_t yb[STEP];                                                                           \
            memcpy(xb, x + k * C, (size_t)(n * C) * sizeof(T));                                         \
            memset(xb + n * C, 0, (size_t)(((STEP) - n) * C) * sizeof(T));                              \
            memcpy(yb, ys + k, (size_t)n * sizeof(int32_t));                                            \
            memcpy(wb, wy + k, (size_t)n * sizeof(T));                                                  \
            for (ptrdiff_t i = n; i < (STEP); i++) { yb[i] = -1; wb[i] = 0; }                           \
            STEP_FN(xb, C, yb, wb, lb);                                                                 \
            memcpy(loss + k, lb, (size_t)n * sizeof(T));                                                \
        }                                                                                               \
    }
/* the switch's cases: one copy of the loops per C (C a constant in each), 4 consecutive C at a time */
#define FL_SR_CASE(ROWS, c) case (c): ROWS(x, (c), L, ys, wy, loss); return 1;
#define FL_SR_CASES4(ROWS, c) FL_SR_CASE(ROWS, c) FL_SR_CASE(ROWS, (c) + 1) FL_SR_CASE(ROWS, (c) + 2) \
                              FL_SR_CASE(ROWS, (c) + 3)
/* NAME: the loss of L rows (L <= 256) of C classes (MIN_C <= C <= MAX_C, within 4-48) at x (row stride C),
 * targets ys in [0, C) or -1 (ignored / invalid: loss 0), weights wy (w_y, or 1; 0 where ys < 0), into
 * loss.  Returns 0, having done nothing, for any other C (one copy of ROWS per C, the classes' registers
 * fixed; the cases outside [MIN_C, MAX_C] are unreachable past the range test, and GCC drops them). */
#define FL_SR_DEFINE_DISPATCH(NAME, T, ROWS, MIN_C, MAX_C)                                                \
    static inline int NAME(const T* x, ptrdiff_t C, ptrdiff_t L, const int32_t* ys, const T* wy, T* loss) { \
        if (C < (MIN_C) || C > (MAX_C)) return 0;                                                     \
        switch (C) {                                                                                  \
            FL_SR_CASES4(ROWS, 4) FL_SR_CASES4(ROWS, 8) FL_SR_CASES4(ROWS, 12) FL_SR_CASES4(ROWS, 16)   \
            FL_SR_CASES4(ROWS, 20) FL_SR_CASES4(ROWS, 24) FL_SR_CASES4(ROWS, 28) FL_SR_CASES4(ROWS, 32) \
            FL_SR_CASES4(ROWS, 36) FL_SR_CASES4(ROWS, 40) FL_SR_CASES4(ROWS, 44) FL_SR_CASE(ROWS, 48)   \
            default: return 0;                                                                        \
        }                                                                                             \
    }
FL_SR_DEFINE_ROWS(fl_sr_rows, float, fl_sr_step, FL_SR_STEP, FL_SR_MAX_C)
FL_SR_DEFINE_DISPATCH(fl_ce_short_rows_f32, float, fl_sr_rows, FL_SR_MIN_C, FL_SR_MAX_C)

/* ---- float64: the same scheme with 4 rows per group (4 double lanes), 4 x 4 blocks (the last at classes C-4
 * .. C-1), 8 groups (32 rows) per step before their logs.  Bit for bit the float64 tiles (fl_tile_ce_f64 and
 * ce_run): the max in class order, the target's logit by a gather, the exps by fl_exp_nonpos_vn with no ties
 * apart, the groups of 4 classes ((y0 + y1) + (y2 + y3)) summed in one run from 0, the last C % 4 as their own
 * run ((y0 + y1) + y2) added after it, the log as fl_tile_log_sum_f64.  Against the tiles (up to C = 27) and
 * the rows (28-48), Zen 3, thread time, 2^20 logits: 0.68-0.78 at C = 4-20, 0.70-0.86 at 21-47, 0.91 at 48;
 * at C = 48-64 with the bound at 64 the rows ran 1.4-1.7x (and the larger class array slowed C = 48 too). */
#define FL_SRD_MIN_C 4
#define FL_SRD_MAX_C 48
#define FL_SRD_GROUPS 8
#define FL_SRD_CLASS(o, j, C) FL_SR_CLASSW(o, j, C, 4)
FL_INLINE void fl_srd_step(const double* x, const int C, const int32_t* ys, const double* wy, double* loss) {
    double sums[4 * FL_SRD_GROUPS];
    double dys[4 * FL_SRD_GROUPS];
    const __m128i rowc = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(C));
    const __m256d zero = _mm256_setzero_pd();
    for (int g = 0; g < FL_SRD_GROUPS; g++) {
        const double* xr = x + g * 4 * C;
        FL_SR_CLASSES_MAX(__m256d, 4, fl_block4_f64, _mm256_max_pd, FL_SRD_MAX_C, xr, C, o, m)
        /* the target's logit (0 where ys < 0) */
        const __m128i y = _mm_loadu_si128((const __m128i*)(ys + g * 4));
        const __m256d has = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_cmpgt_epi32(y, _mm_set1_epi32(-1))));
        const __m256d xy = _mm256_mask_i32gather_pd(zero, xr, _mm_add_epi32(rowc, y), has, 8);
        /* the sum of exps: the groups of 4 classes in one run, then the last C % 4 as their own */
        __m256d a = zero;
        int j = 0;
        for (; j + 4 <= C; j += 4) {
            __m256d d[4], e[4];
            for (int i = 0; i < 4; i++) d[i] = _mm256_sub_pd(FL_SRD_CLASS(o, j + i, C), m);
            fl_exp_nonpos_vn(4, d, NULL, 0, e);
            a = _mm256_add_pd(a, fl_v_sum4_f64(e));
        }
        __m256d s = _mm256_add_pd(zero, a);
        if (j < C) {
            const int R = C - j;
            __m256d d[3], e[3];
            for (int i = 0; i < R; i++) d[i] = _mm256_sub_pd(FL_SRD_CLASS(o, j + i, C), m);
            fl_exp_nonpos_vn(R, d, NULL, 0, e);
            s = _mm256_add_pd(s, _mm256_add_pd(zero, fl_v_sum_rest_f64(e, R)));
        }
        _mm256_storeu_pd(sums + 4 * g, s);
        _mm256_storeu_pd(dys + 4 * g, _mm256_sub_pd(xy, m));
    }
#pragma omp simd
    for (int i = 0; i < 4 * FL_SRD_GROUPS; i++) {
        const double v = wy[i] * (fl_tile_log_sum_f64(sums[i]) - dys[i]);
        loss[i] = ys[i] >= 0 ? v : 0.0;
    }
}
FL_SR_DEFINE_ROWS(fl_srd_rows, double, fl_srd_step, 4 * FL_SRD_GROUPS, FL_SRD_MAX_C)
FL_SR_DEFINE_DISPATCH(fl_ce_short_rows_f64, double, fl_srd_rows, FL_SRD_MIN_C, FL_SRD_MAX_C)
#undef FL_SRD_CLASS
#undef FL_SR_CLASS
#undef FL_SR_CLASSES_MAX
#undef FL_SR_CASES4
#undef FL_SR_CASE
#undef FL_SR_DEFINE_ROWS
#undef FL_SR_DEFINE_DISPATCH
#else
#define FL_SHORT_ROWS 0
#define FL_SR_MIN_C 1
#define FL_SR_MAX_C 0
#define FL_SRD_MIN_C 1
#define FL_SRD_MAX_C 0
static inline int fl_ce_short_rows_f32(const float* x, ptrdiff_t C, ptrdiff_t L, const int32_t* ys,
                                       const float* wy, float* loss) {
    (void)x; (void)C; (void)L; (void)ys; (void)wy; (void)loss;
    return 0;
}
static inline int fl_ce_short_rows_f64(const double* x, ptrdiff_t C, ptrdiff_t L, const int32_t* ys,
                                       const double* wy, double* loss) {
    (void)x; (void)C; (void)L; (void)ys; (void)wy; (void)loss;
    return 0;
}
#endif

#endif /* FL_SHORT_ROWS_H */
