# cython: language_level=3
"""Classification kernels: softmax cross-entropy and its relatives (row and spatial layouts).  The
binary (sigmoid) losses are elementwise: ``elementwise.pyx``.

Read ``_common.pxd`` first: every kernel here is a *block function* run by ``run_blocks``.

Layouts.  Logits are read in place, never transposed in memory:
  * rows     (N, C):         item = a row; classes contiguous (stride 1).  Long rows use the row
                             primitives of ``src_c/fl_reduce.h``, vectorised over the classes.
                             Short rows (C <= 72 for the loss alone, fewer with probability
                             targets: ``ce_f32_tiles_win``) are too short to vectorise along
                             (per-row reductions and tails cost more than the arithmetic), so
                             L = TILE / C rows at a time are transposed into a class-major tile on
                             the stack (``fl_tile.h``) and run like the spatial layout, the gradient
                             computed in a second tile and transposed back.
  * spatial  (N, C, S):      item = a (sample, position) pair; classes strided by S.  Loops run over a
                             run of positions (contiguous) for one class at a time, so they vectorise
                             across positions -- the layout torch uses for segmentation.
Both class-major layouts share one run function per loss (``ce_run``, ``ce_probs_run``), so the
spatial layout and the rows give the same numbers for the same logits.

Precision (issue 14).  Every sum over classes accumulates in double (``fl_reduce.h``), and log s is
taken as log1p(s - 1) of that double sum: a confident row has s = 1 + r with r tiny, and its loss is
~r, which a float32 s (or a float32 running sum onto the max's exp(0) = 1) rounds away.
"""
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset
from libc.math cimport exp, expm1, log, log1p, pow

from fastloss._kernels._common cimport (
    floating, BlockFn, ptr_or_null, run,
    f_exp, f_exp_nonpos, f_log, f_log1p, f_log1p_unit_inv, f_abs, f_max, f_min, row_max, row_sumexp,
    to_tile, from_tile,
)
from fastloss._kernels._common cimport check_buffer, check_optional, check_count, buffer_items, items_product
from fastloss._kernels._common cimport prefetch_end
from fastloss._kernels._common cimport (
    PyArrayObject, PyArray_Descr, PyArray_NDIM, PyArray_DIMS, PyArray_FLAGS, PyArray_DESCR, native_itemsize,
    NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED, NPY_FLOAT, NPY_DOUBLE, NPY_OPPBYTE,
)
from cpython.object cimport Py_TYPE, PyTypeObject

import numpy as np


cdef inline int64_t read_label(const void* labels, bint is64, Py_ssize_t i) noexcept nogil:
    if is64:
        return (<const int64_t*> labels)[i]
    return (<const int32_t*> labels)[i]


cdef inline int64_t checked_label(const void* labels, bint is64, Py_ssize_t i, Py_ssize_t C,
                                  int64_t ignore_index, Py_ssize_t* bad) noexcept nogil:
    """Label i, or -1 where it is ignore_index or outside [0, C); the first index of an invalid one (not
    ignore_index) is kept in bad[0] (note e of _common.pxd)."""
    cdef int64_t y = read_label(labels, is64, i)
    if y == ignore_index or y < 0 or y >= C:
        if y != ignore_index and bad[0] < 0:
            bad[0] = i
        return -1
    return y


cdef inline Py_ssize_t run_labels(const void* labels, bint is64, Py_ssize_t i0, Py_ssize_t L, Py_ssize_t C,
                                  int64_t ignore_index, int32_t* ys) noexcept nogil:
    """ys[k] = label i0 + k, or -1 where it is ignore_index or outside [0, C), for k < L; returns how many
    are invalid (neither).  Branch-free, one loop per label type, so each vectorises (checked_label's
    branches cost ~1.5 ns per row, 10% of a whole row of 10 classes)."""
    cdef Py_ssize_t k, n = 0
    cdef int64_t y
    cdef bint inside
    if is64:
        for k in range(L):
            y = (<const int64_t*> labels)[i0 + k]
            inside = (y >= 0) & (y < C)
            n += (y != ignore_index) & (not inside)
            ys[k] = <int32_t> y if inside & (y != ignore_index) else -1
    else:
        for k in range(L):
            y = (<const int32_t*> labels)[i0 + k]
            inside = (y >= 0) & (y < C)
            n += (y != ignore_index) & (not inside)
            ys[k] = <int32_t> y if inside & (y != ignore_index) else -1
    return n


