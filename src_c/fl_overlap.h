/*
 * fl_overlap.h -- per-run sums of the segmentation overlap losses (fastloss/_kernels/segmentation.pyx).
 *
 * One pass over a run of n positions of one class adds to acc[0..2], in double,
 *     TP += p t v,    P += p v,    T += t v          (v = 0 where the position is ignored, else 1)
 * and, for Dice + BCE, acc[3] += q v (q: the per-element BCE) and acc[4] += v.
 * The prediction is multiplied by v (not selected), so a NaN at an ignored position still propagates,
 * as in segmentation_models_pytorch.
 *
 * Speed: the run is summed as two interleaved halves, so each `omp simd` lane keeps two independent
 * accumulators per sum (the adds are then not latency-bound).  Determinism: the order of every add is
 * fixed by the code and the ISA level alone (see fl_reduce.h), never by the thread count.
 */
#ifndef FL_OVERLAP_H
#define FL_OVERLAP_H

#include <stddef.h>
#include <stdint.h>
#include "fl_stream.h"     /* fl_prefetch_range: the next run's rows of the C class planes and the labels */

/* Integer labels: t = [y == j], v = [y >= 0] (ignored / invalid labels were set to -1).
 * r (or NULL): the prediction is p[k] * r[k] (a softmax's exponentials times the reciprocal of their
 * sum, rounded to T as the stored product would be: the same bits, without a pass that scales the
 * tile first).  T is counted in integers: a sum of 0s and 1s is exact in double in any order, so the
 * count converted once is the same number as the double sum, at a third less of the double adds. */
#define FL_OVERLAP_LABELS(NAME, T)                                                                   \
static inline void NAME(const T* p, const T* r, const int32_t* ys, int32_t j, ptrdiff_t n,          \
                        double* acc) {                                                              \
    double tp0 = 0, tp1 = 0, ps0 = 0, ps1 = 0;                                                      \
    int32_t ts0 = 0, ts1 = 0;                                                                       \
    ptrdiff_t h = n / 2;                                                                            \
    if (r != NULL) {                                                                                \
        _Pragma("omp simd reduction(+:tp0,tp1,ps0,ps1,ts0,ts1)")                                   \
        for (ptrdiff_t k = 0; k < h; k++) {                                                        \
            T p0 = (p[k] * r[k]) * (T)(ys[k] >= 0), p1 = (p[k + h] * r[k + h]) * (T)(ys[k + h] >= 0); \
            int32_t t0 = ys[k] == j, t1 = ys[k + h] == j;                                          \
            tp0 += (double)(p0 * (T)t0); ps0 += (double)p0; ts0 += t0;                         \
            tp1 += (double)(p1 * (T)t1); ps1 += (double)p1; ts1 += t1;                         \
        }                                                                                           \
    } else {                                                                                        \
        _Pragma("omp simd reduction(+:tp0,tp1,ps0,ps1,ts0,ts1)")                                   \
        for (ptrdiff_t k = 0; k < h; k++) {                                                        \
            T p0 = p[k] * (T)(ys[k] >= 0), p1 = p[k + h] * (T)(ys[k + h] >= 0);                    \
            int32_t t0 = ys[k] == j, t1 = ys[k + h] == j;                                          \
            tp0 += (double)(p0 * (T)t0); ps0 += (double)p0; ts0 += t0;                         \
            tp1 += (double)(p1 * (T)t1); ps1 += (double)p1; ts1 += t1;                         \
        }                                                                                           \
    }                                                                                               \
    for (ptrdiff_t k = 2 * h; k < n; k++) {                                                        \
        T p0 = (r != NULL ? p[k] * r[k] : p[k]) * (T)(ys[k] >= 0);                                 \
        int32_t t0 = ys[k] == j;                                                                    \
        tp0 += (double)(p0 * (T)t0); ps0 += (double)p0; ts0 += t0;                             \
    }                                                                                               \
    acc[0] += tp0 + tp1; acc[1] += ps0 + ps1; acc[2] += (double)(ts0 + ts1);                       \
}

/* Mask targets t; v = [t != ign] when use_ign, else 1.  q (per-element BCE) may be NULL. */
#define FL_OVERLAP_MASKS(NAME, T)                                                                    \
static inline void NAME(const T* p, const T* t, const T* q, int use_ign, T ign, ptrdiff_t n,        \
                        double* acc) {                                                              \
    double tp0 = 0, tp1 = 0, ps0 = 0, ps1 = 0, ts0 = 0, ts1 = 0, bq = 0, cnt = 0;                  \
    ptrdiff_t h = n / 2, k;                                                                         \
    if (!use_ign && q == NULL) {                                                                    \
        _Pragma("omp simd reduction(+:tp0,tp1,ps0,ps1,ts0,ts1)")                                   \
        for (k = 0; k < h; k++) {                                                                  \
            tp0 += (double)(p[k] * t[k]); ps0 += (double)p[k]; ts0 += (double)t[k];                \
            tp1 += (double)(p[k + h] * t[k + h]); ps1 += (double)p[k + h]; ts1 += (double)t[k + h];\
        }                                                                                           \
        for (k = 2 * h; k < n; k++) {                                                              \
            tp0 += (double)(p[k] * t[k]); ps0 += (double)p[k]; ts0 += (double)t[k];                \
        }                                                                                           \
    } else {                                                                                        \
        _Pragma("omp simd reduction(+:tp0,ps0,ts0,bq,cnt)")                                        \
        for (k = 0; k < n; k++) {                                                                  \
            T v = use_ign ? (T)(t[k] != ign) : (T)1;                                               \
            T pv = p[k] * v, tv = t[k] * v;                                                        \
            tp0 += (double)(pv * tv); ps0 += (double)pv; ts0 += (double)tv;                        \
            if (q != NULL) { bq += (double)(q[k] * v); cnt += (double)v; }                         \
        }                                                                                           \
    }                                                                                               \
    acc[0] += tp0 + tp1; acc[1] += ps0 + ps1; acc[2] += ts0 + ts1;                                 \
    if (q != NULL) { acc[3] += bq; acc[4] += cnt; }                                                \
}

FL_OVERLAP_LABELS(fl_overlap_labels_f32, float)
FL_OVERLAP_LABELS(fl_overlap_labels_f64, double)
FL_OVERLAP_MASKS(fl_overlap_masks_f32, float)
FL_OVERLAP_MASKS(fl_overlap_masks_f64, double)

#endif /* FL_OVERLAP_H */
