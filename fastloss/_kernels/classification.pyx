# cython: language_level=3
"""Classification kernels: softmax cross-entropy and its relatives (row and spatial layouts), and the
binary (sigmoid) losses.

Read ``_common.pxd`` first: every kernel here is a *block function* run by ``run_blocks``.

Layouts.  Logits are read in place, never transposed:
  * rows     (N, C):         item = a row; classes contiguous (stride 1).  Row primitives from
                             ``src_c/fl_reduce.h`` vectorise over the classes.
  * spatial  (N, C, S):      item = a (sample, position) pair; classes strided by S.  Loops run over a
                             run of positions (contiguous) for one class at a time, so they vectorise
                             across positions -- the layout torch uses for segmentation.
"""
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memset

from fastloss._kernels._common cimport (
    floating, BlockFn, BlockRun, run_blocks, block_items_for, Operand, operand_seg, segment_end, set_operand,
    f_exp, f_log, f_log1p, f_abs, f_max, f_min, row_max, row_sumexp, row_dot,
)

import numpy as np


cdef inline int64_t read_label(const void* labels, bint is64, Py_ssize_t i) noexcept nogil:
    if is64:
        return (<const int64_t*> labels)[i]
    return (<const int32_t*> labels)[i]


cdef inline floating lse_shift(floating m) noexcept nogil:
    """The max used to shift a log-sum-exp: torch's rule -- an infinite max is replaced by 0, so a row
    with a +inf logit gives lse = +inf (not nan) and an all -inf row gives nan as in torch."""
    return 0 if f_abs(m) == <floating> 1.0 / 0.0 else m


cdef object finish_run(int status, BlockRun* run):
    if status != 0:
        raise MemoryError("fastloss: could not allocate kernel scratch memory")
    return run.loss_sum, run.denom_sum, run.first_bad


cdef void init_run(BlockRun* run, Py_ssize_t n_items, Py_ssize_t item_cost, Py_ssize_t itemsize,
                   int num_threads, void* loss_out, bint want_denom) noexcept:
    run.n_items = n_items
    run.item_cost = item_cost
    run.block_items = block_items_for(item_cost)
    run.itemsize = itemsize
    run.num_threads = num_threads
    run.loss_out = loss_out
    run.want_denom = want_denom


cdef inline void* ptr_or_null(object arr):
    """Data pointer of a C-contiguous ndarray, or NULL for None."""
    if arr is None:
        return NULL
    return <void*> <size_t> arr.ctypes.data


# =====================================================================================================
# Softmax cross-entropy with class-index targets
# =====================================================================================================
# Per item with target y, class weights w (1 if absent), smoothing eps over C classes, lse = log sum exp x:
#   loss = (1 - eps) * w_y * (lse - x_y) + (eps / C) * sum_j w_j * (lse - x_j)
#        = lse * ((1 - eps) w_y + (eps/C) W) - (1 - eps) w_y x_y - (eps/C) sum_j w_j x_j,   W = sum_j w_j
#   dloss/dx_j = p_j * ((1 - eps) w_y + (eps/C) W) - (1 - eps) w_y [j = y] - (eps/C) w_j,  p = softmax(x)
#   denominator of the mean (torch): w_y; ignored items contribute 0 to loss, gradient and denominator.
# This is exactly torch's nll_loss(log_softmax) + label-smoothing term (aten/src/ATen/native/LossNLL.cpp).

cdef struct CeCtx:
    const void* x           # logits (N, C[, S])
    const void* labels      # (N[, S]) int32 or int64
    bint labels64
    const void* weight      # (C,) class weights or NULL
    double weight_total     # sum_j w_j (C if no weight)
    Py_ssize_t C
    Py_ssize_t S            # positions per sample (1 for the rows layout)
    int64_t ignore_index
    double smoothing
    void* grad              # same layout as x, or NULL
    double grad_scale       # d(returned loss)/d(item loss): 1/denominator for mean, 1 otherwise