cdef inline Py_ssize_t first_bad(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a >= 0 else b


# Class-major runs: L positions whose class j logit is xs[j * cs + k] (k < L, contiguous).
cdef extern from "fl_tile.h" nogil:
    enum: FL_TILE_RUN   # the per-position scratch arrays of fl_tile.h's passes
    void fl_prefetch_l2(const void* p, Py_ssize_t bytes)


cdef enum:
    RUN = FL_TILE_RUN   # positions per run (256: the per-position scratch arrays of a run function)
    TILE = 4096         # logits per short-row tile (16 KiB float32): L = TILE / C rows (tile_rows)
    TILE_CAP = 5120     # the tile buffers' size: TILE rounded up to whole 16-lane vectors of rows (tile_rows)


cdef extern from "fl_runtime.h" nogil:
    int fl_cpu_is_intel()


# The pf_end of a cross-entropy context (_common.pxd's prefetch_end): the row below which the (N, C) tiles
# (ce_tile_block, ce_probs_tile_block) prefetch the next tile's rows (logits, targets, labels) while this
# tile's exps run (spread over its groups of classes: fl_tile_ce.h), where the inputs pass one core's L2; else
# 0: then the index targets' tiles prefetch only the logits of a next tile inside the same block, as before
# (C = 10: a block of 256 + 128 rows; without it 4-5% slower at 10^6 logits, float32 and float64), and the
# probability targets' none.  A block is one tile at most C (BLOCK_WORK = TILE), so the next tile is the next
# block's, which the same thread runs next (serial, or its own share of the blocks: run_blocks).  Intel Xeon
# (L2 2 MiB), AVX-512, float32, thread time, new / old: at 40 MB of logits 0.62-0.94 at C = 10-88 for index
# targets, 0.76-0.95 for probability targets (twenty-fifth session, the prefetches then issued a slice per
# chunk from 16 MiB on; float64, 80 MB: 0.82-0.91); spread and from L2's size on (twenty-ninth session),
# against that: 0.85-0.99 at 2 MiB, 0.75-0.85 at 4 MiB for index targets at C = 24-88 (0.80-0.91 for
# probability targets at 16-47, 0.89-0.97 with the gradient), 0.73-0.95 at 16-64 MiB; at 1 MiB, in L2, the
# prefetches cost 4-13%.  No values change.


cdef inline Py_ssize_t next_tile_rows(Py_ssize_t end, Py_ssize_t i0, Py_ssize_t L,
                                      Py_ssize_t Lmax) noexcept nogil:
    """Rows of the tile after rows i0 .. i0+L-1 to prefetch: those below ``end`` (a pf_end, or the block's end
    for the index targets' within-block prefetch), at most one tile of Lmax rows."""
    return max(0, min(end - i0 - L, Lmax))


# The float lanes of a vector at this build's level (16 at AVX-512, else 8): float32 tile sizes (tile_rows)
# use it, and the AVX-512 level's own measured tiles/rows crossovers (ce_f32_tiles_win, index_tiles_win)
# are keyed on it.  FL_CE_SOFT_ROWS_MIN_C: ce_probs_tile_block's float32 target sums along the rows from
# this C on (only at the baseline level, which has no fused tile pass: see there).
cdef extern from *:
    """
    #include "fl_vec.h"
    #if defined(FL_V_W) && FL_V_W == 16
    #define FL_CE_F32_LANES 16
    #else
    #define FL_CE_F32_LANES 8
    #endif
    #if defined(FL_V_W)
    #define FL_CE_SOFT_ROWS_MIN_C 0x7fffffff
    #else
    #define FL_CE_SOFT_ROWS_MIN_C 22
    #endif
    """
    enum: FL_CE_F32_LANES
    enum: FL_CE_SOFT_ROWS_MIN_C


# Which of ce_f32_tiles_win's measured crossover tables applies: Intel's (True) or AMD's (False), from the
# CPU's vendor at import.  _set_intel_crossovers switches it (the tests run both tables on any CPU).
cdef bint intel_crossovers = fl_cpu_is_intel()


def _set_intel_crossovers(flag):
    """Use ce_f32_tiles_win's Intel (True) or AMD (False) crossovers from now on; returns the previous
    setting.  Both paths are correct at every C: this changes speed and last bits, not results."""
    global intel_crossovers
    cdef bint previous = intel_crossovers
    intel_crossovers = bool(flag)
    return previous


cdef inline bint index_tiles_win(Py_ssize_t C, Py_ssize_t itemsize, bint focal, bint grad) noexcept nogil:
    """Whether (N, C) rows with class-index targets go through tiles (else along the rows): cross-entropy
    float32 by ce_f32_tiles_win; the other cases by their own measured crossovers (AVX2, thread time, 2^20
    logits, rows / tiles time):
    - float64 cross-entropy: tiles up to C = 27.  Its rows: 0.72-0.94 from C = 28-29 (loss alone; with
      label smoothing 0.57-0.91 from C = 32, with the gradient 0.80-0.94 from C = 24-28; even at C = 24 /
      20), where the float32 budget kept tiles up to C = 72 / 48.  At AVX-512 (Zen 5) up to C = 31 (rows
      1.6-2.0x at C = 28, 1.0 at 40); Zen 4 with the table exps (fl_vec.h), 24th session: up to C = 52, with
      or without the gradient (one bound: the value is then the same bits with and without return_grad).
      Loss alone, rows 1.11-1.54x the tiles' time at C = 32-52 with index targets, 1.22-2.04x with label
      smoothing (1.04-1.15 at 56-60, 0.88-0.92 at 64); with the gradient 0.88-1.35x at C = 32-52, mixed, and
      0.74-0.83 at 56-64.
    - the softmax focal loss: its rows are slow (a scalar log1p / expm1 / pow per row): float32 loss alone
      tiles up to C = 256 (rows 2.2x the time at C = 80-128, 1.5x at 256, even at 300, 0.7 at 448-512),
      with the gradient up to C = 72 (rows 1.8x at 56, 1.2x at 72, 0.87 at 96); float64 up to C = 512
      (rows 2-2.6x at C = 64-512, loss alone and with the gradient; 0.7 / 0.45 at 1024), where the float32
      budget had tiles up to C = 72 / 48.  At AVX-512 (Zen 5) float32 with the gradient up to C = 160 (rows
      2.2-3.8x at C = 72-128, 1.7 at 144-160, 0.8-1.1 at 176-192); the other focal bounds held there (float32
      loss rows 1.9x at 256, 1.05 at 320; float64 rows 1.8-4.5x at 256-512, 0.5-0.6 at 640)."""
    if C < 1:
        return False
    if focal:
        return C <= (512 if itemsize == 8 else (160 if FL_CE_F32_LANES == 16 else 72) if grad else 256)
    if itemsize == 8:
        return C <= (52 if FL_CE_F32_LANES == 16 else 27)
    return ce_f32_tiles_win(C, False, grad)


cdef inline bint ce_f32_tiles_win(Py_ssize_t C, bint probs, bint grad) noexcept nogil:
    """Whether float32 cross-entropy rows of C classes go faster through class-major tiles than along the
    row: index targets (probs False) or probability targets, loss alone or with the gradient (grad).  The row
    path pays a fixed cost per row (horizontal reductions, the padded vector tail, a scalar log), the tile
    path a cost per value moved (the logits, the gradient, the probability targets).  Crossovers measured per
    level (thread time, 2^20 logits, rows / tiles time), on AMD cores (the table for every CPU but Intel's)
    and on Intel's:
    - AVX2 (Zen 3, 2026-12-03): index targets up to C = 72 (rows 0.87-1.21x at C = 73-104, mixed), 72 with
      the gradient (rows 1.15-1.37x at C = 49-72, about even at 76-88, 0.86 at 96); probability targets
      up to C = 60 (with the targets transposed, ce_probs_tile_block: rows 1.10-1.19x at C = 49-60, even at
      61-63, 0.88-0.97 at 64-80), 40 with the gradient (rows 1.14-1.53x at C = 25-40, even at 48, 0.65-0.80
      at 52-64).  Zen 2 had measured a single budget, C (1 + transposed) <= 144 (C <= 72 / 48 / 36 / 24),
      before the fused tile passes of the probability targets and the gradient got faster; on Zen 3 that
      budget left the rows 1.15-2x the tiles' time at C = 49-72 with the gradient and 25-36 for probability
      targets with it.  The baseline level (8 lanes too, no fused pass) shares these bounds; there, after /
      before these bounds: probability targets + gradient 0.69-0.85 at C = 28-40, probability targets 0.82
      at 40, 0.96-1.17 at 48-60, index + gradient 0.83 at 49, 0.98-1.08 at 56-72 (noisy).
    - AVX-512 (Zen 5): its row pass runs 64-value blocks of 16 lanes, whose padded tails cost more than
      AVX2's at these C -- index targets up to C = 88 (rows 1.3-1.5x at C = 64-84, 0.73 at 96; with the
      rows in registers 1.07-1.25 at 84-88, 0.99 at 96), 128 with the gradient (2.0-2.2x at C = 48-72, 1.25
      at 128, 0.47 at 144; re-measured 0.91-1.35 at 96-144, mixed); probability targets up to C = 72, loss
      alone or with the gradient (rows 1.03-1.10x at C = 64-72, 0.78-0.94 at 74-88 for the loss;
      1.16-1.27x at 72, 0.76-0.85 at 74-88 with the gradient).  Zen 4 with the table exp (fl_vec.h), 24th
      session: probability targets up to C = 88, with or without the gradient (one bound: the value is the
      same bits with and without return_grad; rows 1.03-1.16x the tiles' time at C = 76-88 for the loss,
      0.99 at 92-96; with the gradient 1.03-1.09x at 76-84, 0.95 at 88, 0.92 at 96).  (Index targets keep
      two bounds, 88 / 128: between them the value with return_grad differs from the loss alone's in the
      last bits.)
    - Intel (intel_crossovers; an AVX-512 Xeon with FP16, 2026-12-07), AVX-512: the rows win earlier, more so
      with the gradient and with probability targets.  Index targets up to C = 88 with or without the
      gradient (with the gradient rows 0.86 at 88 and 0.64-0.83 at 92-128 where AMD's table had tiles,
      0.68-0.87 at T=2; for the loss 0.85-0.97 at 80-88 at T=1 but 1.02-1.15 at T=2, with label smoothing
      0.99-1.09 / 1.11-1.29); probability targets up to C = 47, with or without the gradient (rows 0.73-0.97
      at C = 48-88 for the loss, 0.58-0.79 with the gradient, at T=2 0.74-1.0 / 0.58-0.81; at 36-44
      1.04-1.16 / 0.90-0.95).  One bound per target kind: the value is the same bits with and without
      return_grad.  At AVX2 (on the same core) the rows won with the gradient at C = 64-72 (0.83-0.89) but
      not the loss alone (0.97-1.05 at T=1, 1.07-1.21 at T=2), and the baseline level's rows took 0.96-1.26x
      the tiles' time at C = 44-76 for probability targets with the gradient: both keep AMD's table.
      (Thread time at T=1; wall-clock minima of 20 alternating calls at T=2.)"""
    if FL_CE_F32_LANES == 16:
        if intel_crossovers:
            return 1 <= C <= (47 if probs else 88)
        return 1 <= C <= (88 if probs else 128 if grad else 88)
    return 1 <= C <= ((40 if grad else 60) if probs else 72)


cdef inline bint probs_tiles_win(Py_ssize_t C, Py_ssize_t itemsize, bint grad) noexcept nogil:
    """Whether (N, C) rows with probability targets go through tiles (else along the rows): float32 by
    ce_f32_tiles_win (the fused tile pass against the rows);
    float64 up to C = 17, loss alone or with the gradient (its tile pass fused too, but the targets' tile
    transposed): the rows measured 1.2-2x faster from C = 18-20 on and about even at 16-17, their time
    depending on C % 4 (AVX2, thread time, 2^20 logits), where the float32 budget had tiles up to C = 48 /
    36, at 3-5 ns per logit against the rows' 2-2.7."""
    if itemsize == 4:
        return ce_f32_tiles_win(C, True, grad)
    return 1 <= C <= 17


cdef inline bint multi_margin_tiles_win(Py_ssize_t C) noexcept nogil:
    """Whether multi_margin's (N, C) rows go through tiles (else along the rows): while a tile holds at least
    8 rows, C <= TILE / 8 = 512.  Its row loop (a compare-and-branch per logit) ran 3.4-4.4 ns per logit at
    every C, its tiles 0.25-0.65 (loss alone) and 0.7-2.6 (with the gradient) up to C = 512 -- rows 5-17x /
    1.6-6.6x their time, at every level (baseline, AVX2, AVX-512; float32 and float64) -- and 5.5-6.6 at
    C = 640-1000, where a tile is one row (rows 0.53-0.70x).  (Zen 5, thread time, 2^20 logits; the
    cross-entropy budget, tuned for its fast rows, had sent C > 72 / 48 to the rows.)"""
    return 1 <= C <= TILE // 8


cdef inline Py_ssize_t tile_rows(Py_ssize_t C, Py_ssize_t itemsize) noexcept nogil:
    """Rows per tile: TILE / C, a multiple of 8 (whole vector blocks for the transposes of fl_tile.h),
    at most RUN.  Float32 at AVX-512: the nearest multiple of 16 (a tile of whole 16-lane vectors; TILE / C
    rounded down to 8 left half a vector idle at C = 88-100: 15-28% slower), where it fits TILE_CAP."""
    cdef Py_ssize_t L = (TILE // C) & ~7
    cdef Py_ssize_t L16 = ((TILE // C) + 8) & ~15
    if FL_CE_F32_LANES == 16 and itemsize == 4 and L16 >= 16 and L16 * C <= TILE_CAP:
        L = L16
    return min(max(L, 1), <Py_ssize_t> RUN)


cdef extern from "fl_tile.h" nogil:
    enum: FL_TS_PLAIN, FL_TS_DOT, FL_TS_SOFT
    void fl_tile_max_pick_f32(const float* xs, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L, const int32_t* ys,
                              float* m, float* xy)
    void fl_tile_max_pick_f64(const double* xs, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L, const int32_t* ys,
                              double* m, double* xy)
    void fl_tile_sumexp_f32(const float* xs, const float* t, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                            const float* m, const float* w, float* g, int mode, float keep_t, float add_t,
                            double* s, double* o1, double* o2)
    void fl_tile_sumexp_f64(const double* xs, const double* t, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                            const double* m, const double* w, double* g, int mode, double keep_t,
                            double add_t, double* s, double* o1, double* o2)


cdef extern from "fl_tile.h" nogil:
    void fl_tile_pick_f32(const float* v, const int32_t* ys, Py_ssize_t L, float* out)
    void fl_tile_pick_f64(const double* v, const int32_t* ys, Py_ssize_t L, double* out)
    bint fl_tile_ce_f32(const float* xs, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L, const int32_t* ys,
                        float* g, float* m, float* xy, double* s, const float* w, double* dot, const void* pf,
                        Py_ssize_t pf_bytes)
    bint fl_tile_ce_f64(const double* xs, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L, const int32_t* ys,
                        double* g, double* m, double* xy, double* s, const double* w, double* dot, const void* pf,
                        Py_ssize_t pf_bytes)
    bint fl_tile_ce_soft_f32(const float* xs, const float* t, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                             const float* w, float keep, float add, float* g, float* m, double* s, double* A,
                             double* D, const void* pf, const void* pf2, Py_ssize_t pf_bytes)
    bint fl_tile_ce_soft_f64(const double* xs, const double* t, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                             const double* w, double keep, double add, double* g, double* m, double* s,
                             double* A, double* D, const void* pf, const void* pf2, Py_ssize_t pf_bytes)


cdef extern from "fl_tile.h" nogil:
    void fl_rows_soft_sums_f32(const float* x, const float* t, Py_ssize_t C, Py_ssize_t L, const float* m,
                               const float* w, float keep, float add, double* A, double* D)


cdef extern from "fl_tile.h" nogil:
    float fl_tile_log_sum_f32(double s)
    double fl_tile_log_sum_f64(double s)


cdef inline floating tile_log_sum(double s, const floating* type_tag) noexcept nogil:
    """log_sum with fewer operations, the same bits (fl_tile.h): the class-major runs' epilogue."""
    if floating is float:
        return fl_tile_log_sum_f32(s)
    else:
        return fl_tile_log_sum_f64(s)


cdef inline void tile_max_pick(const floating* xs, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                               const int32_t* ys, floating* m, floating* xy) noexcept nogil:
    """Pass 1 of a class-major run: m[k] = max over classes, xy[k] = the target ys[k]'s logit (0 where
    ys[k] < 0), for k < L (fl_tile.h)."""
    if floating is float:
        fl_tile_max_pick_f32(xs, cs, C, L, ys, m, xy)
    else:
        fl_tile_max_pick_f64(xs, cs, C, L, ys, m, xy)


cdef inline void tile_pick(const floating* v, const int32_t* ys, Py_ssize_t L, floating* out) noexcept nogil:
    """out[k] = v[ys[k]], 0 where ys[k] < 0, for k < L: a gather, no branch (fl_tile.h)."""
    if floating is float:
        fl_tile_pick_f32(v, ys, L, out)
    else:
        fl_tile_pick_f64(v, ys, L, out)


cdef inline void tile_sumexp(const floating* xs, const floating* t, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                             const floating* m, const floating* w, floating* g, int mode, floating keep_t,
                             floating add_t, double* s, double* o1, double* o2) noexcept nogil:
    """Pass 2 of a class-major run: s[k] = sum_j exp(x_j - m[k]) (the exps into g if not NULL), and by mode
    the smoothing sum (o1) or the probability-target sums (o1, o2), for k < L (fl_tile.h)."""
    if floating is float:
        fl_tile_sumexp_f32(xs, t, cs, C, L, m, w, g, mode, keep_t, add_t, s, o1, o2)
    else:
        fl_tile_sumexp_f64(xs, t, cs, C, L, m, w, g, mode, keep_t, add_t, s, o1, o2)


cdef inline floating log_sum(double s, const floating* type_tag) noexcept nogil:
    """log s of a double sum of exps s = 1 + r (the max's exp(0) = 1 plus the rest) as log1p(s - 1): s - 1
    is exact in double, so a tiny r keeps its relative precision in the kernel's type (log(<float> s)
    would round 1 + r to float first)."""
    return f_log1p(<floating> (s - 1))


# =====================================================================================================
# Softmax cross-entropy with class-index targets
# =====================================================================================================
# Per item with target y, class weights w (1 if absent), smoothing eps over C classes, lse = log sum exp x:
#   loss = (1 - eps) * w_y * (lse - x_y) + (eps / C) * sum_j w_j * (lse - x_j)
#        = (1 - eps) w_y (log s - (x_y - m)) + (eps/C) (W log s - sum_j w_j (x_j - m)),   W = sum_j w_j
#   with m the row max and s = sum_j exp(x_j - m) (ce_point below);
#   dloss/dx_j = p_j * ((1 - eps) w_y + (eps/C) W) - (1 - eps) w_y [j = y] - (eps/C) w_j,  p = softmax(x)
#   denominator of the mean (torch): w_y; ignored items contribute 0 to loss, gradient and denominator.
# This is exactly torch's nll_loss(log_softmax) + label-smoothing term (aten/src/ATen/native/LossNLL.cpp).
# The shift m is the row max itself, as torch's log_softmax takes it: a row with a +inf logit (inf - inf)
# or with only -inf logits gives nan, exactly as torch.cross_entropy.

cdef extern from "fl_reduce.h" nogil:
    double fl_row_dot_shift_f32(const float* x, const float* w, Py_ssize_t n, float m)
    double fl_row_dot_shift_f64(const double* x, const double* w, Py_ssize_t n, double m)
    void fl_row_soft_sums_f32(const float* x, const float* t, const float* w, Py_ssize_t n, float m,
                              float keep, float add, double* A, double* D)
    void fl_row_soft_sums_f64(const double* x, const double* t, const double* w, Py_ssize_t n, double m,
                              double keep, double add, double* A, double* D)
    void fl_rows_sumexp_dot_f32(int R, const float** xs, const float* w, Py_ssize_t n, const float* m,
                                float** es, double* s, double* dot, const float* xn, const float* xf, float* mn)
    void fl_rows_sumexp_soft_f32(int R, const float** xs, const float** ts, const float* w, Py_ssize_t n,
                                 const float* m, float keep, float add, float** es, double* s, double* A, double* D,
                                 const float* xn, const float* xf, float* mn)
    void fl_row_kl_sums_f32(const float* x, const float* u, Py_ssize_t n, double mx, double mu, double inv_t,
                            double* ss, double* st, double* W)
    void fl_row_kl_sums_f64(const double* x, const double* u, Py_ssize_t n, double mx, double mu,
                            double inv_t, double* ss, double* st, double* W)
    void fl_row_kl_grad_f32(const float* x, const float* u, Py_ssize_t n, double mx, double mu, double inv_t,
                            double ss, double st, double scale, float* g)
    void fl_row_kl_grad_f64(const double* x, const double* u, Py_ssize_t n, double mx, double mu,
                            double inv_t, double ss, double st, double scale, double* g)


cdef inline double row_dot_shift(const floating* x, const floating* w, Py_ssize_t n, floating m) noexcept nogil:
    """sum_j w_j (x_j - m) (w NULL: weights 1), vectorised over the row, accumulated in double."""
    if floating is float:
        return fl_row_dot_shift_f32(x, w, n, m)
    else:
        return fl_row_dot_shift_f64(x, w, n, m)


cdef enum:  # rows_sums: the sums besides s = sum_j exp(x_j - m) formed in the same pass
    SUMS_PLAIN = 0      # none
    SUMS_DOT = 1        # q1 = sum_j w_j (x_j - m)                   (label smoothing)
    SUMS_SOFT = 2       # q1, q2 = A, D of fl_row_soft_sums          (probability targets)


cdef enum:
    PAIR_MAX_C = 512    # rows_sums pairs float32 rows shorter than this (longer rows: no gain, and with the
                        # gradient 20% slower at C = 1000, two rows' exps and gradients going through the caches)


cdef inline void rows_sums(const floating* x, const floating* t, const floating* w, floating* g, Py_ssize_t C,
                           const Py_ssize_t* rows, Py_ssize_t n, int mode, floating keep, floating add,
                           floating* m, double* s, double* q1, double* q2) noexcept nogil:
    """The row passes of the n rows rows[0..n) (item indices: logits x + i C, targets t + i C, exps into
    g + i C if g is not NULL): m[k] the row max, s[k] = sum_j exp(x_j - m[k]) in double, and the sums of
    ``mode`` into q1[k] (and q2[k]).  float32 rows shorter than PAIR_MAX_C run two at a time through one pass
    (fl_rows_sumexp_dot_f32: each row's latency hides the other's), with the same results as one at a time.
    Longer ones run one at a time, each pass also forming the next row's max (the same value as row_max)
    and reading the row after the next in (fl_row_pass_f32's xn, xf)."""
    cdef Py_ssize_t k = 0, r, R
    cdef const floating* xs[2]
    cdef const floating* ts[2]
    cdef floating* es[2]
    cdef const float* xn                # the next row with a target (its max formed in this pass), or NULL
    cdef const float* xf                # the row after it in memory (read in towards L2), or NULL
    cdef bint have_m = False            # m[k] formed by the pass before
    while k < n:
        R = 2 if floating is float and C < PAIR_MAX_C and k + 1 < n else 1
        for r in range(R):
            xs[r] = x + rows[k + r] * C
            ts[r] = t + rows[k + r] * C if t != NULL else xs[r]
            es[r] = g + rows[k + r] * C if g != NULL else NULL
            if r > 0 or not have_m:
                m[k + r] = row_max(xs[r], C)
        if floating is float:
            have_m = R == 1 and k + 1 < n
            xn = x + rows[k + 1] * C if have_m else NULL
            xf = xn + C if have_m else NULL
            if mode == SUMS_SOFT:
                fl_rows_sumexp_soft_f32(R, xs, ts, w, C, m + k, keep, add, es if g != NULL else NULL,
                                        s + k, q1 + k, q2 + k, xn, xf, m + k + 1)
            else:
                fl_rows_sumexp_dot_f32(R, xs, w, C, m + k, es if g != NULL else NULL, s + k,
                                       q1 + k if mode == SUMS_DOT else NULL, xn, xf, m + k + 1)
        else:
            s[k] = row_sumexp(xs[0], C, m[k], es[0])      # es[0] (if any) now holds exp(x_j - m)
            if mode == SUMS_DOT:
                q1[k] = row_dot_shift(xs[0], w, C, m[k])
            elif mode == SUMS_SOFT:
                fl_row_soft_sums_f64(xs[0], ts[0], w, C, m[k], keep, add, &q1[k], &q2[k])
        k += R


cdef inline floating ce_point(floating ls, floating dy, floating wy, floating eps, floating epsC, floating wtot,
                              floating swm) noexcept nogil:
    """Cross-entropy of one item from log s (ls), its shifted target logit dy = x_y - m and the shifted
    weighted logit sum swm = sum_j w_j (x_j - m) (0 when eps = 0).  Every term is a difference of small
    shifted quantities, never lse - x_y: in float32 lse = log s + m rounds to ulp(m) (~1e-3 at
    |m| = 1e4), which would swamp an O(1) loss.  For w >= 0 both terms are sums of non-negative parts."""
    cdef floating one = 1     # typed: a bare 1 is the C double 1.0 and would widen float32 maths
    return (one - eps) * wy * (ls - dy) + epsC * (wtot * ls - swm)


cdef inline double target_grad(double pm1, double py, double tc, double ec, double gs, double egw) noexcept nogil:
    """dloss/dx_y of one item, times gs: gs (tc (p_y - 1) + ec p_y) - egw, in double.  tc is the target's
    coefficient ((1 - eps) w_y, or the focal factor), ec the rest of the softmax coefficient ((eps/C) W, 0
    for focal), egw = gs (eps/C) w_y.  The caller forms p_y - 1 without cancelling: (e_y - s) / s (minus
    the other classes' exps, over s), or expm1(log p_y) (focal, from the exact log-sum), so a row whose other classes are all masked
    (-inf) gets exactly 0 at every ISA level (p_y w - w as two rounded products differs by 1 ulp under FMA
    contraction), and a confident row keeps its tiny gradient's relative precision."""
    return gs * (tc * pm1 + ec * py) - egw


cdef struct CeCtx:
    const void* x           # logits (N, C[, S])
    const void* labels      # (N[, S]) int32 or int64
    bint labels64
    const void* weight      # (C,) class weights or NULL
    double weight_total     # sum_j w_j (C if no weight)
    Py_ssize_t pf_end       # tiles prefetch the next tile below this row or the block's end (prefetch_end)
    Py_ssize_t C
    Py_ssize_t S            # positions per sample (1 for the rows layout)
    int64_t ignore_index
    double smoothing
    void* grad              # same layout as x, or NULL
    double grad_scale       # d(returned loss)/d(item loss): 1/denominator for mean, 1 otherwise
    bint focal              # softmax focal loss: modulate by alpha_y (1 - p_y)^gamma
    double gamma
    const void* alpha       # (C,) per-class alpha or NULL


# Softmax focal loss (SPEC §6) on top of the CE row: with lp = log p_y (= x_y - lse), p = p_y,
#   loss = -alpha_y w_y (1 - p)^g lp
#   dloss/dx_j = alpha_y w_y K (p_j - [j = y]),   K = (1 - p)^g - g p lp (1 - p)^(g - 1)
# (d lp/dx_j = [j=y] - p_j and dp/dx_j = p ([j=y] - p_j)).  g = 0 gives K = 1: plain cross-entropy.
# 1 - p is -expm1(lp), never 1 - exp(lp): for a confident row (p -> 1) the loss ~ (1 - p)^(g+1) and the
# target's gradient K (p - 1) keep their relative precision.  Per item, in double, so libm's expm1 / pow
# are fine in the long-row path (ce_rows_block).  The class-major runs take focal_run_terms instead: the same
# formulas, branch-free on fl_math.h's inlined double functions (no libm call per item), so the loop over
# positions vectorises -- the libm form cost ~100 ns per item, 6x cross-entropy's whole row at C = 10.
cdef inline double focal_modulation(double lp, double gamma, double* K) noexcept nogil:
    cdef double q, qg
    if gamma == 0:
        K[0] = 1.0
        return 1.0
    q = -expm1(lp)
    qg = pow(q, gamma)
    K[0] = qg - (gamma * exp(lp) * lp * pow(q, gamma - 1.0) if q != 0 else 0.0)
    return qg


cdef extern from "fl_math.h" nogil:
    double fl_expm1(double)
    double fl_exp(double)
    double fl_log(double)
    double fl_log1p(double)


cdef enum:  # focal_run_terms: how (1 - p)^gamma is formed (fixed per call: one loop per form)
    FOCAL_G0 = 0        # gamma = 0: plain cross-entropy, modulation 1
    FOCAL_G1 = 1        # gamma = 1: q
    FOCAL_G2 = 2        # gamma = 2: q q (exact product, the default)
    FOCAL_GPOW = 3      # otherwise exp(gamma log q)


cdef void focal_run_terms(const double* lp, Py_ssize_t L, double gamma, double* pm1, double* mod,
                          double* K) noexcept nogil:
    """focal_modulation for L items at once, without libm or branches in the loops (each vectorises):
    mod = (1 - p)^gamma, K, and pm1 = p - 1 = expm1(lp) = -q (the target's gradient term).  q^(gamma - 1) is
    q^gamma / q, and the K term is 0 at q = 0 (a select), as in focal_modulation."""
    cdef Py_ssize_t k
    cdef double q, t
    cdef int mode = FOCAL_G0 if gamma == 0 else FOCAL_G1 if gamma == 1 else FOCAL_G2 if gamma == 2 else FOCAL_GPOW
    for k in range(L):
        pm1[k] = fl_expm1(lp[k])
    if mode == FOCAL_G0:
        for k in range(L):
            mod[k] = 1.0
            K[k] = 1.0
        return
    if mode == FOCAL_G1:
        for k in range(L):
            mod[k] = -pm1[k]
            K[k] = 1.0                  # q^0, before the select below
    elif mode == FOCAL_G2:
        for k in range(L):
            q = -pm1[k]
            mod[k] = q * q
            K[k] = q
    else:
        for k in range(L):
            q = -pm1[k]
            t = fl_exp(gamma * fl_log(q))
            mod[k] = t
            K[k] = t / q
    for k in range(L):                  # K = q^g - g p lp q^(g-1), with K[k] holding q^(g-1)
        q = -pm1[k]
        t = gamma * fl_exp(lp[k]) * lp[k] * K[k]
        K[k] = mod[k] - (t if q != 0 else 0.0)


cdef inline double focal_log_sum(const floating* x, Py_ssize_t stride, Py_ssize_t C, floating m,
                                 double s) noexcept nogil:
    """log s of one item for the focal modulation.  float64: log1p(r) with r the exps of every class but the
    first maximum, summed apart from that maximum's exact 1: s - 1 keeps r only to ~C 2^-53 absolute, and a
    confident row's focal loss ~ r^(g+1) needs r to full relative precision (issue 14: [0, -30, -30]).
    float32: log1p(s - 1) of the double sum s is already exact to float32."""
    cdef double r = 0
    cdef bint seen = False
    cdef floating d
    cdef Py_ssize_t j
    if floating is float:
        r = s - 1
    else:
        for j in range(C):
            d = x[j * stride] - m
            if d == 0 and not seen:
                seen = True
            else:
                r += f_exp_nonpos(d)
    return log1p(r)


cdef inline Py_ssize_t target_rows(const CeCtx* c, Py_ssize_t i0, Py_ssize_t L, Py_ssize_t* rows, int64_t* ys,
                                   bint* ign, Py_ssize_t* bad) noexcept nogil:
    """The rows i0 .. i0 + L - 1 that have a target: their item indices into rows, their labels into ys (returns
    how many); ign[k]: row i0 + k has none (ignored, or an invalid label: checked_label keeps the first in bad)."""
    cdef Py_ssize_t k, nv = 0
    cdef int64_t y
    for k in range(L):
        y = checked_label(c.labels, c.labels64, i0 + k, c.C, c.ignore_index, bad)
        ign[k] = y < 0
        if y >= 0:
            rows[nv] = i0 + k
            ys[nv] = y
            nv += 1
    return nv


cdef enum:
    LOSS_ROWS = 16      # ce_rows_loss_block: rows whose scalar epilogues run as one vector loop


cdef inline Py_ssize_t rows_block_items(Py_ssize_t itemsize, bint with_grad) noexcept:
    """The fewest rows in a block of the long-row paths (ce_rows_block, ce_probs_rows_block): for the float32
    loss alone LOSS_ROWS, one rows_sums call, which forms each next row's max in the pass before (every
    row's but the block's first); blocks of BLOCK_WORK logits had been 4096 // C rows, one from C = 2049 on,
    so few rows (none there) had a next one in their block.  Thread time against those blocks and the
    separate row max (Intel Xeon, AVX-512, 2026-12-07), C = 520-600 / 1000 / 4000 / 32000: 0.81-0.91 /
    0.90-0.93 / 0.88-0.92 / 0.97-1.05 in L2 (1-2 MB), - / 0.91-0.92 / - / 0.93-0.97 at 8 MB, - / 0.92-0.95 /
    0.89-0.92 / 0.92-0.94 from memory (400-520 MB); blocks of 32 or 64 rows the same within noise.  With
    the gradient (its pass between a pair's row passes) no gain was measured: the blocks stay as they
    were."""
    return LOSS_ROWS if itemsize == 4 and not with_grad else 1


cdef Py_ssize_t ce_rows_loss_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                   floating* loss, floating* denom) noexcept nogil:
    """ce_rows_block without a gradient or focal term.  The row passes (rows_sums) give s - 1, x_y - m and the
    smoothing sum of each row; the epilogue (log1p of s - 1 and ce_point) then runs for LOSS_ROWS rows at once
    as one vectorised loop: one row's epilogue alone (a scalar log1p with its division) took about a third
    of a 73-class row's time."""
    cdef Py_ssize_t C = c.C, i0, k, v, L, nv, bad = -1
    cdef const floating* x = <const floating*> c.x
    cdef const floating* w = <const floating*> c.weight
    cdef floating eps = <floating> c.smoothing
    cdef floating epsC = <floating> (c.smoothing / C)
    cdef floating wtot = <floating> c.weight_total
    cdef Py_ssize_t rows[LOSS_ROWS]     # the block's rows with a target (not ignored), as item indices
    cdef int64_t ys[LOSS_ROWS]
    cdef floating m[LOSS_ROWS]
    cdef double s[LOSS_ROWS]
    cdef double sw[LOSS_ROWS]
    cdef floating sm1[LOSS_ROWS]
    cdef floating dy[LOSS_ROWS]
    cdef floating wy[LOSS_ROWS]
    cdef floating swm[LOSS_ROWS]
    cdef bint ign[LOSS_ROWS]
    i0 = start
    while i0 < stop:
        L = min(<Py_ssize_t> LOSS_ROWS, stop - i0)
        nv = target_rows(c, i0, L, rows, ys, ign, &bad)
        if nv < L:                          # ignored rows: loss and denominator 0 (this zeroing, 4 `rep stos`
            for k in range(L):              # of 64 bytes, cost ~3% of a 100-class row when run every block)
                sm1[k] = 0
                dy[k] = 0
                wy[k] = 0
                swm[k] = 0
        rows_sums(x, <const floating*> NULL, w, <floating*> NULL, C, rows, nv, SUMS_DOT if eps != 0 else SUMS_PLAIN,
                  0, 0, m, s, sw, sw)
        for v in range(nv):
            k = rows[v] - i0
            wy[k] = w[ys[v]] if w != NULL else 1
            sm1[k] = <floating> (s[v] - 1)  # log_sum's argument: s - 1 is exact in double
            dy[k] = x[rows[v] * C + ys[v]] - m[v]
            swm[k] = <floating> sw[v] if eps != 0 else 0
        for k in range(L):
            loss[i0 - start + k] = 0 if ign[k] else ce_point(f_log1p(sm1[k]), dy[k], wy[k], eps, epsC, wtot, swm[k])
        if denom != NULL:
            for k in range(L):
                denom[i0 - start + k] = wy[k]
        i0 += L
    return bad


cdef Py_ssize_t ce_rows_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                              floating* loss, floating* denom) noexcept nogil:
    """(N, C) rows too long for tiles (index_tiles_win): each pass runs along one row (vectorised over
    classes), the row passes of LOSS_ROWS rows at a time (rows_sums, the exps into the gradient), then each
    row's loss and gradient."""
    if c.grad == NULL and not c.focal:
        return ce_rows_loss_block(c, start, stop, loss, denom)
    cdef Py_ssize_t C = c.C, i, i0, j, v, L, nv, bad = -1
    cdef const floating* x = <const floating*> c.x
    cdef const floating* w = <const floating*> c.weight
    cdef const floating* row
    cdef floating* g
    cdef floating dy, wy, scale, sw
    cdef floating eps = <floating> c.smoothing
    cdef floating epsC = <floating> (c.smoothing / C)
    cdef floating keep = <floating> (1 - c.smoothing)
    cdef floating wtot = <floating> c.weight_total
    cdef floating gs = <floating> c.grad_scale
    cdef floating egs = epsC * gs
    cdef double s, ey, tc, ec, mod, K, lsd, pm1 = 0
    cdef int64_t y
    cdef Py_ssize_t rows[LOSS_ROWS]     # the block's rows with a target (not ignored), as item indices
    cdef int64_t ys[LOSS_ROWS]
    cdef floating m[LOSS_ROWS]
    cdef double sv[LOSS_ROWS]
    cdef double swv[LOSS_ROWS]
    cdef bint ign[LOSS_ROWS]
    i0 = start
    while i0 < stop:
        L = min(<Py_ssize_t> LOSS_ROWS, stop - i0)
        nv = target_rows(c, i0, L, rows, ys, ign, &bad)
        for i in range(i0, i0 + L):
            if not ign[i - i0]:
                continue
            loss[i - start] = 0
            if denom != NULL:
                denom[i - start] = 0
            if c.grad != NULL:
                memset(<floating*> c.grad + i * C, 0, C * sizeof(floating))
        for v in range(nv):
            if v % 2 == 0:  # the row passes of the next two rows, their gradients written while in cache
                # g (if any) then holds exp(x_j - m); focal: the plain sum (its smoothing is not supported)
                rows_sums(x, <const floating*> NULL, w, <floating*> c.grad, C, rows + v, min(nv - v, 2),
                          SUMS_DOT if eps != 0 and not c.focal else SUMS_PLAIN, 0, 0, m + v, sv + v,
                          swv + v, swv + v)
            i = rows[v]
            y = ys[v]
            s = sv[v]
            row = x + i * C
            g = <floating*> c.grad + i * C if c.grad != NULL else NULL
            wy = w[y] if w != NULL else 1
            if denom != NULL:
                denom[i - start] = wy
            dy = row[y] - m[v]
            if c.focal:
                wy = wy * ((<const floating*> c.alpha)[y] if c.alpha != NULL else 1)
                lsd = focal_log_sum(row, 1, C, m[v], s)
                mod = focal_modulation(dy - lsd, c.gamma, &K)
                loss[i - start] = <floating> (wy * mod * (lsd - dy))
                tc = wy * K
                ec = 0
                pm1 = expm1(dy - lsd)
            else:
                sw = <floating> swv[v] if eps != 0 else 0
                loss[i - start] = ce_point(log_sum(s, &dy), dy, wy, eps, epsC, wtot, sw)
                tc = keep * wy
                ec = epsC * wtot
            if g != NULL:
                ey = g[y]
                if not c.focal:
                    pm1 = (ey - s) / s
                scale = <floating> ((tc + ec) * gs / s)
                if eps != 0:
                    for j in range(C):
                        g[j] = g[j] * scale - egs * (w[j] if w != NULL else 1)
                else:
                    for j in range(C):
                        g[j] = g[j] * scale
                g[y] = <floating> target_grad(pm1, ey / s, tc, ec, gs, egs * (w[y] if w != NULL else 1))
        i0 += L
    return bad


cdef inline Py_ssize_t run_targets(const CeCtx* c, Py_ssize_t i0, Py_ssize_t L, int32_t* ys, floating* wy,
                                   floating* denom) noexcept nogil:
    """The targets of items i0 .. i0+L-1 into ys (run_labels: -1 where ignored / invalid), their weights
    w_y (1 without class weights; 0 where ys < 0) into wy, and into denom (the mean's denominators) unless
    NULL; returns the first invalid item's index, looked for only when the run has one, or -1."""
    cdef Py_ssize_t k, bad = -1
    cdef const floating* w = <const floating*> c.weight
    if run_labels(c.labels, c.labels64, i0, L, c.C, c.ignore_index, ys):
        for k in range(L):
            if checked_label(c.labels, c.labels64, i0 + k, c.C, c.ignore_index, &bad) < 0 and bad >= 0:
                break
    if w != NULL:
        tile_pick(w, ys, L, wy)
    else:
        for k in range(L):
            wy[k] = 1 if ys[k] >= 0 else 0
    if denom != NULL:
        for k in range(L):
            denom[k] = wy[k]
    return bad


cdef Py_ssize_t ce_run(const CeCtx* c, const floating* xs, Py_ssize_t cs, Py_ssize_t i0, Py_ssize_t L,
                       floating* loss, floating* denom, floating* gbase, const void* pf=NULL,
                       Py_ssize_t pf_bytes=0) noexcept nogil:
    """Cross-entropy of items i0 .. i0+L-1 (L <= RUN) laid out class-major at xs (gradient, same layout,
    at gbase).  Every loop runs along the L positions, so it vectorises; the passes over classes read
    one class (L contiguous values) at a time.  pf, pf_bytes: memory the caller reads next (the next tile's
    rows), prefetched during the fused pass (fl_tile_ce.h), or NULL."""
    cdef Py_ssize_t C = c.C, bad = -1, k, j
    cdef const floating* w = <const floating*> c.weight
    cdef floating eps = <floating> c.smoothing
    cdef floating epsC = <floating> (c.smoothing / C)
    cdef floating keep = <floating> (1 - c.smoothing)
    cdef floating wtot = <floating> c.weight_total
    cdef floating gs = <floating> c.grad_scale
    cdef floating egs = epsC * gs
    cdef floating m[RUN]
    cdef double s[RUN]          # sum of exps (double: see the module docstring)
    cdef double sw[RUN]         # sum_j w_j (x_j - m), smoothing only (else unset); float64 focal: r (pass 2)
    cdef floating wy[RUN]
    cdef floating dy[RUN]       # x_y - m
    cdef floating valid[RUN]    # 1 where the target is a class, 0 where ignored / invalid
    cdef floating tc[RUN]       # the target's gradient coefficient
    cdef floating scale[RUN]    # softmax scale of the gradient: (tc + ec) gs / s
    cdef double ey[RUN]         # exp(x_y - m), as summed into s
    cdef double pm1[RUN]        # focal: p_y - 1 = expm1(log p_y)
    cdef double lsdv[RUN]       # focal: log s, then log p_y
    cdef double modv[RUN]       # focal: (1 - p_y)^gamma
    cdef double Kv[RUN]         # focal: the gradient factor K
    cdef floating seen[RUN]     # float64 focal: 1 once the row's first maximum has been passed
    cdef bint first, fused
    cdef int32_t ys[RUN]        # the targets, -1 where ignored / invalid (run_labels)
    cdef const floating* xc
    cdef floating* gc
    cdef floating v, wj, d
    cdef double ec
    # targets of the run and their weights (run_targets), in branch-free loops
    bad = run_targets(c, i0, L, ys, wy, denom)
    for k in range(L):
        valid[k] = 1 if ys[k] >= 0 else 0
    # pass 1: max over classes and the target's logit, per position; pass 2: sum of exp (kept in the
    # gradient tile if any) and, for smoothing, the weighted logit sum in the same loop (one read of the
    # class; fl_tile.h).  Both passes fused per block of positions (fl_tile_ce.h; the same bits), float with
    # the smoothing sum in them; float64 without smoothing nor focal (whose pass 2 sums apart from the first
    # maximum)
    fused = False
    if floating is float:
        fused = fl_tile_ce_f32(xs, cs, C, L, ys, gbase, m, dy, s, w if eps != 0 else NULL,
                               sw if eps != 0 else NULL, pf, pf_bytes)
    else:
        fused = not c.focal and fl_tile_ce_f64(xs, cs, C, L, ys, gbase, m, dy, s, w if eps != 0 else NULL,
                                               sw if eps != 0 else NULL, pf, pf_bytes)
    if not fused:
        tile_max_pick(xs, cs, C, L, ys, m, dy)
    if fused:
        pass
    elif floating is float or not c.focal:
        tile_sumexp(xs, NULL, cs, C, L, m, w, gbase, FL_TS_DOT if eps != 0 else FL_TS_PLAIN, 0, 0, s, sw,
                    NULL)
    else:
        # float64 focal: r = the exps of every class but the first maximum (focal_log_sum's sum, in
        # its order, so the same bits), s = 1 + r; vectorised here instead of a strided pass per item
        for k in range(L):
            sw[k] = 0
            seen[k] = 0
        for j in range(C):
            xc = xs + j * cs
            gc = gbase + j * cs if gbase != NULL else NULL
            for k in range(L):
                d = xc[k] - m[k]
                v = f_exp_nonpos(d)
                if gbase != NULL:
                    gc[k] = v
                first = (d == 0) & (seen[k] == 0)
                seen[k] = 1 if first else seen[k]
                sw[k] = sw[k] + (0 if first else v)
    for k in range(L):
        dy[k] = dy[k] - m[k]
    if not c.focal:
        # branch-free over positions (selects on `valid`), so the log vectorises
        for k in range(L):
            v = ce_point(tile_log_sum(s[k], m), dy[k], wy[k], eps, epsC, wtot,
                         <floating> sw[k] if eps != 0 else 0)
            loss[k] = v if valid[k] != 0 else 0
        ec = epsC * wtot
        if gbase != NULL:
            for k in range(L):
                tc[k] = keep * wy[k]
                scale[k] = <floating> ((tc[k] + ec) * gs / s[k]) if valid[k] != 0 else 0
    else:
        ec = 0
        if c.alpha != NULL:
            for k in range(L):
                if ys[k] >= 0:
                    wy[k] = wy[k] * (<const floating*> c.alpha)[ys[k]]
        for k in range(L):
            if floating is float:    # log1p(s - 1) of the double sum: exact to float32
                lsdv[k] = dy[k] - fl_log1p(s[k] - 1)
            else:                    # log1p(r), r summed apart from the max's 1 in pass 2 (focal_log_sum)
                s[k] = 1 + sw[k]
                lsdv[k] = dy[k] - fl_log1p(sw[k])
        # lsdv now holds log p_y
        focal_run_terms(lsdv, L, c.gamma, pm1, modv, Kv)
        # branch-free over positions (selects on `valid`), so it vectorises
        for k in range(L):
            v = <floating> (wy[k] * modv[k] * -lsdv[k])
            loss[k] = v if valid[k] != 0 else 0
            v = <floating> (wy[k] * Kv[k])
            tc[k] = v if valid[k] != 0 else 0
            scale[k] = <floating> (tc[k] * gs / s[k]) if valid[k] != 0 else 0
    if gbase != NULL:
        for k in range(L):
            ey[k] = gbase[ys[k] * cs + k] if ys[k] >= 0 else 0
        # an ignored position's gradient is 0 by a select, not by its scale 0: its exps are nan where its
        # logits are (a nan or +inf logit), and nan * 0 left those entries nan (the row path writes 0s)
        for j in range(C):
            gc = gbase + j * cs
            if eps != 0:
                wj = (w[j] if w != NULL else 1) * egs
                for k in range(L):     # a select, not wj * valid: gs is nan for a mean over no targets
                    gc[k] = gc[k] * scale[k] - wj if valid[k] != 0 else 0
            else:
                for k in range(L):
                    gc[k] = gc[k] * scale[k] if valid[k] != 0 else 0
        for k in range(L):
            if ys[k] >= 0:
                gbase[ys[k] * cs + k] = <floating> target_grad(pm1[k] if c.focal else (ey[k] - s[k]) / s[k],
                                                               ey[k] / s[k], tc[k], ec, gs,
                                                               egs * (w[ys[k]] if w != NULL else 1))
    return bad


cdef Py_ssize_t ce_spatial_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                 floating* loss, floating* denom) noexcept nogil:
    """Items are (n, s) pairs, s contiguous: cut into runs inside one sample, read in place."""
    cdef Py_ssize_t C = c.C, S = c.S, bad = -1, i0 = start, n, p0, L
    while i0 < stop:
        n = i0 // S
        p0 = i0 - n * S
        L = min(stop - i0, S - p0, RUN)
        bad = first_bad(bad, ce_run(c, <const floating*> c.x + n * C * S + p0, S, i0, L, loss + (i0 - start),
                                    denom + (i0 - start) if denom != NULL else NULL,
                                    <floating*> c.grad + n * C * S + p0 if c.grad != NULL else NULL))
        i0 += L
    return bad


cdef Py_ssize_t ce_tile_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                              floating* loss, floating* denom) noexcept nogil:
    """(N, C) short rows (index_tiles_win): L rows at a time through a class-major tile (module docstring)."""
    cdef Py_ssize_t C = c.C, bad = -1, i0 = start, L, pf_rows
    cdef Py_ssize_t Lmax = tile_rows(C, sizeof(floating))
    cdef Py_ssize_t lsz = 8 if c.labels64 else 4
    cdef floating tile[TILE_CAP]
    cdef floating gtile[TILE_CAP]
    while i0 < stop:
        L = min(stop - i0, Lmax)
        pf_rows = next_tile_rows(max(c.pf_end, stop), i0, L, Lmax)
        to_tile(<const floating*> c.x + i0 * C, C, L, tile)
        if c.pf_end > 0:
            fl_prefetch_l2(<const char*> c.labels + (i0 + L) * lsz, pf_rows * lsz)
        bad = first_bad(bad, ce_run(c, tile, L, i0, L, loss + (i0 - start),
                                    denom + (i0 - start) if denom != NULL else NULL,
                                    gtile if c.grad != NULL else NULL, <const floating*> c.x + (i0 + L) * C,
                                    pf_rows * C * sizeof(floating)))
        if c.grad != NULL:
            from_tile(gtile, C, L, <floating*> c.grad + i0 * C)
        i0 += L
    return bad


