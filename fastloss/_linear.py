"""Fused linear cross-entropy: the loss of a language-model head, ``cross_entropy(hidden @ weight.T + bias,
target)``, without the N x V logits.

The loss alone (``_loss_by_blocks``): per chunk of tokens, each vocabulary block's logits by one GEMM
into its thread's block buffer (chunk rows x a vocabulary block, at most ``_BLOCK_BYTES``), and at once
that block's per-token max, sum of exps and shifted sum (``linear_ce_block_stats``); then each
token's loss from its blocks' statistics, merged in block order (``linear_ce_combine``).

With ``return_grad`` the tokens are cut into chunks of ``n_c`` rows (``n_c x V`` logits of at most
``_CHUNK_BYTES``); per chunk, in a fixed order:

1. the logits ``hidden_c @ weight.T`` into one reused chunk buffer: BLAS on fixed vocabulary blocks
   (``_vocab_block``: even blocks of at most ``_VOCAB_BLOCK`` classes);
2. ``_kernels/linear.pyx``: per row, bias, soft-cap, log-sum-exp, the loss and (``return_grad``)
   ``G = dloss/dlogits`` in place of the logits;
3. with ``return_grad``: ``grad_hidden_c = G @ weight`` (fixed blocks of ``_HIDDEN_BLOCK`` columns),
   ``grad_bias += sum of G's rows`` (fixed blocks of classes), then ``grad_weight += G.T @ hidden_c``
   by GEMMs that accumulate in place (beta = 1: SciPy's BLAS through the metric kernels'
   ``gemm_tn_add``, the same vocabulary blocks): no product buffer, and no separate pass
   that adds it into ``grad_weight`` (at 4096 tokens that pass re-read and re-wrote the V x d weight
   gradient once per chunk, outside the GEMM).

Every BLAS block runs single-threaded (``_blas.py``: OpenBLAS's results depend on its thread count), the
blocks on ``num_threads`` threads, and the blocks, chunks and their sums depend on the shapes only:
every output is bitwise identical for every ``num_threads``.  Extra memory: the block buffers (the loss
alone) or the chunk buffer (with the gradient), and O(N) for the labels -- never N x V.
"""
from __future__ import annotations

import math
import threading
from typing import Literal, overload

import numpy as np

from . import _validate as V
from ._blas import _kernel_gemm_single_threaded, _parallel, _single_threaded_blas
from ._errors import BadLabel, raise_first_bad
from ._kernels import load
from ._losses import loss_info
from ._threads import resolve_num_threads
from ._typing import ArrayLike, FloatArray, GradOut3, Loss, LossGrads3

_K = load("linear")
_GEMM = load("metric")      # gemm_tn_add: acc += block.T @ rows by single-threaded SciPy BLAS blocks

__all__ = ["linear_cross_entropy"]

_CHUNK_BYTES = 56 << 20     # logits per chunk with a gradient: n_c x V x itemsize at most this (n_c >= 1);
                            # taller chunks amortise each GEMM's packing of weight (V = 32000, OpenBLAS,
                            # AVX-512: 126 -> 137 GFLOP/s for the logits from 256 to 448 rows), within
                            # WORKLOADS.md's 64 MiB of extra memory
_BLOCK_BYTES = 4 << 20      # the loss alone: one thread's block of logits (rows x a vocabulary block) at most this
_VOCAB_BLOCK = 2048         # classes (rows of weight) per BLAS block at most: logits and weight gradient
_HIDDEN_BLOCK = 512         # columns of hidden per BLAS block of the hidden gradient (narrower blocks
                            # of this long-K product ran 15-25% slower in OpenBLAS, AVX-512: 4096 x
                            # 32000 x 1024)


