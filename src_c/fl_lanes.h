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

/* The lanes' total: a fixed pairwise tree. */
static inline double fl_lanes_total(const double* lanes) {
    double t[FL_LANES];
    memcpy(t, lanes, sizeof t);
    for (int w = FL_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) t[j] += t[j + w];
    return t[0];
}

#endif