cdef extern from "fl_short_rows.h" nogil:
    enum: FL_SHORT_ROWS     # 1 where this level has the register path (AVX2, 8 float lanes), else 0
    enum: FL_SR_MIN_C
    enum: FL_SR_MAX_C
    enum: FL_SRD_MIN_C
    enum: FL_SRD_MAX_C
    bint fl_ce_short_rows_f32(const float* x, Py_ssize_t C, Py_ssize_t L, const int32_t* ys, const float* wy,
                              float* loss)
    bint fl_ce_short_rows_f64(const double* x, Py_ssize_t C, Py_ssize_t L, const int32_t* ys, const double* wy,
                              double* loss)


cdef inline bint short_rows_win(Py_ssize_t C, Py_ssize_t itemsize, bint focal, bint grad,
                                double smoothing) noexcept nogil:
    """Whether (N, C) rows with class-index targets go through ce_short_rows_block: float32 with
    FL_SR_MIN_C <= C <= FL_SR_MAX_C (8-40), float64 with FL_SRD_MIN_C <= C <= FL_SRD_MAX_C (4-48), the loss
    alone (no gradient, label smoothing or focal term), at a level with the register path (AVX2; the AVX-512
    level keeps its 16-lane tiles, not measured against it).  Against the class-major tiles (Zen 3, thread
    time, 2^20 logits, rows / tiles time): float32 0.70-0.73 at C = 8-12, 0.79-0.83 at 13-21, 0.82-0.93 at
    22-40, from C = 44 on 1.35-2.0; float64 0.68-0.86 at C = 4-47 (against the rows from C = 28), 0.91 at 48
    (fl_short_rows.h).  The float64 loss at C = 28-48 then differs in its last bits from the same call with
    the gradient, which runs along the rows there (index_tiles_win)."""
    if FL_SHORT_ROWS == 0 or focal or grad or smoothing != 0:
        return False
    if itemsize == 4:
        return FL_SR_MIN_C <= C <= FL_SR_MAX_C
    return FL_SRD_MIN_C <= C <= FL_SRD_MAX_C


