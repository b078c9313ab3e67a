/*
 * fl_soa4.h -- L interleaved rows of 4 values (an (L, 4) array: boxes) <-> 4 arrays of L (structure of
 * arrays), for the box kernels of boxes.pyx: the loss loop reads the four coordinates of each box as
 * four contiguous streams, and writes the gradient the same way.
 *
 * GCC vectorises the plain strided loop with a permute per load plus blends and, in the second of two
 * loads in one function, reloads its permutation constants (out of registers): 32-47 instructions for
 * 8 float boxes, more than half of a GIoU pair.  Here 8 boxes are 4 loads of two half-vectors and 8
 * in-lane shuffles (AVX), or 4 boxes a 4 x 4 SSE transpose (baseline); double: 4 boxes, 4 unpacks and
 * 4 lane permutes (AVX), 2 boxes 2 unpacks (SSE2).  Pure data movement: the same values on every
 * level; the last L % (block) rows take the scalar loop.
 */
#ifndef FL_SOA4_H
#define FL_SOA4_H

#include <stddef.h>

#if defined(__AVX__)
#include <immintrin.h>
#define FL_SOA4_AVX 1
#elif defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#include <xmmintrin.h>
#define FL_SOA4_SSE2 1
#endif

/* a[k], b[k], c[k], d[k] = p[4 k], p[4 k + 1], p[4 k + 2], p[4 k + 3] for k < L */
static inline void fl_soa4_load_f32(const float* p, ptrdiff_t L, float* a, float* b, float* c, float* d) {
    ptrdiff_t k = 0;
#if defined(FL_SOA4_AVX)
    for (; k + 8 <= L; k += 8) {
        const float* q = p + 4 * k;
        /* rows k + i in the low lane, k + 4 + i in the high lane */
        __m256 r0 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(q)), _mm_loadu_ps(q + 16), 1);
        __m256 r1 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(q + 4)), _mm_loadu_ps(q + 20), 1);
        __m256 r2 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(q + 8)), _mm_loadu_ps(q + 24), 1);
        __m256 r3 = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(q + 12)), _mm_loadu_ps(q + 28), 1);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);   /* a0 a1 b0 b1, c0 c1 d0 d1 */
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);   /* a2 a3 b2 b3, c2 c3 d2 d3 */
        _mm256_storeu_ps(a + k, _mm256_shuffle_ps(t0, t2, 0x44));
        _mm256_storeu_ps(b + k, _mm256_shuffle_ps(t0, t2, 0xEE));
        _mm256_storeu_ps(c + k, _mm256_shuffle_ps(t1, t3, 0x44));
        _mm256_storeu_ps(d + k, _mm256_shuffle_ps(t1, t3, 0xEE));
    }
#elif defined(FL_SOA4_SSE2)
    for (; k + 4 <= L; k += 4) {
        const float* q = p + 4 * k;
        __m128 r0 = _mm_loadu_ps(q), r1 = _mm_loadu_ps(q + 4), r2 = _mm_loadu_ps(q + 8), r3 = _mm_loadu_ps(q + 12);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(a + k, r0); _mm_storeu_ps(b + k, r1); _mm_storeu_ps(c + k, r2); _mm_storeu_ps(d + k, r3);
    }
#endif
    for (; k < L; k++) {
        a[k] = p[4 * k]; b[k] = p[4 * k + 1]; c[k] = p[4 * k + 2]; d[k] = p[4 * k + 3];
    }
}

