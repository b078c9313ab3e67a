/*
 * fl_lanes.h -- a block's running sum of per-item values, kept in FL_LANES double lanes.
 *
 * A block function that sums its own items (run_blocks with `fn_sums`, _common.pxd) adds them to
 * lanes as it computes them, instead of writing the whole block to scratch for a second pass
 * (fl_sum_f32 over a block: one double accumulator, bound by the add's latency, plus the scratch's
 * store and load: a third of a Huber mean).  Lanes are independent accumulators (several vector
 * registers), so the adds run at throughput.
 *
 * Determinism: value k of a segment goes to lane k % FL_LANES, each lane is the plain sum of its values
 * in order (((v0 + v1) + v2) + ...), and the block's total adds the lanes in a fixed tree: the result
 * depends on the block's segments alone (fixed by the block boundaries), not on the thread count -- nor
 * on the ISA level: the lanes are the same 32 at every vector width.  Because each lane is a plain
 * running sum, segments whose lengths are multiples of FL_LANES may be merged or split freely: adding
 * two 256-value segments or one 512-value run gives the same bits (elementwise.pyx's reductions run a
 * whole block at once where nothing makes them stop at a row end).
 * (The transcendental functions' last bits do depend on the level.)
 *
 * Precision: every value is added in double (the project's rule for sums of per-item losses,
 * fl_reduce.h): a float32 loss is exact in double, so a sum in another order (fastloss.partial's chunks
 * merged) agrees to float64 rounding.
 */
#ifndef FL_LANES_H
#define FL_LANES_H

#include <stddef.h>
#include <string.h>

#define FL_LANES 32

static inline void fl_lanes_zero(double* lanes) {
    for (int j = 0; j < FL_LANES; j++) lanes[j] = 0.0;
}

/* A plain loop over local lanes: compilers keep them in vector registers (8 ymm on AVX2) for the whole
 * call.  (GCC generic vectors were spilled to the stack at every add; with 16 lanes GCC 12 kept Huber's
 * in memory.)  The local lanes start as lanes[j] + the first value: a plain copy of `lanes` (or zeros)
 * became a memcpy / memset through the stack (`rep stos`), which cost 10% of an MSE mean at one call per
 * segment.  elementwise.pyx's sum_items adds the values it computes in its loop in the same order. */
#define FL_LANES_ADD(name, T)                                                                         \
static inline void name(double* lanes, const T* x, ptrdiff_t n) {                                    \
    double acc[FL_LANES];                                                                             \
    ptrdiff_t i = 0;                                                                                  \
    if (n >= FL_LANES) {                                                                              \
        for (int j = 0; j < FL_LANES; j++) acc[j] = lanes[j] + (double)x[j];                          \
        for (i = FL_LANES; i + FL_LANES <= n; i += FL_LANES)                                          \
            for (int j = 0; j < FL_LANES; j++) acc[j] += (double)x[i + j];                            \
        for (int j = 0; j < FL_LANES; j++) lanes[j] = acc[j];                                         \
    }                                                                                                 \
    for (ptrdiff_t j = 0; i + j < n; j++) lanes[j] += (double)x[i + j];   /* the tail: < FL_LANES */  \
}
FL_LANES_ADD(fl_lanes_add_f32, float)
FL_LANES_ADD(fl_lanes_add_f64, double)
#undef FL_LANES_ADD

/* Float32 item losses into the lanes without a float -> double conversion (FL_LANES_BITS: AVX2, AVX-512).
 *
 * On AVX2 CPUs (Zen 2 measured) vcvtps2pd and the vextractf128 it needs are the bottleneck of a summing
 * loop: two per 8 items, ~5 cycles per 8 items for an MSE mean, against ~3 with integer ops.  A
 * non-negative finite float f with bits b is, exactly, the double with bits (uint64) b << 29 times 2^896
 * (the exponents' bias difference; float subnormals become double subnormals with the same factor).  So
 * the 8 float lanes of a vector, read as 4 64-bit lanes, give their even items by a multiply by 2^29
 * of each lane's low half and their odd ones by the same after a shift right by 32 (fl_lanes_bits_add):
 * three integer ops per 8 items, no conversion.  The lanes
 * are summed in that scaled form: every scaled sum is the exact sum scaled by 2^-896 (sums of floats are
 * multiples of 2^-149, so where a scaled sum is subnormal both sums are exact; elsewhere both round to
 * 53 bits alike), and the unscaling multiply is exact: the same bits as the converting loop.
 * A value that is negative (-0.0 included), infinite or nan maps to a scaled value >= 2^-768 (its sign
 * or exponent bits land in the exponent), and every good value to less; scaled values are never
 * negative, so a lane >= 2^-768 has a bad value or a true sum >= 2^128: fl_lanes_bits_total returns 0
 * and the caller sums the run again the converting way (same order, same lanes).
 * Lanes: vector q of a run of 32 items holds items 8q .. 8q+7; v[2q] their even ones, v[2q+1] the odd:
 * item k still goes to lane k % FL_LANES, in order. */
