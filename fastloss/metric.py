"""Metric-learning losses: triplet / ranking / cosine / hinge embedding losses (torch.nn.functional),
contrastive and in-batch mining losses, InfoNCE / NT-Xent (SPEC §6).

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/metric.pyx``; the arithmetic lives there.  Embeddings are rows: (N, D), or a
single (D,) row for the torch losses that accept it.
"""
import contextlib
import threading

import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads

_K = load("metric")

__all__ = ["triplet_margin_loss", "margin_ranking_loss", "cosine_embedding_loss", "hinge_embedding_loss",
           "contrastive_loss", "batch_hard_triplet_loss", "batch_all_triplet_loss", "info_nce_loss",
           "nt_xent_loss", "arcface_loss"]


# ---------------------------------------------------------------------------------------- helpers
def _check_common(size_average, reduce, reduction):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction)


def _rows(arrays, names, dtype=None):
    """Embedding arguments as C-contiguous arrays of one float dtype (the first one's) and one shape,
    (N, D) or (D,).  Returns (arrays, 2-d views, unbatched)."""
    first = V.prediction(arrays[0], names[0])
    out = [first]
    for a, name in zip(arrays[1:], names[1:]):
        out.append(V.float_array(a, name, dtype=first.dtype) if a is not None else None)
        if out[-1] is not None:
            V.check_same_shape(first, out[-1], names[0], name)
    if first.ndim not in (1, 2):
        raise ValueError(f"{names[0]} must be (N, D) or (D,), got shape {first.shape}")
    unbatched = first.ndim == 1
    views = [None if a is None else (a[None, :] if unbatched else a) for a in out]
    return out, views, unbatched


def _row_targets(target, name, n, unbatched, dtype):
    """Per-row float targets of shape (N,) (or () for one unbatched row)."""
    y = V._to_numpy(target, name)
    expected = () if unbatched else (n,)
    if y.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (one per row), got {y.shape}")
    return V.float_array(y, name, dtype=dtype).reshape(-1)   # (ascontiguousarray makes a 0-d array 1-d)


def _run(kernel, args, arrays, reduction, n, out_shape, dtype, out, return_grad, nt, grad_shape=None):
    """Allocate out/grads, call a kernel ``kernel(*args, out, *grads, grad_scale, nt)`` and finish.

    ``arrays`` are the differentiated inputs (their gradients come back in the same order)."""
    o = V.output_array(out, out_shape, dtype) if reduction == "none" else None
    grads = [np.empty(grad_shape or a.shape, dtype=dtype) for a in arrays] if return_grad else None
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    loss_sum = kernel(*args, None if o is None else o.reshape(-1), *(grads or [None] * len(arrays)),
                         scale, nt)[0]
    value = o if reduction == "none" else V.reduced(loss_sum, n, reduction, dtype)
    if not return_grad:
        return value
    return value, (grads[0] if len(grads) == 1 else tuple(grads))


