# cython: language_level=3
"""The layer every kernel family shares.

Design notes (read once, then every family reads the same way):

a. **One fused floating type.**  ``floating`` is float or double; each kernel is written once and
   Cython emits both.  float32 data is computed in float32 (vectorised twice as wide); per-item losses
   are summed in double.

b. **One driver for every reduction: ``run_blocks``.**  A loss supplies a *block function*
   ``fn(ctx, start, stop, loss, denom)`` that computes items ``[start, stop)`` -- an item is an element,
   a row, or a (sample, position) pair, as the loss defines -- writes the per-item loss to ``loss``
   (and, if asked, the per-item contribution to the mean's denominator to ``denom``, e.g. the class
   weight of the target), writes gradients straight into its own output, and returns the first invalid
   item index or -1.  The driver cuts ``[0, n)`` into fixed blocks and gives each thread a contiguous share
   of them, which it runs first (called again, a thread reads the same part of the inputs, still in its
   core's cache); a thread done with its share takes blocks from the ends of the others' (so one that the OS
   preempts on a busy machine does not hold back its share; ``src_c/fl_shares.h``).  Each block's sums go to
   a float64 partial stored at the block's index, and the partials combine pairwise.  The blocks and their
   order do not depend on the thread count, so a reduction is **bitwise identical for every
   ``num_threads``**.  For ``reduction="none"`` the block writes straight into the output array; nothing
   else is allocated.  Extra memory: one block of scratch per thread plus one double per block -- O(threads
   + blocks), never O(n).
   A block function may instead sum its own items as it computes them (``fn_sums``; the elementwise
   losses, whose items cost a few instructions: a second pass over the block's scratch cost a third of
   their time): a reducing run then passes it ``loss = NULL`` and a ``BlockSums`` as ``denom``, and
   needs no scratch.  Its sums depend on the block alone, so the rule above holds.

c. **Formulas live in point functions.**  Each family's ``cdef inline ... nogil`` point functions hold
   the maths (with a comment deriving it); block functions are the loops around them.  The
   transcendental functions come from ``src_c/fl_math.h`` through the fused wrappers below.

d. **Threads.**  ``num_threads`` arrives resolved (see ``fastloss/_threads.py``); the driver runs
   serially, without touching the OpenMP runtime, when the work is below ``SERIAL_ITEMS_WORK``
   (thread start-up would cost more than it saves) -- or below the entry's own threshold, where its
   unit of work costs more than an elementwise item's (cross-entropy's logit, an exp each).

e. **Validation inside the kernel.**  Labels are checked where they are read; a bad one is reported
   by index after the GIL is re-taken (the caller raises).  Nothing is ever read out of bounds.
"""
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport strcmp
from cpython.object cimport Py_TYPE, PyTypeObject
from cython.parallel cimport parallel, prange, threadid

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t

cdef extern from "fl_math.h" nogil:
    float fl_expf(float)
    double fl_exp(double)
    float fl_expf_softmax(float)
    double fl_exp_nonpos(double)
    float fl_logf(float)
    double fl_log(double)
    float fl_log1pf(float)
    double fl_log1p(double)
    float fl_log1p_unitf(float)
    double fl_log1p_unit(double)
    float fl_log1p_unit_invf(float, float)
    double fl_log1p_unit_inv(double, double)
    float fl_softplusf(float)
    double fl_softplus(double)
    float fl_log_sigmoidf(float)
    double fl_log_sigmoid(double)
    float fl_sigmoidf(float)
    double fl_sigmoid(double)
    float fl_absf(float)
    double fl_abs(double)
    float fl_min_nonnegf(float, float)
    float fl_expm1mxf(float, float*)
    double fl_expm1mx(double, double*)

cdef extern from "fl_lanes.h" nogil:
    enum: FL_LANES
    void fl_lanes_zero(double* lanes)
    void fl_lanes_add_f32(double* lanes, const float* x, Py_ssize_t n)
    void fl_lanes_add_f64(double* lanes, const double* x, Py_ssize_t n)
    double fl_lanes_total(const double* lanes)

cdef extern from "fl_runtime.h" nogil:
    long fl_l2_cache_bytes()

cdef extern from "fl_shares.h" nogil:
    ctypedef struct fl_share:
        pass
    bint fl_shares_fit(int64_t nb)
    fl_share* fl_shares_new(int n, int64_t nb)
    int64_t fl_shares_next(fl_share* sh, int n, int t)

cdef extern from "fl_reduce.h" nogil:
    double fl_sum_f32(const float* x, Py_ssize_t n)
    double fl_sum_f64(const double* x, Py_ssize_t n)
    double fl_pairwise_sum(const double* x, Py_ssize_t n)
    float fl_row_max_f32(const float* x, Py_ssize_t n)
    double fl_row_max_f64(const double* x, Py_ssize_t n)
    double fl_row_sumexp_f32(const float* x, Py_ssize_t n, float m, float* e)
    double fl_row_sumexp_f64(const double* x, Py_ssize_t n, double m, double* e)


