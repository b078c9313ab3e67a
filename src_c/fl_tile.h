/*
 * fl_tile.h -- transposes between L rows of C values (row-major, row k at x + k * C) and a class-major
 * tile (class j at t + j * L), for the short-row cross-entropy path of classification.pyx: a row of 20
 * logits is too short to vectorise along, so L rows are turned class-major and every loop runs along
 * the L rows instead (and the gradient tile is turned back).  Below the transposes: the passes of a
 * class-major cross-entropy run (max and target logit, sums of exps, the epilogue's log), shared by the
 * tiles and the spatial layout.
 *
 * A scalar transpose costs one load and one store per value, about as much as the whole exp pass that
 * follows, so whole blocks are moved with vector shuffles: 8 x 8 then 4 x 4 (float), 4 x 4 then 2 x 2
 * (double) with AVX at the avx2 / avx512 levels, the smaller blocks alone with SSE2 at the baseline
 * level; the last columns / rows (C or L not a multiple of 4) and other architectures take the scalar
 * loop.  Pure data movement: the same values on every level.
 */
#ifndef FL_TILE_H
#define FL_TILE_H

#include <stddef.h>
#include <stdint.h>
#include "fl_math.h"
#include "fl_vec.h"
#include "fl_kl.h"

#if defined(__AVX__)
#include <immintrin.h>
#define FL_TILE_AVX 1
#elif defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#include <xmmintrin.h>
#define FL_TILE_SSE2 1
#endif

/* Scalar transpose of the block rows [k0, k1) x columns [j0, j1) of an (rows, cols) row-major array
 * (row stride ld_in) into its transpose (row stride ld_out). */
#define FL_TRANSPOSE_SCALAR(T, name)                                                                    \
static inline void name(const T* in, ptrdiff_t ld_in, T* out, ptrdiff_t ld_out,                       \
                        ptrdiff_t k0, ptrdiff_t k1, ptrdiff_t j0, ptrdiff_t j1) {                     \
    for (ptrdiff_t k = k0; k < k1; k++)                                                               \
        for (ptrdiff_t j = j0; j < j1; j++)                                                           \
            out[j * ld_out + k] = in[k * ld_in + j];                                                  \
}
FL_TRANSPOSE_SCALAR(float, fl_transpose_edge_f32)
FL_TRANSPOSE_SCALAR(double, fl_transpose_edge_f64)
#undef FL_TRANSPOSE_SCALAR

#if defined(FL_TILE_SSE2)
/* out[c * ld_out + r] = in[r * ld_in + c] for r, c < 4 (float) / < 2 (double): SSE / SSE2 (baseline) */
static inline void fl_transpose4_f32(const float* in, ptrdiff_t ld_in, float* out, ptrdiff_t ld_out,
                                     ptrdiff_t n) {   /* n = 4: every row */
    (void)n;
    __m128 r0 = _mm_loadu_ps(in + 0 * ld_in), r1 = _mm_loadu_ps(in + 1 * ld_in);
    __m128 r2 = _mm_loadu_ps(in + 2 * ld_in), r3 = _mm_loadu_ps(in + 3 * ld_in);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(out + 0 * ld_out, r0);
    _mm_storeu_ps(out + 1 * ld_out, r1);
    _mm_storeu_ps(out + 2 * ld_out, r2);
    _mm_storeu_ps(out + 3 * ld_out, r3);
}
static inline void fl_transpose2_f64(const double* in, ptrdiff_t ld_in, double* out, ptrdiff_t ld_out,
                                     ptrdiff_t n) {   /* n = 2: every row */
    (void)n;
    __m128d r0 = _mm_loadu_pd(in), r1 = _mm_loadu_pd(in + ld_in);
    _mm_storeu_pd(out, _mm_unpacklo_pd(r0, r1));
    _mm_storeu_pd(out + ld_out, _mm_unpackhi_pd(r0, r1));
}
#endif

#if defined(FL_TILE_AVX)
/* The transposed 8 x 8 block (float) / 4 x 4 block (double) of in (row stride ld_in) into o[0..8) / o[0..4):
 * o[c][r] = in[r * ld_in + c].  AVX
 * float, AVX-512 level: each register holds 4 values of row r in its low half and the same 4 of row r + 4
 * in its high half, loaded as such (the high half inserted from memory: vinsertf128 m128, a load and an
 * operation on port 0 or 5), so that only the in-lane 4 x 4 transposes shuffle -- 16 shuffles a block
 * instead of 24 with a cross-lane vperm2f128 stage; Intel cores run these shuffles on port 5 alone, and
 * beside 512-bit operations port 1 takes no vector work.  Thread time on an Intel Xeon (2026-12-07), the
 * tiles of float32 cross-entropy at C = 10-88: 0.93-0.99 of the vperm2f128 form's.  The AVX2 level keeps
 * that form: there the inserts read 1.00-1.05 (the same core running AVX2 code).  The same values either
 * way (a transpose only moves them). */