# ---------------------------------------------------------------------------------- torch losses
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """Triplet margin loss, mirroring ``torch.nn.functional.triplet_margin_loss``.

    Rows of (N, D) (or one (D,) row).  With torch's ``pairwise_distance`` (eps inside the norm)::

        d(x, y) = ||x - y + eps||_p,   loss = max(0, margin + d(a, p) - d(a, n))

    and with ``swap=True`` d(a, n) is replaced by min(d(a, n), d(p, n)).  Any ``p > 0`` (``p=inf``
    included) is accepted; torch's ``margin > 0`` check is kept.  Distances are accumulated in double
    in one pass per row.  ``return_grad=True`` returns ``(loss, (g_anchor, g_positive, g_negative))``
    (torch's autograd conventions at kinks: the hinge passes the gradient at 0, a swap tie splits it
    in half, a zero distance has gradient 0).  Shapes must match (no broadcasting).
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    p = V.check_real(p, "p", low=0.0, low_open=True)
    eps = V.check_real(eps, "eps")
    nt = resolve_num_threads(num_threads)
    (a, pos, neg), (a2, p2, n2), unbatched = _rows([anchor, positive, negative],
                                                  ["anchor", "positive", "negative"])
    out_shape = () if unbatched else (a2.shape[0],)
    return _run(_K.triplet_margin, (a2, p2, n2, margin, p, eps, bool(swap)), [a, pos, neg], reduction,
                a2.shape[0], out_shape, a.dtype, out, return_grad, nt)


def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean",
                          *, num_threads=None, out=None, return_grad=False):
    """Cosine embedding loss, mirroring ``torch.nn.functional.cosine_embedding_loss``.

    Rows of (N, D) with target (N,), or (D,) with a 0-d target.  With torch's EPSILON = 1e-12 (a
    float32 constant) added to each squared magnitude, so a zero vector gives cos = 0, not nan::

        cos = <x1, x2> / sqrt((|x1|^2 + E)(|x2|^2 + E))
        loss = 1 - cos (y = 1),  max(0, cos - margin) (y = -1),  0 (any other y)

    ``return_grad=True`` returns ``(loss, (g_input1, g_input2))``.
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x1, x2), (v1, v2), unbatched = _rows([input1, input2], ["input1", "input2"])
    y = _row_targets(target, "target", v1.shape[0], unbatched, x1.dtype)
    out_shape = () if unbatched else (v1.shape[0],)
    return _run(_K.pair_rows, ("cosine_embedding", v1, v2, y, margin), [x1, x2], reduction, v1.shape[0], out_shape,
                x1.dtype, out, return_grad, nt)


def _scores(arrays, names, target):
    """Score arguments (any shape, all the same) and the target, as flat arrays of one float dtype."""
    xs = [V.prediction(arrays[0], names[0])]
    xs += [V.float_array(a, n, dtype=xs[0].dtype) for a, n in zip(arrays[1:], names[1:])]
    y = V.float_array(target, "target", dtype=xs[0].dtype)
    for x, n in zip(xs[1:] + [y], names[1:] + ["target"]):
        V.check_same_shape(xs[0], x, names[0], n)
    return xs, [x.reshape(-1) for x in xs], y.reshape(-1)


