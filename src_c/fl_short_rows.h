/*
 * fl_short_rows.h -- float32 cross-entropy of short rows in registers: (N, C) logits with 8 <= C <= 40
 * classes, class-index targets, the loss alone (no gradient, no label smoothing, no focal term), at the AVX2
 * level (8 float lanes; FL_SHORT_ROWS is 1 only there).
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

/* the number of 8 x 8 blocks of a row of C classes, and class j's vector among the blocks' o[]: blocks
 * b < FL_SR_NB(C) - 1 hold classes 8b .. 8b+7, the last one classes C-8 .. C-1 */
#define FL_SR_NB(C) (((C) + 7) / 8)
#define FL_SR_CLASS(o, j, C) ((j) < 8 * (FL_SR_NB(C) - 1) ? (o)[j] : (o)[(j) + 8 * FL_SR_NB(C) - (C)])

/* the loss of the 8 * FL_SR_GROUPS rows at x (row stride C), labels ys (-1: none), weights wy (0 where
 * ys < 0) into loss; C a constant of each copy */
FL_INLINE void fl_sr_step(const float* x, const int C, const int32_t* ys, const float* wy, float* loss) {
    double sums[8 * FL_SR_GROUPS];
    float dys[8 * FL_SR_GROUPS];
    const __m256i rowc = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(C));
    const __m256 zero = _mm256_setzero_ps();
    for (int g = 0; g < FL_SR_GROUPS; g++) {
        const float* xr = x + g * 8 * C;
        __m256 o[8 * FL_SR_NB(FL_SR_MAX_C)];
        for (int b = 0; b + 1 < FL_SR_NB(C); b++) fl_block8_f32(xr + 8 * b, C, o + 8 * b);
        fl_block8_f32(xr + C - 8, C, o + 8 * (FL_SR_NB(C) - 1));
        __m256 m = o[0];
        for (int j = 1; j < C; j++) m = _mm256_max_ps(FL_SR_CLASS(o, j, C), m);   /* x > m ? x : m */
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
                    a = _mm256_add_ps(a, _mm256_add_ps(_mm256_add_ps(e[0], e[1]), _mm256_add_ps(e[2], e[3])));
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
                a = _mm256_add_ps(a, R == 1 ? e[0] : R == 2 ? _mm256_add_ps(e[0], e[1])
                                                      : _mm256_add_ps(_mm256_add_ps(e[0], e[1]), e[2]));
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

/* rows [0, L) of C classes at x (L <= 256): whole steps in place, the last L % FL_SR_STEP rows through a
 * zero-padded copy (no read past the rows; the padding rows have no target) */
FL_INLINE void fl_sr_rows(const float* x, const int C, ptrdiff_t L, const int32_t* ys, const float* wy,
                          float* loss) {
    ptrdiff_t k = 0;
    for (; k + FL_SR_STEP <= L; k += FL_SR_STEP) fl_sr_step(x + k * C, C, ys + k, wy + k, loss + k);
    if (k < L) {
        const ptrdiff_t n = L - k;
        float xb[FL_SR_STEP * FL_SR_MAX_C], wb[FL_SR_STEP], lb[FL_SR_STEP];
        int32_t yb[FL_SR_STEP];
        memcpy(xb, x + k * C, (size_t)(n * C) * sizeof(float));
        memset(xb + n * C, 0, (size_t)((FL_SR_STEP - n) * C) * sizeof(float));
        memcpy(yb, ys + k, (size_t)n * sizeof(int32_t));
        memcpy(wb, wy + k, (size_t)n * sizeof(float));
        for (ptrdiff_t i = n; i < FL_SR_STEP; i++) { yb[i] = -1; wb[i] = 0; }
        fl_sr_step(xb, C, yb, wb, lb);
        memcpy(loss + k, lb, (size_t)n * sizeof(float));
    }
}

/* The loss of L rows (L <= 256) of C classes (FL_SR_MIN_C <= C <= FL_SR_MAX_C) at x (row stride C), targets
 * ys in [0, C) or -1 (ignored / invalid: loss 0), weights wy (w_y, or 1; 0 where ys < 0), into loss.  Returns
 * 0, having done nothing, for any other C (one copy of the loops per C, the classes' registers fixed). */
static inline int fl_ce_short_rows_f32(const float* x, ptrdiff_t C, ptrdiff_t L, const int32_t* ys,
                                       const float* wy, float* loss) {
    switch (C) {
        case 8: fl_sr_rows(x, 8, L, ys, wy, loss); return 1;
        case 9: fl_sr_rows(x, 9, L, ys, wy, loss); return 1;
        case 10: fl_sr_rows(x, 10, L, ys, wy, loss); return 1;
        case 11: fl_sr_rows(x, 11, L, ys, wy, loss); return 1;
        case 12: fl_sr_rows(x, 12, L, ys, wy, loss); return 1;
        case 13: fl_sr_rows(x, 13, L, ys, wy, loss); return 1;
        case 14: fl_sr_rows(x, 14, L, ys, wy, loss); return 1;
        case 15: fl_sr_rows(x, 15, L, ys, wy, loss); return 1;
        case 16: fl_sr_rows(x, 16, L, ys, wy, loss); return 1;
        case 17: fl_sr_rows(x, 17, L, ys, wy, loss); return 1;
        case 18: fl_sr_rows(x, 18, L, ys, wy, loss); return 1;
        case 19: fl_sr_rows(x, 19, L, ys, wy, loss); return 1;
        case 20: fl_sr_rows(x, 20, L, ys, wy, loss); return 1;
        case 21: fl_sr_rows(x, 21, L, ys, wy, loss); return 1;
        case 22: fl_sr_rows(x, 22, L, ys, wy, loss); return 1;
        case 23: fl_sr_rows(x, 23, L, ys, wy, loss); return 1;
        case 24: fl_sr_rows(x, 24, L, ys, wy, loss); return 1;
        case 25: fl_sr_rows(x, 25, L, ys, wy, loss); return 1;
        case 26: fl_sr_rows(x, 26, L, ys, wy, loss); return 1;
        case 27: fl_sr_rows(x, 27, L, ys, wy, loss); return 1;
        case 28: fl_sr_rows(x, 28, L, ys, wy, loss); return 1;
        case 29: fl_sr_rows(x, 29, L, ys, wy, loss); return 1;
        case 30: fl_sr_rows(x, 30, L, ys, wy, loss); return 1;
        case 31: fl_sr_rows(x, 31, L, ys, wy, loss); return 1;
        case 32: fl_sr_rows(x, 32, L, ys, wy, loss); return 1;
        case 33: fl_sr_rows(x, 33, L, ys, wy, loss); return 1;
        case 34: fl_sr_rows(x, 34, L, ys, wy, loss); return 1;
        case 35: fl_sr_rows(x, 35, L, ys, wy, loss); return 1;
        case 36: fl_sr_rows(x, 36, L, ys, wy, loss); return 1;
        case 37: fl_sr_rows(x, 37, L, ys, wy, loss); return 1;
        case 38: fl_sr_rows(x, 38, L, ys, wy, loss); return 1;
        case 39: fl_sr_rows(x, 39, L, ys, wy, loss); return 1;
        case 40: fl_sr_rows(x, 40, L, ys, wy, loss); return 1;
        default: return 0;
    }
}
#undef FL_SR_CLASS
#else
#define FL_SHORT_ROWS 0
#define FL_SR_MIN_C 1
#define FL_SR_MAX_C 0
static inline int fl_ce_short_rows_f32(const float* x, ptrdiff_t C, ptrdiff_t L, const int32_t* ys,
                                       const float* wy, float* loss) {
    (void)x; (void)C; (void)L; (void)ys; (void)wy; (void)loss;
    return 0;
}
#endif

#endif /* FL_SHORT_ROWS_H */