/* (always inlined: an out-of-line finish made the compiler keep the lanes in memory, zeroed by a
 * `rep stos` per block, and end the loop with vzeroupper and a call) */
#define FL_LANES_BITS_INLINE static inline __attribute__((always_inline))

#if defined(__AVX2__) && !defined(__AVX512F__)
#include <immintrin.h>
#define FL_LANES_BITS 1
typedef struct { __m256d v[FL_LANES / 4]; } fl_lanes_bits;

FL_LANES_BITS_INLINE void fl_lanes_bits_zero(fl_lanes_bits* b) {
    for (int q = 0; q < FL_LANES / 4; q++) b->v[q] = _mm256_setzero_pd();
}

/* Add FL_LANES float values l[0 .. FL_LANES) (computed just before: the compiler keeps them in registers).
 * b << 29 by vpmuludq, which multiplies the low 32 bits of each 64-bit lane by those of the other operand
 * into the whole 64-bit lane: the even item times 2^29 is its bits shifted, with nothing of the odd item
 * left to mask; the odd item is first moved down by a 64-bit shift.  Three integer ops per 8 items instead
 * of the shift-and-mask pair's four, and one constant instead of a mask (an MSE mean 8-10% faster on
 * Zen 2 in a standalone loop, a Huber mean 6-9%; the same lanes and bits). */
FL_LANES_BITS_INLINE void fl_lanes_bits_add(fl_lanes_bits* b, const float* l) {
    const __m256i pow29 = _mm256_set1_epi64x(1LL << 29);
    for (int q = 0; q < FL_LANES / 8; q++) {
        __m256i u = _mm256_loadu_si256((const __m256i*)(l + 8 * q));
        b->v[2 * q] = _mm256_add_pd(b->v[2 * q], _mm256_castsi256_pd(_mm256_mul_epu32(u, pow29)));
        b->v[2 * q + 1] = _mm256_add_pd(b->v[2 * q + 1],
                                        _mm256_castsi256_pd(_mm256_mul_epu32(_mm256_srli_epi64(u, 32), pow29)));
    }
}

/* The lanes' total, unscaled, into *total: the bits fl_lanes_total gives for the unscaled lanes (its tree,
 * on the registers: register r holds lanes 8 (r / 2) + 2 i + r % 2, i = 0 .. 3).  The tree sums the scaled
 * lanes, then unscales once: as for the lanes themselves, a scaled sum is the exact sum scaled where it is
 * subnormal and rounds as the unscaled one elsewhere.  Returns 0 where a lane is >= 2^-768 (see above).
 * (Computed in registers: storing the lanes for fl_lanes_total, unscaled one by one, was ~40 moves
 * through the stack per 4096-item block, with the lanes' zeroing a tenth of a Huber mean.) */
FL_LANES_BITS_INLINE int fl_lanes_bits_total(const fl_lanes_bits* b, double* total) {
    const __m256d limit = _mm256_set1_pd(0x1p-768);
    __m256d ok = _mm256_cmp_pd(b->v[0], limit, _CMP_LT_OQ);
    for (int r = 1; r < FL_LANES / 4; r++) ok = _mm256_and_pd(ok, _mm256_cmp_pd(b->v[r], limit, _CMP_LT_OQ));
    if (_mm256_movemask_pd(ok) != 0xf)
        return 0;
    __m256d h[4];
    for (int r = 0; r < 4; r++) h[r] = _mm256_add_pd(b->v[r], b->v[r + 4]);   /* w = 16: lanes j, j + 16 */
    __m256d even = _mm256_add_pd(h[0], h[2]);                                 /* w = 8: lanes 0, 2, 4, 6 */
    __m256d odd = _mm256_add_pd(h[1], h[3]);                                  /*        lanes 1, 3, 5, 7 */
    __m128d e = _mm_add_pd(_mm256_castpd256_pd128(even), _mm256_extractf128_pd(even, 1));   /* w = 4: 0, 2 */
    __m128d o = _mm_add_pd(_mm256_castpd256_pd128(odd), _mm256_extractf128_pd(odd, 1));     /*        1, 3 */
    double t0 = _mm_cvtsd_f64(e) + _mm_cvtsd_f64(_mm_unpackhi_pd(e, e));                    /* w = 2 */
    double t1 = _mm_cvtsd_f64(o) + _mm_cvtsd_f64(_mm_unpackhi_pd(o, o));
    *total = (t0 + t1) * 0x1p896;                                                           /* w = 1 */
    return 1;
}
#elif defined(__AVX512F__)
/* The same at AVX-512, where a zmm conversion is two uops (Zen 4 double-pumps it; Intel splits it over two
 * ports) and the AVX2 form had made the avx2 level's Huber / MSE means 1.2-1.3x as fast as the avx512
 * level's (Zen 4, T=1, 500 000 items: MSE 48 against 62 us).  A run of 32 items is two vectors of 16: v[2q]
 * holds the even items of vector q (lanes 16 q + 2 i, i = 0 .. 7), v[2q+1] the odd ones; item k still goes
 * to lane k % FL_LANES, in order. */