def _rows_within(n, row_bytes, budget):
    """Tokens per chunk: the most whose rows of ``row_bytes`` fit in ``budget`` bytes (a multiple of 16
    from 16 on), >= 1, <= n -- fixed by the shapes, never by num_threads."""
    r = max(1, budget // max(row_bytes, 1))
    if r >= 16:
        r -= r % 16
    return max(1, min(r, n))


def _blocks(n, size):
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _vocab_block(n_classes):
    """Classes per vocabulary block: the fewest blocks of at most _VOCAB_BLOCK classes, as even as a multiple
    of 16 allows (V = 32000: 16 blocks of 2000, not 15 of 2048 and one of 1280, which left a thread idle at
    the end of each GEMM phase: W17/W18 at T=2, medians 3.73 -> 3.61 s).  Fixed by the shapes alone."""
    k = -(-n_classes // _VOCAB_BLOCK)
    size = -(-n_classes // max(k, 1))
    return max(1, min(_VOCAB_BLOCK, -(-size // 16) * 16))


def _loss_by_blocks(h2, w, b, y, o_flat, vocab, vb, n_classes, ignore_index, eps, softcap, lam, nt, labels):
    """The loss alone (no gradient): per chunk of tokens (one thread's block of logits within _BLOCK_BYTES),
    each vocabulary block's logits (``vb`` classes a block) by one GEMM into its thread's block buffer and,
    while in cache, that block's per-token statistics (``linear_ce_block_stats``); then the tokens' losses
    from them (``linear_ce_combine``).  The chunk's logits are never held at once, so the chunks can be
    taller than the gradient's (larger GEMMs run faster: 8.2 -> 7.4 ps per multiply-add from 256 to 512
    rows, OpenBLAS, AVX-512).
    Returns (sum of the losses, count of the tokens not ignored)."""
    n, dtype = y.shape[0], h2.dtype
    rows = _rows_within(n, vb * dtype.itemsize, _BLOCK_BYTES)
    stats = np.empty((rows, len(vocab), 3))
    zy = np.empty(rows)
    local = threading.local()          # each thread's block buffer (rows x vb), for this call
    total = count = 0.0
    with _single_threaded_blas():
        for r0 in range(0, n, rows):
            r1 = min(r0 + rows, n)
            hc, yc, st, zc = h2[r0:r1], y[r0:r1], stats[:r1 - r0], zy[:r1 - r0]

            def block(task, hc=hc, yc=yc, st=st, zc=zc):
                k, (v0, v1) = task
                buf = getattr(local, "buf", None)
                if buf is None:
                    buf = local.buf = np.empty(rows * vb, dtype=dtype)
                z = buf[:hc.shape[0] * (v1 - v0)].reshape(hc.shape[0], v1 - v0)
                np.matmul(hc, w[v0:v1].T, out=z)
                _K.linear_ce_block_stats(z, yc, st, zc, bias=b, v0=v0, blk=k, softcap=softcap, need_sw=eps != 0)

            _parallel(block, list(enumerate(vocab)), nt)
            part, denom, bad = _K.linear_ce_combine(
                st, zc, yc, None if o_flat is None else o_flat[r0:r1], V=n_classes, block=vb,
                ignore_index=ignore_index, smoothing=eps, z_loss=lam, itemsize=dtype.itemsize, num_threads=nt)
            if bad >= 0:
                raise_first_bad(r0 + bad, BadLabel(labels, n_classes, ignore_index, "target", "weight"))
            total += part
            count += denom
    return total, count


def _float_operand(x, name, dtype, ndim):
    """``weight`` / ``bias``: a floating-point array (TypeError otherwise) of ``ndim`` dimensions, in the
    computation dtype, C- or F-contiguous (BLAS reads both; anything else is copied once)."""
    a = V._to_numpy(x, name)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array (float16/32/64), got {V.describe(a, x)}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d, got shape {a.shape}")
    a = a.astype(dtype, copy=False)
    if not (a.flags.c_contiguous or a.flags.f_contiguous) or not a.flags.aligned:
        a = np.ascontiguousarray(a)
    return a


@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, target: ArrayLike, bias: ArrayLike | None = ...,
                         *, ignore_index: int = ..., label_smoothing: float = ..., reduction: str = ...,
                         logit_softcap: float | None = ..., z_loss: float = ..., num_threads: int | None = ...,
                         out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                         grad_out: GradOut3 | None = ...) -> Loss: ...
@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, target: ArrayLike, bias: ArrayLike | None = ...,
                         *, ignore_index: int = ..., label_smoothing: float = ..., reduction: str = ...,
                         logit_softcap: float | None = ..., z_loss: float = ..., num_threads: int | None = ...,
                         out: FloatArray | None = ..., return_grad: Literal[True],
                         grad_out: GradOut3 | None = ...) -> LossGrads3: ...
@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, target: ArrayLike, bias: ArrayLike | None = ...,
                         *, ignore_index: int = ..., label_smoothing: float = ..., reduction: str = ...,
                         logit_softcap: float | None = ..., z_loss: float = ..., num_threads: int | None = ...,
                         out: FloatArray | None = ..., return_grad: bool = ...,
                         grad_out: GradOut3 | None = ...) -> Loss | LossGrads3: ...
@loss_info(family="linear", grad=("hidden", "weight", "bias"), items="rows")
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, target: ArrayLike, bias: ArrayLike | None = None,
                         *, ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean",
                         logit_softcap: float | None = None, z_loss: float = 0.0, num_threads: int | None = None,
                         out: FloatArray | None = None, return_grad: bool = False,
                         grad_out: GradOut3 | None = None) -> Loss | LossGrads3:
    r"""Cross-entropy of a linear layer's logits (a language-model head), without materialising them.

    The value of ``torch.nn.functional.cross_entropy(F.linear(hidden, weight, bias), target, ...)``,
    computed over chunks of tokens: the extra memory is one block of logits per thread (at most 4 MiB)
    for the loss alone, one chunk of logits (at most 56 MiB) with the gradient, never the N x V logits
    (500 MiB for 4096 tokens and 32 000 classes) or their gradient.
    With logits :math:`x = h W^\top + b`, optional soft-capping :math:`z = c \tanh(x / c)` (else
    :math:`z = x`), :math:`\operatorname{lse} = \log \sum_j e^{z_j}`, label smoothing
    :math:`\varepsilon` over :math:`V` classes and z-loss weight :math:`\lambda`, the loss of a token
    with target :math:`y` is

    .. math::

        \ell = (1 - \varepsilon)(\operatorname{lse} - z_y)
               + \frac{\varepsilon}{V} \sum_j (\operatorname{lse} - z_j) + \lambda \operatorname{lse}^2

    (PaLM's z-loss, Gemma's soft-capping).  Sums over classes accumulate in double precision; the
    matrix products run in the computation dtype (float32 for float32 and half-precision inputs).

    Parameters
    ----------
    hidden : array_like
        Hidden states :math:`h`, shape (N, d) or (\*, d), floating point (float16 / bfloat16 compute in
        float32).
    weight : array_like
        The head :math:`W`, shape (V, d) (``torch.nn.Linear``'s layout), floating point; converted to
        ``hidden``'s computation dtype (a float16 weight is converted once, as a whole).
    target : array_like
        Class indices in [0, V) (or ``ignore_index``), integer, of ``hidden``'s shape without its last
        axis.
    bias : array_like or None, optional
        :math:`b`, shape (V,), floating point; default None (no bias).
    ignore_index : int, optional
        Keyword-only.  A target value whose token is skipped: loss 0, gradient 0, not counted by the
        mean; default -100, as torch.
    label_smoothing : float, optional
        Keyword-only.  :math:`\varepsilon` in [0, 1]; default 0.
    reduction : {"mean", "sum", "none"}, optional
        Keyword-only.  ``"none"``: the per-token losses, of ``target``'s shape (the perplexity of a
        corpus is ``exp`` of their mean); ``"sum"``; ``"mean"`` (default) over the tokens not ignored
        (nan when every token is ignored, as torch).
    logit_softcap : float or None, optional
        Keyword-only.  :math:`c > 0`: soft-cap the logits to :math:`c \tanh(x / c)` before the softmax;
        None (default): no cap.
    z_loss : float, optional
        Keyword-only.  :math:`\lambda \ge 0`, the weight of the :math:`\operatorname{lse}^2` term of
        each token not ignored; default 0.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call (the matrix products and the row pass); None (default)
        uses :func:`fastloss.get_num_threads`.  Every output is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_hidden, g_weight, g_bias))``, the gradients of the
        loss (for ``"none"``: of the sum of the losses) with respect to ``hidden``, ``weight`` and the
        bias -- ``g_bias`` of shape (V,) also when ``bias`` is None (the gradient at a zero bias).
        Computed in the same chunked pass: ``softmax - onehot`` per chunk, then two more matrix
        products.
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 3 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the per-token losses for
        ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to ``hidden``, ``weight`` and the
        bias, of their shapes.

    Raises
    ------
    TypeError
        A non-floating-point ``hidden``, ``weight`` or ``bias``, or a non-integer ``target``.
    ValueError
        ``hidden`` and ``weight`` with different ``d``, a ``bias`` not of length V, a ``target`` not of
        ``hidden``'s leading shape, ``logit_softcap <= 0``, ``z_loss < 0``, ``label_smoothing`` outside
        [0, 1], or a bad ``reduction``.
    IndexError
        A target outside [0, V) that is not ``ignore_index``; the message names its position and value.

    See Also
    --------
    cross_entropy : the same loss on logits already computed.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> h, W = rng.standard_normal((5, 8)), rng.standard_normal((11, 8))
    >>> y = np.array([3, 0, 10, -100, 7])
    >>> x = h @ W.T
    >>> lse = np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) + x.max(1)
    >>> keep = y != -100
    >>> ref = np.mean(lse[keep] - x[keep, y[keep]])
    >>> bool(np.isclose(fl.linear_cross_entropy(h, W, y), ref))
    True
    >>> loss, (gh, gW, gb) = fl.linear_cross_entropy(h, W, y, return_grad=True)
    >>> G = np.exp(x - lse[:, None]) - np.eye(11)[np.where(keep, y, 0)]
    >>> G[~keep] = 0
    >>> bool(np.allclose(gh, G @ W / 4) and np.allclose(gW, G.T @ h / 4) and np.allclose(gb, G.sum(0) / 4))
    True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    eps = V.check_real(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    ignore_index = V.check_int(ignore_index, "ignore_index",
                               " (a target value to skip; -100 by default, as torch)")
    softcap = 0.0
    if logit_softcap is not None:
        softcap = V.check_real(logit_softcap, "logit_softcap", low=0.0, low_open=True)
        if not math.isfinite(softcap):
            raise ValueError(f"logit_softcap must be a finite number > 0 (or None), got {logit_softcap!r}")
    lam = V.check_real(z_loss, "z_loss", low=0.0)
    if not math.isfinite(lam):
        raise ValueError(f"z_loss must be a finite number >= 0, got {z_loss!r}")
    nt = resolve_num_threads(num_threads)

    h = V.prediction(hidden, "hidden")
    if h.ndim < 1:
        raise ValueError(f"hidden must be (N, d) or (*, d), got a 0-d array")
    dtype = h.dtype
    d = h.shape[-1]
    lead = h.shape[:-1]
    w = _float_operand(weight, "weight", dtype, 2)
    n_classes = w.shape[0]
    if w.shape[1] != d:
        raise ValueError(f"weight must be (V, d) with hidden's d = {d}, got shape {w.shape}")
    b = None
    if bias is not None:
        b = np.ascontiguousarray(_float_operand(bias, "bias", dtype, 1))
        if b.shape[0] != n_classes:
            raise ValueError(f"bias must have length V = {n_classes} (weight's rows), got shape {b.shape}")
    labels = V.labels_array(target, "target")
    if labels.shape != lead:
        raise ValueError(f"target must have hidden's leading shape {lead} (one class per token), got "
                         f"{labels.shape}")
    n = labels.size
    h2 = h.reshape(n, d)
    y = labels.reshape(-1)
    o = V.output_array(out, lead, dtype) if reduction == "none" else None
    o_flat = None if o is None else o.reshape(-1)

    gh = gh_out = gw = gb = gb_out = None
    gs = 1.0
    if return_grad:
        given = V.grad_outs(grad_out, 3)
        reads = (hidden, weight, bias, target, h, w, b, o)
        gh_out = V.grad_buffer(given[0], h.shape, dtype, reads, name="grad_out[0]")
        gh = gh_out.reshape(n, d)                      # C-contiguous: a view
        gw = V.grad_buffer(given[1], (n_classes, d), dtype, (*reads, gh_out), zero=True, name="grad_out[1]")
        gb_out = V.grad_buffer(given[2], (n_classes,), dtype, (*reads, gh_out, gw), name="grad_out[2]")
        gb = np.zeros(n_classes, dtype=np.float64)     # summed in float64, cast into gb_out at the end
        if reduction == "mean":
            n_valid = int(np.count_nonzero(y != ignore_index))
            gs = 1.0 / n_valid if n_valid else math.nan

    vb = _vocab_block(n_classes)
    vocab = _blocks(n_classes, vb)
    if not return_grad:
        total, count = _loss_by_blocks(h2, w, b, y, o_flat, vocab, vb, n_classes, ignore_index, eps, softcap,
                                       lam, nt, labels)
        return o if o is not None else V.reduced(total, count, reduction, dtype)

    rows = _rows_within(n, n_classes * dtype.itemsize, _CHUNK_BYTES)
    buf = np.empty((min(rows, n), n_classes), dtype=dtype)
    cols = _blocks(d, _HIDDEN_BLOCK)
    total = count = 0.0
    with _single_threaded_blas(), _kernel_gemm_single_threaded(_GEMM.blas_address()):
        for r0 in range(0, n, rows):
            r1 = min(r0 + rows, n)
            hc, z = h2[r0:r1], buf[:r1 - r0]

            def logits(block, hc=hc, z=z):
                v0, v1 = block
                np.matmul(hc, w[v0:v1].T, out=z[:, v0:v1])

            _parallel(logits, vocab, nt)
            part, denom, bad = _K.linear_ce_rows(
                z, y[r0:r1], None if o_flat is None else o_flat[r0:r1], bias=b, V=n_classes,
                ignore_index=ignore_index, smoothing=eps, softcap=softcap, z_loss=lam, grad=True,
                grad_scale=gs, num_threads=nt)
            if bad >= 0:
                raise_first_bad(r0 + bad, BadLabel(labels, n_classes, ignore_index, "target", "weight"))
            total += part
            count += denom

            def grads(task, hc=hc, z=z, r0=r0, r1=r1):
                kind, (a0, a1) = task
                if kind == "hidden":        # rows r0:r1, columns a0:a1 of G @ W
                    np.matmul(z, w[:, a0:a1], out=gh[r0:r1, a0:a1])
                else:                       # classes a0:a1 of the bias gradient: G's column sums
                    _K.linear_bias_grad_add(z, gb, a0, a1)

            _parallel(grads, [("hidden", blk) for blk in cols] + [("bias", blk) for blk in vocab], nt)
            _GEMM.gemm_tn_add(z, np.ascontiguousarray(hc), gw, num_threads=nt, block_rows=vb)

    value = o if o is not None else V.reduced(total, count, reduction, dtype)
    assert gh_out is not None and gw is not None and gb is not None and gb_out is not None
    np.copyto(gb_out, gb, casting="unsafe")
    return value, (gh_out, gw, gb_out)
