# Included by elementwise.pyx: a vector kernel, so it is built per ISA level with the elementwise shape
# (a float64 sum that vectorises: 1.3-1.5x slower when built once at the baseline level).
# Kernel of the mergeable loss states (``fastloss/state.py``): the weighted sum of per-item losses.
#
# ``fastloss.partial(..., weight=w)`` runs a loss with ``reduction="none"`` and reduces the per-item
# losses l (the loss's float type) against float64 sample weights w, in one pass by ``run_blocks``::
#
#     total = sum_i w[i // rep] * l[i],     weight_sum = sum_i w[i // rep]
#
# (``rep`` > 1 when one weight covers ``rep`` consecutive items, e.g. a per-row weight of a multilabel
# loss).  The products and weights are float64 items, so the blocks and their fixed-order combine give
# the same bits for every ``num_threads`` (``_common.pxd``, note b).
#
from fastloss._kernels._common cimport BlockRun, run_blocks, init_run, finish_run


cdef struct WeightedCtx:
    const void* loss          # per-item losses, float32 or float64
    bint loss_is_float
    const double* weight      # one weight per ``rep`` items
    Py_ssize_t rep


cdef inline void weighted_items(const floating* loss, const double* weight, Py_ssize_t rep,
                                Py_ssize_t start, Py_ssize_t stop, double* prod, double* w) noexcept nogil:
    cdef Py_ssize_t i
    cdef double wi
    for i in range(start, stop):
        wi = weight[i // rep] if rep != 1 else weight[i]
        prod[i - start] = wi * <double> loss[i]
        if w != NULL:
            w[i - start] = wi


cdef Py_ssize_t weighted_block(const WeightedCtx* c, Py_ssize_t start, Py_ssize_t stop,
                               double* prod, double* w) noexcept nogil:
    if c.loss_is_float:
        weighted_items(<const float*> c.loss, c.weight, c.rep, start, stop, prod, w)
    else:
        weighted_items(<const double*> c.loss, c.weight, c.rep, start, stop, prod, w)
    return -1


def weighted_sum(loss, weight, Py_ssize_t rep, int num_threads):
    """Kernel entry: (sum w*l, sum w) in float64 of C-contiguous 1-d per-item losses ``loss``
    (float32/float64, n items) and float64 weights ``weight`` (n // rep items)."""
    check_buffer(loss, "loss", b'f', 0, -1, False)         # boundary checks (_common.pxd)
    check_buffer(weight, "weight", b'f', 8, -1, False)
    if rep < 1 or buffer_items(weight) * rep != buffer_items(loss):
        raise ValueError(f"fastloss kernel: {buffer_items(weight)} weights x {rep} for {buffer_items(loss)} losses")
    cdef WeightedCtx c
    c.loss = ptr_or_null(loss)
    c.loss_is_float = loss.dtype.itemsize == 4
    c.weight = <const double*> ptr_or_null(weight)
    c.rep = rep
    cdef BlockRun run
    init_run(&run, buffer_items(loss), 1, 8, num_threads, NULL, True)   # float64 items whatever l's type
    cdef int status
    with nogil:
        status = run_blocks(<BlockFn> weighted_block, &c, &run)
    loss_sum, denom_sum, _ = finish_run(status, &run)
    return loss_sum, denom_sum
