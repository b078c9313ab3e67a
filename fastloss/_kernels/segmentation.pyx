# cython: language_level=3
"""Segmentation overlap kernels: Dice, Jaccard, Tversky, focal Tversky, Dice + BCE (SPEC §6).

Read ``_common.pxd`` first.  What is different here, and why:

a. **Sums, not per-item losses.**  An overlap loss is not a sum of per-element terms: each
   (sample n, class c) pair needs three sums over its positions s,
       TP = sum_s p t,   P = sum_s p,   T = sum_s t       (p: prediction after the activation,
                                                            t: target; both times the valid mask)
   (+ sum_s BCE and the valid count for Dice + BCE), and the loss is a tiny formula of them,
   evaluated per pair in NumPy (``fastloss/_segmentation.py``).  FP = P - TP and FN = T - TP.

b. **The shared driver, one item per (sample, chunk).**  ``run_blocks`` reduces per-item losses to one
   scalar; here every item -- a sample n and a chunk of its positions, of a length fixed by C alone --
   yields C x K sums.  So an item's block function sums its runs in double into the item's own slot of
   a partials array (``SegCtx.part``), and the partials of a pair are combined pairwise in chunk order
   afterwards (``combine_partials``).  Which thread runs an item, and which items share a block, changes
   nothing, so the sums -- and the loss -- are bitwise identical for every ``num_threads``.  The
   per-item "loss" the driver sums is the count of failed scratch allocations (0, else MemoryError).
   Extra memory: one run tile of scratch per running block + C*K doubles per item.

c. **Layout (N, C, S) read in place.**  A run is R contiguous positions of one sample; class j of the
   run is at ``x + j*S``.  The softmax over C is computed position-wise across the run (max, exp-sum
   and scale loops vectorise along positions, as in classification.pyx's ``ce_run``) into a C x R
   tile (with labels, the tile keeps the exponentials and the sums' pass scales them by 1 / sum as it
   reads them); sigmoid is per element.  The next run's rows are prefetched as the run is summed.  Integer labels are read once per run into an int32 tile (-1 for an
   ignored or out-of-range label; the first out-of-range index is reported, the caller raises).  The
   three (five) sums of a class over the run are one fused pass in ``src_c/fl_overlap.h`` (float
   products, double accumulators, two per vector lane).

d. **Gradient: a second pass** with per-pair coefficients dL/dTP, dL/dP (and the BCE weight) from the
   caller: dL/dp = (dL/dTP * t + dL/dP) * valid, then through the activation -- sigmoid: times
   p (1 - p); softmax: dx_j = p_j (g_j - sum_k p_k g_k).

e. **NaN** follows the reference (segmentation_models_pytorch multiplies by the valid mask): an ignored
   position is multiplied by 0, so a NaN there still propagates, as it does in the reference.
"""
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free

from fastloss._kernels._common cimport (
    floating, index_t, BlockFn, run, array_data, ptr_or_null, f_exp, f_exp_nonpos, f_abs, f_max, f_log1p_unit, f_sigmoid,
    fl_pairwise_sum,
)
from fastloss._kernels._common cimport check_buffer, check_optional, check_ndim, buffer_items

cdef extern from "fl_overlap.h" nogil:
    void fl_overlap_labels_f32(const float* p, const float* r, const int32_t* ys, int32_t j, Py_ssize_t n,
                               double* acc)
    void fl_overlap_labels_f64(const double* p, const double* r, const int32_t* ys, int32_t j, Py_ssize_t n,
                               double* acc)
    void fl_prefetch_range(const void* p, Py_ssize_t nbytes)
    void fl_overlap_masks_f32(const float* p, const float* t, const float* q, int use_ign, float ign,
                              Py_ssize_t n, double* acc)
    void fl_overlap_masks_f64(const double* p, const double* t, const double* q, int use_ign, double ign,
                              Py_ssize_t n, double* acc)

import numpy as np

cpdef enum Activation:  # what turns x into the prediction p (Python: Activation.SOFTMAX, ...)
    NONE = 0            # probabilities given
    SIGMOID = 1         # binary / multilabel from logits
    SOFTMAX = 2         # multiclass from logits

cdef enum:
    MAX_RUN = 256       # positions per run (the tile width R is at most this)
    TILE_WORK = 4096    # C * R: a run's softmax tile stays in L1
    CHUNK_WORK = 16384  # C * positions per chunk (the driver's item)

