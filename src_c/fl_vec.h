/*
 * fl_vec.h -- a vector of FL_V_W float lanes over the build level's width (AVX-512: 16 lanes with mask
 * registers; AVX2 + FMA: 8 lanes with masks held in vectors), and the softmax exp of up to 4 such
 * vectors in lock step; the same for FL_VD_W double lanes.  One place for both, so that the class-major tile
 * passes (fl_tile.h), the short rows (fl_short_rows.h) and the row passes (fl_reduce.h) compute the same exp
 * with the same operations (AVX2: fl_math.h's fl_expf_softmax / fl_exp_nonpos step for step; AVX-512: table
 * forms of their own).  Not defined below AVX2 (FL_V_W undefined: the scalar-loop passes run there).
 */
#ifndef FL_VEC_H
#define FL_VEC_H
#include <stddef.h>
#include <stdint.h>
#include "fl_math.h"
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

/* A vector of FL_V_W float lanes over the level's width, for the passes written once for both widths: AVX-512's 16 lanes with mask registers, AVX2's 8 (x86-64-v3: AVX2 + FMA) with
 * lane masks held in vectors (all ones in a lane set).  fl_vf: the floats; fl_vi: int32 lanes; fl_vm: a
 * lane mask; fl_vd: half the lanes widened to double.  Not defined below AVX2 (the scalar-loop passes
 * run there). */
#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define FL_V_W 16
typedef __m512 fl_vf;       /* FL_V_W float lanes */
typedef __m512i fl_vi;      /* FL_V_W int32 lanes */
typedef __m512d fl_vd;      /* half of them, widened to double */
typedef __mmask16 fl_vm;    /* a lane mask */
FL_INLINE fl_vm fl_v_lanes(ptrdiff_t n) {     /* lanes [0, n) (n may be <= 0 or >= FL_V_W) */
    return n >= 16 ? (fl_vm)0xffff : n <= 0 ? (fl_vm)0 : (fl_vm)((1u << n) - 1);
}
FL_INLINE fl_vm fl_v_lanes_from(ptrdiff_t d) {  /* lanes [d, FL_V_W) (0 <= d < FL_V_W) */
    return (fl_vm)(0xffffu << d);
}
/* lanes m of v stored to p, the others left as p holds them (a masked store) */
FL_INLINE void fl_v_store_lanes(float* p, fl_vm m, fl_vf v) { _mm512_mask_storeu_ps(p, m, v); }
FL_INLINE int32_t fl_v_isum(fl_vi a) { return _mm512_reduce_add_epi32(a); }
/* the sum of the FL_V_W double lanes (lo: [0, W/2), hi: [W/2, W)) folded in halves: (j + 8), (j + 4),
 * (j + 2), (j + 1), as a loop halving an array of them (_mm512_reduce_add_pd: upper + lower 4, 2, 1 lanes) */