cdef extern from "fl_tile.h" nogil:
    void fl_transpose_f32(const float* x, Py_ssize_t ld_in, float* out, Py_ssize_t ld_out, Py_ssize_t rows,
                          Py_ssize_t cols)
    void fl_transpose_f64(const double* x, Py_ssize_t ld_in, double* out, Py_ssize_t ld_out, Py_ssize_t rows,
                          Py_ssize_t cols)


# ---------------------------------------------------------------- tiles: short rows turned column-major
# Rows too short to vectorise along (a few classes, a few features) are turned into a column-major tile
# and every loop runs along the rows instead (classification's class-major tiles, metric's feature-major
# ones); fl_tile.h moves whole vector blocks.
cdef inline void to_tile(const floating* x, Py_ssize_t C, Py_ssize_t L, floating* t) noexcept nogil:
    """t[j * L + k] = x[k * C + j]: L rows of C values, transposed into a column-major tile."""
    if floating is float:
        fl_transpose_f32(x, C, t, L, L, C)
    else:
        fl_transpose_f64(x, C, t, L, L, C)


cdef inline void from_tile(const floating* t, Py_ssize_t C, Py_ssize_t L, floating* x) noexcept nogil:
    """x[k * C + j] = t[j * L + k]: a column-major tile back into L rows of C values."""
    if floating is float:
        fl_transpose_f32(t, L, x, C, C, L)
    else:
        fl_transpose_f64(t, L, x, C, C, L)


# ---------------------------------------------------------------- fused math (one name per function)
cdef inline floating f_exp(floating x) noexcept nogil:
    if floating is float:
        return fl_expf(x)
    else:
        return fl_exp(x)

cdef inline floating f_expm1mx(floating x, floating* em1) noexcept nogil:
    """e^x - 1 - x, and e^x - 1 into em1[0], each to its own relative precision near 0 (fl_math.h)."""
    if floating is float:
        return fl_expm1mxf(x, em1)
    else:
        return fl_expm1mx(x, em1)

cdef inline floating f_exp_nonpos(floating x) noexcept nogil:
    """exp(x) for x <= 0, -inf or nan only (a softmax argument x_j - max x): f_exp without the overflow
    handling and with polynomials of its own (fl_expf_softmax, fl_exp_nonpos: < 1 ulp of exp, swept by
    tests/test_math.py), so not always the same bits as f_exp; 0 below x = -87.5 (float32) / -708.5
    (float64) instead of a denormal.  The vector passes' forms at AVX-512 (fl_vec.h's table forms, 0 below
    -87.35 / -708.40) round some values differently."""
    if floating is float:
        return fl_expf_softmax(x)
    else:
        return fl_exp_nonpos(x)

cdef inline floating f_log(floating x) noexcept nogil:
    if floating is float:
        return fl_logf(x)
    else:
        return fl_log(x)

cdef inline floating f_log1p(floating x) noexcept nogil:
    if floating is float:
        return fl_log1pf(x)
    else:
        return fl_log1p(x)

cdef inline floating f_log1p_unit(floating x) noexcept nogil:
    """log1p(x) for x in [0, 1] (or nan) only: e.g. log1p(exp(-|z|)).  Cheaper than f_log1p."""
    if floating is float:
        return fl_log1p_unitf(x)
    else:
        return fl_log1p_unit(x)

cdef inline floating f_log1p_unit_inv(floating x, floating inv) noexcept nogil:
    """f_log1p_unit(x) given inv = 1 / (1 + x) (e.g. from a sigmoid of the same logit): no division (float64
    uses inv for its correction term; float32's polynomial needs no inv and ignores it)."""
    if floating is float:
        return fl_log1p_unit_invf(x, inv)
    else:
        return fl_log1p_unit_inv(x, inv)

cdef inline floating f_softplus(floating x) noexcept nogil:
    if floating is float:
        return fl_softplusf(x)
    else:
        return fl_softplus(x)

cdef inline floating f_log_sigmoid(floating x) noexcept nogil:
    if floating is float:
        return fl_log_sigmoidf(x)
    else:
        return fl_log_sigmoid(x)

cdef inline floating f_sigmoid(floating x) noexcept nogil:
    if floating is float:
        return fl_sigmoidf(x)
    else:
        return fl_sigmoid(x)

cdef inline floating f_abs(floating x) noexcept nogil:
    if floating is float:
        return fl_absf(x)
    else:
        return fl_abs(x)

cdef inline floating f_max(floating a, floating b) noexcept nogil:
    return a if a > b else b

cdef inline floating f_min(floating a, floating b) noexcept nogil:
    return a if a < b else b