cdef Py_ssize_t ce_rows_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                              floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t C = c.C, i, j, bad = -1
    cdef const floating* w = <const floating*> c.weight
    cdef const floating* row
    cdef floating* g
    cdef floating m, s, lse, wy, coef, gs, sw
    cdef floating eps = <floating> c.smoothing
    cdef floating epsC = <floating> (c.smoothing / C)
    cdef floating wtot = <floating> c.weight_total
    cdef int64_t y
    for i in range(start, stop):
        row = <const floating*> c.x + i * C
        g = <floating*> c.grad + i * C if c.grad != NULL else NULL
        y = read_label(c.labels, c.labels64, i)
        if y == c.ignore_index or y < 0 or y >= C:
            if y != c.ignore_index and bad < 0:
                bad = i
            loss[i - start] = 0
            if denom != NULL:
                denom[i - start] = 0
            if g != NULL:
                memset(g, 0, C * sizeof(floating))
            continue
        wy = w[y] if w != NULL else 1
        m = lse_shift(row_max(row, C))
        s = row_sumexp(row, C, m, g)          # g (if any) now holds exp(x_j - m)
        lse = f_log(s) + m
        coef = (1 - eps) * wy + epsC * wtot
        if eps != 0:
            sw = row_dot(row, w, C)
            loss[i - start] = lse * coef - (1 - eps) * wy * row[y] - epsC * sw
        else:
            loss[i - start] = wy * (lse - row[y])
        if denom != NULL:
            denom[i - start] = wy
        if g != NULL:
            gs = <floating> c.grad_scale
            coef = coef * gs / s
            for j in range(C):
                g[j] = g[j] * coef
            if eps != 0:
                if w != NULL:
                    for j in range(C):
                        g[j] = g[j] - epsC * gs * w[j]
                else:
                    for j in range(C):
                        g[j] = g[j] - epsC * gs
            g[y] = g[y] - (1 - eps) * wy * gs
    return bad


# Spatial layout: items are (n, s) pairs, s contiguous.  A block is cut into runs of positions inside one
# sample; each run is processed class by class with per-position accumulators on the stack.
DEF RUN = 256

cdef Py_ssize_t ce_spatial_block(const CeCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                 floating* loss, floating* denom) noexcept nogil:
    cdef Py_ssize_t C = c.C, S = c.S, bad = -1
    cdef const floating* w = <const floating*> c.weight
    cdef floating eps = <floating> c.smoothing
    cdef floating epsC = <floating> (c.smoothing / C)
    cdef floating wtot = <floating> c.weight_total
    cdef floating gs = <floating> c.grad_scale
    cdef floating m[RUN]
    cdef floating s[RUN]
    cdef floating sw[RUN]
    cdef floating wy[RUN]
    cdef floating xy[RUN]
    cdef int64_t ys[RUN]
    cdef Py_ssize_t i0, n, p0, L, k, j
    cdef const floating* xs
    cdef const floating* xc
    cdef floating* gbase
    cdef floating* gc
    cdef floating v, lse, coef, wj
    cdef int64_t y
    i0 = start
    while i0 < stop:
        n = i0 // S
        p0 = i0 - n * S
        L = stop - i0
        if L > S - p0:
            L = S - p0
        if L > RUN:
            L = RUN
        xs = <const floating*> c.x + n * C * S + p0
        # targets of the run (validated) and their weights
        for k in range(L):
            y = read_label(c.labels, c.labels64, i0 + k)
            if y == c.ignore_index or y < 0 or y >= C:
                if y != c.ignore_index and bad < 0:
                    bad = i0 + k
                ys[k] = -1
                wy[k] = 0
                xy[k] = 0
            else:
                ys[k] = y
                wy[k] = w[y] if w != NULL else 1
                xy[k] = xs[y * S + k]
        # pass 1: max over classes, per position
        for k in range(L):
            m[k] = xs[k]
        for j in range(1, C):
            xc = xs + j * S
            for k in range(L):
                m[k] = xc[k] if xc[k] > m[k] else m[k]
        for k in range(L):
            m[k] = lse_shift(m[k])
            s[k] = 0
            sw[k] = 0
        # pass 2: sum of exp (and the weighted logit sum for smoothing)
        gbase = <floating*> c.grad + n * C * S + p0 if c.grad != NULL else NULL
        for j in range(C):
            xc = xs + j * S
            if gbase != NULL:
                gc = gbase + j * S
                for k in range(L):
                    v = f_exp(xc[k] - m[k])
                    gc[k] = v
                    s[k] = s[k] + v
            else:
                for k in range(L):
                    s[k] = s[k] + f_exp(xc[k] - m[k])
            if eps != 0:
                wj = w[j] if w != NULL else 1
                for k in range(L):
                    sw[k] = sw[k] + wj * xc[k]
        for k in range(L):
            lse = f_log(s[k]) + m[k]
            coef = (1 - eps) * wy[k] + epsC * wtot
            if ys[k] < 0:
                loss[i0 - start + k] = 0
            elif eps != 0:
                loss[i0 - start + k] = lse * coef - (1 - eps) * wy[k] * xy[k] - epsC * sw[k]
            else:
                loss[i0 - start + k] = wy[k] * (lse - xy[k])
            if denom != NULL:
                denom[i0 - start + k] = wy[k]
            # reuse s as the per-position softmax scale for the gradient
            s[k] = 0 if ys[k] < 0 else coef * gs / s[k]
        if gbase != NULL:
            for j in range(C):
                gc = gbase + j * S
                wj = (w[j] if w != NULL else 1) * epsC * gs
                for k in range(L):
                    gc[k] = gc[k] * s[k] - (wj if ys[k] >= 0 else 0)
            for k in range(L):
                if ys[k] >= 0:
                    gbase[ys[k] * S + k] -= (1 - eps) * wy[k] * gs
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
        y = read_label(c.labels, c.labels64, i)
        if y == c.ignore_index or y < 0 or y >= c.C:
            if y != c.ignore_index and bad < 0:
                bad = i
            loss[i - start] = 0
        else:
            loss[i - start] = w[y] if w != NULL else 1
    return bad