FL_INLINE double fl_vd_sum_halves(fl_vd lo, fl_vd hi) { return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi)); }
FL_INLINE fl_vm fl_v_mand(fl_vm a, fl_vm b) { return (fl_vm)(a & b); }
FL_INLINE fl_vf fl_v_set1(float v) { return _mm512_set1_ps(v); }
FL_INLINE fl_vf fl_v_load(const float* p) { return _mm512_loadu_ps(p); }
FL_INLINE fl_vf fl_v_loadz(fl_vm m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
FL_INLINE void fl_v_store(float* p, fl_vf v) { _mm512_storeu_ps(p, v); }
FL_INLINE void fl_v_storem(float* p, fl_vm m, fl_vf v) { _mm512_mask_storeu_ps(p, m, v); }
FL_INLINE fl_vf fl_v_add(fl_vf a, fl_vf b) { return _mm512_add_ps(a, b); }
FL_INLINE fl_vf fl_v_sub(fl_vf a, fl_vf b) { return _mm512_sub_ps(a, b); }
FL_INLINE fl_vf fl_v_mul(fl_vf a, fl_vf b) { return _mm512_mul_ps(a, b); }
FL_INLINE fl_vf fl_v_max(fl_vf x, fl_vf m) { return _mm512_max_ps(x, m); }     /* x > m ? x : m */
FL_INLINE fl_vf fl_v_fmadd(fl_vf a, fl_vf b, fl_vf c) { return _mm512_fmadd_ps(a, b, c); }
FL_INLINE fl_vf fl_v_fnmadd(fl_vf a, fl_vf b, fl_vf c) { return _mm512_fnmadd_ps(a, b, c); }
FL_INLINE fl_vf fl_v_shl23(fl_vf t) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23));
}
FL_INLINE fl_vm fl_v_ne(fl_vf a, fl_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
FL_INLINE fl_vm fl_v_nlt(fl_vf a, fl_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLT_UQ); }
FL_INLINE fl_vf fl_v_keep(fl_vm m, fl_vf v) { return _mm512_maskz_mov_ps(m, v); }  /* 0 outside m */
FL_INLINE fl_vi fl_v_izero(void) { return _mm512_setzero_si512(); }
FL_INLINE fl_vi fl_v_iset1(int32_t v) { return _mm512_set1_epi32(v); }
FL_INLINE fl_vi fl_v_iota(void) {
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
FL_INLINE fl_vi fl_v_isub(fl_vi a, fl_vi b) { return _mm512_sub_epi32(a, b); }
FL_INLINE fl_vi fl_v_count(fl_vi n, fl_vm m) {                                   /* n + 1 in lanes m */
    return _mm512_mask_add_epi32(n, m, n, _mm512_set1_epi32(1));
}
FL_INLINE fl_vi fl_v_load_i(const int32_t* p) { return _mm512_loadu_si512((const void*)p); }
FL_INLINE fl_vi fl_v_loadz_i(fl_vm m, const int32_t* p) { return _mm512_maskz_loadu_epi32(m, p); }
FL_INLINE fl_vi fl_v_index(fl_vi y, fl_vi rs) {          /* y * rs + lane (the gather's float offsets) */
    return _mm512_add_epi32(_mm512_mullo_epi32(y, rs), fl_v_iota());
}
FL_INLINE fl_vm fl_v_nonneg(fl_vm m, fl_vi y) {           /* the lanes of m with y >= 0 */
    return _mm512_mask_cmp_epi32_mask(m, y, _mm512_setzero_si512(), _MM_CMPINT_NLT);
}
FL_INLINE fl_vf fl_v_gather(fl_vm m, fl_vi idx, const float* base) {        /* 0 outside m */
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base, 4);
}
FL_INLINE fl_vd fl_v_dzero(void) { return _mm512_setzero_pd(); }
/* s0 += lanes [0, W/2) of a, s1 += lanes [W/2, W), widened to double */
FL_INLINE void fl_v_widen_add(fl_vd* s0, fl_vd* s1, fl_vf a) {
    *s0 = _mm512_add_pd(*s0, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
    *s1 = _mm512_add_pd(*s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)));
}
FL_INLINE void fl_v_widen_add_i(fl_vd* s0, fl_vd* s1, fl_vi a) {
    *s0 = _mm512_add_pd(*s0, _mm512_cvtepi32_pd(_mm512_castsi512_si256(a)));
    *s1 = _mm512_add_pd(*s1, _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(a, 1)));
}
FL_INLINE void fl_v_store_d(double* p, fl_vd s0, fl_vd s1) {
    _mm512_storeu_pd(p, s0);
    _mm512_storeu_pd(p + 8, s1);
}
FL_INLINE void fl_v_storem_d(double* p, fl_vm m, fl_vd s0, fl_vd s1) {          /* lanes m of (s0, s1) */
    _mm512_mask_storeu_pd(p, (__mmask8)m, s0);
    _mm512_mask_storeu_pd(p + 8, (__mmask8)(m >> 8), s1);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define FL_V_W 8
typedef __m256 fl_vf;
typedef __m256i fl_vi;
typedef __m256d fl_vd;
typedef __m256i fl_vm;      /* AVX2: a lane mask is a vector, all ones in the lanes set */
FL_INLINE fl_vm fl_v_lanes(ptrdiff_t n) {
    const int32_t c = n >= 8 ? 8 : n <= 0 ? 0 : (int32_t)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(c), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FL_INLINE fl_vm fl_v_lanes_from(ptrdiff_t d) {
    return _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int32_t)d - 1));
}
/* as a blend and a whole store: AMD's vmaskmovps stores are slow (the lanes outside m are rewritten with
 * what p held: p is not written by anyone else meanwhile) */
FL_INLINE void fl_v_store_lanes(float* p, fl_vm m, fl_vf v) {
    _mm256_storeu_ps(p, _mm256_blendv_ps(_mm256_loadu_ps(p), v, _mm256_castsi256_ps(m)));
}
FL_INLINE int32_t fl_v_isum(fl_vi a) {
    __m128i t4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0x4e));
    t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0xb1));
    return _mm_cvtsi128_si32(t4);
}
FL_INLINE double fl_vd_sum_halves(fl_vd lo, fl_vd hi) {                 /* (j + 4), (j + 2), (j + 1) */
    __m256d v = _mm256_add_pd(lo, hi);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}