cdef Py_ssize_t ce_short_rows_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                    floating* loss, floating* denom) noexcept nogil:
    """(N, C) rows of 8-40 (float32) or 4-48 (float64) classes, the loss alone (short_rows_win): RUN rows at a
    time, their targets and weights as ce_run forms them, the rows themselves transposed 8 (4) at a time in
    registers (fl_short_rows.h; the same bits as the tiles of ce_tile_block)."""
    cdef Py_ssize_t C = c.C, bad = -1, i0 = start, L
    cdef int32_t ys[RUN]
    cdef floating wy[RUN]
    while i0 < stop:
        L = min(stop - i0, RUN)
        bad = first_bad(bad, run_targets(c, i0, L, ys, wy, denom + (i0 - start) if denom != NULL else NULL))
        if floating is float:
            fl_ce_short_rows_f32(<const float*> c.x + i0 * C, C, L, ys, wy, loss + (i0 - start))
        else:
            fl_ce_short_rows_f64(<const double*> c.x + i0 * C, C, L, ys, wy, loss + (i0 - start))
        i0 += L
    return bad


cdef Py_ssize_t ce_target_weight_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                       floating* loss, floating* denom) noexcept nogil:
    """Only the mean's denominator: sum of w_y over non-ignored items (a pass over the labels alone,
    run before a gradient pass so the gradient can be scaled as it is written)."""
    cdef const floating* w = <const floating*> c.weight
    cdef Py_ssize_t i, bad = -1
    cdef int64_t y
    for i in range(start, stop):
        y = checked_label(c.labels, c.labels64, i, c.C, c.ignore_index, &bad)
        if y < 0:
            loss[i - start] = 0
        else:
            loss[i - start] = w[y] if w != NULL else 1
    return bad