def cross_entropy_index(x, labels, weight, Py_ssize_t C, Py_ssize_t S, int64_t ignore_index,
                        double smoothing, str reduction, out, grad, int num_threads):
    """Kernel entry: x (N, C, S) C-contiguous float32/64 (S=1 for rows), labels (N*S,) int32/int64,
    weight (C,) or None, out (N*S,) or None, grad like x or None.
    Returns (loss_sum, denom_sum, first_bad_index)."""
    cdef CeCtx c
    cdef BlockRun run
    cdef Py_ssize_t itemsize = x.dtype.itemsize
    cdef Py_ssize_t n_items = labels.shape[0]
    cdef BlockFn fn
    cdef int status
    c.x = ptr_or_null(x)
    c.labels = ptr_or_null(labels)
    c.labels64 = labels.dtype.itemsize == 8
    c.weight = ptr_or_null(weight)
    c.weight_total = float(np.sum(weight, dtype=np.float64)) if weight is not None else C
    c.C = C
    c.S = S
    c.ignore_index = ignore_index
    c.smoothing = smoothing
    c.grad = NULL
    c.grad_scale = 1.0
    if grad is not None and reduction == "mean":
        # the mean's denominator first (labels only), so the gradient pass can scale as it writes
        fn = <BlockFn> ce_target_weight_block[float] if itemsize == 4 else <BlockFn> ce_target_weight_block[double]
        init_run(&run, n_items, 1, itemsize, num_threads, NULL, False)
        with nogil:
            status = run_blocks(fn, &c, &run)
        finish_run(status, &run)
        c.grad_scale = 1.0 / run.loss_sum if run.loss_sum != 0 else float("nan")
    c.grad = ptr_or_null(grad)
    if S == 1:
        fn = <BlockFn> ce_rows_block[float] if itemsize == 4 else <BlockFn> ce_rows_block[double]
    else:
        fn = <BlockFn> ce_spatial_block[float] if itemsize == 4 else <BlockFn> ce_spatial_block[double]
    init_run(&run, n_items, C, itemsize, num_threads, ptr_or_null(out), reduction == "mean")
    with nogil:
        status = run_blocks(fn, &c, &run)
    return finish_run(status, &run)