FL_INLINE fl_vm fl_v_mand(fl_vm a, fl_vm b) { return _mm256_and_si256(a, b); }
FL_INLINE fl_vf fl_v_set1(float v) { return _mm256_set1_ps(v); }
FL_INLINE fl_vf fl_v_load(const float* p) { return _mm256_loadu_ps(p); }
FL_INLINE fl_vf fl_v_loadz(fl_vm m, const float* p) { return _mm256_maskload_ps(p, m); }
FL_INLINE void fl_v_store(float* p, fl_vf v) { _mm256_storeu_ps(p, v); }
FL_INLINE void fl_v_storem(float* p, fl_vm m, fl_vf v) { _mm256_maskstore_ps(p, m, v); }
FL_INLINE fl_vf fl_v_add(fl_vf a, fl_vf b) { return _mm256_add_ps(a, b); }
FL_INLINE fl_vf fl_v_sub(fl_vf a, fl_vf b) { return _mm256_sub_ps(a, b); }
FL_INLINE fl_vf fl_v_mul(fl_vf a, fl_vf b) { return _mm256_mul_ps(a, b); }
FL_INLINE fl_vf fl_v_max(fl_vf x, fl_vf m) { return _mm256_max_ps(x, m); }
FL_INLINE fl_vf fl_v_fmadd(fl_vf a, fl_vf b, fl_vf c) { return _mm256_fmadd_ps(a, b, c); }
FL_INLINE fl_vf fl_v_fnmadd(fl_vf a, fl_vf b, fl_vf c) { return _mm256_fnmadd_ps(a, b, c); }
FL_INLINE fl_vf fl_v_shl23(fl_vf t) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
}
FL_INLINE fl_vm fl_v_ne(fl_vf a, fl_vf b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_NEQ_UQ)); }
FL_INLINE fl_vm fl_v_nlt(fl_vf a, fl_vf b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_NLT_UQ)); }
FL_INLINE fl_vf fl_v_keep(fl_vm m, fl_vf v) { return _mm256_and_ps(_mm256_castsi256_ps(m), v); }
FL_INLINE fl_vi fl_v_izero(void) { return _mm256_setzero_si256(); }
FL_INLINE fl_vi fl_v_iset1(int32_t v) { return _mm256_set1_epi32(v); }
FL_INLINE fl_vi fl_v_isub(fl_vi a, fl_vi b) { return _mm256_sub_epi32(a, b); }
FL_INLINE fl_vi fl_v_count(fl_vi n, fl_vm m) { return _mm256_sub_epi32(n, m); }      /* m's lanes are -1 */
FL_INLINE fl_vi fl_v_load_i(const int32_t* p) { return _mm256_loadu_si256((const __m256i*)p); }
FL_INLINE fl_vi fl_v_loadz_i(fl_vm m, const int32_t* p) { return _mm256_maskload_epi32((const int*)p, m); }
FL_INLINE fl_vi fl_v_index(fl_vi y, fl_vi rs) {
    return _mm256_add_epi32(_mm256_mullo_epi32(y, rs), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FL_INLINE fl_vm fl_v_nonneg(fl_vm m, fl_vi y) {
    return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), y), m);
}
FL_INLINE fl_vf fl_v_gather(fl_vm m, fl_vi idx, const float* base) {
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, idx, _mm256_castsi256_ps(m), 4);
}
FL_INLINE fl_vd fl_v_dzero(void) { return _mm256_setzero_pd(); }
FL_INLINE void fl_v_widen_add(fl_vd* s0, fl_vd* s1, fl_vf a) {
    *s0 = _mm256_add_pd(*s0, _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
    *s1 = _mm256_add_pd(*s1, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
}
FL_INLINE void fl_v_widen_add_i(fl_vd* s0, fl_vd* s1, fl_vi a) {
    *s0 = _mm256_add_pd(*s0, _mm256_cvtepi32_pd(_mm256_castsi256_si128(a)));
    *s1 = _mm256_add_pd(*s1, _mm256_cvtepi32_pd(_mm256_extracti128_si256(a, 1)));
}
FL_INLINE void fl_v_store_d(double* p, fl_vd s0, fl_vd s1) {
    _mm256_storeu_pd(p, s0);
    _mm256_storeu_pd(p + 4, s1);
}
FL_INLINE void fl_v_storem_d(double* p, fl_vm m, fl_vd s0, fl_vd s1) {  /* 32-bit lane masks -> 64-bit */
    _mm256_maskstore_pd(p, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(m)), s0);
    _mm256_maskstore_pd(p + 4, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(m, 1)), s1);
}
#endif