K_SUMS = 3              # TP, P, T
K_SUMS_BCE = 5          # + sum of BCE, valid count


cdef struct SegCtx:
    const void* x            # (N, C, S) logits or probabilities
    const void* t            # (N, C, S) masks of x's dtype, or NULL
    const void* labels       # (N, S) int32 / int64 class indices, or NULL
    bint labels64
    bint label_ignore        # labels: ignore_label is set
    int64_t ignore_label     # labels: this value is skipped
    bint mask_ignore         # masks: elements equal to ignore_value are skipped
    double ignore_value
    Activation act
    bint bce                 # also sum BCE-with-logits and the valid count (K = 5)
    Py_ssize_t C
    Py_ssize_t S
    Py_ssize_t R             # positions per run
    Py_ssize_t chunk         # positions per item (a multiple of R)
    Py_ssize_t nchunks       # items per sample
    Py_ssize_t K             # sums per pair
    double* part             # pass 1: (items, C, K) partials
    const double* coef       # pass 2: (N, C, 3): dL/dTP, dL/dP, BCE weight
    void* grad               # pass 2: like x


# ---------------------------------------------------------------- point functions
# sigmoid from e = exp(-|x|) so nothing overflows:  p = (x >= 0 ? 1 : e) / (1 + e),
#   dp/dx = p (1 - p) = e / (1 + e)^2          (no cancellation in 1 - p)
cdef inline floating sigmoid_point(floating x, floating* dpdx) noexcept nogil:
    cdef floating e = f_exp(-f_abs(x))
    cdef floating inv = 1 / (1 + e)
    dpdx[0] = e * inv * inv
    return (1 if x >= 0 else e) * inv


# BCE with logits in torch's stable form (as classification.pyx):  (1 - t) x + softplus(-x),
#   softplus(-x) = max(-x, 0) + log1p(e);  also p = sigmoid(x) from the same e.
cdef inline floating sigmoid_bce_point(floating x, floating t, floating* p) noexcept nogil:
    cdef floating e = f_exp(-f_abs(x))
    p[0] = (1 if x >= 0 else e) / (1 + e)
    return (1 - t) * x + f_max(-x, <floating> 0) + f_log1p_unit(e)


# ---------------------------------------------------------------- run helpers
cdef inline Py_ssize_t labels_run(const index_t* y, Py_ssize_t i0, Py_ssize_t L, int64_t C, bint has_ignore,
                                  int64_t ignore, int32_t* ys) noexcept nogil:
    """ys[k] = label of item i0 + k, or -1 if ignored or out of range; returns the first out-of-range
    item index or -1.  Branch-free (it vectorises); the bad item is searched for only if there is one."""
    cdef Py_ssize_t k, nbad = 0
    cdef int64_t v
    cdef int inr, ign
    for k in range(L):
        v = y[i0 + k]
        inr = (v >= 0) & (v < C)
        ign = has_ignore & (v == ignore)
        ys[k] = <int32_t> v if (inr & (ign ^ 1)) else -1
        nbad += (inr | ign) ^ 1
    if nbad == 0:
        return -1
    for k in range(L):
        v = y[i0 + k]
        if not (has_ignore and v == ignore) and (v < 0 or v >= C):
            return i0 + k
    return -1


cdef inline Py_ssize_t load_labels(const SegCtx* c, Py_ssize_t i0, Py_ssize_t L, int32_t* ys) noexcept nogil:
    if c.labels64:
        return labels_run(<const int64_t*> c.labels, i0, L, c.C, c.label_ignore, c.ignore_label, ys)
    return labels_run(<const int32_t*> c.labels, i0, L, c.C, c.label_ignore, c.ignore_label, ys)