cdef double mean_grad_scale(const CeCtx* c, Py_ssize_t n_items, Py_ssize_t itemsize, int num_threads) except? -1.0:
    """1 / (sum of w_y over the non-ignored items), nan if that is 0: the gradient scale of a mean, from a
    pass over the labels alone, run before a gradient pass so the gradient is scaled as it is written.
    Reads c.labels, c.labels64, c.weight, c.C and c.ignore_index only."""
    cdef BlockFn fn = <BlockFn> ce_target_weight_block[float] if itemsize == 4 else \
        <BlockFn> ce_target_weight_block[double]
    cdef double total = run(fn, c, n_items, 1, itemsize, num_threads, None, False)[0]
    return 1.0 / total if total != 0 else float("nan")


# A logit costs an exp (0.6-0.7 ns at AVX2), 3-6x an elementwise item, so cross-entropy (index and probability
# targets, and the distillation loss: two softmaxes) goes parallel from 8192 logits on, not run's default
# 32768: 2 threads took 0.67-0.80x the serial time of N = 1000-3200 rows of 10 classes (issue 16's small
# call, N = 1000: 9.7 -> 7.5 us), 200 rows of 100, 20 of 1000, and 0.82x at 82 rows of 100, the threshold
# (AVX2, Zen 3, 2026-12-03; benchmarks/ab_mid_sizes.py).
# Index targets in float32 at AVX-512 go parallel from 16384 logits: a logit costs about half an AVX2 one
# there, and 2 threads took 1.12-1.40x the serial time at 10 000 logits (N x C = 1000 x 10, 100 x 100,
# 10 x 1000), 1.02-1.23x at 14 000, 0.93 / 1.00 / 1.13x at 16 000 and 0.81-0.89x from 20 000 at C = 10 and
# 100 (Intel Xeon, 2026-12-06, wall-clock minima of 200 calls).  Float64 there keeps 8192 (0.80x at
# 1000 x 10, 0.95x at 100 x 100), as probability targets (1.06x at 1000 x 10, 0.74x at 3000 x 10) and the
# distillation loss (0.72x at 1000 x 10: two softmaxes) do.
cdef enum:
    CE_SERIAL_WORK = 8192
    CE_SERIAL_WORK_F32_AVX512 = 16384