#if defined(FL_V_W) && FL_V_W == 16
/* The float32 softmax exp at AVX-512 (x <= 0, -inf or nan; 0 below FL_EXPF_SOFTMAX_TAB_LO and in the lanes
 * outside keep[i] where MASKED) of N vectors (N <= 4) in lock step, through a 16-entry table: 7 operations
 * on the FMA units per vector instead of fl_expf_softmax's 10 (a Zen 4 core runs one 16-lane fma per
 * cycle, and the exp was the tile pass's floor: 0.200 -> 0.143 ns per value in a lone exp loop).
 *   k = round(16 x / ln2) from the magic-number rounding t = 16 x / ln2 + 1.5 * 2^23, whose low bits hold
 *     k in two's complement; k = 16 m + j with j = k & 15;
 *   r = x - k ln2/16 (two fmas, ln2/16 split so that k * hi is exact), |r| <= ln2/32;
 *   exp(x) = 2^m 2^(j/16) (1 + q), q = r + r^2 (c2 + c3 r) (minimax on |r| <= ln2/32, error 1.6e-9);
 *   2^m 2^(j/16) as bits: vpermd picks entry j (the low 4 bits of t's bits) of a table holding
 *     bits(2^(j/16)) - j * 2^19, and t's bits shifted left by 19 add m * 2^23 + j * 2^19 (the 2^22 bit of the
 *     magic number shifts out); x >= -87.35 keeps m >= -126, a normal scale;
 *   y = s + s q, one rounding.
 * Max error 0.99 ulp over the whole domain (tests/test_math.py; fl_expf_softmax: 0.97).  Its bits differ
 * from the scalar fl_expf_softmax's (a table lookup in a scalar loop would vectorise as a gather), so the
 * AVX-512 level's vector passes and scalar loops round some exps differently, each within its bound. */
#define FL_EXPF_SOFTMAX_TAB_LO -87.35f           /* k >= -2016, m >= -126 from here up: 2^m normal; e^lo < FLT_MIN */
#define FL_EXPF_SOFTMAX_TAB_MAGIC 12582912.0f    /* 1.5 * 2^23 */
#define FL_EXPF_SOFTMAX_TAB_L2E16 23.0831206542234f           /* 16 / ln2 */
#define FL_EXPF_SOFTMAX_TAB_LN2_HI 0.0433349609375f           /* 0.693359375 / 16, 9 bits: k * hi exact */
#define FL_EXPF_SOFTMAX_TAB_LN2_LO -1.3262152503418e-05f      /* (ln2 - 0.693359375) / 16 */
#define FL_EXPF_SOFTMAX_TAB_C2 0.50001615f
#define FL_EXPF_SOFTMAX_TAB_C3 0.16666721f
FL_INLINE void fl_expf_softmax_vn(const int N, const fl_vf* x, const fl_vm* keep, const int MASKED,
                                  fl_vf* y) {
    const fl_vf magic = fl_v_set1(FL_EXPF_SOFTMAX_TAB_MAGIC);
    const __m512i tab = _mm512_setr_epi32(      /* bits(2^(j/16)) - j * 2^19, j = 0..15 (nearest floats) */
        0x3f800000, 0x3f7daac3, 0x3f7b95c2, 0x3f79c3d3, 0x3f7837f0, 0x3f76f532,
        0x3f75fed7, 0x3f75583f, 0x3f7504f3, 0x3f7508a4, 0x3f75672a, 0x3f76248c,
        0x3f7744fd, 0x3f78ccdf, 0x3f7ac0c7, 0x3f7d257d);
    fl_vf t[4], n[4], r[4], p[4], q[4];
    for (int i = 0; i < N; i++) t[i] = fl_v_fmadd(x[i], fl_v_set1(FL_EXPF_SOFTMAX_TAB_L2E16), magic);
    for (int i = 0; i < N; i++) n[i] = fl_v_sub(t[i], magic);
    for (int i = 0; i < N; i++) r[i] = fl_v_fnmadd(n[i], fl_v_set1(FL_EXPF_SOFTMAX_TAB_LN2_HI), x[i]);
    for (int i = 0; i < N; i++) r[i] = fl_v_fnmadd(n[i], fl_v_set1(FL_EXPF_SOFTMAX_TAB_LN2_LO), r[i]);
    for (int i = 0; i < N; i++)
        p[i] = fl_v_fmadd(fl_v_set1(FL_EXPF_SOFTMAX_TAB_C3), r[i], fl_v_set1(FL_EXPF_SOFTMAX_TAB_C2));
    for (int i = 0; i < N; i++) q[i] = fl_v_mul(r[i], r[i]);
    for (int i = 0; i < N; i++) p[i] = fl_v_fmadd(p[i], q[i], r[i]);
    for (int i = 0; i < N; i++) {
        const __m512i b = _mm512_castps_si512(t[i]);
        const fl_vf s = _mm512_castsi512_ps(
            _mm512_add_epi32(_mm512_permutexvar_epi32(b, tab), _mm512_slli_epi32(b, 19)));  /* 2^m 2^(j/16) */
        const fl_vm in = fl_v_nlt(x[i], fl_v_set1(FL_EXPF_SOFTMAX_TAB_LO));
        y[i] = _mm512_maskz_fmadd_ps(MASKED ? fl_v_mand(in, keep[i]) : in, p[i], s, s);
    }
}
#elif defined(FL_V_W)
/* fl_math.h's fl_expf_softmax of N vectors (N <= 4) in lock step, step for step (each a * b + c an fma, as
 * GCC contracts the scalar code: the same bits; 0 below FL_EXPF_SOFTMAX_LO), and 0 also in the lanes
 * outside keep[i] where MASKED (folded into the range select).  Lock step, not one exp after the other:
 * each exp is a chain of ~14 dependent operations, and a core whose floating-point scheduler holds fewer
 * operations than a few such chains (Zen 2: 36) runs exps issued one after the other at the chain's
 * latency, not at its throughput. */