def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean",
                        *, num_threads=None, out=None, return_grad=False):
    """Margin ranking loss, mirroring ``torch.nn.functional.margin_ranking_loss``::

        loss = max(0, -y * (x1 - x2) + margin)

    All three arguments have the same shape (torch disallows broadcasting here).
    ``return_grad=True`` returns ``(loss, (g_input1, g_input2))``.
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x1, x2), (f1, f2), y = _scores([input1, input2], ["input1", "input2"], target)
    return _run(_K.score_loss, (f1, f2, y, margin), [x1, x2], reduction, x1.size, x1.shape, x1.dtype, out,
                return_grad, nt)


def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean",
                         *, num_threads=None, out=None, return_grad=False):
    """Hinge embedding loss, mirroring ``torch.nn.functional.hinge_embedding_loss``::

        loss = [y != 1] * max(0, margin - x) + [y != -1] * x

    (as torch, a target other than +-1 gets both terms).  ``target`` has ``input``'s shape.
    """
    _check_common(size_average, reduce, reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x,), (f,), y = _scores([input], ["input"], target)
    return _run(_K.hinge_embedding, (f, y, margin), [x], reduction, x.size, x.shape, x.dtype, out,
                return_grad, nt)


# ------------------------------------------------------------------------------ SPEC §6 losses
def contrastive_loss(x1, x2, label, margin=1.0, reduction="mean", *, num_threads=None, out=None,
                     return_grad=False):
    """Contrastive (Hadsell et al.) loss on pairs of rows (SPEC §6); ``label`` 1 = similar, 0 = dissimilar::

        d = ||x1 - x2||_2,   loss = y * d^2 + (1 - y) * max(0, margin - d)^2

    ``label`` is (N,) (any real values are used as given; 0/1 is the intended use).  No eps is added
    to the distance: the d^2 term is differentiated as a square (finite at d = 0) and the hinge term's
    gradient is 0 where d = 0 (a norm's subgradient, as torch).  ``return_grad=True`` returns
    ``(loss, (g_x1, g_x2))``.
    """
    V.check_reduction(reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (a, b), (v1, v2), unbatched = _rows([x1, x2], ["x1", "x2"])
    y = _row_targets(label, "label", v1.shape[0], unbatched, a.dtype)
    out_shape = () if unbatched else (v1.shape[0],)
    return _run(_K.pair_rows, ("contrastive", v1, v2, y, margin), [a, b], reduction, v1.shape[0], out_shape, a.dtype,
                out, return_grad, nt)


# ------------------------------------------------------------------ in-batch losses (row blocks)
# Row blocks of the (B x B) Gram / similarity matrix hold about this many numbers (4 MiB of float32):
# memory stays O(block x B), and each block is one BLAS matmul.
_BLOCK_NUMBERS = 1 << 20

# _GRAD_NOTE: with return_grad=True the in-batch losses compute float32 input in float64.  Their
# gradients sum B coefficients of both signs per row (a matmul of the coefficient block); in float32
# that cancellation costs ~1e-4 relative on small entries, outside SPEC §4.  The loss alone stays in
# the input's precision (float32 BLAS).


def _block_rows(n_cols):
    return max(1, min(_BLOCK_NUMBERS // max(n_cols, 1), 4096))


_BLAS_LOCK = threading.Lock()
_BLAS_USERS = [0, None]     # [calls inside _single_threaded_blas, threadpoolctl limiter of the first]


@contextlib.contextmanager
def _single_threaded_blas():
    """BLAS on one thread (threadpoolctl, when installed): OpenBLAS's results depend on its thread
    count, so fastloss runs its own fixed row chunks in parallel instead (see _matmul).

    The BLAS setting is process-wide, so concurrent calls share one limit, counted: the first call in
    sets it and the last one out restores it.  (Nested ``threadpool_limits`` per call restored the
    caller's setting while another Python thread's call was still running: bits differed.)"""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with _BLAS_LOCK:
        if _BLAS_USERS[0] == 0:
            _BLAS_USERS[1] = threadpool_limits(limits=1, user_api="blas")
        _BLAS_USERS[0] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_USERS[0] -= 1
            if _BLAS_USERS[0] == 0:
                _BLAS_USERS[1].restore_original_limits()
                _BLAS_USERS[1] = None


_CHUNK_ROWS = 64
_POOLS = {}


def _parallel(fn, starts, nt):
    """fn(start) for every start, on nt Python threads (the work releases the GIL: BLAS, kernels)."""
    if nt == 1 or len(starts) == 1:
        for r0 in starts:
            fn(r0)
        return
    if nt not in _POOLS:
        from concurrent.futures import ThreadPoolExecutor
        _POOLS[nt] = ThreadPoolExecutor(nt, thread_name_prefix="fastloss-rows")
    list(_POOLS[nt].map(fn, starts))


def _matmul(a, b, nt):
    """a @ b as single-threaded BLAS calls on fixed chunks of 64 rows of a, run on nt threads: the
    same numbers for every nt."""
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))

    def chunk(r0):
        np.matmul(a[r0:r0 + _CHUNK_ROWS], b, out=out[r0:r0 + _CHUNK_ROWS])

    _parallel(chunk, range(0, a.shape[0], _CHUNK_ROWS), nt)
    return out


def _embeddings(x, name):
    e = V.prediction(x, name)
    if e.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {e.shape}")
    return e


def _triplet_mining(embeddings, labels, margin, squared, reduction, batch_all, num_threads, out, return_grad):
    V.check_reduction(reduction)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    e = _embeddings(embeddings, "embeddings")
    lab = V.labels_array(labels, "labels")
    B = e.shape[0]
    if lab.shape != (B,):
        raise ValueError(f"labels must have shape ({B},) (one per embedding), got {lab.shape}")
    dtype = e.dtype
    # float64 for the gradient (see _GRAD_NOTE) and for batch_all, which uses every Gram distance: in
    # float32 their cancellation (|a|^2 + |b|^2 - 2 a.b) costs ~ulp(|a|^2), beyond SPEC §4.  batch_hard
    # keeps the float32 Gram for mining and recomputes the distances it uses (the kernel's Precision note).
    if return_grad or batch_all:
        e = e.astype(np.float64, copy=False)
    sq = np.einsum("ij,ij->i", e, e, dtype=np.float64)
    row_loss = np.zeros(B)
    row_count = np.zeros(B)

    def mine(blk, r0):
        _K.triplet_mining(blk, e, sq, lab, r0, margin, bool(squared), batch_all, return_grad, row_loss,
                          row_count, 1)

    grads = _row_blocks(e, e, mine, return_grad, nt)
    total, cnt, _ = _K.reduce_rows(row_loss, row_count, nt)
    if reduction == "none":
        value = V.output_array(out, (B,), dtype)
        value[...] = row_loss
    else:
        # batch_all's mean over no positive triplet is 0 -- nan when a triplet loss was nan (0 * total)
        value = V.reduced(total, cnt, reduction, dtype, empty_mean=0.0 * total if batch_all else None)
    if not return_grad:
        return value
    # S (the coefficients): dloss/de_i = sum_j S_ij (e_i - e_j) and dloss/de_j -= S_ij (e_i - e_j)
    s_e, st_e, s_rows, s_cols = grads
    g = (s_rows + s_cols)[:, None] * e - s_e - st_e
    if reduction == "mean":
        g *= (1.0 / cnt) if cnt else 0.0
    return value, g.astype(dtype, copy=False)


def batch_hard_triplet_loss(embeddings, labels, margin=1.0, squared=False, reduction="mean", *, num_threads=None,
                            out=None, return_grad=False):
    """Batch-hard triplet loss (Hermans et al. 2017), mining inside the batch from integer labels (SPEC §6).

    For each anchor i, with d the Euclidean distance (its square if ``squared``)::

        loss_i = max(0, max_{j: y_j = y_i, j != i} d_ij - min_{k: y_k != y_i} d_ik + margin)

    An anchor without a positive or without a negative is **skipped**: its loss is 0 and ``mean``
    divides by the number of anchors that have both (nan if none, like any mean over nothing).
    Hardest pairs are mined on row blocks of the Gram matrix (d^2 = |e_i|^2 + |e_j|^2 - 2 e_i.e_j, clamped
    at 0; one BLAS matmul per block, memory O(block x B), never B^2 or B^3); the two distances each anchor
    uses are then recomputed from the rows in double (every candidate within the Gram's rounding bound
    of the hardest is, so the result is the exact hardest pair's).  A nan distance among an anchor's
    candidates gives that anchor nan, as torch's max / min.  The gradient goes to the first
    hardest positive / negative on ties, is 0 for a zero distance, and passes the hinge at 0
    (torch's clamp_min).  ``reduction="none"`` gives the (B,) per-anchor losses.
    ``return_grad=True`` returns ``(loss, d loss / d embeddings)``.
    """
    return _triplet_mining(embeddings, labels, margin, squared, reduction, False, num_threads, out, return_grad)


def batch_all_triplet_loss(embeddings, labels, margin=1.0, squared=False, reduction="mean", *, num_threads=None,
                           out=None, return_grad=False):
    """Batch-all triplet loss, mining every valid triplet inside the batch (SPEC §6).

    Over all (a, p, n) with y_p = y_a, p != a, y_n != y_a:  l_apn = max(0, d_ap - d_an + margin).
    ``mean`` averages over the triplets with **positive loss** (l > 0), as the usual batch-all
    implementations do, and is 0 when there is none (nan if a triplet loss is nan); ``sum`` is the sum
    over all triplets; ``reduction="none"`` gives the (B,) per-anchor sums.  Distances from row blocks of the Gram matrix,
    computed in float64 for float32 input too (every distance is used; in float32 the Gram form's
    cancellation is beyond SPEC §4); a nan triplet loss makes the anchor's sum nan (torch's clamp_min).
    The triplets are enumerated per anchor row (time O(B^2 x positives), memory O(block x B), never a
    (B, B, B) tensor).
    """
    return _triplet_mining(embeddings, labels, margin, squared, reduction, True, num_threads, out, return_grad)


def _row_blocks(rows, cols, kernel, return_grad, nt, sums=True):
    """Run ``kernel(chunk, row0)`` (single-threaded) on fixed 64-row chunks of ``rows @ cols.T``, the
    chunks on nt threads, each chunk's matmul and kernel back to back (memory O(block x M)).

    With ``return_grad`` the kernel leaves the chunk's coefficients S there, and this returns
    (S @ cols, S.T @ rows, row sums of S, column sums of S), accumulated block by block (the sums
    only if ``sums``, else None)."""
    N, M = rows.shape[0], cols.shape[0]
    dtype = np.result_type(rows, cols)
    if return_grad:
        s_cols, st_rows = np.zeros(rows.shape), np.zeros(cols.shape)
        row_sums, col_sums = (np.zeros(N), np.zeros(M)) if sums else (None, None)
    R = _block_rows(M)
    with _single_threaded_blas():
        for r0 in range(0, N, R):
            rr = rows[r0:r0 + R]
            blk = np.empty((rr.shape[0], M), dtype=dtype)

            def chunk(c0):
                part = blk[c0:c0 + _CHUNK_ROWS]
                np.matmul(rr[c0:c0 + _CHUNK_ROWS], cols.T, out=part)
                kernel(part, r0 + c0)
                if return_grad:
                    s_cols[r0 + c0:r0 + c0 + part.shape[0]] = part @ cols
                if return_grad and sums:
                    row_sums[r0 + c0:r0 + c0 + part.shape[0]] = part.sum(axis=1, dtype=np.float64)

            _parallel(chunk, range(0, rr.shape[0], _CHUNK_ROWS), nt)
            if return_grad:
                st_rows += _matmul(blk.T, rr, nt)
                if sums:
                    col_sums += blk.sum(axis=0, dtype=np.float64)
    return (s_cols, st_rows, row_sums, col_sums) if return_grad else None


def _softmax_rows(queries, cands, inv_tau, mask_self, pos_shift, nt, return_grad, labels=None, margin=None,
                  arc=None):
    """Per-row losses of -log softmax(q_i . c_j * inv_tau)_{pos(i)} (the positive by pos_shift, or by
    ``labels`` with an optional arc ``margin``: kernel softmax_rows, ``arc`` = (pos_cos, pos_sin, mode)),
    and with return_grad the gradients of their sum w.r.t. queries and candidates.  A bad label raises
    IndexError."""
    row_loss = np.zeros(queries.shape[0])
    bad = []
    arc = arc or (None, None, "plain")

    def softmax(blk, r0):
        first = _K.softmax_rows(blk, r0, inv_tau, mask_self, pos_shift, return_grad, row_loss, 1, labels, margin,
                                *arc)
        if first >= 0:
            bad.append(first)

    grads = _row_blocks(queries, cands, softmax, return_grad, nt, sums=False)
    if bad:
        V.raise_bad_label(labels, min(bad), cands.shape[0], None, name="labels")
    if not return_grad:
        return row_loss, None, None
    return row_loss, grads[0] * inv_tau, grads[1] * inv_tau


def _finish_rows(row_loss, reduction, dtype, out, nt):
    total = _K.reduce_rows(row_loss, None, nt)[0]
    if reduction == "none":
        o = V.output_array(out, row_loss.shape, dtype)
        o[...] = row_loss
        return o, 1.0
    n = row_loss.shape[0]
    return V.reduced(total, n, reduction, dtype), (1.0 / n if (reduction == "mean" and n) else 1.0)


def info_nce_loss(query, key, temperature=0.07, reduction="mean", *, num_threads=None, out=None,
                  return_grad=False):
    """InfoNCE (SPEC §6): ``loss_i = -log softmax_j(q_i . k_j / temperature)_i``.

    ``query`` (N, D), ``key`` (M, D) with M >= N: key i is the positive of query i, every other key a
    negative.  The rows are used as given (normalise them first for a cosine InfoNCE).  Row blocks of
    the similarity matrix (BLAS matmul, in float64 also for float32 input: unnormalised rows over a small
    temperature amplify a float32 dot product's rounding beyond SPEC §4) with a fused, max-shifted
    log-sum-exp kernel: memory O(block x M).  ``return_grad=True`` returns ``(loss, (g_query, g_key))``.
    """
    V.check_reduction(reduction)
    tau = V.check_real(temperature, "temperature", low=0.0, low_open=True)
    nt = resolve_num_threads(num_threads)
    q = _embeddings(query, "query")
    k = V.float_array(key, "key", dtype=q.dtype)
    if k.ndim != 2 or k.shape[1] != q.shape[1] or k.shape[0] < q.shape[0]:
        raise ValueError(f"key must be (M, {q.shape[1]}) with M >= {q.shape[0]} (query rows), got {k.shape}")
    dtype = q.dtype
    # float64 similarities for float32 input too (and for the gradient, _GRAD_NOTE): the rows are not
    # normalised, so a float32 dot product's rounding, ~ulp(|q| |k|), divided by the temperature, put the
    # loss beyond SPEC §4 (1.8e-5 relative per row at temperature 0.02, D = 16)
    q, k = q.astype(np.float64, copy=False), k.astype(np.float64, copy=False)
    row_loss, gq, gk = _softmax_rows(q, k, 1.0 / tau, False, 0, nt, return_grad)
    value, scale = _finish_rows(row_loss, reduction, dtype, out, nt)
    if not return_grad:
        return value
    return value, ((gq * scale).astype(dtype), (gk * scale).astype(dtype))


_NORMALIZE_EPS = 1e-12      # torch.nn.functional.normalize's default


def _normalize(z, dtype):
    """Rows of z over max(|z|, 1e-12), as ``F.normalize``; returns (u in dtype, |z|, the divisor)."""
    norm = np.sqrt(np.einsum("ij,ij->i", z, z, dtype=np.float64))[:, None]
    den = np.maximum(norm, _NORMALIZE_EPS)
    with np.errstate(invalid="ignore"):     # an inf row gives nan, as in torch, without a warning
        return (z / den).astype(dtype, copy=False), norm, den


def _normalize_grad(u, gu, norm, den):
    """The gradient through u = z / max(|z|, eps): (g - u (u.g)) / |z| where |z| >= eps, g / eps below
    it (torch's clamp_min passes the gradient to the norm only where |z| >= eps)."""
    radial = np.where(norm >= _NORMALIZE_EPS, np.einsum("ij,ij->i", u, gu)[:, None], 0.0)
    return (gu - u * radial) / den


def nt_xent_loss(z1, z2, temperature=0.5, reduction="mean", *, num_threads=None, out=None, return_grad=False):
    """NT-Xent (SimCLR, SPEC §6) over the 2N views z = [z1; z2] (each (N, D)).

    With u = z / max(|z|, 1e-12) (``F.normalize``) and s_ij = u_i . u_j / temperature, the self pair
    excluded and the positive of view i its other view (i +- N)::

        loss_i = logsumexp_{j != i} s_ij - s_{i, pos(i)},    mean over the 2N views

    ``reduction="none"`` gives the (2N,) per-view losses.  Row blocks of the similarity matrix (BLAS
    matmul) with a fused log-sum-exp kernel: memory O(block x 2N), never (2N)^2.
    ``return_grad=True`` returns ``(loss, (g_z1, g_z2))``.
    """
    V.check_reduction(reduction)
    tau = V.check_real(temperature, "temperature", low=0.0, low_open=True)
    nt = resolve_num_threads(num_threads)
    a = _embeddings(z1, "z1")
    b = V.float_array(z2, "z2", dtype=a.dtype)
    V.check_same_shape(a, b, "z1", "z2")
    N = a.shape[0]
    u, norm, den = _normalize(np.concatenate([a, b]), np.float64 if return_grad else a.dtype)  # _GRAD_NOTE
    row_loss, gu, gu2 = _softmax_rows(u, u, 1.0 / tau, True, N, nt, return_grad)
    value, scale = _finish_rows(row_loss, reduction, a.dtype, out, nt)
    if not return_grad:
        return value
    gz = _normalize_grad(u, (gu + gu2) * scale, norm, den).astype(a.dtype)
    return value, (gz[:N], gz[N:])


def _positive_angle(e, w, labels, C):
    """cos and sin of the angle between each embedding and its class centre (float64, (N,) each), from
    the input rows normalised in float64.  For unit rows u, v: 1 - cos = |u - v|^2 / 2 and
    1 + cos = |u + v|^2 / 2, so sin = sqrt((1 - cos)(1 + cos)) keeps its relative precision near
    theta = 0 and pi, where 1 - cos^2 of a rounded cosine does not (float32 similarities near theta = pi
    moved a 67.27 loss by 0.03).  A zero row (normalised to 0) has cos 0, sin 1.  Labels outside
    [0, C) get nan (the kernel reports them)."""
    ok = (labels >= 0) & (labels < C)
    idx = np.where(ok, labels, 0)
    u = np.asarray(e, dtype=np.float64)
    v = np.asarray(w, dtype=np.float64)[idx] if C else np.full(u.shape, np.nan)
    nu = np.sqrt(np.einsum("ij,ij->i", u, u))[:, None]
    nv = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        u = u / np.maximum(nu, _NORMALIZE_EPS)
        v = v / np.maximum(nv, _NORMALIZE_EPS)
        cos = np.einsum("ij,ij->i", u, v)
        unit = (nu[:, 0] >= _NORMALIZE_EPS) & (nv[:, 0] >= _NORMALIZE_EPS)
        dm, dp = u - v, u + v
        s2 = np.where(unit, np.einsum("ij,ij->i", dm, dm) * np.einsum("ij,ij->i", dp, dp) * 0.25, 1.0 - cos * cos)
        sin = np.sqrt(np.maximum(s2, 0.0))
        sin = np.where(np.isnan(s2), s2, sin)
    cos = np.where(ok, cos, np.nan)
    return np.ascontiguousarray(cos), np.ascontiguousarray(sin)


def arcface_loss(embeddings, labels, class_weights, scale=64.0, margin=0.5, reduction="mean", *, easy_margin=False,
                 plain_margin=False, num_threads=None, out=None, return_grad=False):
    """ArcFace (additive angular margin) softmax loss, Deng et al. 2019, as insightface's
    ``ArcMarginProduct`` / ``arcface_torch`` (and pytorch-metric-learning) compute it.

    ``embeddings`` (N, D), integer ``labels`` (N,) in [0, C), ``class_weights`` (C, D) the class centres.
    Both are L2-normalised as ``F.normalize`` does (u = x / max(|x|, 1e-12), so a zero row stays 0)::

        cos_ij = u(e_i) . u(w_j),   theta = arccos(cos_iy) for the row's label y = labels[i]
        z_ij = scale * cos_ij (j != y),   z_iy = scale * phi(cos_iy)
        loss_i = logsumexp_j z_ij - z_iy

    with the target logit, m = ``margin``::

        phi = cos(theta + m) = cos * cos(m) - sin * sin(m)       where cos > th = cos(pi - m)
        phi = cos - mm,  mm = sin(pi - m) * m                    elsewhere (theta + m >= pi)

    the default: insightface's fallback keeps the target logit decreasing in theta (cos(theta + m) grows
    again past theta = pi - m).  ``easy_margin=True`` (insightface's switch) uses cos(theta + m) where
    cos > 0 and cos itself elsewhere.  ``plain_margin=True`` uses cos(theta + m) for every theta (no
    fallback; fastloss's earlier default); it excludes ``easy_margin``.

    Precision: the target's cos and sin(theta) are computed in float64 from the input rows, with
    sin = sqrt((1 - cos)(1 + cos)) and 1 -+ cos = |u -+ v|^2 / 2, exact near theta = 0 and pi where
    sqrt(1 - cos^2) of a rounded cosine is not (insightface's literal formula loses those digits).
    Gradient convention: where sin = 0 (theta = 0 or pi, e.g. an embedding along its class centre, or
    D = 1) d sin / d cos -- infinite there -- is taken as 0, so d z_iy / d cos = scale * cos(m) (1 in the
    fallback branches); autograd of the literal formula gives inf/nan there.  (theta has no derivative
    at 0 or pi -- a cone, like a norm at 0 -- and there d cos / d e = 0, so this is the zero subgradient
    of the margin term.)

    ``scale`` > 0 and ``margin`` are finite reals.  The similarities come from row blocks of
    u(E) @ u(W).T (BLAS; memory O(block x C), never N x C), the margin, max-shifted log-sum-exp and
    reduction from a fused kernel; the mean is over the N rows.  A label outside [0, C) raises
    ``IndexError`` naming ``labels`` and its first position.  ``return_grad=True`` returns
    ``(loss, (g_embeddings, g_class_weights))`` (float32 input is then computed in float64, see
    ``_GRAD_NOTE``).
    """
    V.check_reduction(reduction)
    s = V.check_real(scale, "scale", low=0.0, low_open=True)
    m = V.check_real(margin, "margin")
    for name, v in (("scale", s), ("margin", m)):
        if not np.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v!r}")
    for name, v in (("easy_margin", easy_margin), ("plain_margin", plain_margin)):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {v!r}")
    if easy_margin and plain_margin:
        raise ValueError("easy_margin=True and plain_margin=True exclude each other (pick one target logit)")
    mode = "easy" if easy_margin else ("plain" if plain_margin else "fallback")
    nt = resolve_num_threads(num_threads)
    e = _embeddings(embeddings, "embeddings")
    w = V.float_array(class_weights, "class_weights", dtype=e.dtype)
    if w.ndim != 2 or w.shape[1] != e.shape[1]:
        raise ValueError(f"class_weights must be (C, {e.shape[1]}) (embeddings are {e.shape}), got {w.shape}")
    lab = V.labels_array(labels, "labels")
    N, C = e.shape[0], w.shape[0]
    if lab.shape != (N,):
        raise ValueError(f"labels must have shape ({N},) (one per embedding), got {lab.shape}")
    dtype = np.dtype(np.float64) if return_grad else e.dtype    # see _GRAD_NOTE
    ue, norm_e, den_e = _normalize(e, dtype)
    uw, norm_w, den_w = _normalize(w, dtype)
    pos_cos, pos_sin = _positive_angle(e, w, lab, C)
    row_loss, gue, guw = _softmax_rows(ue, uw, s, False, 0, nt, return_grad, labels=lab, margin=m,
                                       arc=(pos_cos, pos_sin, mode))
    value, red_scale = _finish_rows(row_loss, reduction, e.dtype, out, nt)
    if not return_grad:
        return value
    ge = _normalize_grad(ue, gue * red_scale, norm_e, den_e).astype(e.dtype)
    gw = _normalize_grad(uw, guw * red_scale, norm_w, den_w).astype(e.dtype)
    return value, (ge, gw)