cdef inline Py_ssize_t ce_serial_work(Py_ssize_t itemsize) noexcept nogil:
    """run's serial threshold for index-target cross-entropy's logits of this itemsize (above)."""
    return CE_SERIAL_WORK_F32_AVX512 if itemsize == 4 and FL_CE_F32_LANES == 16 else CE_SERIAL_WORK


# ---------------------------------------------------------------- cross_entropy's usual call, recognised
cdef PyTypeObject* NDARRAY = <PyTypeObject*> np.ndarray


def plain_index_rows(x, labels):
    """C when ``x`` is exactly a numpy.ndarray of (N, C) float32/float64 logits and ``labels`` exactly a
    numpy.ndarray of N int32/int64 class indices, both C-contiguous, aligned and in native byte order
    (cross_entropy's usual call: both read in place as they are); else -1 (the wrapper converts and checks
    them).  Reads the array structs alone: ~0.1 us, where the wrapper's attribute reads (``.flags`` builds
    an object per access, ``.shape`` a tuple) cost ~1.2 us of a small call."""
    cdef int need = NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED
    cdef PyArrayObject* a
    cdef PyArrayObject* t
    cdef PyArray_Descr* d
    if Py_TYPE(x) != NDARRAY or Py_TYPE(labels) != NDARRAY:
        return -1
    a = <PyArrayObject*> x
    t = <PyArrayObject*> labels
    if PyArray_NDIM(a) != 2 or PyArray_NDIM(t) != 1 or PyArray_DIMS(t)[0] != PyArray_DIMS(a)[0]:
        return -1
    if PyArray_FLAGS(a) & need != need or PyArray_FLAGS(t) & need != need:
        return -1
    d = PyArray_DESCR(a)
    if d.byteorder == NPY_OPPBYTE or (d.type_num != NPY_FLOAT and d.type_num != NPY_DOUBLE):
        return -1
    d = PyArray_DESCR(t)
    if d.byteorder == NPY_OPPBYTE or native_itemsize(d.type_num, b'i') not in (4, 8):
        return -1
    return PyArray_DIMS(a)[1]


def cross_entropy_index(x, labels, out, grad, *, weight=None, Py_ssize_t C, Py_ssize_t S=1,
                        int64_t ignore_index, double smoothing=0.0, bint mean=False, focal_gamma=None,
                        focal_alpha=None, int num_threads=1):
    """Kernel entry: softmax cross-entropy with class-index targets (and the softmax focal loss).

    x (N, C, S) C-contiguous float32/64 (S=1 for rows), labels (N*S,) int32/int64, out (N*S,) for
    reduction="none" or None to reduce, grad like x or None.  Options (keywords): weight (C,) or None;
    ignore_index, the label value to skip; smoothing, torch's label_smoothing; mean, whether the result is
    a weighted mean (the gradient is then scaled by 1 / sum of w_y, and the denominators are summed);
    focal_gamma None (cross-entropy) or gamma >= 0 (softmax focal loss, with focal_alpha (C,) or None).
    Returns (loss_sum, denom_sum, first_bad_index)."""
    # boundary checks (_common.pxd): every buffer's dtype, layout and length before any pointer is taken
    check_buffer(labels, "labels", b'i', 0, -1, False)
    if (buffer_items(labels) % S if check_count(S, "S") else buffer_items(labels)):
        raise ValueError(f"fastloss kernel: {buffer_items(labels)} items do not form rows of S={S} positions")
    cdef Py_ssize_t isz = check_buffer(x, "x", b'f', 0, items_product(buffer_items(labels), check_count(C, "C")),
                                       False)
    check_optional(weight, "weight", b'f', isz, C, False)
    check_optional(focal_alpha, "focal_alpha", b'f', isz, C, False)
    check_optional(out, "out", b'f', isz, buffer_items(labels), True)
    check_optional(grad, "grad", b'f', isz, buffer_items(x), True)
    cdef CeCtx c
    cdef Py_ssize_t itemsize = x.dtype.itemsize
    cdef Py_ssize_t n_items = labels.shape[0]
    cdef BlockFn fn
    cdef Py_ssize_t min_block = 1
    c.x = ptr_or_null(x)
    c.labels = ptr_or_null(labels)
    c.labels64 = labels.dtype.itemsize == 8
    c.weight = ptr_or_null(weight)
    c.weight_total = float(np.sum(weight, dtype=np.float64)) if weight is not None else C
    c.pf_end = prefetch_end(n_items, x.nbytes + labels.nbytes)
    c.C = C
    c.S = S
    c.ignore_index = ignore_index
    c.smoothing = smoothing
    c.grad = NULL
    c.grad_scale = 1.0
    c.focal = focal_gamma is not None
    c.gamma = focal_gamma if c.focal else 0.0
    c.alpha = ptr_or_null(focal_alpha)
    if grad is not None and mean:
        c.grad_scale = mean_grad_scale(&c, n_items, itemsize, num_threads)
    c.grad = ptr_or_null(grad)
    if S == 1 and short_rows_win(C, itemsize, c.focal, grad is not None, smoothing):
        fn = <BlockFn> ce_short_rows_block[float] if itemsize == 4 else <BlockFn> ce_short_rows_block[double]
    elif S == 1 and index_tiles_win(C, itemsize, c.focal, grad is not None):
        fn = <BlockFn> ce_tile_block[float] if itemsize == 4 else <BlockFn> ce_tile_block[double]
    elif S == 1:
        fn = <BlockFn> ce_rows_block[float] if itemsize == 4 else <BlockFn> ce_rows_block[double]
        min_block = rows_block_items(itemsize, grad is not None)
    else:
        fn = <BlockFn> ce_spatial_block[float] if itemsize == 4 else <BlockFn> ce_spatial_block[double]
    return run(fn, &c, n_items, C, itemsize, num_threads, out, mean, False, ce_serial_work(itemsize), min_block)


# =====================================================================================================
# Cross-entropy with class-probability targets, NLL, multi-margin, distillation: row kernels on the
# (N, C, S) layout (S = 1 for rows; class j of item (n, s) at n*C*S + j*S + s).
# =====================================================================================================

cdef struct RowCtx:
    const void* x           # (N, C, S) logits / student logits (multi-margin: (N, C) scores)
    const void* t           # probability targets or teacher logits (same layout), or NULL
    const void* labels      # class indices (N*S,) or NULL
    bint labels64
    const void* weight      # (C,) or NULL
    Py_ssize_t pf_end       # probability-target tiles prefetch the next tile below this row (prefetch_end)
    Py_ssize_t C
    Py_ssize_t S
    double smoothing        # ce_probs: label smoothing
    double margin           # multi_margin: the margin
    int power               # multi_margin: p (1 or 2)
    double temperature      # distillation: T
    void* grad
    double grad_scale


# CE with probability targets t (smoothed: t' = (1 - eps) t + eps / C), weights w:
#   loss = sum_j w_j t'_j (lse - x_j) = A log s - D,   tw_j = w_j t'_j,  A = sum_j tw_j,  D = sum_j tw_j (x_j - m)
#   dloss/dx_j = A p_j - tw_j,   p_j = exp(x_j - m) / s
# (torch: cross_entropy with float targets).  With w, t >= 0 and x_j - m <= 0, A log s and -D are both
# non-negative: no cancellation, and no lse = log s + m (which rounds to ulp(m) in float32, ~1e-3 at
# |m| = 1e4).  A and D accumulate in double (fl_reduce.h): a float32 running sum of 32000 target terms was
# 1.8e-4 off (issue 14).  Three layouts as for index targets: long rows (row primitives), short rows
# (class-major tiles) and spatial, the last two through ce_probs_run.
cdef inline floating soft_target(floating t, floating wj, floating keep, floating add) noexcept nogil:
    """tw_j = w_j ((1 - eps) t_j + eps / C): the smoothed, weighted target (as fl_row_soft_sums)."""
    return wj * (keep * t + add)


cdef Py_ssize_t ce_probs_rows_block(const RowCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                    floating* loss, floating* denom) noexcept nogil:
    """(N, C) rows too long for tiles (probs_tiles_win), each pass along one row: the row passes of
    LOSS_ROWS rows (rows_sums: exps into the gradient, A and D), then each row's gradient, and the loss
    epilogue (log1p of s - 1) of the LOSS_ROWS rows as one vectorised loop (as ce_rows_loss_block)."""
    cdef Py_ssize_t C = c.C, i0, k, L, j
    cdef const floating* w = <const floating*> c.weight
    cdef const floating* trow
    cdef floating* g
    cdef floating keep = <floating> (1 - c.smoothing), add = <floating> (c.smoothing / C), gs = <floating> c.grad_scale
    cdef floating scale, wj
    cdef Py_ssize_t rows[LOSS_ROWS]
    cdef floating m[LOSS_ROWS]
    cdef double s[LOSS_ROWS]
    cdef double A[LOSS_ROWS]
    cdef double D[LOSS_ROWS]
    i0 = start
    while i0 < stop:
        L = min(<Py_ssize_t> LOSS_ROWS, stop - i0)
        for k in range(L):
            rows[k] = i0 + k
        if c.grad == NULL:
            rows_sums(<const floating*> c.x, <const floating*> c.t, w, <floating*> NULL, C, rows, L, SUMS_SOFT,
                      keep, add, m, s, A, D)
        else:
            for k in range(L):          # each row's gradient written while its exps are in cache
                rows_sums(<const floating*> c.x, <const floating*> c.t, w, <floating*> c.grad, C, rows + k, 1,
                          SUMS_SOFT, keep, add, m + k, s + k, A + k, D + k)
                trow = <const floating*> c.t + rows[k] * C
                g = <floating*> c.grad + rows[k] * C       # exp(x_j - m) (rows_sums)
                scale = <floating> (A[k] * gs / s[k])
                for j in range(C):
                    wj = w[j] if w != NULL else 1
                    g[j] = g[j] * scale - soft_target(trow[j], wj, keep, add) * gs
        for k in range(L):              # log_sum's argument s - 1 is exact in double
            loss[i0 - start + k] = <floating> (A[k] * f_log1p(<floating> (s[k] - 1)) - D[k]) if C > 0 else 0  # (C = 0: empty sum)
        i0 += L
    return -1


cdef void ce_probs_run(const RowCtx* c, const floating* xs, const floating* ts, Py_ssize_t cs, Py_ssize_t L,
                       floating* loss, floating* gbase, const floating* xrows,
                       const floating* trows, const void* pf=NULL, const void* pf2=NULL,
                       Py_ssize_t pf_bytes=0) noexcept nogil:
    """Probability-target CE of L <= RUN positions laid out class-major (logits xs, targets ts, gradient
    gbase, class j at offset j * cs); loops along the positions, as ce_run.  float32 at AVX2 / AVX-512: max,
    sum of exps and target sums in one fused pass, in registers (fl_tile_ce_soft_f32).  xrows != NULL
    (float32 rows): the same L positions are also rows in place (logits xrows, targets trows, row k at
    k * C), and the target sums A, D are dot products along them (fl_rows_soft_sums_f32: no target tile;
    the fused pass forms m and s alone; ts is read only by the gradient, which ce_probs_tile_block does
    not combine with xrows).  pf, pf2, pf_bytes: memory the caller reads next (the next tile's logits and
    targets), prefetched during the fused pass (fl_tile_ce.h), or NULL."""
    cdef Py_ssize_t C = c.C, k, j
    cdef const floating* w = <const floating*> c.weight
    cdef floating keep = <floating> (1 - c.smoothing), add = <floating> (c.smoothing / C), gs = <floating> c.grad_scale
    cdef floating m[RUN]
    cdef double s[RUN]
    cdef double A[RUN]
    cdef double D[RUN]
    cdef floating scale[RUN]
    cdef const floating* tcl
    cdef floating* gc
    cdef floating wj
    if floating is float and fl_tile_ce_soft_f32(xs, ts if xrows == NULL else NULL, cs, C, L, w, keep, add,
                                                 gbase, m, s, A, D, pf, pf2, pf_bytes):
        if xrows != NULL:
            fl_rows_soft_sums_f32(xrows, trows, C, L, m, w, keep, add, A, D)
    elif floating is double and fl_tile_ce_soft_f64(xs, ts, cs, C, L, w, keep, add, gbase, m, s, A, D, pf, pf2,
                                                    pf_bytes):
        pass
    else:
        tile_max_pick(xs, cs, C, L, NULL, m, NULL)
        if floating is float and xrows != NULL:
            tile_sumexp(xs, ts, cs, C, L, m, w, gbase, FL_TS_PLAIN, keep, add, s, A, D)
            fl_rows_soft_sums_f32(xrows, trows, C, L, m, w, keep, add, A, D)
        else:
            tile_sumexp(xs, ts, cs, C, L, m, w, gbase, FL_TS_SOFT, keep, add, s, A, D)
    for k in range(L):
        loss[k] = <floating> (A[k] * tile_log_sum(s[k], m) - D[k])
    if gbase != NULL:
        for k in range(L):
            scale[k] = <floating> (A[k] * gs / s[k])
        for j in range(C):
            gc = gbase + j * cs
            tcl = ts + j * cs
            wj = w[j] if w != NULL else 1
            for k in range(L):
                gc[k] = gc[k] * scale[k] - soft_target(tcl[k], wj, keep, add) * gs