FL_INLINE void fl_expf_softmax_vn(const int N, const fl_vf* x, const fl_vm* keep, const int MASKED,
                                  fl_vf* y) {
    const fl_vf magic = fl_v_set1(FL_EXPF_SOFTMAX_MAGIC);
    fl_vf t[4], n[4], r[4], p[4], q[4];
    for (int i = 0; i < N; i++) t[i] = fl_v_fmadd(x[i], fl_v_set1(FL_EXPF_SOFTMAX_LOG2E), magic);
    for (int i = 0; i < N; i++) n[i] = fl_v_sub(t[i], magic);
    for (int i = 0; i < N; i++) r[i] = fl_v_fnmadd(n[i], fl_v_set1(FL_EXPF_SOFTMAX_LN2_HI), x[i]);
    for (int i = 0; i < N; i++) r[i] = fl_v_fmadd(n[i], fl_v_set1(FL_EXPF_SOFTMAX_LN2_LO), r[i]);
    for (int i = 0; i < N; i++) p[i] = fl_v_fmadd(fl_v_set1(FL_EXPF_SOFTMAX_P0), r[i], fl_v_set1(FL_EXPF_SOFTMAX_P1));
    for (int i = 0; i < N; i++) p[i] = fl_v_fmadd(p[i], r[i], fl_v_set1(FL_EXPF_SOFTMAX_P2));
    for (int i = 0; i < N; i++) p[i] = fl_v_fmadd(p[i], r[i], fl_v_set1(FL_EXPF_SOFTMAX_P3));
    for (int i = 0; i < N; i++) p[i] = fl_v_fmadd(p[i], r[i], fl_v_set1(FL_EXPF_SOFTMAX_P4));
    for (int i = 0; i < N; i++) q[i] = fl_v_mul(r[i], r[i]);
    for (int i = 0; i < N; i++) p[i] = fl_v_fmadd(p[i], q[i], r[i]);
    for (int i = 0; i < N; i++) t[i] = fl_v_shl23(t[i]);                            /* 2^n */
    for (int i = 0; i < N; i++) {
        const fl_vm in = fl_v_nlt(x[i], fl_v_set1(FL_EXPF_SOFTMAX_LO));
        y[i] = fl_v_keep(MASKED ? fl_v_mand(in, keep[i]) : in, fl_v_fmadd(p[i], t[i], t[i]));
    }
}
#endif