cdef inline floating f_min_nonneg(floating a, floating b) noexcept nogil:
    """f_min(a, b), bit for bit, for a >= +0 (or a nan with its sign clear: |d|) and b > 0 (not nan);
    float32: fl_min_nonnegf (an integer min at AVX-512)."""
    if floating is float:
        return fl_min_nonnegf(a, b)
    else:
        return a if a < b else b

cdef inline floating row_max(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fl_row_max_f32(x, n)
    else:
        return fl_row_max_f64(x, n)

cdef inline double row_sumexp(const floating* x, Py_ssize_t n, floating m, floating* e) noexcept nogil:
    """sum_j exp(x_j - m), accumulated (and returned) in double; e (if not NULL) receives each exp."""
    if floating is float:
        return fl_row_sumexp_f32(x, n, m, e)
    else:
        return fl_row_sumexp_f64(x, n, m, e)


cdef inline void lanes_add(double* lanes, const floating* x, Py_ssize_t n) noexcept nogil:
    """Add n <= 256 values to a block's FL_LANES running double lanes (src_c/fl_lanes.h: fixed order)."""
    if floating is float:
        fl_lanes_add_f32(lanes, x, n)
    else:
        fl_lanes_add_f64(lanes, x, n)


# ---------------------------------------------------------------- the blocked driver
# fn(ctx, start, stop, loss, denom) -> first invalid item index in [start, stop), or -1.
# `loss` points at (stop - start) items of the kernel's floating type; `denom` likewise or NULL.
# A block function run with ``fn_sums`` (note b) gets, when the run reduces, loss = NULL and denom = a
# ``BlockSums*``: it stores its items' loss sum there (and their denominators' sum if ``want_denom``).
ctypedef Py_ssize_t (*BlockFn)(const void* ctx, Py_ssize_t start, Py_ssize_t stop,
                               void* loss, void* denom) noexcept nogil

cdef struct BlockSums:
    bint want_denom           # in: also sum the denominators
    double loss               # out: the block's sum of per-item losses
    double denom              # out: ... of per-item denominators (if want_denom)

# Below this much work (items x per-item cost) a call runs serially (``run``'s default: an elementwise
# item, ~0.1-0.3 ns; an entry whose unit costs more passes its own threshold, see CE_SERIAL_WORK).
cdef enum:
    SERIAL_ITEMS_WORK = 32768

cdef struct BlockRun:
    Py_ssize_t n_items        # items to compute
    Py_ssize_t block_items    # items per block (fixed by the loss, never by the thread count)
    Py_ssize_t item_cost      # rough work per item (e.g. C for a row of C logits)
    Py_ssize_t itemsize       # 4 or 8: the kernel's floating type
    int num_threads
    void* loss_out            # reduction="none": per-item output (C-contiguous); else NULL
    bint want_denom           # also sum the per-item denominators
    bint fn_sums              # fn sums its own items when reducing (note b): no scratch, no second pass
    Py_ssize_t serial_work    # below this much work (n_items x item_cost) the run is serial
    # results
    double loss_sum
    double denom_sum
    Py_ssize_t first_bad      # -1 when every item was valid

# Work (items x item_cost) per block: ~16 KiB of float32 input, so a block's scratch stays in L1/L2
# and 10^6 elements still make enough blocks to balance 16 threads.
cdef enum:
    BLOCK_WORK = 4096


cdef inline Py_ssize_t block_items_for(Py_ssize_t item_cost) noexcept nogil:
    """Items per block for items of the given cost (at least 1): BLOCK_WORK / item_cost, rounded down to a
    multiple of 32 from 64 on, of 16 from 32 on, of 8 from 8 on.  A block is cut into class-major runs and
    chunks of 32 positions (4 vectors of 8 lanes; whole 16-lane vectors at AVX-512), so an unrounded block
    left a short run at its end that cost a whole chunk (and, for (N, C) rows, a tile of its own: C = 21
    made blocks of 195 rows, a tile of 192 then one of 3).  Rounded, cross-entropy ran 5-15% faster at
    C = 12-60 (index and probability targets, with and without the gradient; the spatial layout of W4,
    C = 21, 6%), and unchanged where the quotient was already whole (AVX2, Zen 3, thread time, 2^20 logits,
    2026-12-03).  From 32 to 63 items (costs 65-128: rows of C = 65-128 classes) the same held: a tile there
    holds 32 or 48 rows at AVX-512 (tile_rows), and C = 104 made blocks of 39 rows, a tile of 32 then one
    of 7 -- the tiles with the gradient ran 0.90-0.99 ns per logit at C = 103-124 against 0.64 at
    C = 125-128, whose blocks were already 32 rows (Zen 4, 2026-12-04).  From 8 to 31 items (costs 129-512:
    the tiles of multi-margin up to C = 512 and of the focal loss up to 256) likewise, in whole 8-row
    vectors: multi-margin 0.31-0.50x the time at C = 150-300, the focal loss 0.65x at C = 200; the row
    paths unchanged (0.98-1.01x)."""
    cdef Py_ssize_t b = BLOCK_WORK // item_cost if item_cost > 0 else BLOCK_WORK
    if b >= 64:
        b &= ~31
    elif b >= 32:
        b &= ~15
    elif b >= 8:
        b &= ~7
    return b if b >= 1 else 1


cdef inline Py_ssize_t prefetch_end(Py_ssize_t n_items, Py_ssize_t nbytes) noexcept nogil:
    """The item up to which a kernel's loops prefetch their inputs ahead of use: ``n_items`` where the
    inputs read (``nbytes``) pass one core's L2 cache, else 0 (no prefetching: in L2 the prefetches gain
    nothing and cost their instructions).  The next block after a thread's block is its next (run_blocks'
    shares), so a loop prefetches across its block's end, up to the inputs' end."""
    return n_items if nbytes >= fl_l2_cache_bytes() else 0


cdef inline void run_one_block(BlockFn fn, const void* ctx, const BlockRun* run, Py_ssize_t b,
                               char* lbuf, double* part_loss, double* part_denom,
                               Py_ssize_t* bad) noexcept nogil:
    """Block ``b`` of ``run_blocks``: its items into ``lbuf`` (the thread's scratch when reducing, else
    the output), then its float64 partial sums."""
    cdef Py_ssize_t bs = run.block_items
    cdef Py_ssize_t isz = run.itemsize
    cdef Py_ssize_t start = b * bs
    cdef Py_ssize_t stop = start + bs
    cdef bint reduce = run.loss_out == NULL
    cdef bint want_denom = run.want_denom and reduce
    cdef char* dbuf = lbuf + bs * isz if want_denom else NULL
    cdef BlockSums sums
    if stop > run.n_items:
        stop = run.n_items
    if reduce and run.fn_sums:
        sums.want_denom = want_denom
        sums.loss = 0.0
        sums.denom = 0.0
        bad[b] = fn(ctx, start, stop, NULL, &sums)
        part_loss[b] = sums.loss
        part_denom[b] = sums.denom
        return
    if not reduce:
        lbuf = <char*> run.loss_out + start * isz
    bad[b] = fn(ctx, start, stop, lbuf, dbuf)
    part_loss[b] = 0.0
    part_denom[b] = 0.0
    if reduce:
        if isz == 4:
            part_loss[b] = fl_sum_f32(<float*> lbuf, stop - start)
            if want_denom:
                part_denom[b] = fl_sum_f32(<float*> dbuf, stop - start)
        else:
            part_loss[b] = fl_sum_f64(<double*> lbuf, stop - start)
            if want_denom:
                part_denom[b] = fl_sum_f64(<double*> dbuf, stop - start)


cdef inline int run_blocks(BlockFn fn, const void* ctx, BlockRun* run) noexcept nogil:
    """Run ``fn`` over ``[0, run.n_items)`` in fixed blocks and reduce deterministically (note b).

    Returns 0, or -1 if scratch memory could not be allocated (the caller raises MemoryError).
    """
    cdef Py_ssize_t n = run.n_items
    cdef Py_ssize_t bs = run.block_items
    cdef Py_ssize_t nb = (n + bs - 1) // bs
    cdef Py_ssize_t isz = run.itemsize
    cdef bint reduce = run.loss_out == NULL
    cdef bint want_denom = run.want_denom and reduce
    cdef int nt = run.num_threads
    cdef Py_ssize_t b
    run.loss_sum = 0.0
    run.denom_sum = 0.0
    run.first_bad = -1
    if n <= 0:
        return 0
    if nt < 1 or n * run.item_cost < run.serial_work:
        nt = 1
    if nt > nb:
        nt = <int> nb
    # per thread: one block of losses (+ one of denominators); per block: two partials and a bad index
    cdef Py_ssize_t per_thread = bs * isz * (2 if want_denom else 1) if reduce and not run.fn_sums else 0
    cdef char* scratch = <char*> malloc(nt * per_thread + 1)
    cdef double* part_loss = <double*> malloc(nb * sizeof(double))
    cdef double* part_denom = <double*> malloc(nb * sizeof(double))
    cdef Py_ssize_t* bad = <Py_ssize_t*> malloc(nb * sizeof(Py_ssize_t))
    if scratch == NULL or part_loss == NULL or part_denom == NULL or bad == NULL:
        free(scratch); free(part_loss); free(part_denom); free(bad)
        return -1
    cdef fl_share* shares = NULL
    cdef int t
    if nt > 1 and fl_shares_fit(nb):
        shares = fl_shares_new(nt, nb)
        if shares == NULL:
            free(scratch); free(part_loss); free(part_denom); free(bad)
            return -1
    if nt == 1:     # serial: a plain loop, no OpenMP region (even an if(0) one costs ~0.4 us)
        for b in range(nb):
            run_one_block(fn, ctx, run, b, scratch, part_loss, part_denom, bad)
    elif shares != NULL:    # each thread its own share first, then the others' ends (fl_shares.h)
        with parallel(num_threads=nt):
            t = threadid()
            b = fl_shares_next(shares, nt, t)
            while b >= 0:
                run_one_block(fn, ctx, run, b, scratch + t * per_thread, part_loss, part_denom, bad)
                b = fl_shares_next(shares, nt, t)
        free(shares)
    else:           # 2^31 blocks or more, or no atomic builtins (fl_shares_fit)
        for b in prange(nb, schedule="guided", num_threads=nt, nogil=True):
            run_one_block(fn, ctx, run, b, scratch + threadid() * per_thread, part_loss, part_denom, bad)
    run.loss_sum = fl_pairwise_sum(part_loss, nb)
    run.denom_sum = fl_pairwise_sum(part_denom, nb)
    for b in range(nb):
        if bad[b] >= 0:
            run.first_bad = bad[b]
            break
    free(scratch); free(part_loss); free(part_denom); free(bad)
    return 0


# ---------------------------------------------------------------- elementwise operand streams
# Elementwise losses take operands that may be full arrays, scalars, or vectors broadcast along the last
# axis (torch's pos_weight of shape (C,) over (N, C)).  Inside a block, items are cut into *segments*
# of at most SEG items; within a segment every operand is a plain contiguous pointer -- a scalar points
# at SEG copies of itself, a short last-axis vector (K <= tile_capacity) into its entries repeated
# (tiled) -- so the inner loop has no branches and vectorises.  A longer last-axis vector is read in
# place, and then segments also stop at row ends.
cdef enum:
    SEG = 256

cdef struct Operand:
    # scalar_run comes first: the struct is 8-byte aligned (it holds a pointer), so the doubles written
    # into it are aligned (after `data` and `periodic` it sat at offset 12: misaligned double stores,
    # UB that scripts/sanitize.sh's -fsanitize=undefined reported in every scalar-weight call)
    char scalar_run[SEG * 16] # SEG copies of the scalar, or (tiled) the K entries repeated: entry t holds
                              # data[t % K] for t < SEG + K - 1; in the kernel's floating type
    const char* data          # the array, or NULL for a scalar
    bint periodic             # data has K entries, item i reads data[i % K]
    bint tiled                # periodic, read from scalar_run: SEG items from any i (no stop at row ends)


cdef inline const floating* operand_seg(const Operand* op, Py_ssize_t i, Py_ssize_t K,
                                        const floating* type_tag) noexcept nogil:
    """Pointer to item i of the operand (valid for the rest of the current segment)."""
    if op.data == NULL:
        return <const floating*> op.scalar_run
    if op.tiled:
        return <const floating*> op.scalar_run + (i % K)
    if op.periodic:
        return <const floating*> op.data + (i % K)
    return <const floating*> op.data + i


cdef inline Py_ssize_t segment_end(Py_ssize_t i, Py_ssize_t stop, Py_ssize_t K, bint row_cut) noexcept nogil:
    cdef Py_ssize_t e = i + SEG
    cdef Py_ssize_t row_end
    if e > stop:
        e = stop
    if row_cut:
        row_end = (i // K + 1) * K
        if e > row_end:
            e = row_end
    return e


cdef inline Py_ssize_t tile_capacity(Py_ssize_t itemsize) noexcept nogil:
    """The largest K whose entries, repeated, fill an operand's SEG items from any phase (SEG + K - 1 values
    in scalar_run): 769 for float32, 257 for float64.  Such last-axis vectors cost segments cut at every
    row end otherwise: BCE-with-logits with a pos_weight of C = 14 classes took 4.1 ns per element against
    1.2-1.4 for a scalar one (AVX2, Zen 3)."""
    return SEG * 16 // itemsize - SEG + 1


cdef inline bint set_operand(Operand* op, object value, Py_ssize_t n_items, Py_ssize_t K,
                             Py_ssize_t itemsize) except -1:
    """Fill an operand from a float scalar or a C-contiguous ndarray of n_items (full) or K (periodic)
    entries of the kernel's dtype; a periodic one of K <= tile_capacity is tiled into scalar_run.  Returns
    whether segments must stop at row ends (periodic and not tiled)."""
    cdef Py_ssize_t k
    cdef double d
    op.periodic = False
    op.tiled = False
    if isinstance(value, float):
        op.data = NULL
        d = value       # once: `<float> value` in the loop converted the Python float SEG times (~0.15 us)
        if itemsize == 4:
            for k in range(SEG):
                (<float*> op.scalar_run)[k] = <float> d
        else:
            for k in range(SEG):
                (<double*> op.scalar_run)[k] = d
        return False
    op.data = <const char*> array_data(value)
    if value.size != n_items:
        if value.size != K:
            raise ValueError(f"internal: operand of {value.size} items for {n_items} (K={K})")
        op.periodic = True
        op.tiled = K <= tile_capacity(itemsize)
        if op.tiled and itemsize == 4:
            for k in range(SEG + K - 1):
                (<float*> op.scalar_run)[k] = (<const float*> op.data)[k % K]
        elif op.tiled:
            for k in range(SEG + K - 1):
                (<double*> op.scalar_run)[k] = (<const double*> op.data)[k % K]
    return op.periodic and not op.tiled


# ---------------------------------------------------------------- entry helpers
# Shared by every family's ``def`` entries: the steps around ``run_blocks`` that touch Python objects.
cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyArrayObject
    void* PyArray_DATA(PyArrayObject* arr) nogil   # a static inline field read: no NumPy C-API table


cdef inline void* array_data(object arr):
    """Data pointer of an ndarray.  A plain ``numpy.ndarray`` is read from its struct (``arr.ctypes.data``
    builds a ctypes helper object: 1-3 us per array, most of a small call's cost); anything else
    (a subclass) goes through ``.ctypes``."""
    if strcmp(Py_TYPE(arr).tp_name, "numpy.ndarray") == 0:
        return PyArray_DATA(<PyArrayObject*> arr)
    return <void*> <size_t> arr.ctypes.data


# ---------------------------------------------------------------- the boundary check (defence in depth)
# Every ``def`` entry checks, as its first lines, each buffer it will touch: an ndarray (or subclass) of
# the expected dtype in native byte order, C-contiguous, aligned, writable if written, and of exactly the
# number of items the kernel indexes.  The wrappers (fastloss/*.py) already guarantee all of it; the
# check turns a wrapper bug -- or a direct call with a wrong buffer -- into an exception instead of an
# out-of-bounds read or write.  It reads the array struct's fields only: O(ndim), a few ns per buffer.
cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyArray_Descr:
        char byteorder
        int type_num
    int PyArray_NDIM(PyArrayObject* arr) nogil
    Py_ssize_t* PyArray_DIMS(PyArrayObject* arr) nogil
    int PyArray_FLAGS(PyArrayObject* arr) nogil
    PyArray_Descr* PyArray_DESCR(PyArrayObject* arr) nogil
    enum:
        NPY_ARRAY_C_CONTIGUOUS
        NPY_ARRAY_ALIGNED
        NPY_ARRAY_WRITEABLE
        NPY_FLOAT
        NPY_DOUBLE
        NPY_INT
        NPY_LONG
        NPY_LONGLONG
    char NPY_OPPBYTE        # the non-native byte order character

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX


cdef inline bint is_ndarray(object arr) noexcept:
    cdef PyTypeObject* t = Py_TYPE(arr)
    while t != NULL:
        if strcmp(t.tp_name, "numpy.ndarray") == 0:
            return True
        t = t.tp_base
    return False


cdef inline Py_ssize_t native_itemsize(int type_num, char kind) noexcept:
    """The item size of a native float ('f') or signed integer ('i') NumPy type number, 0 if it is not one."""
    if kind == b'f':
        if type_num == NPY_FLOAT:
            return 4
        if type_num == NPY_DOUBLE:
            return 8
    elif kind == b'i':
        if type_num == NPY_INT:
            return sizeof(int)
        if type_num == NPY_LONG:
            return sizeof(long)
        if type_num == NPY_LONGLONG:
            return sizeof(long long)
    return 0


cdef inline Py_ssize_t buffer_items(object arr) noexcept:
    """The number of items of an ndarray (call after check_buffer)."""
    cdef PyArrayObject* a = <PyArrayObject*> arr
    cdef Py_ssize_t size = 1
    cdef int k
    for k in range(PyArray_NDIM(a)):
        size *= PyArray_DIMS(a)[k]
    return size


cdef inline Py_ssize_t check_buffer(object arr, str name, char kind, Py_ssize_t itemsize, Py_ssize_t n_items,
                                    bint writable) except -1:
    """Check a buffer a kernel will touch; returns its item size.

    ``kind`` b'f' (float32/float64) or b'i' (int32/int64); ``itemsize`` 4 or 8, or 0 for either (the
    first float buffer of an entry fixes the dtype of the others); ``n_items`` the exact number of items
    the kernel indexes, or -1 for any (then read it with ``buffer_items``); ``writable`` if written.
    TypeError for a non-array or a wrong dtype, ValueError for a wrong layout or length."""
    cdef PyArrayObject* a
    cdef PyArray_Descr* d
    cdef Py_ssize_t isz, size
    cdef int flags
    if not is_ndarray(arr):
        raise TypeError(f"fastloss kernel: {name} must be a numpy.ndarray, got {type(arr).__name__}")
    a = <PyArrayObject*> arr
    d = PyArray_DESCR(a)
    isz = native_itemsize(d.type_num, kind)
    if isz == 0 or d.byteorder == NPY_OPPBYTE or (itemsize != 0 and isz != itemsize):
        want = ("float" if kind == b'f' else "int") + (f"{8 * itemsize}" if itemsize else " 32/64-bit")
        raise TypeError(f"fastloss kernel: {name} must be a native {want} array, got dtype {arr.dtype}")
    flags = PyArray_FLAGS(a)
    if flags & (NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED) != (NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED):
        raise ValueError(f"fastloss kernel: {name} must be a C-contiguous, aligned array")
    if writable and not flags & NPY_ARRAY_WRITEABLE:
        raise ValueError(f"fastloss kernel: {name} must be writable")
    if n_items >= 0:
        size = buffer_items(arr)
        if size != n_items:
            raise ValueError(f"fastloss kernel: {name} has {size} items; the kernel reads {n_items}")
    return isz


cdef inline Py_ssize_t check_optional(object arr, str name, char kind, Py_ssize_t itemsize, Py_ssize_t n_items,
                                      bint writable) except -1:
    """check_buffer for a buffer that may be None (returns 0 then)."""
    if arr is None:
        return 0
    return check_buffer(arr, name, kind, itemsize, n_items, writable)


cdef inline int check_operand(object value, str name, Py_ssize_t itemsize, Py_ssize_t n_items,
                              Py_ssize_t K) except -1:
    """An elementwise operand for ``set_operand``: a Python float, or a float array of ``itemsize`` with
    n_items (full) or K (a last-axis vector; K <= 0 means 1) items."""
    if isinstance(value, float):
        return 0
    check_buffer(value, name, b'f', itemsize, -1, False)
    cdef Py_ssize_t size = buffer_items(value)
    if size != n_items and size != (K if K > 0 else 1):
        raise ValueError(f"fastloss kernel: {name} has {size} items; expected {n_items} (full) or "
                         f"{K if K > 0 else 1} (last axis)")
    return 0


cdef inline int check_ndim(object arr, str name, int ndim) except -1:
    """After check_buffer: the array has ``ndim`` dimensions (the kernel reads its shape)."""
    if PyArray_NDIM(<PyArrayObject*> arr) != ndim:
        raise ValueError(f"fastloss kernel: {name} must be {ndim}-d, got shape {arr.shape}")
    return 0


cdef inline Py_ssize_t check_count(Py_ssize_t value, str name) except -1:
    """A size parameter of an entry (n, C, S, D, ...): non-negative."""
    if value < 0:
        raise ValueError(f"fastloss kernel: {name} must be >= 0, got {value}")
    return value


cdef inline int check_enum(int value, int n_members, str name) except -1:
    """A configuration enum of an entry (a ``cpdef enum`` numbered 0 .. n_members - 1): one of them.
    (Cython converts any int to a C enum; a table indexed by it must not be read out of bounds.)"""
    if value < 0 or value >= n_members:
        raise ValueError(f"fastloss kernel: {name} must be one of 0 .. {n_members - 1}, got {value}")
    return value


cdef inline Py_ssize_t items_product(Py_ssize_t a, Py_ssize_t b) except -1:
    """a * b for non-negative sizes, raising instead of overflowing."""
    if a < 0 or b < 0:
        raise ValueError(f"fastloss kernel: negative size in {a} x {b}")
    if b != 0 and a > PY_SSIZE_T_MAX // b:
        raise OverflowError(f"fastloss kernel: {a} x {b} items overflows")
    return a * b


cdef inline void* ptr_or_null(object arr):
    """Data pointer of a C-contiguous ndarray, or NULL for None."""
    if arr is None:
        return NULL
    return array_data(arr)


cdef inline void init_run(BlockRun* run, Py_ssize_t n_items, Py_ssize_t item_cost, Py_ssize_t itemsize,
                          int num_threads, void* loss_out, bint want_denom,
                          Py_ssize_t serial_work=SERIAL_ITEMS_WORK, Py_ssize_t min_block_items=1) noexcept:
    """The run's fields.  Blocks of block_items_for(item_cost) items; but a call that may go parallel
    (its work at least ``serial_work``) in fewer than 8 such blocks is cut into 4 or 8 blocks (of a
    multiple of 32 items from 32 on), so 2 or 4 threads share it about evenly: N = 1000 rows of 10 classes
    made blocks of 384, 384 and 232 rows, and one of 2 threads ran two of them.  (At run's default
    threshold every parallel call has 8 blocks or more: this only cuts entries with a lower threshold.)
    ``min_block_items``: the fewest items a block holds before that cut (a kernel that carries work from
    one item to the next within a block).  The blocks depend on the call's shape alone, never on the thread
    count (note b)."""
    cdef Py_ssize_t b = max(block_items_for(item_cost), min_block_items)
    cdef Py_ssize_t nb = (n_items + b - 1) // b
    if nb < 8 and n_items * item_cost >= serial_work:
        nb = (nb + 3) & ~3
        b = (n_items + nb - 1) // nb
        if b >= 32:
            b = (b + 31) & ~31
    run.n_items = n_items
    run.item_cost = item_cost
    run.block_items = b
    run.serial_work = serial_work
    run.itemsize = itemsize
    run.num_threads = num_threads
    run.loss_out = loss_out
    run.want_denom = want_denom
    run.fn_sums = False


cdef inline object finish_run(int status, BlockRun* run):
    """(loss_sum, denom_sum, first_bad) of a finished run, or MemoryError if it could not start."""
    if status != 0:
        raise MemoryError("fastloss: could not allocate kernel scratch memory")
    return run.loss_sum, run.denom_sum, run.first_bad


cdef inline object run(BlockFn fn, const void* ctx, Py_ssize_t n_items, Py_ssize_t item_cost,
                       Py_ssize_t itemsize, int num_threads, object out, bint want_denom, bint fn_sums=False,
                       Py_ssize_t serial_work=SERIAL_ITEMS_WORK, Py_ssize_t min_block_items=1):
    """The one entry step of every blocked kernel: ``fn`` over ``n_items`` items with the GIL released.

    ``out`` is the reduction="none" output array (per-item losses written in place) or None to reduce;
    ``want_denom`` also sums the per-item denominators; ``fn_sums``: ``fn`` sums its own items (note b);
    ``serial_work``: the work below which the run is serial (note d); ``min_block_items``: as init_run.
    Returns (loss_sum, denom_sum, first_bad); the wrapper maps first_bad >= 0 to its exception
    (``fastloss/_errors.py``)."""
    cdef BlockRun r
    cdef int status
    init_run(&r, n_items, item_cost, itemsize, num_threads, ptr_or_null(out), want_denom, serial_work,
             min_block_items)
    r.fn_sums = fn_sums
    with nogil:
        status = run_blocks(fn, ctx, &r)
    return finish_run(status, &r)


# ---------------------------------------------------------------- the elementwise segment loop
# Elementwise losses (elementwise.pyx) read a prediction x, a target y and a per-element weight as
# streams.  ``ElemStreams`` holds them (the context embeds it as member ``s``), ``set_streams`` fills it
# in a def entry, and ``next_segment`` is the one loop header of their block functions:
#
#     while i < stop:
#         e = next_segment(&c.s, i, stop, &x, &y, &w)      # x, y, w point at item i, valid up to e
#         for k in range(e - i):
#             out[k] = w[k] * point(x[k], y[k], ...)
#         i = e
#
# It inlines to the same code as the header written out (the pointers stay in registers), so the inner
# loops still vectorise.
cdef struct ElemStreams:
    const void* x             # prediction, (n,) C-contiguous
    const void* y             # target, same dtype and length
    Operand weight            # per-element weight (1.0 when the loss has none)
    Py_ssize_t K              # length of the last axis: the period of vector operands
    bint periodic             # some operand is a last-axis vector (no whole-block runs)
    bint row_cut              # segments stop at row ends (a last-axis vector read in place, not tiled)


cdef inline Py_ssize_t next_segment(const ElemStreams* s, Py_ssize_t i, Py_ssize_t stop, const floating** x,
                                    const floating** y, const floating** w) noexcept nogil:
    """Point x, y and w at item i of their streams; return the end of the segment starting at i (at most
    SEG items, and not past a row end when s.row_cut)."""
    x[0] = <const floating*> s.x + i
    y[0] = <const floating*> s.y + i
    w[0] = operand_seg(&s.weight, i, s.K, x[0])
    return segment_end(i, stop, s.K, s.row_cut)


cdef inline bint set_streams(ElemStreams* s, object x, object y, object weight, Py_ssize_t n_weight,
                             Py_ssize_t K) except -1:
    """Fill the streams: x, y C-contiguous arrays of one float dtype (y may be None), weight a float or an
    array of n_weight (full) or K (last axis) items; K <= 0 means 1.  Returns ``s.row_cut``; a family
    with more operands ORs theirs into it (and their periodic into ``s.periodic``)."""
    s.x = ptr_or_null(x)
    s.y = ptr_or_null(y)
    s.K = K if K > 0 else 1
    s.row_cut = set_operand(&s.weight, weight, n_weight, s.K, x.dtype.itemsize)
    s.periodic = s.weight.periodic
    return s.row_cut


cdef inline bint add_operand(ElemStreams* s, Operand* op, object value, Py_ssize_t n_items,
                             Py_ssize_t itemsize) except -1:
    """Fill a family's further operand (set_operand) and fold it into the streams' ``periodic`` and
    ``row_cut``.  Returns ``s.row_cut``."""
    s.row_cut = set_operand(op, value, n_items, s.K, itemsize) or s.row_cut
    s.periodic = op.periodic or s.periodic
    return s.row_cut