cdef Py_ssize_t ce_probs_spatial_block(const RowCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                       floating* loss, floating* denom) noexcept nogil:
    """(N, C, S) with S > 1: runs of positions inside one sample, read in place (as ce_spatial_block)."""
    cdef Py_ssize_t C = c.C, S = c.S, i0 = start, n, p0, L, at
    while i0 < stop:
        n = i0 // S
        p0 = i0 - n * S
        L = min(stop - i0, S - p0, RUN)
        at = n * C * S + p0
        ce_probs_run(c, <const floating*> c.x + at, <const floating*> c.t + at, S, L, loss + (i0 - start),
                     <floating*> c.grad + at if c.grad != NULL else NULL, NULL, NULL)
        i0 += L
    return -1


cdef Py_ssize_t ce_probs_tile_block(const RowCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                    floating* loss, floating* denom) noexcept nogil:
    """(N, C) short rows (probs_tiles_win): logits and targets through class-major tiles (as ce_tile_block);
    float32 loss alone with C >= FL_CE_SOFT_ROWS_MIN_C (22; baseline level only): the target sums are taken
    along the rows in place (ce_probs_run), the targets not transposed.  Below that C a row costs more as dot
    products (a row of 10-20 classes is 2-3 vectors, the last one mostly padding, and its lanes still to be
    summed) than its targets' transpose and tile pass: measured (AVX2, Zen 2, thread time, 2^20 logits)
    C = 17 / 20: 7% / 5% slower along the rows, C = 21: even, C = 24 / 31 / 36 / 48: 10% / 10% / 9% / 15%
    faster, before m and s were fused.  With the fused pass (A, D beside m and s, in registers) the
    transposed targets measured 4-9% faster than the row sums at every C = 22-48 (AVX2, Zen 3, 2026-12-03),
    so AVX2 transposes them; so does AVX-512, where the transposed targets measured 2-8% faster at C = 34-72
    and even (+-2%) at 22-30 (Zen 4, 2026-12-06, benchmarks/ab_ce_classes.py); baseline (no fused pass) keeps
    22.  With the gradient the targets' tile is needed anyway (its target term), and the row sums on top of
    it measured no faster (noisy: -7% to +15% at C = 24-36), so that path is unchanged; at baseline its loss
    can differ from the loss alone in the last bits (as between the tile and row paths)."""
    cdef Py_ssize_t C = c.C, i0 = start, L
    cdef Py_ssize_t Lmax = tile_rows(C, sizeof(floating))
    cdef floating xtile[TILE_CAP]
    cdef floating ttile[TILE_CAP]
    cdef floating gtile[TILE_CAP]
    cdef bint rows_sums = floating is float and C >= FL_CE_SOFT_ROWS_MIN_C and c.grad == NULL
    cdef const floating* xrows
    cdef const floating* trows
    while i0 < stop:
        L = min(stop - i0, Lmax)
        xrows = <const floating*> c.x + i0 * C
        trows = <const floating*> c.t + i0 * C
        to_tile(xrows, C, L, xtile)
        if not rows_sums:
            to_tile(trows, C, L, ttile)
        ce_probs_run(c, xtile, ttile, L, L, loss + (i0 - start), gtile if c.grad != NULL else NULL,
                     xrows if rows_sums else NULL, trows if rows_sums else NULL,
                     xrows + L * C, trows + L * C,
                     next_tile_rows(c.pf_end, i0, L, Lmax) * C * sizeof(floating))
        if c.grad != NULL:
            from_tile(gtile, C, L, <floating*> c.grad + i0 * C)
        i0 += L
    return -1