static inline void fl_soa4_load_f64(const double* p, ptrdiff_t L, double* a, double* b, double* c, double* d) {
    ptrdiff_t k = 0;
#if defined(FL_SOA4_AVX)
    for (; k + 4 <= L; k += 4) {
        const double* q = p + 4 * k;
        __m256d r0 = _mm256_loadu_pd(q), r1 = _mm256_loadu_pd(q + 4);
        __m256d r2 = _mm256_loadu_pd(q + 8), r3 = _mm256_loadu_pd(q + 12);
        __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);  /* a0 a1 c0 c1, b0 b1 d0 d1 */
        __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
        _mm256_storeu_pd(a + k, _mm256_permute2f128_pd(t0, t2, 0x20));
        _mm256_storeu_pd(b + k, _mm256_permute2f128_pd(t1, t3, 0x20));
        _mm256_storeu_pd(c + k, _mm256_permute2f128_pd(t0, t2, 0x31));
        _mm256_storeu_pd(d + k, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
#elif defined(FL_SOA4_SSE2)
    for (; k + 2 <= L; k += 2) {
        const double* q = p + 4 * k;
        __m128d r0 = _mm_loadu_pd(q), r1 = _mm_loadu_pd(q + 2), r2 = _mm_loadu_pd(q + 4), r3 = _mm_loadu_pd(q + 6);
        _mm_storeu_pd(a + k, _mm_unpacklo_pd(r0, r2)); _mm_storeu_pd(b + k, _mm_unpackhi_pd(r0, r2));
        _mm_storeu_pd(c + k, _mm_unpacklo_pd(r1, r3)); _mm_storeu_pd(d + k, _mm_unpackhi_pd(r1, r3));
    }
#endif
    for (; k < L; k++) {
        a[k] = p[4 * k]; b[k] = p[4 * k + 1]; c[k] = p[4 * k + 2]; d[k] = p[4 * k + 3];
    }
}

/* p[4 k], p[4 k + 1], p[4 k + 2], p[4 k + 3] = a[k], b[k], c[k], d[k] for k < L (the inverse) */
static inline void fl_soa4_store_f32(float* p, ptrdiff_t L, const float* a, const float* b, const float* c,
                                     const float* d) {
    ptrdiff_t k = 0;
#if defined(FL_SOA4_AVX)
    for (; k + 8 <= L; k += 8) {
        float* q = p + 4 * k;
        __m256 va = _mm256_loadu_ps(a + k), vb = _mm256_loadu_ps(b + k);
        __m256 vc = _mm256_loadu_ps(c + k), vd = _mm256_loadu_ps(d + k);
        __m256 t0 = _mm256_unpacklo_ps(va, vb), t1 = _mm256_unpackhi_ps(va, vb);   /* a0 b0 a1 b1, a2 b2 a3 b3 */
        __m256 t2 = _mm256_unpacklo_ps(vc, vd), t3 = _mm256_unpackhi_ps(vc, vd);   /* c0 d0 c1 d1, c2 d2 c3 d3 */
        __m256 r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xEE);  /* rows 0|4, 1|5 */
        __m256 r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xEE);  /* rows 2|6, 3|7 */
        _mm256_storeu_ps(q, _mm256_permute2f128_ps(r0, r1, 0x20));
        _mm256_storeu_ps(q + 8, _mm256_permute2f128_ps(r2, r3, 0x20));
        _mm256_storeu_ps(q + 16, _mm256_permute2f128_ps(r0, r1, 0x31));
        _mm256_storeu_ps(q + 24, _mm256_permute2f128_ps(r2, r3, 0x31));
    }
#elif defined(FL_SOA4_SSE2)
    for (; k + 4 <= L; k += 4) {
        float* q = p + 4 * k;
        __m128 r0 = _mm_loadu_ps(a + k), r1 = _mm_loadu_ps(b + k), r2 = _mm_loadu_ps(c + k), r3 = _mm_loadu_ps(d + k);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        _mm_storeu_ps(q, r0); _mm_storeu_ps(q + 4, r1); _mm_storeu_ps(q + 8, r2); _mm_storeu_ps(q + 12, r3);
    }
#endif
    for (; k < L; k++) {
        p[4 * k] = a[k]; p[4 * k + 1] = b[k]; p[4 * k + 2] = c[k]; p[4 * k + 3] = d[k];
    }
}

static inline void fl_soa4_store_f64(double* p, ptrdiff_t L, const double* a, const double* b, const double* c,
                                     const double* d) {
    ptrdiff_t k = 0;
#if defined(FL_SOA4_AVX)
    for (; k + 4 <= L; k += 4) {
        double* q = p + 4 * k;
        __m256d va = _mm256_loadu_pd(a + k), vb = _mm256_loadu_pd(b + k);
        __m256d vc = _mm256_loadu_pd(c + k), vd = _mm256_loadu_pd(d + k);
        __m256d t0 = _mm256_unpacklo_pd(va, vb), t1 = _mm256_unpackhi_pd(va, vb);  /* a0 b0 a2 b2, a1 b1 a3 b3 */
        __m256d t2 = _mm256_unpacklo_pd(vc, vd), t3 = _mm256_unpackhi_pd(vc, vd);  /* c0 d0 c2 d2, c1 d1 c3 d3 */
        _mm256_storeu_pd(q, _mm256_permute2f128_pd(t0, t2, 0x20));
        _mm256_storeu_pd(q + 4, _mm256_permute2f128_pd(t1, t3, 0x20));
        _mm256_storeu_pd(q + 8, _mm256_permute2f128_pd(t0, t2, 0x31));
        _mm256_storeu_pd(q + 12, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
#elif defined(FL_SOA4_SSE2)
    for (; k + 2 <= L; k += 2) {
        double* q = p + 4 * k;
        __m128d va = _mm_loadu_pd(a + k), vb = _mm_loadu_pd(b + k), vc = _mm_loadu_pd(c + k), vd = _mm_loadu_pd(d + k);
        _mm_storeu_pd(q, _mm_unpacklo_pd(va, vb)); _mm_storeu_pd(q + 2, _mm_unpacklo_pd(vc, vd));
        _mm_storeu_pd(q + 4, _mm_unpackhi_pd(va, vb)); _mm_storeu_pd(q + 6, _mm_unpackhi_pd(vc, vd));
    }
#endif
    for (; k < L; k++) {
        p[4 * k] = a[k]; p[4 * k + 1] = b[k]; p[4 * k + 2] = c[k]; p[4 * k + 3] = d[k];
    }
}

#endif /* FL_SOA4_H */