# =====================================================================================================
# Binary cross-entropy with logits (elementwise)
# =====================================================================================================
# torch's stable form (aten/src/ATen/native/Loss.cpp, binary_cross_entropy_with_logits):
#   l = 1 + (pos_weight - 1) * y                   (l = 1 without pos_weight)
#   loss = (1 - y) * x + l * softplus(-x),          softplus(-x) = max(-x, 0) + log1p(e),  e = exp(-|x|)
#   dloss/dx = (1 - y) - l * sigmoid(-x),           sigmoid(-x) = (x >= 0 ? e : 1) / (1 + e)
# times the sample weight w.  One exp and one log1p per element serve both the loss and the gradient.

cdef struct BinaryCtx:
    const void* x
    const void* y
    Operand weight           # sample weight: scalar (1.0 when absent), last-axis vector or full array
    Operand pos_weight       # likewise (1.0 when absent)
    Py_ssize_t K             # length of the last axis: the period of vector operands
    bint periodic            # some operand is a last-axis vector: segments stop at row ends
    void* grad
    double grad_scale


cdef inline floating bce_logits_point(floating x, floating y, floating pw, floating* dx) noexcept nogil:
    cdef floating e = f_exp(-f_abs(x))
    cdef floating l = 1 + (pw - 1) * y
    cdef floating sig_neg = (e if x >= 0 else 1) / (1 + e)
    dx[0] = (1 - y) - l * sig_neg
    return (1 - y) * x + l * (f_max(-x, <floating> 0) + f_log1p(e))


cdef Py_ssize_t bce_logits_block(const BinaryCtx* c, Py_ssize_t start, Py_ssize_t stop,
                                 floating* loss, floating* denom) noexcept nogil:
    cdef const floating* x
    cdef const floating* y
    cdef const floating* w
    cdef const floating* pw
    cdef floating* g
    cdef floating* out
    cdef floating gs = <floating> c.grad_scale
    cdef floating d
    cdef Py_ssize_t i = start, e, k, L
    while i < stop:
        e = segment_end(i, stop, c.K, c.periodic)
        L = e - i
        x = <const floating*> c.x + i
        y = <const floating*> c.y + i
        w = operand_seg(&c.weight, i, c.K, x)
        pw = operand_seg(&c.pos_weight, i, c.K, x)
        out = loss + (i - start)
        if c.grad != NULL:
            g = <floating*> c.grad + i
            for k in range(L):
                out[k] = w[k] * bce_logits_point(x[k], y[k], pw[k], &d)
                g[k] = w[k] * d * gs
        else:
            for k in range(L):
                out[k] = w[k] * bce_logits_point(x[k], y[k], pw[k], &d)
        i = e
    return -1


def bce_with_logits(x, y, weight, pos_weight, Py_ssize_t K, str reduction, out, grad, double grad_scale,
                    int num_threads):
    """Kernel entry: x, y C-contiguous (n,) views of the same dtype; weight / pos_weight a float or an
    array of n or K (last axis) items.  Returns (loss_sum, 0, -1)."""
    cdef BinaryCtx c
    cdef BlockRun run
    cdef Py_ssize_t itemsize = x.dtype.itemsize
    cdef Py_ssize_t n = x.shape[0]
    cdef int status
    c.x = ptr_or_null(x)
    c.y = ptr_or_null(y)
    c.K = K if K > 0 else 1
    c.periodic = set_operand(&c.weight, weight, n, c.K, itemsize)
    c.periodic = set_operand(&c.pos_weight, pos_weight, n, c.K, itemsize) or c.periodic
    c.grad = ptr_or_null(grad)
    c.grad_scale = grad_scale
    cdef BlockFn fn = <BlockFn> bce_logits_block[float] if itemsize == 4 else <BlockFn> bce_logits_block[double]
    init_run(&run, n, 1, itemsize, num_threads, ptr_or_null(out), False)
    with nogil:
        status = run_blocks(fn, &c, &run)
    return finish_run(status, &run)