# NLL on log-probabilities: loss = -w_y x_y; dloss/dx_j = -w_y [j = y] (grad pre-zeroed by the caller).
# Its context is cross-entropy's (the same labels, weights and ignore_index; the mean's pre-pass).
cdef Py_ssize_t nll_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                          floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t C = c.C, S = c.S, i, at, bad = -1
    cdef const floating* w = <const floating*> c.weight
    cdef floating wy
    cdef int64_t y
    for i in range(start, stop):
        y = checked_label(c.labels, c.labels64, i, C, c.ignore_index, &bad)
        if y < 0:
            loss[i - start] = 0
            if denom != NULL:
                denom[i - start] = 0
            continue
        wy = w[y] if w != NULL else 1
        at = (i // S) * C * S + y * S + i % S
        loss[i - start] = -wy * (<const floating*> c.x)[at]
        if denom != NULL:
            denom[i - start] = wy
        if c.grad != NULL:
            (<floating*> c.grad)[at] = -wy * <floating> c.grad_scale
    return bad


# torch multi_margin_loss: loss = w_y / C * sum_{j != y} h_j^p,  h_j = max(0, margin - x_y + x_j);
# dloss/dx_j = w_y / C * p h_j^(p-1) [h_j > 0] for j != y, and dloss/dx_y = -sum of those.
# NaN exactly as torch (aten/src/ATen/native/LossMultiMargin.cpp, multi_margin_inner_sum_cpu and its
# backward): a term counts only `if (z > 0)`, so a nan z is skipped -- a nan non-target logit adds
# nothing, a nan target logit makes every z nan and the row loss 0; the gradient is 0 there.
cdef Py_ssize_t multi_margin_block(const RowCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                   floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t C = c.C, i, j, bad = -1
    cdef const floating* w = <const floating*> c.weight
    cdef const floating* row
    cdef floating* g
    cdef floating h, wy, d
    cdef double acc, gy          # row sums in double (as every float32 row sum: fl_reduce.h)
    cdef floating margin = <floating> c.margin
    cdef int64_t y
    for i in range(start, stop):
        y = read_label(c.labels, c.labels64, i)
        row = <const floating*> c.x + i * C
        g = <floating*> c.grad + i * C if c.grad != NULL else NULL
        if y < 0 or y >= C:
            if bad < 0:
                bad = i
            loss[i - start] = 0
            continue
        wy = (w[y] if w != NULL else 1) / C
        acc = 0
        gy = 0
        for j in range(C):
            h = margin - row[y] + row[j]
            if j == y or not h > 0:        # torch skips every term with h not > 0, nan included
                if g != NULL:
                    g[j] = 0
                continue
            acc = acc + <double> (h if c.power == 1 else h * h)
            if g != NULL:
                d = wy * (1 if c.power == 1 else 2 * h) * <floating> c.grad_scale
                g[j] = d
                gy = gy + d
        if g != NULL:
            g[y] = <floating> -gy
        loss[i - start] = <floating> (wy * acc)
    return bad


cdef Py_ssize_t multi_margin_run(const RowCtx* c, const floating* xs, Py_ssize_t i0, Py_ssize_t L,
                                 floating* loss, floating* gbase) noexcept nogil:
    """multi_margin_block on rows i0 .. i0+L-1 (L <= RUN) in a class-major tile xs[j * L + k] (gradient tile
    gbase, same layout): the same terms, summed in the same order (classes ascending, in double), so the
    same bits; every loop runs along the L rows with selects for the skipped terms, so it vectorises."""
    cdef Py_ssize_t C = c.C, bad = -1, j, k
    cdef const floating* w = <const floating*> c.weight
    cdef floating margin = <floating> c.margin
    cdef floating gsf = <floating> c.grad_scale
    cdef bint p2 = c.power == 2
    cdef floating one = 1, two = 2   # typed: bare literals are C doubles and would widen float32 maths
    cdef floating xy[RUN]
    cdef floating wy[RUN]
    cdef int32_t ys[RUN]            # the row's class, -1 where invalid (C < 2^31: a tile row fits)
    cdef double acc[RUN]
    cdef double gy[RUN]
    cdef const floating* xc
    cdef floating* gc
    cdef floating h, d
    cdef bint on
    cdef int64_t y
    for k in range(L):
        y = read_label(c.labels, c.labels64, i0 + k)
        if y < 0 or y >= C:
            if bad < 0:
                bad = i0 + k
            ys[k] = -1
            wy[k] = 0
            xy[k] = 0
        else:
            ys[k] = <int32_t> y
            wy[k] = (w[y] if w != NULL else 1) / C
            xy[k] = xs[y * L + k]
        acc[k] = 0
        gy[k] = 0
    for j in range(C):
        xc = xs + j * L
        if gbase != NULL:
            gc = gbase + j * L
            for k in range(L):
                h = margin - xy[k] + xc[k]
                on = (h > 0) & (ys[k] != <int32_t> j) & (ys[k] >= 0)   # torch skips h not > 0, nan included
                acc[k] = acc[k] + (<double> (h * (h if p2 else one)) if on else 0.0)
                d = wy[k] * (two * h if p2 else one) * gsf
                d = d if on else 0
                gc[k] = d
                gy[k] = gy[k] + d
        else:
            for k in range(L):
                h = margin - xy[k] + xc[k]
                on = (h > 0) & (ys[k] != <int32_t> j) & (ys[k] >= 0)
                acc[k] = acc[k] + (<double> (h * (h if p2 else one)) if on else 0.0)
    for k in range(L):
        loss[k] = <floating> (wy[k] * acc[k]) if ys[k] >= 0 else 0
    if gbase != NULL:
        for k in range(L):
            if ys[k] >= 0:
                gbase[ys[k] * L + k] = <floating> -gy[k]
    return bad


cdef Py_ssize_t multi_margin_tile_block(const RowCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                        floating* loss, floating* denom) noexcept nogil:
    """(N, C) short rows (multi_margin_tiles_win): L rows at a time through a class-major tile (as
    ce_tile_block); the row loop of multi_margin_block pays a compare-and-branch per logit and a tail per
    row."""
    cdef Py_ssize_t C = c.C, bad = -1, i0 = start, L
    cdef Py_ssize_t Lmax = tile_rows(C, sizeof(floating))
    cdef floating tile[TILE_CAP]
    cdef floating gtile[TILE_CAP]
    while i0 < stop:
        L = min(stop - i0, Lmax)
        to_tile(<const floating*> c.x + i0 * C, C, L, tile)
        bad = first_bad(bad, multi_margin_run(c, tile, i0, L, loss + (i0 - start),
                                              gtile if c.grad != NULL else NULL))
        if c.grad != NULL:
            from_tile(gtile, C, L, <floating*> c.grad + i0 * C)
        i0 += L
    return bad


# Distillation (SPEC §6), rows: with a_j = (x_j - max x) / T (student), b_j = (u_j - max u) / T (teacher),
# q = softmax(b), p = softmax(a), ss = sum_j exp(a_j), st = sum_j exp(b_j):
#   loss = T^2 KL(q || p) = T^2 sum_j q_j ((b_j - a_j) - log(st / ss)) = T^2 (W / st - log(st / ss)),
#   W = sum_j exp(b_j) (b_j - a_j);   dloss/dx_j = T (p_j - q_j).
# Computed in double whatever the data type: T^2 KL is O(1) while its two terms are O(T) (they cancel
# by a factor ~T), and the exps of the sums must be good to ~1e-7 / T^2 -- float32 exps gave 20x SPEC's
# tolerance at T = 10 (issue 14).  log(st / ss), one log of a ratio near 1, not log st - log ss: each log
# is off by ~1 ulp of log C, which T^2 would amplify.  Each logit is shifted by its row max before the
# scaling (the difference is exact in double for float32 data).
cdef Py_ssize_t distillation_block(const RowCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                   floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t C = c.C, i, j
    cdef double T = c.temperature, invT = 1 / c.temperature, gs = c.grad_scale
    cdef const floating* xs
    cdef const floating* xt
    cdef floating* g
    cdef double ms, mt, ss, st, W
    for i in range(start, stop):
        xs = <const floating*> c.x + i * C
        xt = <const floating*> c.t + i * C
        g = <floating*> c.grad + i * C if c.grad != NULL else NULL
        ms = row_max(xs, C)
        mt = row_max(xt, C)
        if floating is float:
            fl_row_kl_sums_f32(xs, xt, C, ms, mt, invT, &ss, &st, &W)
        else:
            fl_row_kl_sums_f64(xs, xt, C, ms, mt, invT, &ss, &st, &W)
        loss[i - start] = <floating> (T * T * (W / st - log(st / ss)))
        if g != NULL:
            if floating is float:
                fl_row_kl_grad_f32(xs, xt, C, ms, mt, invT, ss, st, T * gs, g)
            else:
                fl_row_kl_grad_f64(xs, xt, C, ms, mt, invT, ss, st, T * gs, g)
    return -1


cdef extern from "fl_tile.h" nogil:
    void fl_tile_kl_f32(const float* xs, const float* us, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                        const float* mx, const float* mu, double inv_t, double* ss, double* st, double* W,
                        double scale, float* g)
    void fl_tile_kl_f64(const double* xs, const double* us, Py_ssize_t cs, Py_ssize_t C, Py_ssize_t L,
                        const double* mx, const double* mu, double inv_t, double* ss, double* st, double* W,
                        double scale, double* g)


cdef inline void tile_kl(const floating* xs, const floating* us, Py_ssize_t C, Py_ssize_t L, const floating* mx,
                         const floating* mu, double inv_t, double* ss, double* st, double* W, double scale,
                         floating* g) noexcept nogil:
    if floating is float:
        fl_tile_kl_f32(xs, us, L, C, L, mx, mu, inv_t, ss, st, W, scale, g)
    else:
        fl_tile_kl_f64(xs, us, L, C, L, mx, mu, inv_t, ss, st, W, scale, g)


cdef Py_ssize_t distillation_tile_block(const RowCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                        floating* loss, floating* denom) noexcept nogil:
    """(N, C) short rows (distill_tiles_win): distillation_block's sums and gradient over L rows at a
    time, student and teacher transposed into class-major tiles (fl_tile_kl: every loop along the rows, in
    double lanes), as ce_probs_tile_block does for probability targets.  The same terms as the row path,
    summed in class order instead of the row pass's lanes: the last bits differ."""
    cdef Py_ssize_t C = c.C, i0 = start, L, k
    cdef Py_ssize_t Lmax = tile_rows(C, sizeof(floating))
    cdef double T = c.temperature, invT = 1 / c.temperature
    cdef floating xtile[TILE_CAP]
    cdef floating ttile[TILE_CAP]
    cdef floating gtile[TILE_CAP]
    cdef floating mx[RUN]
    cdef floating mu[RUN]
    cdef double ss[RUN]
    cdef double st[RUN]
    cdef double W[RUN]
    while i0 < stop:
        L = min(stop - i0, Lmax)
        to_tile(<const floating*> c.x + i0 * C, C, L, xtile)
        to_tile(<const floating*> c.t + i0 * C, C, L, ttile)
        tile_max_pick(xtile, L, C, L, NULL, mx, NULL)
        tile_max_pick(ttile, L, C, L, NULL, mu, NULL)
        tile_kl(xtile, ttile, C, L, mx, mu, invT, ss, st, W, 0, NULL)
        for k in range(L):
            loss[i0 - start + k] = <floating> (T * T * (W[k] / st[k] - log(st[k] / ss[k])))
        if c.grad != NULL:
            tile_kl(xtile, ttile, C, L, mx, mu, invT, ss, st, W, T * c.grad_scale, gtile)
            from_tile(gtile, C, L, <floating*> c.grad + i0 * C)
        i0 += L
    return -1


# ---------------------------------------------------------------- row entries (one per loss)
cdef Py_ssize_t check_rows(x, t, str t_name, labels, weight, out, grad, Py_ssize_t C, Py_ssize_t S) except -1:
    """The boundary checks of a row entry (_common.pxd): x holds n rows of C classes at S positions each
    (n a multiple of S); t (like x) or labels (one per row) as the loss reads them.  Returns x's item size."""
    cdef Py_ssize_t itemsize = check_buffer(x, "x", b'f', 0, -1, False)
    if check_count(C, "C") and buffer_items(x) % C:
        raise ValueError(f"fastloss kernel: x has {buffer_items(x)} items, not a multiple of C={C}")
    if ((buffer_items(x) // C) % S if check_count(S, "S") else buffer_items(x)) if C else 0:
        raise ValueError(f"fastloss kernel: the items of x do not form rows of S={S} positions")
    if t_name is not None:
        if t is None:
            raise TypeError(f"fastloss kernel: {t_name} is required")
        check_buffer(t, t_name, b'f', itemsize, buffer_items(x), False)
    else:
        if labels is None:
            raise TypeError("fastloss kernel: labels is required")
        check_buffer(labels, "labels", b'i', 0, (buffer_items(x) // C) if C else 0, False)
    check_optional(weight, "weight", b'f', itemsize, C, False)
    check_optional(out, "out", b'f', itemsize, (buffer_items(x) // C) if C else 0, True)
    check_optional(grad, "grad", b'f', itemsize, buffer_items(x), True)
    return itemsize


cdef inline void set_rows(RowCtx* c, x, t, labels, weight, grad, Py_ssize_t C, Py_ssize_t S,
                          double grad_scale):
    c.x = ptr_or_null(x)
    c.t = ptr_or_null(t)
    c.labels = ptr_or_null(labels)
    c.labels64 = labels is not None and labels.dtype.itemsize == 8
    c.weight = ptr_or_null(weight)
    c.pf_end = prefetch_end(x.size // (C * S) if C * S > 0 else 0, x.nbytes + (t.nbytes if t is not None else 0))
    c.C = C
    c.S = S
    c.smoothing = 0.0
    c.margin = 0.0
    c.power = 1
    c.temperature = 1.0
    c.grad = ptr_or_null(grad)
    c.grad_scale = grad_scale


def ce_probs(x, t, out, grad, *, weight=None, Py_ssize_t C, Py_ssize_t S=1, double smoothing=0.0,
             double grad_scale=1.0, int num_threads=1):
    """Kernel entry: cross-entropy with class-probability targets t (like x, (N, C, S)), smoothed by
    ``smoothing``; the gradient is scaled by grad_scale.  Returns (loss_sum, 0, -1)."""
    cdef Py_ssize_t itemsize = check_rows(x, t, "t", None, weight, out, grad, C, S)
    cdef RowCtx c
    cdef BlockFn fn
    cdef Py_ssize_t min_block = 1
    set_rows(&c, x, t, None, weight, grad, C, S, grad_scale)
    c.smoothing = smoothing
    if S == 1 and probs_tiles_win(C, itemsize, grad is not None):
        fn = <BlockFn> ce_probs_tile_block[float] if itemsize == 4 else <BlockFn> ce_probs_tile_block[double]
    elif S == 1:
        fn = <BlockFn> ce_probs_rows_block[float] if itemsize == 4 else <BlockFn> ce_probs_rows_block[double]
        min_block = rows_block_items(itemsize, grad is not None)
    else:
        fn = <BlockFn> ce_probs_spatial_block[float] if itemsize == 4 else <BlockFn> ce_probs_spatial_block[double]
    return run(fn, &c, (x.size // C) if C > 0 else 0, C, itemsize, num_threads, out, False, False, CE_SERIAL_WORK,
               min_block)


def nll(x, labels, out, grad, *, weight=None, Py_ssize_t C, Py_ssize_t S=1, int64_t ignore_index,
        bint mean=False, int num_threads=1):
    """Kernel entry: NLL of log-probabilities x (N, C, S) at labels (N*S,); grad (pre-zeroed) or None.
    mean: a weighted mean (the gradient scaled by 1 / sum of w_y, as cross_entropy_index; the denominators
    summed).  Returns (loss_sum, denom_sum, first_bad)."""
    cdef Py_ssize_t itemsize = check_rows(x, None, None, labels, weight, out, grad, C, S)
    cdef CeCtx c
    cdef Py_ssize_t n_items = (x.size // C) if C > 0 else 0
    c.x = ptr_or_null(x)
    c.labels = ptr_or_null(labels)
    c.labels64 = labels.dtype.itemsize == 8
    c.weight = ptr_or_null(weight)
    c.pf_end = 0
    c.C = C
    c.S = S
    c.ignore_index = ignore_index
    c.grad_scale = mean_grad_scale(&c, n_items, itemsize, num_threads) if grad is not None and mean else 1.0
    c.grad = ptr_or_null(grad)
    cdef BlockFn fn = <BlockFn> nll_block[float] if itemsize == 4 else <BlockFn> nll_block[double]
    return run(fn, &c, n_items, C, itemsize, num_threads, out, mean)


def multi_margin(x, labels, out, grad, *, weight=None, Py_ssize_t C, double margin=1.0, int power=1,
                 double grad_scale=1.0, int num_threads=1):
    """Kernel entry: torch's multi_margin_loss of scores x (N, C) at labels (N,), p = power (1 or 2).
    Returns (loss_sum, 0, first_bad)."""
    if power != 1 and power != 2:
        raise ValueError(f"fastloss kernel: power must be 1 or 2, got {power}")
    cdef Py_ssize_t itemsize = check_rows(x, None, None, labels, weight, out, grad, C, 1)
    cdef RowCtx c
    set_rows(&c, x, None, labels, weight, grad, C, 1, grad_scale)
    c.margin = margin
    c.power = power
    cdef BlockFn fn
    if multi_margin_tiles_win(C):
        fn = <BlockFn> multi_margin_tile_block[float] if itemsize == 4 else <BlockFn> multi_margin_tile_block[double]
    else:
        fn = <BlockFn> multi_margin_block[float] if itemsize == 4 else <BlockFn> multi_margin_block[double]
    return run(fn, &c, (x.size // C) if C > 0 else 0, C, itemsize, num_threads, out, False)


cdef inline bint distill_tiles_win(Py_ssize_t C, Py_ssize_t itemsize, bint grad) noexcept nogil:
    """Whether distillation rows of C classes go through class-major tiles (distillation_tile_block), else
    along the rows (distillation_block): up to C = 64 for the float32 loss alone, 32 with the gradient, 32
    for the float64 loss alone, 16 with the gradient.  Measured (Zen 4, thread time, 2^19 logits,
    2026-12-04), rows / tiles time at AVX-512 / AVX2: float32 loss 5.6 / 2.4 at C = 10, 1.42 / 1.21 at 32,
    1.09 / 1.00 at 64, 0.89 at 128; with the gradient 4.1 / 1.9 at 10, 1.13 / 1.06 at 32, 0.99 / 0.95 at 64;
    float64 loss 2.5 / 2.0 at 10, 1.11 / 1.07 at 32, 0.93 / 0.89 at 64; with the gradient 1.7 / 1.5 at 10,
    1.07 at 16 (AVX-512), 0.92 / 0.86 at 32.  (Both softmaxes in double lanes: 4 or 8 per vector.)"""
    if itemsize == 4:
        return 1 <= C <= (32 if grad else 64)
    return 1 <= C <= (16 if grad else 32)


def distillation(x, t, out, grad, *, Py_ssize_t C, double temperature, double grad_scale=1.0,
                 int num_threads=1):
    """Kernel entry: T^2 KL(softmax(t / T) || softmax(x / T)) per row of student logits x and teacher
    logits t, both (N, C).  Returns (loss_sum, 0, -1)."""
    cdef Py_ssize_t itemsize = check_rows(x, t, "t", None, None, out, grad, C, 1)
    cdef RowCtx c
    set_rows(&c, x, t, None, None, grad, C, 1, grad_scale)
    c.temperature = temperature
    cdef BlockFn fn
    if distill_tiles_win(C, itemsize, grad is not None):
        fn = <BlockFn> distillation_tile_block[float] if itemsize == 4 else <BlockFn> distillation_tile_block[double]
    else:
        fn = <BlockFn> distillation_block[float] if itemsize == 4 else <BlockFn> distillation_block[double]
    return run(fn, &c, (x.size // C) if C > 0 else 0, C, itemsize, num_threads, out, False, False, CE_SERIAL_WORK)