/* A vector of FL_VD_W double lanes, fl_vd (the same type as the float vector's widened halves: 8 lanes at
 * AVX-512, 4 at AVX2), for the float64 form of the class-major tile pass (fl_tile_ce.h), with the float
 * vector's operations under fl_vd_* names: fl_vdm its lane mask, fl_vdi its FL_VD_W int32 lanes (the
 * gather's class indices).  Added apart from the float section above, operation for operation. */
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define FL_VD_W 8
typedef __mmask8 fl_vdm;
typedef __m256i fl_vdi;
FL_INLINE fl_vdm fl_vd_lanes(ptrdiff_t n) {
    return n >= 8 ? (fl_vdm)0xff : n <= 0 ? (fl_vdm)0 : (fl_vdm)((1u << n) - 1);
}
FL_INLINE fl_vd fl_vd_set1(double v) { return _mm512_set1_pd(v); }
FL_INLINE fl_vd fl_vd_load(const double* p) { return _mm512_loadu_pd(p); }
FL_INLINE fl_vd fl_vd_loadz(fl_vdm m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
FL_INLINE fl_vd fl_vd_load_fill(fl_vdm m, const double* p, double fill) {      /* fill outside m */
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), m, p);
}
FL_INLINE void fl_vd_store(double* p, fl_vd v) { _mm512_storeu_pd(p, v); }
FL_INLINE void fl_vd_storem(double* p, fl_vdm m, fl_vd v) { _mm512_mask_storeu_pd(p, m, v); }
FL_INLINE fl_vd fl_vd_add(fl_vd a, fl_vd b) { return _mm512_add_pd(a, b); }
FL_INLINE fl_vd fl_vd_sub(fl_vd a, fl_vd b) { return _mm512_sub_pd(a, b); }
FL_INLINE fl_vd fl_vd_mul(fl_vd a, fl_vd b) { return _mm512_mul_pd(a, b); }
FL_INLINE fl_vd fl_vd_max(fl_vd x, fl_vd m) { return _mm512_max_pd(x, m); }     /* x > m ? x : m */
FL_INLINE fl_vd fl_vd_fmadd(fl_vd a, fl_vd b, fl_vd c) { return _mm512_fmadd_pd(a, b, c); }
FL_INLINE fl_vd fl_vd_fnmadd(fl_vd a, fl_vd b, fl_vd c) { return _mm512_fnmadd_pd(a, b, c); }
FL_INLINE fl_vd fl_vd_shl52(fl_vd t) {
    return _mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(t), 52));
}
FL_INLINE fl_vd fl_vd_zero_below(fl_vd x, double lo, fl_vd y) {                  /* x < lo ? 0 : y */
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(x, _mm512_set1_pd(lo), _CMP_NLT_UQ), y);
}
FL_INLINE fl_vdi fl_vd_load_i(const int32_t* p) { return _mm256_loadu_si256((const __m256i*)p); }
FL_INLINE fl_vdi fl_vd_loadz_i(fl_vdm m, const int32_t* p) { return _mm256_maskz_loadu_epi32(m, p); }
FL_INLINE fl_vdi fl_vd_index(fl_vdi y, fl_vdi rs) {     /* y * rs + lane (the gather's double offsets) */
    return _mm256_add_epi32(_mm256_mullo_epi32(y, rs), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
FL_INLINE fl_vdi fl_vd_iset1(int32_t v) { return _mm256_set1_epi32(v); }
FL_INLINE fl_vdm fl_vd_nonneg(fl_vdm m, fl_vdi y) {       /* the lanes of m with y >= 0 */
    return _mm256_mask_cmp_epi32_mask(m, y, _mm256_setzero_si256(), _MM_CMPINT_NLT);
}
FL_INLINE fl_vd fl_vd_gather(fl_vdm m, fl_vdi idx, const double* base) {   /* 0 outside m */
    return _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, idx, base, 8);
}
#elif defined(__AVX2__) && defined(__FMA__) && !defined(__AVX512F__)
#define FL_VD_W 4
typedef __m256i fl_vdm;     /* all ones in the 64-bit lanes set */
typedef __m128i fl_vdi;
FL_INLINE fl_vdm fl_vd_lanes(ptrdiff_t n) {
    const int64_t c = n >= 4 ? 4 : n <= 0 ? 0 : (int64_t)n;
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(c), _mm256_setr_epi64x(0, 1, 2, 3));
}
FL_INLINE fl_vd fl_vd_set1(double v) { return _mm256_set1_pd(v); }
FL_INLINE fl_vd fl_vd_load(const double* p) { return _mm256_loadu_pd(p); }
FL_INLINE fl_vd fl_vd_loadz(fl_vdm m, const double* p) { return _mm256_maskload_pd(p, m); }
FL_INLINE fl_vd fl_vd_load_fill(fl_vdm m, const double* p, double fill) {
    return _mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
}
FL_INLINE void fl_vd_store(double* p, fl_vd v) { _mm256_storeu_pd(p, v); }
FL_INLINE void fl_vd_storem(double* p, fl_vdm m, fl_vd v) { _mm256_maskstore_pd(p, m, v); }
FL_INLINE fl_vd fl_vd_add(fl_vd a, fl_vd b) { return _mm256_add_pd(a, b); }
FL_INLINE fl_vd fl_vd_sub(fl_vd a, fl_vd b) { return _mm256_sub_pd(a, b); }
FL_INLINE fl_vd fl_vd_mul(fl_vd a, fl_vd b) { return _mm256_mul_pd(a, b); }
FL_INLINE fl_vd fl_vd_max(fl_vd x, fl_vd m) { return _mm256_max_pd(x, m); }
FL_INLINE fl_vd fl_vd_fmadd(fl_vd a, fl_vd b, fl_vd c) { return _mm256_fmadd_pd(a, b, c); }
FL_INLINE fl_vd fl_vd_fnmadd(fl_vd a, fl_vd b, fl_vd c) { return _mm256_fnmadd_pd(a, b, c); }
FL_INLINE fl_vd fl_vd_shl52(fl_vd t) {
    return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52));
}
FL_INLINE fl_vd fl_vd_zero_below(fl_vd x, double lo, fl_vd y) {
    return _mm256_andnot_pd(_mm256_cmp_pd(x, _mm256_set1_pd(lo), _CMP_LT_OQ), y);
}
FL_INLINE fl_vdi fl_vd_load_i(const int32_t* p) { return _mm_loadu_si128((const __m128i*)p); }
FL_INLINE fl_vdi fl_vd_loadz_i(fl_vdm m, const int32_t* p) {     /* 64-bit lane masks -> 32-bit */
    const __m256i m32 = _mm256_permutevar8x32_epi32(m, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
    return _mm_maskload_epi32((const int*)p, _mm256_castsi256_si128(m32));
}
FL_INLINE fl_vdi fl_vd_index(fl_vdi y, fl_vdi rs) {
    return _mm_add_epi32(_mm_mullo_epi32(y, rs), _mm_setr_epi32(0, 1, 2, 3));
}
FL_INLINE fl_vdi fl_vd_iset1(int32_t v) { return _mm_set1_epi32(v); }
FL_INLINE fl_vdm fl_vd_nonneg(fl_vdm m, fl_vdi y) {
    return _mm256_andnot_si256(_mm256_cvtepi32_epi64(_mm_cmpgt_epi32(_mm_setzero_si128(), y)), m);
}
FL_INLINE fl_vd fl_vd_gather(fl_vdm m, fl_vdi idx, const double* base) {
    return _mm256_mask_i32gather_pd(_mm256_setzero_pd(), base, idx, _mm256_castsi256_pd(m), 8);
}
#endif

#if defined(FL_VD_W) && FL_VD_W == 8
/* The float64 softmax exp at AVX-512 (x <= 0, -inf or nan; 0 below FL_EXP_NONPOS_TAB_LO) of N vectors (N <= 4)
 * in lock step, through a 16-entry table as fl_expf_softmax_vn above: a degree-6 polynomial on |r| <= ln2/32
 * instead of fl_exp_nonpos's degree 11 on |r| <= ln2/2, 11 operations on the FMA units per vector instead of
 * 16 (float64 cross-entropy is bound by them: a Zen 4 core runs one 8-lane fma per cycle).
 *   k = round(16 x / ln2) from the magic-number rounding t = 16 x / ln2 + 1.5 * 2^52, k = 16 m + j;
 *   r = x - k ln2/16 (two fmas: fl_exp_nonpos's C1, C2 over 16), |r| <= ln2/32;
 *   exp(x) = 2^m 2^(j/16) (1 + q), q = r + r^2 (c2 + c3 r + ... + c6 r^4) (minimax on |r| <= ln2/32,
 *     error 1.2e-17);
 *   2^m 2^(j/16) as bits: vpermt2pd picks entry j (the low 4 bits of t's bits) of a table holding
 *     bits(2^(j/16)) - j * 2^48, and t's bits shifted left by 48 add m * 2^52 + j * 2^48 (the 2^51 bit of the
 *     magic number shifts out); x >= -708.40 keeps m >= -1022, a normal scale (e^-708.40 < DBL_MIN);
 *   y = s + s q, one rounding.
 * Its bits differ from the scalar fl_exp_nonpos's, each within the ulp bound (tests/test_math.py). */
#define FL_EXP_NONPOS_TAB_LO -708.40                   /* k >= -16352, m >= -1022 from here up */
#define FL_EXP_NONPOS_TAB_MAGIC 6755399441055744.0     /* 1.5 * 2^52 */
#define FL_EXP_NONPOS_TAB_L2E16 23.083120654223414     /* 16 / ln2 */
#define FL_EXP_NONPOS_TAB_LN2_HI (FL_EXP_SOFTMAX_LN2_HI / 16)    /* exact: a power-of-two division */
#define FL_EXP_NONPOS_TAB_LN2_LO (FL_EXP_SOFTMAX_LN2_LO / 16)
#define FL_EXP_NONPOS_TAB_C2 0.5000000000000006
#define FL_EXP_NONPOS_TAB_C3 0.16666666664413363
#define FL_EXP_NONPOS_TAB_C4 0.04166666665964317
#define FL_EXP_NONPOS_TAB_C5 0.008333472062038745
#define FL_EXP_NONPOS_TAB_C6 0.0013889129219177324
FL_INLINE void fl_exp_nonpos_vn(const int N, const fl_vd* x, const fl_vdm* keep, const int MASKED,
                                fl_vd* y) {
    (void)keep; (void)MASKED;
    const fl_vd magic = fl_vd_set1(FL_EXP_NONPOS_TAB_MAGIC);
    /* bits(2^(j/16)) - j * 2^48, j = 0..7 and 8..15 (nearest doubles) */
    const __m512i tab_lo = _mm512_setr_epi64(
        0x3ff0000000000000, 0x3fefb5586cf9890f, 0x3fef72b83c7d517b, 0x3fef387a6e756238,
        0x3fef06fe0a31b715, 0x3feedea64c123422, 0x3feebfdad5362a27, 0x3feeab07dd485429);
    const __m512i tab_hi = _mm512_setr_epi64(
        0x3feea09e667f3bcd, 0x3feea11473eb0187, 0x3feeace5422aa0db, 0x3feec49182a3f090,
        0x3feee89f995ad3ad, 0x3fef199bdd85529c, 0x3fef5818dcfba487, 0x3fefa4afa2a490da);
    fl_vd t[4], n[4], r[4], p[4];
    for (int i = 0; i < N; i++) t[i] = fl_vd_fmadd(x[i], fl_vd_set1(FL_EXP_NONPOS_TAB_L2E16), magic);
    for (int i = 0; i < N; i++) n[i] = fl_vd_sub(t[i], magic);
    for (int i = 0; i < N; i++) r[i] = fl_vd_fnmadd(n[i], fl_vd_set1(FL_EXP_NONPOS_TAB_LN2_HI), x[i]);
    for (int i = 0; i < N; i++) r[i] = fl_vd_fnmadd(n[i], fl_vd_set1(FL_EXP_NONPOS_TAB_LN2_LO), r[i]);
    for (int i = 0; i < N; i++)
        p[i] = fl_vd_fmadd(fl_vd_set1(FL_EXP_NONPOS_TAB_C6), r[i], fl_vd_set1(FL_EXP_NONPOS_TAB_C5));
    for (int i = 0; i < N; i++) p[i] = fl_vd_fmadd(p[i], r[i], fl_vd_set1(FL_EXP_NONPOS_TAB_C4));
    for (int i = 0; i < N; i++) p[i] = fl_vd_fmadd(p[i], r[i], fl_vd_set1(FL_EXP_NONPOS_TAB_C3));
    for (int i = 0; i < N; i++) p[i] = fl_vd_fmadd(p[i], r[i], fl_vd_set1(FL_EXP_NONPOS_TAB_C2));
    for (int i = 0; i < N; i++) p[i] = fl_vd_fmadd(p[i], fl_vd_mul(r[i], r[i]), r[i]);
    for (int i = 0; i < N; i++) {
        const __m512i b = _mm512_castpd_si512(t[i]);
        const fl_vd s = _mm512_castsi512_pd(_mm512_add_epi64(
            _mm512_permutex2var_epi64(tab_lo, b, tab_hi), _mm512_slli_epi64(b, 48)));     /* 2^m 2^(j/16) */
        const __mmask8 in = _mm512_cmp_pd_mask(x[i], _mm512_set1_pd(FL_EXP_NONPOS_TAB_LO), _CMP_NLT_UQ);
        y[i] = _mm512_maskz_fmadd_pd(in, p[i], s, s);
    }
}
#elif defined(FL_VD_W)
/* fl_math.h's fl_exp_nonpos of N vectors (N <= 4) in lock step, step for step (each a * b + c an fma, as
 * GCC contracts the scalar code: the same bits; 0 below FL_EXP_SOFTMAX_LO, nan propagated), as
 * fl_expf_softmax_vn above for float (why lock step: there).  keep / MASKED: the float form's signature
 * (fl_tile_ce.h calls both alike); the float64 pass counts no ties apart, so there is nothing to mask. */
FL_INLINE void fl_exp_nonpos_vn(const int N, const fl_vd* x, const fl_vdm* keep, const int MASKED,
                                fl_vd* y) {
    (void)keep; (void)MASKED;
    const fl_vd magic = fl_vd_set1(FL_EXP_SOFTMAX_MAGIC);
    static const double c[FL_EXP_SOFTMAX_NP] = {
        FL_EXP_SOFTMAX_P0, FL_EXP_SOFTMAX_P1, FL_EXP_SOFTMAX_P2, FL_EXP_SOFTMAX_P3, FL_EXP_SOFTMAX_P4,
        FL_EXP_SOFTMAX_P5, FL_EXP_SOFTMAX_P6, FL_EXP_SOFTMAX_P7, FL_EXP_SOFTMAX_P8, FL_EXP_SOFTMAX_P9};
    fl_vd t[4], n[4], r[4], p[4];
    for (int i = 0; i < N; i++) t[i] = fl_vd_fmadd(x[i], fl_vd_set1(FL_EXP_SOFTMAX_LOG2E), magic);
    for (int i = 0; i < N; i++) n[i] = fl_vd_sub(t[i], magic);
    for (int i = 0; i < N; i++) r[i] = fl_vd_fnmadd(n[i], fl_vd_set1(FL_EXP_SOFTMAX_LN2_HI), x[i]);
    for (int i = 0; i < N; i++) r[i] = fl_vd_fnmadd(n[i], fl_vd_set1(FL_EXP_SOFTMAX_LN2_LO), r[i]);
    for (int i = 0; i < N; i++) p[i] = fl_vd_fmadd(fl_vd_set1(c[0]), r[i], fl_vd_set1(c[1]));
    for (int j = 2; j < FL_EXP_SOFTMAX_NP; j++)
        for (int i = 0; i < N; i++) p[i] = fl_vd_fmadd(p[i], r[i], fl_vd_set1(c[j]));
    for (int i = 0; i < N; i++) p[i] = fl_vd_fmadd(p[i], fl_vd_mul(r[i], r[i]), r[i]);
    for (int i = 0; i < N; i++) {
        const fl_vd s = fl_vd_shl52(t[i]);                                          /* 2^n */
        y[i] = fl_vd_zero_below(x[i], FL_EXP_SOFTMAX_LO, fl_vd_fmadd(p[i], s, s));
    }
}
#endif

#endif /* FL_VEC_H */