static inline void fl_block8_f32(const float* in, ptrdiff_t ld_in, __m256 o[8]) {
#if defined(__AVX512F__)        /* r_i: rows i, i + 4 (i < 4: columns 0-3; else rows i - 4, i: columns 4-7) */
#define FL_ROWS_R_R4(r, c) _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(in + (r) * ld_in + (c))), \
                                                _mm_loadu_ps(in + ((r) + 4) * ld_in + (c)), 1)
    __m256 r0 = FL_ROWS_R_R4(0, 0), r1 = FL_ROWS_R_R4(1, 0), r2 = FL_ROWS_R_R4(2, 0), r3 = FL_ROWS_R_R4(3, 0);
    __m256 r4 = FL_ROWS_R_R4(0, 4), r5 = FL_ROWS_R_R4(1, 4), r6 = FL_ROWS_R_R4(2, 4), r7 = FL_ROWS_R_R4(3, 4);
#undef FL_ROWS_R_R4
#else                           /* r_i: row i */
    __m256 r0 = _mm256_loadu_ps(in + 0 * ld_in), r1 = _mm256_loadu_ps(in + 1 * ld_in);
    __m256 r2 = _mm256_loadu_ps(in + 2 * ld_in), r3 = _mm256_loadu_ps(in + 3 * ld_in);
    __m256 r4 = _mm256_loadu_ps(in + 4 * ld_in), r5 = _mm256_loadu_ps(in + 5 * ld_in);
    __m256 r6 = _mm256_loadu_ps(in + 6 * ld_in), r7 = _mm256_loadu_ps(in + 7 * ld_in);
#endif
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
#if defined(__AVX512F__)        /* u_c: column c already */
    o[0] = u0, o[1] = u1, o[2] = u2, o[3] = u3, o[4] = u4, o[5] = u5, o[6] = u6, o[7] = u7;