#include <immintrin.h>
#define FL_LANES_BITS 1
typedef struct { __m512d v[FL_LANES / 8]; } fl_lanes_bits;

FL_LANES_BITS_INLINE void fl_lanes_bits_zero(fl_lanes_bits* b) {
    for (int q = 0; q < FL_LANES / 8; q++) b->v[q] = _mm512_setzero_pd();
}

FL_LANES_BITS_INLINE void fl_lanes_bits_add(fl_lanes_bits* b, const float* l) {
    const __m512i pow29 = _mm512_set1_epi64(1LL << 29);
    for (int q = 0; q < FL_LANES / 16; q++) {
        __m512i u = _mm512_loadu_si512((const void*)(l + 16 * q));
        b->v[2 * q] = _mm512_add_pd(b->v[2 * q], _mm512_castsi512_pd(_mm512_mul_epu32(u, pow29)));
        b->v[2 * q + 1] = _mm512_add_pd(b->v[2 * q + 1],
                                        _mm512_castsi512_pd(_mm512_mul_epu32(_mm512_srli_epi64(u, 32), pow29)));
    }
}

/* fl_lanes_total's tree on this layout: w = 16 adds v[0] + v[2] (even lanes j, j + 16) and v[1] + v[3]
 * (odd), w = 8 the two halves of each (lanes 0, 2, 4, 6 and 1, 3, 5, 7), then as the AVX2 form. */
FL_LANES_BITS_INLINE int fl_lanes_bits_total(const fl_lanes_bits* b, double* total) {
    const __m512d limit = _mm512_set1_pd(0x1p-768);
    __mmask8 ok = _mm512_cmp_pd_mask(b->v[0], limit, _CMP_LT_OQ);
    for (int r = 1; r < FL_LANES / 8; r++) ok &= _mm512_cmp_pd_mask(b->v[r], limit, _CMP_LT_OQ);
    if (ok != 0xff)
        return 0;
    const __m512d he = _mm512_add_pd(b->v[0], b->v[2]), ho = _mm512_add_pd(b->v[1], b->v[3]);   /* w = 16 */
    const __m256d even = _mm256_add_pd(_mm512_castpd512_pd256(he), _mm512_extractf64x4_pd(he, 1));   /* w = 8 */
    const __m256d odd = _mm256_add_pd(_mm512_castpd512_pd256(ho), _mm512_extractf64x4_pd(ho, 1));
    __m128d e = _mm_add_pd(_mm256_castpd256_pd128(even), _mm256_extractf128_pd(even, 1));   /* w = 4: 0, 2 */
    __m128d o = _mm_add_pd(_mm256_castpd256_pd128(odd), _mm256_extractf128_pd(odd, 1));     /*        1, 3 */
    double t0 = _mm_cvtsd_f64(e) + _mm_cvtsd_f64(_mm_unpackhi_pd(e, e));                    /* w = 2 */
    double t1 = _mm_cvtsd_f64(o) + _mm_cvtsd_f64(_mm_unpackhi_pd(o, o));
    *total = (t0 + t1) * 0x1p896;                                                           /* w = 1 */
    return 1;
}
#else
#define FL_LANES_BITS 0      /* (other levels convert; these are never called there) */
typedef struct { double v[FL_LANES]; } fl_lanes_bits;
static inline void fl_lanes_bits_zero(fl_lanes_bits* b) { (void)b; }
FL_LANES_BITS_INLINE void fl_lanes_bits_add(fl_lanes_bits* b, const float* l) { (void)b; (void)l; }
static inline int fl_lanes_bits_total(const fl_lanes_bits* b, double* total) { (void)b; (void)total; return 0; }
#endif

/* n values l[0 .. n) (n a multiple of FL_LANES), run after run, as fl_lanes_bits_add; the lanes in registers
 * for the whole buffer */
FL_LANES_BITS_INLINE void fl_lanes_bits_add_n(fl_lanes_bits* b, const float* l, ptrdiff_t n) {
    fl_lanes_bits a = *b;
    for (ptrdiff_t i = 0; i < n; i += FL_LANES) fl_lanes_bits_add(&a, l + i);
    *b = a;
}

/* The lanes' total: a fixed pairwise tree. */
static inline double fl_lanes_total(const double* lanes) {
    double t[FL_LANES];
    memcpy(t, lanes, sizeof t);
    for (int w = FL_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) t[j] += t[j + w];
    return t[0];
}

#endif