cdef inline void softmax_run(const floating* xs, Py_ssize_t S, Py_ssize_t C, Py_ssize_t L, Py_ssize_t R,
                             floating* prob, floating* m, floating* s, bint scale) noexcept nogil:
    """prob[j*R + k] = softmax over classes of position k (class j at xs[j*S + k]); m, s: R scratch.
    Shifted by the position max, so -inf logits are fine; nan anywhere in a position gives nan there.
    ``scale`` False: prob holds the exponentials and s the reciprocals of their sums, the softmax being
    prob[j*R + k] * s[k] (the reader multiplies as it goes: one pass over the tile less).
    The argument of exp is <= 0 (or nan): f_exp_nonpos, without f_exp's overflow handling (W13 -14%;
    < 1 ulp of exp, as classification.pyx's softmax)."""
    cdef Py_ssize_t j, k
    cdef const floating* xc
    cdef floating* pc
    cdef floating e
    for k in range(L):
        m[k] = xs[k]
        s[k] = 0
    for j in range(1, C):
        xc = xs + j * S
        for k in range(L):
            m[k] = xc[k] if xc[k] > m[k] else m[k]
    for j in range(C):
        xc = xs + j * S
        pc = prob + j * R
        for k in range(L):
            e = f_exp_nonpos(xc[k] - m[k])
            pc[k] = e
            s[k] = s[k] + e
    for k in range(L):
        s[k] = 1 / s[k]
    if not scale:
        return
    for j in range(C):
        pc = prob + j * R
        for k in range(L):
            pc[k] = pc[k] * s[k]