#else                           /* u_c: column c's halves for rows 0-3 (u0-u3) and 4-7 (u4-u7) */
    o[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    o[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    o[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    o[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    o[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    o[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    o[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    o[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
#endif
}
static inline void fl_block4_f64(const double* in, ptrdiff_t ld_in, __m256d o[4]) {
    __m256d r0 = _mm256_loadu_pd(in + 0 * ld_in), r1 = _mm256_loadu_pd(in + 1 * ld_in);
    __m256d r2 = _mm256_loadu_pd(in + 2 * ld_in), r3 = _mm256_loadu_pd(in + 3 * ld_in);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    o[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    o[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    o[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    o[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}
/* out[c * ld_out + r] = in[r * ld_in + c] for r < 8, c < n (float; n <= 8) / r < 4, c < n (double; n <= 4):
 * a whole vector block, of which only the first n transposed rows are stored (the partial strip of the
 * last columns; its loads read 8 / 4 values of every row, so the caller keeps them inside the array). */
static inline void fl_transpose8_f32(const float* in, ptrdiff_t ld_in, float* out, ptrdiff_t ld_out,
                                     ptrdiff_t n) {
    __m256 o[8];
    fl_block8_f32(in, ld_in, o);
    for (ptrdiff_t c = 0; c < n; c++)
        _mm256_storeu_ps(out + c * ld_out, o[c]);
}
static inline void fl_transpose4_f64(const double* in, ptrdiff_t ld_in, double* out, ptrdiff_t ld_out,
                                     ptrdiff_t n) {
    __m256d o[4];
    fl_block4_f64(in, ld_in, o);
    for (ptrdiff_t c = 0; c < n; c++)
        _mm256_storeu_pd(out + c * ld_out, o[c]);
}
#endif

/* One strip of B columns [j, j + B) of the transpose: B x B blocks down the rows, the last rows % B
 * rows scalar.  Leaves j at the first column not done. */
#define FL_STRIP(block, edge, B)                                                                        \
    for (; j + (B) <= cols; j += (B)) {                                                               \
        ptrdiff_t rb = rows - rows % (B);                                                             \
        for (ptrdiff_t k = 0; k < rb; k += (B))                                                       \
            block(in + k * ld_in + j, ld_in, out + j * ld_out + k, ld_out, (B));                      \
        edge(in, ld_in, out, ld_out, rb, rows, j, j + (B));                                           \
    }
/* The last cols - j < B columns (AVX): whole B x B blocks that store only those cols - j transposed rows
 * (a row of 10 floats: one strip of 8, then 2 columns of vector blocks, not 2 x L scalar moves).  Their
 * loads read B values from column j of every row, past the row's end into the next row (ignored), so a
 * block runs only while its last load ends inside the array ((rows - 1) * ld_in + cols values); the rows
 * after it (at most B + B / (ld_in - j) of them) are scalar. */
#define FL_PART(block, edge, B)                                                                         \
    if (j < cols) {                                                                                   \
        ptrdiff_t k = 0;                                                                              \
        for (; k + (B) <= rows && (k + (B) - 1) * ld_in + j + (B) <= (rows - 1) * ld_in + cols; k += (B)) \
            block(in + k * ld_in + j, ld_in, out + j * ld_out + k, ld_out, cols - j);                 \
        edge(in, ld_in, out, ld_out, k, rows, j, cols);                                               \
        j = cols;                                                                                     \
    }

/* Transpose the (rows, cols) row-major array `in` (row stride ld_in) into `out` (row stride ld_out):
 * with AVX, strips of 8 columns (float; 4 for double) in vector blocks, then the last columns in partial
 * vector blocks; with SSE2 alone, strips of 4 (float; 2 for double); the rest scalar. */
static inline void fl_transpose_f32(const float* in, ptrdiff_t ld_in, float* out, ptrdiff_t ld_out,
                                    ptrdiff_t rows, ptrdiff_t cols) {
    ptrdiff_t j = 0;
#if defined(FL_TILE_AVX)
    FL_STRIP(fl_transpose8_f32, fl_transpose_edge_f32, 8)
    FL_PART(fl_transpose8_f32, fl_transpose_edge_f32, 8)
#elif defined(FL_TILE_SSE2)
    FL_STRIP(fl_transpose4_f32, fl_transpose_edge_f32, 4)
#endif
    fl_transpose_edge_f32(in, ld_in, out, ld_out, 0, rows, j, cols);
}
static inline void fl_transpose_f64(const double* in, ptrdiff_t ld_in, double* out, ptrdiff_t ld_out,
                                    ptrdiff_t rows, ptrdiff_t cols) {
    ptrdiff_t j = 0;
#if defined(FL_TILE_AVX)
    FL_STRIP(fl_transpose4_f64, fl_transpose_edge_f64, 4)
    FL_PART(fl_transpose4_f64, fl_transpose_edge_f64, 4)
#elif defined(FL_TILE_SSE2)
    FL_STRIP(fl_transpose2_f64, fl_transpose_edge_f64, 2)
#endif
    fl_transpose_edge_f64(in, ld_in, out, ld_out, 0, rows, j, cols);
}
#undef FL_PART
#undef FL_STRIP

/* (the fl_v_* vector of FL_V_W float lanes and fl_expf_softmax_vn: fl_vec.h) */

/* ---------------------------------------------------------------------------------------------------
 * The passes over a class-major run of cross-entropy (classification.pyx's ce_run and ce_probs_run):
 * L <= FL_TILE_RUN positions, class j of position k at xs[j * cs + k] (a tile: cs = L; the spatial
 * layout: cs = S).  Every loop runs along the positions, so it vectorises at the level's full width.
 */
#define FL_TILE_RUN 256

/* Pass 1: m[k] = max_j x[j][k] (NaN skipped, as fl_row_max: it reaches the loss through the exp-sum); if
 * ys != NULL, xy[k] = x[ys[k]][k], the target's logit (0 where ys[k] < 0), as a branch-free scalar gather
 * (a select per class in the max loop cost more from C ~ 16 on: a compare and a blend per vector, where
 * the gather costs a load per position). */
#define FL_TILE_MAX_PICK(T, name)                                                                       \
static inline void name(const T* xs, ptrdiff_t cs, ptrdiff_t C, ptrdiff_t L, const int32_t* ys,        \
                        T* m, T* xy) {                                                                \
    _Pragma("omp simd")                                                                               \
    for (ptrdiff_t k = 0; k < L; k++) m[k] = xs[k];                                                   \
    for (ptrdiff_t j = 1; j < C; j++) {                                                               \
        const T* xc = xs + j * cs;                                                                    \
        _Pragma("omp simd")                                                                           \
        for (ptrdiff_t k = 0; k < L; k++) m[k] = xc[k] > m[k] ? xc[k] : m[k];                         \
    }                                                                                                 \
    if (ys)                                                                                           \
        for (ptrdiff_t k = 0; k < L; k++) {                                                           \
            int32_t y = ys[k];                                                                        \
            T v = xs[(ptrdiff_t)(y < 0 ? 0 : y) * cs + k];                                            \
            xy[k] = y < 0 ? (T)0 : v;                                                                 \
        }                                                                                             \
}
FL_TILE_MAX_PICK(float, fl_tile_max_pick_f32)
FL_TILE_MAX_PICK(double, fl_tile_max_pick_f64)
#undef FL_TILE_MAX_PICK

/* The distillation sums of fl_reduce.h's fl_row_kl_sums for L positions of a class-major run (student xs,
 * teacher us, row maxima mx, mu; fl_kl.h's terms), summed in class order per position.  With g (not NULL)
 * it instead writes the gradient from the sums given (fl_kl_grad, scale = T grad_scale).  Each loop runs
 * along the positions (double lanes), where a row of a few classes is mostly a vector's padding. */
#define FL_TILE_KL(T, name)                                                                             \
static inline void name(const T* xs, const T* us, ptrdiff_t cs, ptrdiff_t C, ptrdiff_t L, const T* mx,  \
                        const T* mu, double inv_t, double* ss, double* st, double* W, double scale,    \
                        T* g) {                                                                       \
    if (!g)                                                                                           \
        for (ptrdiff_t k = 0; k < L; k++) ss[k] = st[k] = W[k] = 0.0;                                 \
    for (ptrdiff_t j = 0; j < C; j++) {                                                               \
        const T* x = xs + j * cs;                                                                     \
        const T* u = us + j * cs;                                                                     \
        if (g) {                                                                                      \
            T* gj = g + j * cs;                                                                       \
            _Pragma("omp simd")                                                                       \
            for (ptrdiff_t k = 0; k < L; k++)                                                         \
                gj[k] = (T)fl_kl_grad(x[k], u[k], mx[k], mu[k], inv_t, ss[k], st[k], scale);          \
        } else {                                                                                      \
            _Pragma("omp simd")                                                                       \
            for (ptrdiff_t k = 0; k < L; k++) FL_KL_ADD(x[k], u[k], mx[k], mu[k], inv_t, ss[k], st[k], W[k]); \
        }                                                                                             \
    }                                                                                                 \
}
FL_TILE_KL(float, fl_tile_kl_f32)
FL_TILE_KL(double, fl_tile_kl_f64)
#undef FL_TILE_KL

/* out[k] = v[ys[k]], 0 where ys[k] < 0 (an ignored item): the class weights of a run's targets, without a
 * branch per position (5% ignored items at random mispredict): AVX2 / AVX-512, masked gathers (GCC's generic
 * tuning never emits a gather itself); the rest with the load made unconditional (class 0 for an ignored
 * item) and a select. */
#define FL_PICK_REST(T)                                                                                 \
    for (; k < L; k++) {                                                                              \
        const int32_t y = ys[k];                                                                      \
        const T t = v[y < 0 ? 0 : y];                                                                 \
        out[k] = y < 0 ? (T)0 : t;                                                                    \
    }
static inline void fl_tile_pick_f32(const float* v, const int32_t* ys, ptrdiff_t L, float* out) {
    ptrdiff_t k = 0;
#if defined(FL_V_W)
    const fl_vm all = fl_v_lanes(FL_V_W);
    for (; k + FL_V_W <= L; k += FL_V_W) {
        const fl_vi y = fl_v_load_i(ys + k);
        fl_v_store(out + k, fl_v_gather(fl_v_nonneg(all, y), y, v));
    }
#endif
    FL_PICK_REST(float)
}
static inline void fl_tile_pick_f64(const double* v, const int32_t* ys, ptrdiff_t L, double* out) {
    ptrdiff_t k = 0;
#if defined(__AVX512F__) && defined(__AVX512VL__)
    for (; k + 8 <= L; k += 8) {
        __m256i y = _mm256_loadu_si256((const __m256i*)(ys + k));
        __mmask8 has = _mm256_cmp_epi32_mask(y, _mm256_setzero_si256(), _MM_CMPINT_NLT);
        _mm512_storeu_pd(out + k, _mm512_mask_i32gather_pd(_mm512_setzero_pd(), has, y, v, 8));
    }
#endif
    FL_PICK_REST(double)
}
#undef FL_PICK_REST

/* Pass 2: per position k, with d_j = x[j][k] - m[k] (m the max of pass 1),
 *   s[k] = sum_j exp(d_j), the exps also stored to g (same layout) when g != NULL (the softmax numerators),
 *   FL_TS_DOT   o1[k] = sum_j w_j d_j                          (label smoothing; w NULL: weights 1)
 *   FL_TS_SOFT  o1[k] = sum_j tw_j, o2[k] = sum_j tw_j d_j     (probability targets t (same layout),
 *               tw_j = w_j (keep t_j + add))
 * Four classes per loop (four independent exps per position, one read-modify-write of the partials).
 * Summation, float: as fl_row_pass_f32 of fl_reduce.h, terms are summed in float lanes and each run of
 * FL_TILE_SUMEXP_RUN groups of 4 classes is folded into the double sums: a lane adds its group as a tree,
 * (y0 + y1) + (y2 + y3), onto the run's partial, so a term passes through at most 2 + FL_TILE_SUMEXP_RUN = 6
 * float roundings (< 5e-7 relative, sums of terms of one sign) before it is widened; the last C % 4
 * classes form a run of their own.  The max's exp(0) = 1 (and any tie's) is counted apart, exactly, so the
 * float partials of s hold only r = s - (number of maxima): s - 1 keeps that relative precision even for a
 * confident row's tiny r.  Widening every term instead (two conversions and two double adds per vector)
 * cost about as much as the exp.  Double: the same loops, partials in double, one run for the groups of 4
 * and one for the rest (no ties apart: nothing to gain).  The order of additions is fixed by C alone
 * (deterministic: the same at every thread count, L and cs). */
#define FL_TILE_SUMEXP_RUN 4
enum { FL_TS_PLAIN = 0, FL_TS_DOT = 1, FL_TS_SOFT = 2 };
/* lane k of class j (pointer offset o = j * cs): its exp into e, its sum term into y, its tie count into u,
 * its dot / A / D terms into q1, q2 */
#define FL_TS_LANE(T, A, EXP, TIES, o, j, e, y, u, q1, q2)                                              \
    T d_##e = xs[(o) + k] - mk;                                                                       \
    T e = EXP(d_##e);                                                                                 \
    if (g) g[(o) + k] = e;                                                                            \
    A y = TIES ? (d_##e != 0 ? (A)e : (A)0) : (A)e;                                                   \
    int32_t u = TIES ? d_##e == 0 : 0;                                                                \
    A q1 = 0, q2 = 0;                                                                                 \
    if (mode == FL_TS_DOT) q1 = has_w ? w[j] * d_##e : d_##e;                                         \
    if (mode == FL_TS_SOFT) {                                                                         \
        T tw_ = keep_t * t[(o) + k] + add_t;                                                          \
        tw_ = has_w ? w[j] * tw_ : tw_;                                                               \
        q1 = tw_;                                                                                     \
        q2 = tw_ * d_##e;                                                                             \
    }
/* the last R = C % 4 classes (from class j, offset o): one loop, their terms added as (y0 + y1) + y2 */
#define FL_TS_REM(T, A, EXP, TIES, R)                                                                   \
    _Pragma("omp simd")                                                                               \
    for (ptrdiff_t k = 0; k < L; k++) {                                                               \
        const T mk = m[k];                                                                            \
        FL_TS_LANE(T, A, EXP, TIES, o, j, e0, y0, u0, p0, r0)                                         \
        if (R >= 2) {                                                                                 \
            FL_TS_LANE(T, A, EXP, TIES, o + cs, j + 1, e1, y1, u1, p1, r1)                            \
            y0 += y1; u0 += u1; p0 += p1; r0 += r1;                                                   \
        }                                                                                             \
        if (R == 3) {                                                                                 \
            FL_TS_LANE(T, A, EXP, TIES, o + 2 * cs, j + 2, e2, y2, u2, p2, r2)                        \
            y0 += y2; u0 += u2; p0 += p2; r0 += r2;                                                   \
        }                                                                                             \
        a[k] += y0;                                                                                   \
        if (TIES) n[k] += u0;                                                                         \
        if (mode != FL_TS_PLAIN) a1[k] += p0;                                                         \
        if (mode == FL_TS_SOFT) a2[k] += r0;                                                          \
    }
#define FL_TILE_SUMEXP(T, A, name, EXP, TIES, RUN)                                                      \
FL_INLINE void name##_body(const T* xs, const T* t, ptrdiff_t cs, ptrdiff_t C, ptrdiff_t L, const T* m,   \
                           const T* w, T* g, int mode, int has_w, T keep_t, T add_t, double* s,          \
                           double* o1, double* o2) {                                                  \
    A a[FL_TILE_RUN], a1[FL_TILE_RUN], a2[FL_TILE_RUN];                                               \
    int32_t n[FL_TILE_RUN];                                                                           \
    for (ptrdiff_t k = 0; k < L; k++) { s[k] = 0; n[k] = 0; }                                         \
    if (mode != FL_TS_PLAIN) for (ptrdiff_t k = 0; k < L; k++) o1[k] = 0;                             \
    if (mode == FL_TS_SOFT) for (ptrdiff_t k = 0; k < L; k++) o2[k] = 0;                              \
    ptrdiff_t j = 0;                                                                                  \
    while (j < C) {                                                                                   \
        for (ptrdiff_t k = 0; k < L; k++) a[k] = 0;                                                   \
        if (mode != FL_TS_PLAIN) for (ptrdiff_t k = 0; k < L; k++) a1[k] = 0;                         \
        if (mode == FL_TS_SOFT) for (ptrdiff_t k = 0; k < L; k++) a2[k] = 0;                          \
        if (j + 4 <= C) {                   /* a run of up to FL_TILE_SUMEXP_RUN groups of 4 classes */\
            for (ptrdiff_t r = 0; r < (RUN) && j + 4 <= C; r++, j += 4) {                              \
                const ptrdiff_t o = j * cs;                                                           \
                _Pragma("omp simd")                                                                   \
                for (ptrdiff_t k = 0; k < L; k++) {                                                   \
                    const T mk = m[k];                                                                \
                    FL_TS_LANE(T, A, EXP, TIES, o, j, e0, y0, u0, p0, r0)                             \
                    FL_TS_LANE(T, A, EXP, TIES, o + cs, j + 1, e1, y1, u1, p1, r1)                    \
                    FL_TS_LANE(T, A, EXP, TIES, o + 2 * cs, j + 2, e2, y2, u2, p2, r2)                \
                    FL_TS_LANE(T, A, EXP, TIES, o + 3 * cs, j + 3, e3, y3, u3, p3, r3)                \
                    a[k] += (y0 + y1) + (y2 + y3);                                                    \
                    if (TIES) n[k] += (u0 + u1) + (u2 + u3);                                          \
                    if (mode != FL_TS_PLAIN) a1[k] += (p0 + p1) + (p2 + p3);                          \
                    if (mode == FL_TS_SOFT) a2[k] += (r0 + r1) + (r2 + r3);                           \
                }                                                                                     \
            }                                                                                         \
        } else {                            /* the last C % 4 classes, a run of their own */          \
            const ptrdiff_t o = j * cs;                                                               \
            if (C - j == 1) { FL_TS_REM(T, A, EXP, TIES, 1) }                                         \
            else if (C - j == 2) { FL_TS_REM(T, A, EXP, TIES, 2) }                                    \
            else { FL_TS_REM(T, A, EXP, TIES, 3) }                                                    \
            j = C;                                                                                    \
        }                                                                                             \
        for (ptrdiff_t k = 0; k < L; k++) s[k] += (double)a[k];                                       \
        if (mode != FL_TS_PLAIN) for (ptrdiff_t k = 0; k < L; k++) o1[k] += (double)a1[k];            \
        if (mode == FL_TS_SOFT) for (ptrdiff_t k = 0; k < L; k++) o2[k] += (double)a2[k];             \
    }                                                                                                 \
    if (TIES) for (ptrdiff_t k = 0; k < L; k++) s[k] += (double)n[k];                                 \
}                                                                                                     \
/* one copy of the loops per (mode, w, g) met: the flags are constants inside each copy */               \
static inline void name(const T* xs, const T* t, ptrdiff_t cs, ptrdiff_t C, ptrdiff_t L, const T* m,      \
                        const T* w, T* g, int mode, T keep_t, T add_t, double* s, double* o1,         \
                        double* o2) {                                                                 \
    if (mode == FL_TS_PLAIN) w = NULL;                                                                \
    if (mode == FL_TS_PLAIN) FL_TS_CALLS(name##_body, FL_TS_PLAIN)                                    \
    else if (mode == FL_TS_DOT) FL_TS_CALLS(name##_body, FL_TS_DOT)                                   \
    else FL_TS_CALLS(name##_body, FL_TS_SOFT)                                                         \
}
#define FL_TS_CALLS(body, MODE)                                                                         \
    {                                                                                                 \
        if (w && g) body(xs, t, cs, C, L, m, w, g, MODE, 1, keep_t, add_t, s, o1, o2);                \
        else if (w) body(xs, t, cs, C, L, m, w, NULL, MODE, 1, keep_t, add_t, s, o1, o2);             \
        else if (g) body(xs, t, cs, C, L, m, NULL, g, MODE, 0, keep_t, add_t, s, o1, o2);             \
        else body(xs, t, cs, C, L, m, NULL, NULL, MODE, 0, keep_t, add_t, s, o1, o2);                 \
    }
FL_TILE_SUMEXP(float, float, fl_tile_sumexp_f32, fl_expf_softmax, 1, FL_TILE_SUMEXP_RUN)
FL_TILE_SUMEXP(double, double, fl_tile_sumexp_f64, fl_exp_nonpos, 0, PTRDIFF_MAX)
#undef FL_TILE_SUMEXP
#undef FL_TS_LANE
#undef FL_TS_CALLS
#undef FL_TS_REM

/* Prefetch [p, p + bytes) towards L2 (the next tile's rows while this tile's exps run: the short-row tiles read
 * their rows in one burst and then compute, and the hardware prefetchers, driven by the accesses, stop while the
 * exps run: the next burst waited on memory). */
static inline void fl_prefetch_l2(const void* p, ptrdiff_t bytes) {
    for (ptrdiff_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char*)p + o, 0, 2);
}

/* Passes 1 and 2 fused (max, target gather and sum of exps per chunk of positions, in registers): one pass
 * written once over the element type (fl_tile_ce.h), included here for float and double.
 * fl_tile_ce_f32 / _f64 and fl_tile_ce_soft_f32 / _f64 return 0, having done nothing, where the pass does
 * not apply. */
#define FL_CE_T float
#define FL_CE_NAME(x) x##_f32
#if defined(FL_V_W)
#define FL_CE_OP(op) fl_v_##op
#define FL_CE_V fl_vf
#define FL_CE_M fl_vm
#define FL_CE_I fl_vi
#define FL_CE_W FL_V_W
#define FL_CE_EXP fl_expf_softmax_vn
#define FL_CE_TIES 1
#define FL_CE_RUN FL_TILE_SUMEXP_RUN
#define FL_CE_ACC(s0, s1, a) fl_v_widen_add(&(s0), &(s1), (a))
#define FL_CE_STORE_S(p, m, s0, s1, FULL) ((FULL) ? fl_v_store_d(p, s0, s1) : fl_v_storem_d(p, m, s0, s1))
#endif
#include "fl_tile_ce.h"
/* double: terms summed in double, no ties apart, all the groups of 4 in one run (fl_tile_sumexp_f64) */
#define FL_CE_T double
#define FL_CE_NAME(x) x##_f64
#if defined(FL_VD_W)
#define FL_CE_OP(op) fl_vd_##op
#define FL_CE_V fl_vd
#define FL_CE_M fl_vdm
#define FL_CE_I fl_vdi
#define FL_CE_W FL_VD_W
#define FL_CE_EXP fl_exp_nonpos_vn
#define FL_CE_TIES 0
#define FL_CE_RUN PTRDIFF_MAX
#define FL_CE_ACC(s0, s1, a) ((s0) = fl_vd_add((s0), (a)))
#define FL_CE_STORE_S(p, m, s0, s1, FULL) ((FULL) ? fl_vd_store(p, s0) : fl_vd_storem(p, m, s0))
#endif
#include "fl_tile_ce.h"

/* The probability-target sums of FL_TS_SOFT for L rows read in place, row-major (row k's logits at
 * x + k * C, its targets at t + k * C; m[k] its max, from pass 1 over the logits' tile):
 *   A[k] = sum_j tw_j,  D[k] = sum_j tw_j (x_j - m[k]),  tw_j = w_j (keep t_j + add)  (w NULL: weights 1).
 * The sums are linear in the targets, so they need no class-major tile: a short dot product per row, and
 * the targets are never transposed (their transpose cost about as much as the sums).  AVX: a row is read
 * as vectors of 8 classes (the last C % 8 through masked loads, the lanes past the row dropped from both
 * sums); each lane adds the terms of a group of up to 4 vectors in float, and the 8 lanes of 8 rows at a
 * time are summed as a tree, ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) (hadd), before the group
 * is widened onto the double sums: a term passes through at most 3 + 3 = 6 float roundings (the first
 * addition onto 0 is exact), as in the tile pass (FL_TILE_SUMEXP_RUN).  Every row goes through the same
 * operations wherever it sits in the block (missing rows are zeros in their own lanes): the result depends
 * on the row and C alone, not on L or the thread split.  Without AVX: one row at a time, every term
 * widened to double.  A -inf logit with target 0 gives 0 * -inf = nan, as the tile pass and torch. */
#if defined(FL_TILE_AVX)
static const int32_t fl_soft_mask_bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
/* one vector of a row onto its lanes: tw onto a1, tw (x - m) onto a2; MASKED: drop the lanes outside
 * `tmaskf` (past the row's end) */
#define FL_SOFT_VEC(XV, TV, WV, MASKED)                                                                  \
    {                                                                                                 \
        __m256 tw_ = _mm256_add_ps(_mm256_mul_ps(kv, (TV)), av);                                      \
        if (w) tw_ = _mm256_mul_ps((WV), tw_);                                                        \
        __m256 q_ = _mm256_mul_ps(tw_, _mm256_sub_ps((XV), mk));                                      \
        if (MASKED) { tw_ = _mm256_and_ps(tw_, tmaskf); q_ = _mm256_and_ps(q_, tmaskf); }              \
        a1 = _mm256_add_ps(a1, tw_);                                                                  \
        a2 = _mm256_add_ps(a2, q_);                                                                   \
    }
/* the 8 lanes of each of v[0..8) summed as a tree, row r's sum in lane r */
static inline __m256 fl_hsum8_f32(const __m256 v[8]) {
    __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}
#endif
static inline void fl_rows_soft_sums_f32(const float* x, const float* t, ptrdiff_t C, ptrdiff_t L,
                                         const float* m, const float* w, float keep, float add,
                                         double* A, double* D) {
#if defined(FL_TILE_AVX)
    const ptrdiff_t nf = C / 8, rem = C % 8, nv = nf + (rem != 0);
    const __m256i tmask = _mm256_loadu_si256((const __m256i*)(fl_soft_mask_bits + 8 - rem));
    const __m256 tmaskf = _mm256_castsi256_ps(tmask);
    const __m256 kv = _mm256_set1_ps(keep), av = _mm256_set1_ps(add), one = _mm256_set1_ps(1.0f);
    for (ptrdiff_t k0 = 0; k0 < L; k0 += 8) {
        double sA[8] = {0}, sD[8] = {0};
        for (ptrdiff_t v0 = 0; v0 < nv; v0 += 4) {          /* a group of up to 4 vectors per row */
            const ptrdiff_t v1 = v0 + 4 < nv ? v0 + 4 : nv;
            __m256 ha[8], hd[8];
            for (int r = 0; r < 8; r++) {
                const ptrdiff_t k = k0 + r;
                __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
                if (k < L) {
                    const float* xr = x + k * C;
                    const float* tr = t + k * C;
                    const __m256 mk = _mm256_set1_ps(m[k]);
                    for (ptrdiff_t v = v0; v < v1; v++) {
                        const ptrdiff_t o = v * 8;
                        if (v < nf) {
                            __m256 wv = w ? _mm256_loadu_ps(w + o) : one;
                            FL_SOFT_VEC(_mm256_loadu_ps(xr + o), _mm256_loadu_ps(tr + o), wv, 0)
                        } else {             /* the last C % 8 classes: masked loads (never past the row) */
                            __m256 wv = w ? _mm256_maskload_ps(w + o, tmask) : one;
                            FL_SOFT_VEC(_mm256_maskload_ps(xr + o, tmask), _mm256_maskload_ps(tr + o, tmask),
                                        wv, 1)
                        }
                    }
                }
                ha[r] = a1;
                hd[r] = a2;
            }
            __m256 ga = fl_hsum8_f32(ha), gd = fl_hsum8_f32(hd);
            float fa[8], fd[8];
            _mm256_storeu_ps(fa, ga);
            _mm256_storeu_ps(fd, gd);
            for (int r = 0; r < 8; r++) { sA[r] += (double)fa[r]; sD[r] += (double)fd[r]; }
        }
        for (ptrdiff_t k = k0; k < L && k < k0 + 8; k++) { A[k] = sA[k - k0]; D[k] = sD[k - k0]; }
    }
#else
    for (ptrdiff_t k = 0; k < L; k++) {
        const float* xr = x + k * C;
        const float* tr = t + k * C;
        double a = 0.0, d = 0.0;
        for (ptrdiff_t j = 0; j < C; j++) {
            float tw = keep * tr[j] + add;
            if (w) tw = w[j] * tw;
            a += (double)tw;
            d += (double)(tw * (xr[j] - m[k]));
        }
        A[k] = a;
        D[k] = d;
    }
#endif
}
#if defined(FL_TILE_AVX)
#undef FL_SOFT_VEC
#endif

/* The epilogue's log s of a sum of exps s >= 1 (the max's exp(0) = 1 plus the rest; or +inf, nan), as
 * classification.pyx's log_sum: log1p(s - 1), s - 1 exact in double.
 * float: fl_log1pf's arithmetic on x = (float)(s - 1) >= 0 (the same bits) without the selects that
 * x >= 0 never needs (x < 0, u = 0, denormal u); nan propagates through the correction.
 * double: log(s) itself -- u = 1 + (s - 1) is s exactly, so fl_log1p's correction ((u - 1) - x) / u is
 * 0 and fl_log1p(s - 1) = fl_log(s), bit for bit, without the correction's division. */
FL_INLINE float fl_tile_log_sum_f32(double s) {
    float x = (float)(s - 1.0);
    float u = 1.0f + x;
    int32_t bits = fl_f2i(u);
    int32_t e = ((bits >> 23) & 0xff) - 126;          /* u = m * 2^e, m in [0.5, 1) (as fl_logf) */
    float m = fl_i2f((bits & 0x007fffff) | 0x3f000000);
    int small = m < 0.707106781186547524f;
    e = small ? e - 1 : e;
    m = small ? m + m - 1.0f : m - 1.0f;
    float r = fl_log_reducedf(m, (float)e) - ((u - 1.0f) - x) / u;
    r = u == 1.0f ? x : r;
    r = u == __builtin_inff() ? u : r;
    return r;
}
FL_INLINE double fl_tile_log_sum_f64(double s) { return fl_log(s); }

#endif /* FL_TILE_H */