cdef inline Py_ssize_t first_bad(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a >= 0 else b


# ---------------------------------------------------------------- pass 1: sums per (sample, class)
cdef inline void overlap_labels(const floating* p, const floating* r, const int32_t* ys, int32_t j,
                                Py_ssize_t n, double* acc) noexcept nogil:
    if floating is float:
        fl_overlap_labels_f32(p, r, ys, j, n, acc)
    else:
        fl_overlap_labels_f64(p, r, ys, j, n, acc)


cdef inline void overlap_masks(const floating* p, const floating* t, const floating* q, bint use_ign,
                               floating ign, Py_ssize_t n, double* acc) noexcept nogil:
    if floating is float:
        fl_overlap_masks_f32(p, t, q, use_ign, ign, n, acc)
    else:
        fl_overlap_masks_f64(p, t, q, use_ign, ign, n, acc)


cdef Py_ssize_t sums_run(const SegCtx* c, Py_ssize_t n, Py_ssize_t s, Py_ssize_t L, double* acc,
                         floating* w) noexcept nogil:
    """Add the run's TP, P, T (, BCE, count) of every class to acc[j*K + ...] (fl_overlap.h)."""
    cdef Py_ssize_t C = c.C, S = c.S, R = c.R, K = c.K, j, k, bad = -1
    cdef const floating* xs = <const floating*> c.x + n * C * S + s
    cdef const floating* ts = <const floating*> c.t + n * C * S + s if c.t != NULL else NULL
    cdef floating* prob = w                 # C x R softmax tile (R for sigmoid)
    cdef floating* q = w + C * R            # BCE per element
    cdef floating* scr = q + R              # 2 R scratch of the softmax
    cdef int32_t* ys = <int32_t*> (w + C * R + 5 * R)
    cdef const floating* xc
    cdef const floating* tc
    cdef const floating* pc
    # the next run of this sample, prefetched: before class j's sums below, class j's rows (x, masks)
    # and the j-th of C parts of the labels (spread out: a burst of all C + 1 rows' requests stalled on the line fill
    # buffers)
    cdef Py_ssize_t Ln = max(<Py_ssize_t> 0, min(R, S - s - L))
    cdef Py_ssize_t lsize = 8 if c.labels64 else 4
    cdef Py_ssize_t lpart = (Ln * lsize + C - 1) // C if c.labels != NULL else 0
    cdef const char* lnext = <const char*> c.labels + (n * S + s + L) * lsize if c.labels != NULL else NULL
    if c.labels != NULL:
        bad = load_labels(c, n * S + s, L, ys)
    cdef const floating* r = NULL          # with labels, the softmax's 1 / sum (the tile is not scaled)
    if c.act == SOFTMAX:
        if c.labels != NULL:
            r = scr + R
        softmax_run(xs, S, C, L, R, prob, scr, scr + R, c.labels == NULL)
    for j in range(C):
        xc = xs + j * S
        fl_prefetch_range(xc + L, Ln * sizeof(floating))
        fl_prefetch_range(lnext + j * lpart, min(lpart, Ln * lsize - j * lpart))
        tc = ts + j * S if ts != NULL else NULL
        if tc != NULL:
            fl_prefetch_range(tc + L, Ln * sizeof(floating))
        pc = xc
        if c.act == SOFTMAX:
            pc = prob + j * R
        elif c.act == SIGMOID:
            if c.bce:
                for k in range(L):
                    q[k] = sigmoid_bce_point(xc[k], tc[k], &prob[k])
            else:
                for k in range(L):
                    prob[k] = f_sigmoid(xc[k])
            pc = prob
        if c.labels != NULL:
            overlap_labels(pc, r, ys, <int32_t> j, L, acc + j * K)
        else:
            overlap_masks(pc, tc, q if c.bce else NULL, c.mask_ignore, <floating> c.ignore_value, L, acc + j * K)
    return bad


cdef Py_ssize_t sums_chunk(const SegCtx* c, Py_ssize_t n, Py_ssize_t s0, Py_ssize_t s1, double* acc,
                           floating* w) noexcept nogil:
    """The sums of positions [s0, s1) of sample n into acc (C*K, zeroed here), run by run."""
    cdef Py_ssize_t i, s = s0, L, bad = -1
    for i in range(c.C * c.K):
        acc[i] = 0
    while s < s1:
        L = min(c.R, s1 - s)
        bad = first_bad(bad, sums_run(c, n, s, L, acc, w))
        s += L
    return bad


# ---------------------------------------------------------------- pass 2: gradient
cdef Py_ssize_t grad_run(const SegCtx* c, Py_ssize_t n, Py_ssize_t s, Py_ssize_t L,
                         floating* w) noexcept nogil:
    """grad[n, j, s:s+L] = d loss / d x, from the pair coefficients (a, b, cb) = c.coef[n, j]:
    dL/dp = (a t + b) v through the activation, plus cb (p - t) v for a BCE term (already d/dx)."""
    cdef Py_ssize_t C = c.C, S = c.S, R = c.R, j, k
    cdef const floating* xs = <const floating*> c.x + n * C * S + s
    cdef const floating* ts = <const floating*> c.t + n * C * S + s if c.t != NULL else NULL
    cdef floating* gs = <floating*> c.grad + n * C * S + s
    cdef const double* coef = c.coef + n * C * 3
    cdef floating* prob = w
    cdef floating* dot = w + C * R
    cdef floating* scr = dot + R
    cdef int32_t* ys = <int32_t*> (w + C * R + 5 * R)
    cdef const floating* xc
    cdef const floating* tc
    cdef floating* gc
    cdef floating a, b, cb, v, p, dp, ign = <floating> c.ignore_value
    if c.labels != NULL:
        load_labels(c, n * S + s, L, ys)
    if c.act == SOFTMAX:
        softmax_run(xs, S, C, L, R, prob, dot, scr, True)
        for k in range(L):
            dot[k] = 0
    for j in range(C):
        a = <floating> coef[j * 3]
        b = <floating> coef[j * 3 + 1]
        cb = <floating> coef[j * 3 + 2]
        gc = gs + j * S
        xc = xs + j * S
        if c.labels != NULL:
            for k in range(L):
                gc[k] = (a * (1 if ys[k] == j else 0) + b) * (1 if ys[k] >= 0 else 0)
        else:
            tc = ts + j * S
            if c.mask_ignore:
                for k in range(L):
                    gc[k] = (a * tc[k] + b) * (1 if tc[k] != ign else 0)
            else:
                for k in range(L):
                    gc[k] = a * tc[k] + b
        if c.act == SOFTMAX:
            for k in range(L):
                dot[k] = dot[k] + prob[j * R + k] * gc[k]
        elif c.act == SIGMOID:
            if cb != 0:      # Dice + BCE: d BCE / dx = p - t, on valid elements
                tc = ts + j * S
                if c.mask_ignore:
                    for k in range(L):
                        p = sigmoid_point(xc[k], &dp)
                        gc[k] = gc[k] * dp + cb * (p - tc[k]) * (1 if tc[k] != ign else 0)
                else:
                    for k in range(L):
                        p = sigmoid_point(xc[k], &dp)
                        gc[k] = gc[k] * dp + cb * (p - tc[k])
            else:
                for k in range(L):
                    p = sigmoid_point(xc[k], &dp)
                    gc[k] = gc[k] * dp
    if c.act == SOFTMAX:
        for j in range(C):
            gc = gs + j * S
            for k in range(L):
                gc[k] = prob[j * R + k] * (gc[k] - dot[k])
    return -1


cdef void grad_chunk(const SegCtx* c, Py_ssize_t n, Py_ssize_t s0, Py_ssize_t s1, floating* w) noexcept nogil:
    """The gradient at positions [s0, s1) of sample n, run by run."""
    cdef Py_ssize_t s = s0, L
    while s < s1:
        L = min(c.R, s1 - s)
        grad_run(c, n, s, L, w)
        s += L


# ---------------------------------------------------------------- block functions for run_blocks
cdef inline Py_ssize_t run_scratch_bytes(const SegCtx* c, Py_ssize_t itemsize) noexcept nogil:
    """Scratch of one run: the C x R tile, 5 R values (BCE / dot, softmax scratch) and R int32 labels."""
    return (c.C * c.R + 6 * c.R) * itemsize + c.R * 4 + 64


cdef Py_ssize_t sums_items(const SegCtx* c, Py_ssize_t start, Py_ssize_t stop, floating* fail,
                           floating* denom) noexcept nogil:
    """Pass 1, items [start, stop) (note b): item b = (sample b // nchunks, its chunk b % nchunks) sums
    into c.part + b*C*K.  fail[b - start]: 1 if the scratch could not be allocated, else 0."""
    cdef Py_ssize_t b, n, s0, bad = -1
    cdef floating* w = <floating*> malloc(run_scratch_bytes(c, sizeof(floating)))
    for b in range(stop - start):
        fail[b] = 0 if w != NULL else 1
    if w == NULL:
        return -1
    for b in range(start, stop):
        n = b // c.nchunks
        s0 = (b - n * c.nchunks) * c.chunk
        bad = first_bad(bad, sums_chunk(c, n, s0, min(s0 + c.chunk, c.S), c.part + b * c.C * c.K, w))
    free(w)
    return bad


cdef Py_ssize_t grad_items(const SegCtx* c, Py_ssize_t start, Py_ssize_t stop, floating* fail,
                           floating* denom) noexcept nogil:
    """Pass 2, items [start, stop) as sums_items: the gradient of each (sample, chunk)."""
    cdef Py_ssize_t b, n, s0
    cdef floating* w = <floating*> malloc(run_scratch_bytes(c, sizeof(floating)))
    for b in range(stop - start):
        fail[b] = 0 if w != NULL else 1
    if w == NULL:
        return -1
    for b in range(start, stop):
        n = b // c.nchunks
        s0 = (b - n * c.nchunks) * c.chunk
        grad_chunk(c, n, s0, min(s0 + c.chunk, c.S), w)
    free(w)
    return -1


cdef Py_ssize_t run_items(BlockFn fn, const SegCtx* c, Py_ssize_t N, Py_ssize_t itemsize,
                          int num_threads) except? -2:
    """fn over the N * nchunks items on the shared driver (_common.pxd's run); returns the first bad label
    index or -1.  An item's cost is the work of one chunk, C * min(chunk, S)."""
    failed, _, bad = run(fn, c, N * c.nchunks, c.C * min(c.chunk, c.S), itemsize, num_threads, None, False)
    if failed != 0:
        raise MemoryError("fastloss: could not allocate kernel scratch memory")
    return bad


cdef void combine_partials(const double* part, Py_ssize_t N, Py_ssize_t nchunks, Py_ssize_t CK,
                           double* sums, double* tmp) noexcept nogil:
    """sums[n, i] = pairwise sum over the chunks of sample n of part[n, chunk, i] (fixed order)."""
    cdef Py_ssize_t n, i, ch
    for n in range(N):
        for i in range(CK):
            for ch in range(nchunks):
                tmp[ch] = part[(n * nchunks + ch) * CK + i]
            sums[n * CK + i] = fl_pairwise_sum(tmp, nchunks)


cdef int check_entry(x, t, labels, Activation act, bint bce) except -1:
    """The boundary checks of both entries (_common.pxd): x (N, C, S), and exactly one of t (like x) and
    labels (N * S); BCE reads masks through a sigmoid."""
    cdef Py_ssize_t itemsize = check_buffer(x, "x", b'f', 0, -1, False)
    check_ndim(x, "x", 3)
    if (t is None) == (labels is None):
        raise ValueError("fastloss kernel: give exactly one of t (masks) and labels")
    check_optional(t, "t", b'f', itemsize, buffer_items(x), False)
    check_optional(labels, "labels", b'i', 0, x.shape[0] * x.shape[2], False)
    if act not in (NONE, SIGMOID, SOFTMAX) or bce and (act != SIGMOID or t is None):
        raise ValueError(f"fastloss kernel: activation {act} (bce={bce}) is not one the kernel runs")
    return itemsize


cdef int init_ctx(SegCtx* c, x, t, labels, ignore_index, Activation act, bint bce) except -1:
    """Fill the context; ignore_index (None or an int) applies to labels, or elementwise to masks."""
    c.x = ptr_or_null(x)
    c.t = ptr_or_null(t)
    c.labels = ptr_or_null(labels)
    c.labels64 = labels is not None and labels.dtype.itemsize == 8
    c.label_ignore = ignore_index is not None and labels is not None
    c.ignore_label = ignore_index if c.label_ignore else 0
    c.mask_ignore = ignore_index is not None and t is not None
    c.ignore_value = float(ignore_index) if c.mask_ignore else 0.0
    c.act = act
    c.bce = bce
    c.C = x.shape[1]
    c.S = x.shape[2]
    c.K = K_SUMS_BCE if bce else K_SUMS
    # tile width R: a multiple of 16 positions, C * R <= TILE_WORK where possible; chunk = whole runs
    c.R = min(<Py_ssize_t> MAX_RUN, max(<Py_ssize_t> 16, (TILE_WORK // max(c.C, 1)) & ~15))
    c.chunk = c.R * max(<Py_ssize_t> 1, CHUNK_WORK // (max(c.C, 1) * c.R))
    c.nchunks = (c.S + c.chunk - 1) // c.chunk
    c.part = NULL
    c.coef = NULL
    c.grad = NULL
    return 0


def segment_sums(x, t, labels, ignore_index, Activation act, bint bce, int num_threads):
    """Kernel entry, pass 1: x (N, C, S) C-contiguous float32/64; t masks like x or None; labels (N*S,)
    int32/int64 or None; ignore_index None or an int.
    Returns (sums (N, C, K) float64 with K = TP, P, T[, BCE, count], first_bad)."""
    check_entry(x, t, labels, act, bce)     # boundary checks
    cdef SegCtx c
    init_ctx(&c, x, t, labels, ignore_index, act, bce)
    cdef Py_ssize_t N = x.shape[0], itemsize = x.dtype.itemsize, nb = N * c.nchunks, CK = c.C * c.K
    sums = np.zeros((N, c.C, c.K), dtype=np.float64)
    part_arr = np.empty(max(nb * CK, 1), dtype=np.float64)
    tmp_arr = np.empty(max(c.nchunks, 1), dtype=np.float64)
    c.part = <double*> array_data(part_arr)
    cdef double* tmp = <double*> array_data(tmp_arr)
    cdef double* out = <double*> array_data(sums)
    cdef BlockFn fn = <BlockFn> sums_items[float] if itemsize == 4 else <BlockFn> sums_items[double]
    cdef Py_ssize_t bad = run_items(fn, &c, N, itemsize, num_threads)
    if nb > 0:
        with nogil:
            combine_partials(c.part, N, c.nchunks, CK, out, tmp)
    return sums, bad


def segment_grad(x, t, labels, ignore_index, Activation act, coef, grad, int num_threads):
    """Kernel entry, pass 2: grad (like x, C-contiguous) = d loss / d x from coef (N, C, 3) float64
    C-contiguous: per pair dL/dTP, dL/dP and the weight of the BCE term (0 without one)."""
    cdef Py_ssize_t itemsize0 = check_entry(x, t, labels, act, False)      # boundary checks
    check_buffer(coef, "coef", b'f', 8, x.shape[0] * x.shape[1] * 3, False)
    check_buffer(grad, "grad", b'f', itemsize0, buffer_items(x), True)
    cdef SegCtx c
    init_ctx(&c, x, t, labels, ignore_index, act, False)
    c.coef = <const double*> array_data(coef)
    c.grad = ptr_or_null(grad)
    cdef Py_ssize_t itemsize = x.dtype.itemsize
    cdef BlockFn fn = <BlockFn> grad_items[float] if itemsize == 4 else <BlockFn> grad_items[double]
    run_items(fn, &c, x.shape[0], itemsize, num_threads)


# tests/test_math.py measures src_c/fl_math.h at every vector level through this module (tests only)
include "_mathprobe.pxi"
