"""Metric-learning losses: triplet / ranking / cosine / hinge embedding losses (torch.nn.functional),
contrastive and in-batch mining losses, InfoNCE, NT-Xent and ArcFace.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/metric.pyx``; the arithmetic lives there.  Embeddings are rows: (N, D), or a
single (D,) row for the torch losses that accept it.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Literal, overload

import numpy as np

from . import _validate as V
from ._errors import BadLabel, raise_first_bad
from ._blas import _kernel_gemm_single_threaded
from ._kernels import load
from ._losses import loss_info
from ._threads import resolve_num_threads
from ._typing import ArrayLike, FloatArray, GradOut2, GradOut3, Loss, LossGrad, LossGrads2, LossGrads3

_K = load("metric")
# The kernels' typed configuration (metric.pyx: MetricLoss names a loss for METRIC_BLOCKS, ArcMargin the
# arcface target logit), as namespaces of the members' plain ints: read through its Enum class, a member
# costs ~250 ns (Python 3.11), and Cython converts an IntEnum member to the C enum through Python
# (~900 instructions a call), an int not.
_L = SimpleNamespace(**{name: int(m) for name, m in _K.MetricLoss.__members__.items()})
_ARC = SimpleNamespace(**{name: int(m) for name, m in _K.ArcMargin.__members__.items()})

__all__ = ["triplet_margin_loss", "margin_ranking_loss", "cosine_embedding_loss", "hinge_embedding_loss",
           "contrastive_loss", "batch_hard_triplet_loss", "batch_all_triplet_loss", "info_nce_loss",
           "nt_xent_loss", "arcface_loss"]


# ---------------------------------------------------------------------------------------- helpers
def _check_common(size_average, reduce, reduction, out, return_grad, grad_out):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)


def _rows(arrays, names, dtype=None):
    """Embedding arguments as C-contiguous arrays of one float dtype (the first one's) and one shape,
    (N, D) or (D,).  Returns (arrays, 2-d views, unbatched)."""
    if _K.plain_rows(*arrays):     # (the usual call: ndarrays already as below, checked in the kernel module)
        return arrays, arrays, False
    first = V.prediction(arrays[0], names[0])
    dtype, shape = first.dtype, first.shape
    out = [first]
    for i in range(1, len(arrays)):     # (no zip, slices or comprehension: ~1 us of a small call)
        a = V.float_array(arrays[i], names[i], dtype=dtype)      # (None is a TypeError naming it)
        if a.shape != shape:
            V.check_same_shape(first, a, names[0], names[i])
        out.append(a)
    if len(shape) == 2:
        return out, out, False
    if len(shape) != 1:
        raise ValueError(f"{names[0]} must be (N, D) or (D,), got shape {shape}")
    return out, [a[None, :] for a in out], True


def _broadcast_rows(arrays, names):
    """torch's pairwise_distance operands (triplet_margin_loss): arrays of one ndim >= 1 that broadcast
    together, distances along the last axis.  Returns (the operands as arrays, None) when they are one
    (N, D) or (D,) shape (for ``_rows``: converted once, not again), else (None, (the operands broadcast and
    materialised as (M, D) rows, the broadcast shape, the operands' own shapes))."""
    first = V.prediction(arrays[0], names[0])
    ops = [first] + [V.float_array(a, nm, dtype=first.dtype) for a, nm in zip(arrays[1:], names[1:])]
    shapes = [a.shape for a in ops]
    if all(s == shapes[0] for s in shapes) and len(shapes[0]) in (1, 2):
        return ops, None
    if any(len(s) != len(shapes[0]) for s in shapes) or not shapes[0]:
        raise ValueError("anchor, positive and negative must have the same number of dimensions (>= 1), as "
                         "torch's; got shapes " + ", ".join(f"{nm} {s}" for nm, s in zip(names, shapes)))
    try:
        full = np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError("anchor, positive and negative must broadcast together; got shapes "
                         + ", ".join(f"{nm} {s}" for nm, s in zip(names, shapes))) from None
    rows = [np.ascontiguousarray(np.broadcast_to(a, full)).reshape(-1, full[-1]) for a in ops]
    return None, (rows, full, shapes)


def _triplet_broadcast(bc, margin, p, eps, swap, reduction, nt, out, return_grad, grad_out, given):
    """triplet_margin_loss of operands that broadcast (``_broadcast_rows``): the kernel over the broadcast
    rows, the loss of the broadcast batch shape, each gradient summed back to its operand's shape."""
    (a2, p2, n2), full, shapes = bc
    n = a2.shape[0]
    dtype = a2.dtype
    o = V.output_array(out, full[:-1], dtype) if reduction == "none" else None
    grads = [np.empty(a2.shape, dtype=dtype) for _ in range(3)] if return_grad else [None] * 3
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    total = _K.triplet_margin(a2, p2, n2, None if o is None else o.reshape(-1), *grads, margin=margin, pnorm=p,
                              eps=eps, swap=swap, grad_scale=scale, num_threads=nt)[0]
    value = o if reduction == "none" else V.reduced(total, n, reduction, dtype)
    return _broadcast_result(value, grads, full, shapes, grad_out, (*given, o))


def _broadcast_result(value, grads, shape, shapes, grad_out, inputs):
    """The value, and the gradients of rows broadcast to ``shape`` summed back to their operands' ``shapes``
    (delivered into ``grad_out``), or the value alone without gradients (grads None)."""
    if grads[0] is None:
        return value
    gs = tuple(V.unbroadcast(g.reshape(shape), s) for g, s in zip(grads, shapes))
    return value, V.deliver_grads(grad_out, gs, inputs)


def _row_targets(target, name, n, unbatched, dtype):
    """Per-row float targets of shape (N,) (or () for one unbatched row)."""
    y = V._to_numpy(target, name)
    expected = () if unbatched else (n,)
    if y.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (one per row), got {y.shape}")
    return V.float_array(y, name, dtype=dtype).reshape(-1)   # (ascontiguousarray makes a 0-d array 1-d)


def _outputs(out, out_shape, dtype, reduction, n, arrays, return_grad, grad_shape=None, grad_out=None,
             given=()):
    """The outputs of a kernel call: (the reduction="none" output or None, its flat view for the kernel,
    the gradients -- one per differentiated input of ``arrays``, None each without return_grad -- and the
    gradient scale).  The wrapper calls its kernel with them -- buffers by position, configuration by
    keywords written out -- and finishes with ``_result``.  (A ``**options`` dict, or ``*grads`` in the
    call, makes CPython pass the keywords as a dict: ~1400-3800 more instructions a call.)  ``grad_out``:
    the user's gradient buffers (an array, or a tuple for several), checked against ``arrays``, ``given``
    (the arguments as passed) and the output."""
    o = V.output_array(out, out_shape, dtype) if reduction == "none" else None
    if return_grad:
        shapes = [a.shape if grad_shape is None else grad_shape for a in arrays]
        grads = [np.empty(s, dtype=dtype) for s in shapes] if grad_out is None else \
            V.grad_buffers(grad_out, shapes, dtype, (*arrays, *given, o))
    else:
        grads = (None,) * len(arrays)
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    return o, None if o is None else o.reshape(-1), grads, scale


def _result(loss_sum, o, reduction, n, dtype, *grads):
    """The value (and the gradients, when they are not None) of a kernel call prepared by ``_outputs``."""
    value = o if reduction == "none" else V.reduced(loss_sum, n, reduction, dtype)
    if grads[0] is None:
        return value
    return value, (grads[0] if len(grads) == 1 else tuple(grads))


# ---------------------------------------------------------------------------------- torch losses
@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., size_average: bool | None = ...,
                        reduce: bool | None = ..., reduction: str = ..., *, num_threads: int | None = ...,
                        out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                        grad_out: GradOut3 | None = ...) -> Loss: ...
@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., size_average: bool | None = ...,
                        reduce: bool | None = ..., reduction: str = ..., *, num_threads: int | None = ...,
                        out: FloatArray | None = ..., return_grad: Literal[True],
                        grad_out: GradOut3 | None = ...) -> LossGrads3: ...
@overload
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = ...,
                        p: float = ..., eps: float = ..., swap: bool = ..., size_average: bool | None = ...,
                        reduce: bool | None = ..., reduction: str = ..., *, num_threads: int | None = ...,
                        out: FloatArray | None = ..., return_grad: bool = ...,
                        grad_out: GradOut3 | None = ...) -> Loss | LossGrads3: ...
@loss_info(family="metric", grad=("anchor", "positive", "negative"), items="rows")
def triplet_margin_loss(anchor: ArrayLike, positive: ArrayLike, negative: ArrayLike, margin: float = 1.0,
                        p: float = 2, eps: float = 1e-6, swap: bool = False, size_average: bool | None = None,
                        reduce: bool | None = None, reduction: str = "mean", *,
                        num_threads: int | None = None, out: FloatArray | None = None,
                        return_grad: bool = False, grad_out: GradOut3 | None = None) -> Loss | LossGrads3:
    r"""Triplet margin loss, mirroring :func:`torch.nn.functional.triplet_margin_loss`.

    With torch's ``pairwise_distance`` (:math:`\epsilon` inside the norm),

    .. math::

        d(x, y) = \lVert x - y + \epsilon \rVert_p, \qquad
        \ell_i = \max\bigl(0,\ m + d(a_i, p_i) - d(a_i, n_i)\bigr)

    and with ``swap=True`` :math:`d(a, n)` is replaced by :math:`\min(d(a, n), d(p, n))`.
    Distances are accumulated in double precision, one pass per row.  Gradients follow torch's
    autograd at the kinks: the hinge passes the gradient at 0, a swap tie splits it in half, and a
    zero distance has gradient 0.

    Parameters
    ----------
    anchor : array_like
        Anchor rows, shape (N, D) or (D,) -- or any shape (..., D), floating point: as torch's
        ``pairwise_distance``, the three operands have one number of dimensions and broadcast
        together (then materialised once each, at the broadcast shape), distances along the last axis,
        the loss of shape ``broadcast[:-1]``, each gradient summed back to its operand's shape.
    positive : array_like
        Positive rows (``anchor``'s shape, or one that broadcasts with it).
    negative : array_like
        Negative rows (likewise).
    margin : float, optional
        :math:`m > 0` (torch's check is kept); default 1.
    p : float, optional
        Norm degree, any real number as torch's norm: ``inf`` (max), ``-inf`` (min), 0 (the count
        of nonzero entries, gradient 0), :math:`p < 0` (:math:`(\sum_k |d_k|^p)^{1/p}`, 0 when an
        entry is 0); default 2.
    eps : float, optional
        :math:`\epsilon`; default 1e-6.
    swap : bool, optional
        Use the distance swap (Balntas et al., 2016); default False.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the (N,) row losses; ``"sum"``; ``"mean"`` (default) over the rows.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_anchor, g_positive, g_negative))`` (for
        ``"none"``: the gradients of the sum of the losses).
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 3 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the row losses for
        ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to the three inputs.

    Raises
    ------
    ValueError
        ``margin <= 0``, a nan ``p``, ``p < 0`` or infinite with an empty last axis (torch: no such
        norm), shapes that do not broadcast or differ in their number of dimensions (as torch), or a
        bad ``reduction``.

    See Also
    --------
    batch_hard_triplet_loss, batch_all_triplet_loss : triplets mined inside a labelled batch.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> a, p, n = rng.standard_normal((3, 4, 8))
    >>> d = lambda x, y: np.linalg.norm(x - y + 1e-6, axis=1)
    >>> ref = np.maximum(0, 1.0 + d(a, p) - d(a, n))
    >>> bool(np.allclose(fl.triplet_margin_loss(a, p, n, reduction="none"), ref))
    True
    """
    _check_common(size_average, reduce, reduction, out, return_grad, grad_out)
    # (the usual values are recognised inline: a validator's call costs 0.1-0.3 us of a small call)
    if type(margin) is not float or not margin > 0:
        margin = V.check_real(margin, "margin")
        if margin <= 0:
            raise ValueError(f"margin must be greater than 0, got {margin}")
    if type(p) is not float or p != p:
        p = V.check_real(p, "p")
        if p != p:
            raise ValueError("p must be a number (a norm degree, inf included), got nan")
    if type(eps) is not float:
        eps = V.check_real(eps, "eps")
    nt = resolve_num_threads(num_threads)
    if swap is not False and swap is not True:
        swap = V.check_bool(swap, "swap")
    if not _K.plain_rows(anchor, positive, negative):
        names = ["anchor", "positive", "negative"]
        ops, bc = _broadcast_rows([anchor, positive, negative], names)
        if bc is not None:      # broadcast or more than 2-d: as torch's pairwise_distance, over the last axis
            return _triplet_broadcast(bc, margin, p, eps, swap, reduction, nt, out, return_grad, grad_out,
                                      (anchor, positive, negative))
        (a, pos, neg), (a2, p2, n2), unbatched = _rows(ops, names)
    else:           # (the usual call: _rows would return them as they are)
        a, pos, neg = a2, p2, n2 = anchor, positive, negative
        unbatched = False
    n = a2.shape[0]
    if reduction != "none" and not return_grad:     # a reduced value alone: the usual call
        total = _K.triplet_margin(a2, p2, n2, None, None, None, None, margin=margin, pnorm=p, eps=eps,
                                  swap=swap, grad_scale=1.0, num_threads=nt)[0]
        return V.reduced(total, n, reduction, a.dtype)
    out_shape = () if unbatched else (n,)
    o, flat, (ga, gp, gn), scale = _outputs(out, out_shape, a.dtype, reduction, n, [a, pos, neg], return_grad,
                                            grad_out=grad_out, given=(anchor, positive, negative))
    total = _K.triplet_margin(a2, p2, n2, flat, ga, gp, gn, margin=margin, pnorm=p, eps=eps, swap=swap,
                              grad_scale=scale, num_threads=nt)[0]
    return _result(total, o, reduction, n, a.dtype, ga, gp, gn)


@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                          size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                          num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: Literal[False] = ..., grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                          size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                          num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: Literal[True], grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                          size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                          num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: bool = ..., grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="metric", grad=("input1", "input2"), items="rows")
def cosine_embedding_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = 0,
                          size_average: bool | None = None, reduce: bool | None = None,
                          reduction: str = "mean", *, num_threads: int | None = None,
                          out: FloatArray | None = None, return_grad: bool = False,
                          grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""Cosine embedding loss, mirroring :func:`torch.nn.functional.cosine_embedding_loss`.

    With torch's :math:`E = 10^{-12}` (a float32 constant) added to each squared norm, so that a
    zero vector gives :math:`\cos = 0` rather than nan,

    .. math::

        \cos_i = \frac{\langle x_{1i}, x_{2i} \rangle}
                      {\sqrt{(\lVert x_{1i} \rVert^2 + E)(\lVert x_{2i} \rVert^2 + E)}}, \qquad
        \ell_i = \begin{cases} 1 - \cos_i & y_i = 1 \\
                               \max(0, \cos_i - m) & y_i = -1 \\
                               0 & \text{otherwise} \end{cases}

    Parameters
    ----------
    input1 : array_like
        Rows of shape (N, D), or one (D,) row, floating point.
    input2 : array_like
        Rows of ``input1``'s shape.
    target : array_like
        :math:`y`, shape (N,) (or () for one row): 1 for similar, -1 for dissimilar pairs.
    margin : float, optional
        :math:`m`; default 0.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the row losses; ``"sum"``; ``"mean"`` (default) over the rows.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_input1, g_input2))`` (for ``"none"``: the
        gradients of the sum of the losses).
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the row losses for
        ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to ``input1`` and ``input2``.

    Raises
    ------
    ValueError
        Mismatched shapes, a ``target`` of the wrong shape, or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x1 = np.array([[1.0, 0.0], [1.0, 1.0]])
    >>> x2 = np.array([[1.0, 1.0], [1.0, 1.0]])
    >>> cos = np.array([1 / np.sqrt(2), 1.0])
    >>> bool(np.allclose(fl.cosine_embedding_loss(x1, x2, np.array([1, -1]), reduction="none"),
    ...                  [1 - cos[0], max(0.0, cos[1] - 0.0)]))
    True
    """
    _check_common(size_average, reduce, reduction, out, return_grad, grad_out)
    if not (_K.plain_rows(input1, input2) and type(target) is np.ndarray
            and target.shape == np.shape(input1)[:1]):      # (not the usual call: rows, one target per row)
        bc = _cosine_broadcast(input1, input2, target)
        if bc is not None:      # rows or targets that broadcast, as torch's
            return _pair_rows_broadcast(_L.COSINE_EMBEDDING, bc, margin, reduction, num_threads, out,
                                        return_grad, grad_out, (input1, input2, target))
    return _pair_rows_loss(_L.COSINE_EMBEDDING, (input1, input2, target), ("input1", "input2", "target"),
                           margin, reduction, num_threads, out, return_grad, grad_out)


def _cosine_broadcast(input1, input2, target):
    """torch's cosine_embedding_loss broadcasts its products and its ``where`` on the target: (N, D) rows
    against (1, D), a (1,) target against N rows, ...  None when input1 and input2 are one (N, D) / (D,)
    shape and the target one per row (``_pair_rows_loss`` takes them, and checks them); else (input1,
    input2 as (M, D) rows, the target as (M,), the loss's shape, the inputs' own shapes)."""
    a = V.prediction(input1, "input1")
    b = V.float_array(input2, "input2", dtype=a.dtype)
    y = V.float_array(V._to_numpy(target, "target"), "target", dtype=a.dtype)
    if a.shape == b.shape and a.ndim in (1, 2) and y.shape == a.shape[:-1]:
        return None
    if not (y.ndim == 1 and a.ndim == b.ndim == 2) and not (y.ndim == 0 and a.ndim == b.ndim == 1):
        return None     # (not a shape torch takes: _pair_rows_loss names what is wrong)
    try:
        rows = np.broadcast_shapes(a.shape, b.shape)
        full = np.broadcast_shapes(rows[:-1], y.shape)
    except ValueError:
        raise ValueError(f"input1 {a.shape}, input2 {b.shape} and target {y.shape} must broadcast together "
                         f"(rows, and the target against them)") from None
    shape = full + rows[-1:]
    a2, b2 = (np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(-1, shape[-1]) for v in (a, b))
    y2 = np.ascontiguousarray(np.broadcast_to(y, full)).reshape(-1)
    return a2, b2, y2, full, (a.shape, b.shape)


def _pair_rows_broadcast(kind, bc, margin, reduction, num_threads, out, return_grad, grad_out, given):
    """``_pair_rows_loss`` over broadcast rows (``_cosine_broadcast``): the loss of the broadcast shape,
    each gradient summed back to its input's shape."""
    a2, b2, y2, full, shapes = bc
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    n = a2.shape[0]
    o = V.output_array(out, full, a2.dtype) if reduction == "none" else None
    g1, g2 = (np.empty(a2.shape, dtype=a2.dtype), np.empty(a2.shape, dtype=a2.dtype)) if return_grad else \
        (None, None)
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    total = _K.pair_rows(a2, b2, y2, None if o is None else o.reshape(-1), g1, g2, kind=kind, margin=margin,
                         grad_scale=scale, num_threads=nt)[0]
    value = o if reduction == "none" else V.reduced(total, n, reduction, a2.dtype)
    return _broadcast_result(value, (g1, g2), full + a2.shape[-1:], shapes, grad_out, (*given, o))


def _pair_rows_loss(kind, args, names, margin, reduction, num_threads, out, return_grad, grad_out):
    """The body of the two-row losses of one margin and a +-1 / 0-1 row target (cosine_embedding_loss,
    contrastive_loss): ``args`` = (rows a, rows b, target), ``names`` their parameter names."""
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (a, b), (v1, v2), unbatched = _rows(list(args[:2]), list(names[:2]))
    y = _row_targets(args[2], names[2], v1.shape[0], unbatched, a.dtype)
    out_shape = () if unbatched else (v1.shape[0],)
    n = v1.shape[0]
    o, flat, (g1, g2), scale = _outputs(out, out_shape, a.dtype, reduction, n, [a, b], return_grad,
                                        grad_out=grad_out, given=(*args, y))
    total = _K.pair_rows(v1, v2, y, flat, g1, g2, kind=kind, margin=margin, grad_scale=scale,
                         num_threads=nt)[0]
    return _result(total, o, reduction, n, a.dtype, g1, g2)


def _scores(arrays, names, target, same_ndim):
    """Score arguments and the target in one float dtype (the first one's), broadcast together as torch
    does -- margin_ranking_loss only among arguments of one ndim (``same_ndim``).  Returns (the
    converted arrays, their flat C-contiguous broadcast views, the flat target, the broadcast shape);
    an argument of another shape is materialised once at the broadcast shape."""
    xs = [V.prediction(arrays[0], names[0])]
    xs += [V.float_array(a, n, dtype=xs[0].dtype) for a, n in zip(arrays[1:], names[1:])]
    y = V.float_array(target, "target", dtype=xs[0].dtype)
    every, every_name = xs + [y], names + ["target"]
    if same_ndim and len({a.ndim for a in every}) > 1:
        shapes = ", ".join(f"{n} {a.shape}" for a, n in zip(every, every_name))
        raise ValueError(f"{', '.join(every_name)} must have the same number of dimensions (torch broadcasts "
                         f"them only then), got {shapes}")
    every, shape = V.broadcast_together(every, every_name)
    flat = [a.reshape(-1) for a in every]
    return xs, flat[:-1], flat[-1], shape


def _score_grad_outs(grad_out, xs, shape):
    """The ``grad_out`` entries the kernel can write into directly: those of arguments of the broadcast
    ``shape`` (the others are delivered by ``_score_result`` after the sum back to their shape)."""
    if grad_out is None:
        return None
    entries = V.grad_outs(grad_out, len(xs))
    direct = tuple(g if x.shape == shape else None for g, x in zip(entries, xs))
    return direct[0] if len(xs) == 1 else direct


def _score_result(result, xs, return_grad, grad_out=None, given=()):
    """The gradients of a broadcast score loss, each summed back to its argument's shape (and delivered
    into the user's ``grad_out`` buffers where the kernel could not write into them)."""
    if not return_grad:
        return result
    value, grads = result
    grads = grads if isinstance(grads, tuple) else (grads,)
    grads = tuple(V.unbroadcast(g, x.shape) for g, x in zip(grads, xs))
    grads = V.deliver_grads(grad_out, grads, (*xs, *given))
    return value, (grads[0] if len(grads) == 1 else grads)


@overload
def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                        size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                        num_threads: int | None = ..., out: FloatArray | None = ...,
                        return_grad: Literal[False] = ..., grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                        size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                        num_threads: int | None = ..., out: FloatArray | None = ...,
                        return_grad: Literal[True], grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = ...,
                        size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                        num_threads: int | None = ..., out: FloatArray | None = ...,
                        return_grad: bool = ..., grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="metric", grad=("input1", "input2"))
def margin_ranking_loss(input1: ArrayLike, input2: ArrayLike, target: ArrayLike, margin: float = 0,
                        size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean",
                        *, num_threads: int | None = None, out: FloatArray | None = None,
                        return_grad: bool = False, grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""Margin ranking loss, mirroring :func:`torch.nn.functional.margin_ranking_loss`.

    .. math::

        \ell = \max\bigl(0,\ -y\, (x_1 - x_2) + m\bigr)

    Parameters
    ----------
    input1 : array_like
        Scores :math:`x_1`, any shape, floating point.
    input2 : array_like
        Scores :math:`x_2`, broadcastable with ``input1`` (see Notes).
    target : array_like
        :math:`y`, broadcastable likewise: 1 where ``input1`` should rank higher, -1 where lower.
    margin : float, optional
        :math:`m`; default 0.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_input1, g_input2))`` (for ``"none"``: the
        gradients of the sum of the losses).
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to ``input1`` and ``input2``.

    Raises
    ------
    ValueError
        Arguments that do not broadcast (as torch, only arguments of the same number of dimensions
        broadcast together) or a bad ``reduction``.

    Notes
    -----
    The three arguments broadcast together when they have the same number of dimensions, as torch:
    (5, 2), (5, 1) and (1, 2) give a (5, 2) result; each gradient has its argument's shape.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x1, x2, y = np.array([2.0, 0.5, 1.0]), np.array([1.0, 1.0, 1.0]), np.array([1, 1, -1])
    >>> ref = np.maximum(0, -y * (x1 - x2) + 0.5)
    >>> print(ref, bool(np.allclose(fl.margin_ranking_loss(x1, x2, y, margin=0.5, reduction="none"), ref)))
    [0.  1.  0.5] True
    """
    _check_common(size_average, reduce, reduction, out, return_grad, grad_out)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x1, x2), (f1, f2), y, shape = _scores([input1, input2], ["input1", "input2"], target, same_ndim=True)
    given = (input1, input2, target, y)
    o, flat, (g1, g2), scale = _outputs(out, shape, x1.dtype, reduction, f1.size, [f1, f2], return_grad,
                                        shape, _score_grad_outs(grad_out, [x1, x2], shape), given)
    total = _K.score_loss(f1, y, f2, flat, g1, g2, kind=_L.MARGIN_RANKING, margin=margin, grad_scale=scale,
                          num_threads=nt)[0]
    result = _result(total, o, reduction, f1.size, x1.dtype, g1, g2)
    return _score_result(result, [x1, x2], return_grad, grad_out, (*given, o))


@overload
def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = ...,
                         size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                         num_threads: int | None = ..., out: FloatArray | None = ...,
                         return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = ...,
                         size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                         num_threads: int | None = ..., out: FloatArray | None = ...,
                         return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = ...,
                         size_average: bool | None = ..., reduce: bool | None = ..., reduction: str = ..., *,
                         num_threads: int | None = ..., out: FloatArray | None = ...,
                         return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="metric")
def hinge_embedding_loss(input: ArrayLike, target: ArrayLike, margin: float = 1.0,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean", *, num_threads: int | None = None,
                         out: FloatArray | None = None, return_grad: bool = False,
                         grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Hinge embedding loss, mirroring :func:`torch.nn.functional.hinge_embedding_loss`.

    .. math::

        \ell = [y \ne 1] \max(0,\ m - x) + [y \ne -1]\, x

    (as in torch, a target other than :math:`\pm 1` gets both terms).

    Parameters
    ----------
    input : array_like
        Distances or scores :math:`x`, any shape, floating point.
    target : array_like
        :math:`y`, 1 or -1, broadcastable with ``input`` (torch's rule): the result has the broadcast
        shape and the gradient ``input``'s shape.
    margin : float, optional
        :math:`m`; default 1.
    size_average, reduce : None
        torch's deprecated aliases of ``reduction``; anything but None raises ``ValueError``.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the elementwise losses; ``"sum"``; ``"mean"`` (default).
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to ``input``
        (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the elementwise losses
        for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(input), of ``input``'s shape.

    Raises
    ------
    ValueError
        Shapes that do not broadcast or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x, y = np.array([0.3, 0.3, 2.0]), np.array([1, -1, -1])
    >>> bool(np.allclose(fl.hinge_embedding_loss(x, y, reduction="none"), [0.3, 0.7, 0.0]))
    True
    """
    _check_common(size_average, reduce, reduction, out, return_grad, grad_out)
    margin = V.check_real(margin, "margin")
    nt = resolve_num_threads(num_threads)
    (x,), (f,), y, shape = _scores([input], ["input"], target, same_ndim=False)
    given = (input, target, y)
    o, flat, (g,), scale = _outputs(out, shape, x.dtype, reduction, f.size, [f], return_grad, shape,
                                    _score_grad_outs(grad_out, [x], shape), given)
    total = _K.score_loss(f, y, None, flat, g, kind=_L.HINGE_EMBEDDING, margin=margin, grad_scale=scale,
                          num_threads=nt)[0]
    return _score_result(_result(total, o, reduction, f.size, x.dtype, g), [x], return_grad, grad_out,
                         (*given, o))


# ------------------------------------------------------------------------------ SPEC §6 losses
@overload
def contrastive_loss(x1: ArrayLike, x2: ArrayLike, label: ArrayLike, margin: float = ...,
                     reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                     return_grad: Literal[False] = ..., grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def contrastive_loss(x1: ArrayLike, x2: ArrayLike, label: ArrayLike, margin: float = ...,
                     reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                     return_grad: Literal[True], grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def contrastive_loss(x1: ArrayLike, x2: ArrayLike, label: ArrayLike, margin: float = ...,
                     reduction: str = ..., *, num_threads: int | None = ..., out: FloatArray | None = ...,
                     return_grad: bool = ..., grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="metric", grad=("x1", "x2"), items="rows")
def contrastive_loss(x1: ArrayLike, x2: ArrayLike, label: ArrayLike, margin: float = 1.0,
                     reduction: str = "mean", *, num_threads: int | None = None,
                     out: FloatArray | None = None, return_grad: bool = False,
                     grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""Contrastive loss on pairs of rows (Hadsell, Chopra and LeCun, 2006; no torch function).

    With the Euclidean distance :math:`d_i = \lVert x_{1i} - x_{2i} \rVert_2` and label
    :math:`y_i` (1 similar, 0 dissimilar),

    .. math::

        \ell_i = y_i\, d_i^2 + (1 - y_i) \max(0,\ m - d_i)^2

    No :math:`\epsilon` is added to the distance: the :math:`d^2` term is differentiated as a
    square (finite at :math:`d = 0`) and the hinge term's gradient is 0 where :math:`d = 0` (a
    norm's subgradient, as torch).  Embeddings are used as given (not normalised).

    Parameters
    ----------
    x1 : array_like
        Rows of shape (N, D), or one (D,) row, floating point.
    x2 : array_like
        Rows of ``x1``'s shape.
    label : array_like
        :math:`y`, shape (N,) (or () for one row); 0/1 is the intended use, other real values are
        used as given.
    margin : float, optional
        :math:`m`; default 1.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the row losses; ``"sum"``; ``"mean"`` (default) over the rows.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_x1, g_x2))`` (for ``"none"``: the gradients of
        the sum of the losses).
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the row losses for
        ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to ``x1`` and ``x2``.

    Raises
    ------
    ValueError
        Mismatched shapes, a ``label`` of the wrong shape, or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> x1 = np.array([[0.0, 0.0], [0.0, 0.0]])
    >>> x2 = np.array([[0.3, 0.4], [0.3, 0.4]])          # distance 0.5
    >>> print(fl.contrastive_loss(x1, x2, np.array([1, 0]), reduction="none").round(6))
    [0.25 0.25]
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    return _pair_rows_loss(_L.CONTRASTIVE, (x1, x2, label), ("x1", "x2", "label"), margin, reduction,
                           num_threads, out, return_grad, grad_out)


# ------------------------------------------------------------------ in-batch losses (row blocks)
# The (B x B) Gram / similarity matrix is never held whole: the kernels compute it in blocks of <= 64
# rows (batch_hard: 128), each by one single-threaded GEMM of SciPy's BLAS, the blocks in parallel
# (metric.pyx: SimRows).  batch_hard's loss alone (no gradient) takes the symmetric half: the Gram's
# upper tiles, each once, reduced from both sides (metric.pyx: "Symmetric mining").
# With the gradient the coefficients of a row block of about this many numbers (8 MiB of float64) are
# kept for S^T rows: memory stays O(block x B).
_BLOCK_NUMBERS = 1 << 20

# _GRAD_NOTE: with return_grad=True the in-batch losses compute float32 input in float64.  Their
# gradients sum B coefficients of both signs per row (a matmul of the coefficient block); in float32
# that cancellation costs ~1e-4 relative on small entries, outside SPEC §4.  The loss alone stays in
# the input's precision (float32 BLAS).

# _LOGIT_NOTE: the softmax losses (info_nce_loss, nt_xent_loss) read the similarities s / tau.  A float32
# similarity is off by about ulp(max |s|) (the matmul's rounding and the stored result's), so a logit
# by that over tau; on confident rows (loss ~ sum of exp(logit_j - logit_pos), the positive far ahead)
# the loss's relative error is that logit error itself.  At tau = 0.02 on unit rows that was 1.6e-6 to
# 4.7e-6 relative on the mean, beyond SPEC's float32 reduction rule (1e-6); with logits bounded by 10
# (tau >= 0.1 on unit rows) it measured <= 2e-7 at D = 16 and 128.  So float32 input keeps float32
# similarities only while |logit| <= max |q| max |k| / tau <= _F32_LOGIT_BOUND, and is computed in
# float64 above it (a float64 matmul: about 2x the time).
_F32_LOGIT_BOUND = 10.0


def _similarity_dtype(dtype, logit_bound):
    """The dtype in which the softmax losses compute the similarities of ``dtype`` input whose logits
    are at most ``logit_bound`` in magnitude (_LOGIT_NOTE); nan / inf bounds take float64."""
    return dtype if dtype != np.float32 or logit_bound <= _F32_LOGIT_BOUND else np.dtype(np.float64)


def _max_norm(x, nt):
    """The largest row norm of x (C-contiguous; 0 for no rows), in float64 (kernel unit_rows, nt threads)."""
    if not x.shape[0]:
        return 0.0
    norm = np.empty(x.shape[0])
    _K.unit_rows(x, None, norm, num_threads=nt)
    return float(norm.max())


def _block_rows(n_cols):
    return max(1, min(_BLOCK_NUMBERS // max(n_cols, 1), 4096))


def _embeddings(x, name):
    e = V.prediction(x, name)
    if e.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {e.shape}")
    return e


def _triplet_mining(kind, embeddings, labels, margin, squared, reduction, num_threads, out, return_grad,
                    grad_out):
    """batch_hard / batch_all triplet loss: ``kind`` is _L.BATCH_HARD_TRIPLET or _L.BATCH_ALL_TRIPLET."""
    batch_all = kind == _L.BATCH_ALL_TRIPLET
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    margin = V.check_real(margin, "margin")
    squared = V.check_bool(squared, "squared")
    nt = resolve_num_threads(num_threads)
    e = _embeddings(embeddings, "embeddings")
    lab = V.labels_array(labels, "labels")
    B = e.shape[0]
    if lab.shape != (B,):
        raise ValueError(f"labels must have shape ({B},) (one per row of embeddings {e.shape}), got "
                         f"{lab.shape}")
    dtype = e.dtype
    # float64 for the gradient (see _GRAD_NOTE) and for batch_all, which uses every Gram distance: in
    # float32 their cancellation (|a|^2 + |b|^2 - 2 a.b) costs ~ulp(|a|^2), beyond SPEC §4.  batch_hard
    # keeps the float32 Gram for mining and recomputes the distances it uses (the kernel's Precision note).
    if return_grad or batch_all:
        e = e.astype(np.float64, copy=False)
    sq = np.einsum("ij,ij->i", e, e, dtype=np.float64)
    row_loss = np.zeros(B)
    row_count = np.zeros(B)

    def mine(blk, s_cols, r0, n):
        _K.triplet_mining(e, sq, lab, row_loss, row_count, blk, s_cols, kind=kind, row0=r0, n_rows=n,
                          margin=margin, squared=bool(squared), want_grad=return_grad, num_threads=nt)

    grads = _row_blocks(e, e, mine, return_grad, nt)
    total, cnt, _ = _K.reduce_rows(row_loss, row_count, num_threads=nt)
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
    # (computed in float64: the user's grad_out buffer receives its cast)
    return value, V.deliver_grad(grad_out, g.astype(dtype, copy=False), (embeddings, labels, e, lab, value))


@overload
def batch_hard_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = ...,
                            squared: bool = ..., reduction: str = ..., *, num_threads: int | None = ...,
                            out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                            grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def batch_hard_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = ...,
                            squared: bool = ..., reduction: str = ..., *, num_threads: int | None = ...,
                            out: FloatArray | None = ..., return_grad: Literal[True],
                            grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def batch_hard_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = ...,
                            squared: bool = ..., reduction: str = ..., *, num_threads: int | None = ...,
                            out: FloatArray | None = ..., return_grad: bool = ...,
                            grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="metric", grad=("embeddings",), items="rows", in_batch=True)
def batch_hard_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = 1.0,
                            squared: bool = False, reduction: str = "mean", *, num_threads: int | None = None,
                            out: FloatArray | None = None, return_grad: bool = False,
                            grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Batch-hard triplet loss, mining inside the batch from integer labels (Hermans et al., 2017).

    For each anchor :math:`i`, with :math:`d` the Euclidean distance (its square if ``squared``),

    .. math::

        \ell_i = \max\Bigl(0,\ \max_{j:\, y_j = y_i,\, j \ne i} d_{ij}
                          - \min_{k:\, y_k \ne y_i} d_{ik} + m\Bigr)

    An anchor without a positive or without a negative is **skipped**: its loss is 0 and ``"mean"``
    divides by the number of anchors that have both (nan if none, like any mean over nothing).
    Embeddings are used as given (normalise them first for the cosine-style variant).  Distances
    come from row blocks of the Gram matrix
    (:math:`d^2 = \lVert e_i \rVert^2 + \lVert e_j \rVert^2 - 2 e_i \cdot e_j`, clamped at 0; one
    BLAS matrix product per block), so memory is O(block x B), never :math:`B^2` or :math:`B^3`.
    The two distances each anchor uses are then recomputed from the rows in double (every
    candidate within the Gram matrix's rounding bound of the hardest is), so the result is the exact
    hardest pair's; a nan distance among an anchor's candidates gives that anchor nan, as torch's
    max / min.
    The gradient goes to the first hardest positive / negative on ties, is 0 for a zero distance,
    and passes the hinge at 0 (torch's ``clamp_min``); with ``return_grad=True`` float32 input is
    computed in float64 (the gradient sums terms of both signs).

    Parameters
    ----------
    embeddings : array_like
        Embeddings of shape (B, D), floating point.
    labels : array_like
        Integer class labels of shape (B,).
    margin : float, optional
        :math:`m`; default 1.
    squared : bool, optional
        Use squared Euclidean distances; default False.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the (B,) per-anchor losses; ``"sum"``; ``"mean"`` (default) as above.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to
        ``embeddings`` (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the embeddings' dtype for ``"mean"`` / ``"sum"``; the (B,) per-anchor
        losses for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(embeddings), shape (B, D).

    Raises
    ------
    ValueError
        Embeddings that are not 2-d, labels of the wrong shape or a bad ``reduction``.
    TypeError
        Labels that are not integers.

    Notes
    -----
    The value depends on which rows share a batch, so this loss cannot be computed chunk by chunk:
    :func:`fastloss.partial` states of separate batches merge to the mean of per-batch values, and
    :func:`fastloss.score_parquet` and :mod:`fastloss.dask` refuse it.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> e = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> D = np.linalg.norm(e[:, None] - e[None], axis=-1)
    >>> same = y[:, None] == y[None]
    >>> hardest_pos = np.where(same & ~np.eye(4, dtype=bool), D, -np.inf).max(axis=1)
    >>> hardest_neg = np.where(~same, D, np.inf).min(axis=1)
    >>> ref = np.maximum(0, hardest_pos - hardest_neg + 1.0)
    >>> bool(np.allclose(fl.batch_hard_triplet_loss(e, y, reduction="none"), ref))
    True
    """
    return _triplet_mining(_L.BATCH_HARD_TRIPLET, embeddings, labels, margin, squared, reduction, num_threads, out,
                           return_grad, grad_out)


@overload
def batch_all_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = ..., squared: bool = ...,
                           reduction: str = ..., *, num_threads: int | None = ...,
                           out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                           grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def batch_all_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = ..., squared: bool = ...,
                           reduction: str = ..., *, num_threads: int | None = ...,
                           out: FloatArray | None = ..., return_grad: Literal[True],
                           grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def batch_all_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = ..., squared: bool = ...,
                           reduction: str = ..., *, num_threads: int | None = ...,
                           out: FloatArray | None = ..., return_grad: bool = ...,
                           grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@loss_info(family="metric", grad=("embeddings",), items="rows", in_batch=True)
def batch_all_triplet_loss(embeddings: ArrayLike, labels: ArrayLike, margin: float = 1.0,
                           squared: bool = False, reduction: str = "mean", *, num_threads: int | None = None,
                           out: FloatArray | None = None, return_grad: bool = False,
                           grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Batch-all triplet loss: every valid triplet inside the batch.

    Over all :math:`(a, p, n)` with :math:`y_p = y_a`, :math:`p \ne a`, :math:`y_n \ne y_a`,

    .. math::

        \ell_{apn} = \max(0,\ d_{ap} - d_{an} + m)

    ``"mean"`` averages over the triplets with **positive** loss (:math:`\ell > 0`), as the usual
    batch-all implementations do, and is 0 when there is none (nan if a triplet loss is nan);
    ``"sum"`` is the sum over all triplets.  Distances come from row blocks of the Gram matrix,
    computed in float64 for float32 input too (every distance is used, and in float32 the Gram
    form's cancellation costs too many digits); a nan triplet loss makes its anchor's sum nan.  The triplets are enumerated per
    anchor row (time O(B^2 x positives), memory O(block x B), never a (B, B, B) tensor).

    Parameters
    ----------
    embeddings : array_like
        Embeddings of shape (B, D), floating point.
    labels : array_like
        Integer class labels of shape (B,).
    margin : float, optional
        :math:`m`; default 1.
    squared : bool, optional
        Use squared Euclidean distances; default False.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the (B,) per-anchor sums; ``"sum"``; ``"mean"`` (default) as above.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to
        ``embeddings`` (float32 input is then computed in float64).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the embeddings' dtype for ``"mean"`` / ``"sum"``; the (B,) per-anchor
        sums for ``"none"``.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(embeddings), shape (B, D).

    Raises
    ------
    ValueError
        Embeddings that are not 2-d, labels of the wrong shape or a bad ``reduction``.
    TypeError
        Labels that are not integers.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> e = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> D = np.linalg.norm(e[:, None] - e[None], axis=-1)
    >>> same = y[:, None] == y[None]
    >>> valid = (same & ~np.eye(4, dtype=bool))[:, :, None] & ~same[:, None, :]
    >>> l = np.maximum(0, D[:, :, None] - D[:, None, :] + 1.0)[valid]
    >>> bool(np.isclose(fl.batch_all_triplet_loss(e, y), l[l > 0].mean()))
    True
    """
    return _triplet_mining(_L.BATCH_ALL_TRIPLET, embeddings, labels, margin, squared, reduction, num_threads, out,
                           return_grad, grad_out)


def _row_blocks(rows, cols, kernel, return_grad, nt, sums=True):
    """Run ``kernel(block, s_cols, row0, n_rows)`` (the kernel entry, on nt threads: it computes the
    rows of ``rows @ cols.T`` itself, block by block, with single-threaded GEMMs of SciPy's BLAS) over
    every row, with SciPy's BLAS pinned to one thread (``_blas.py``; NumPy's is not touched).

    With ``return_grad`` it runs on row blocks of about _BLOCK_NUMBERS numbers, the kernel leaving the
    block's coefficients S in ``block`` and S @ cols in ``s_cols``, and this returns (S @ cols,
    S.T @ rows, row sums of S, column sums of S), accumulated block by block in a fixed order (the sums
    only if ``sums``, else None)."""
    N, M = rows.shape[0], cols.shape[0]
    with _kernel_gemm_single_threaded(_GEMM_ADDRESS[0] or _gemm_address()):
        if not return_grad:
            kernel(None, None, 0, N)
            return None
        s_cols, st_rows = np.empty(rows.shape, rows.dtype), np.zeros(cols.shape, cols.dtype)
        row_sums, col_sums = (np.zeros(N), np.zeros(M)) if sums else (None, None)
        R = _block_rows(M)
        for r0 in range(0, N, R):
            rr = rows[r0:r0 + R]
            blk = np.empty((rr.shape[0], M), dtype=rows.dtype)
            kernel(blk, s_cols, r0, rr.shape[0])
            _K.gemm_tn_add(blk, rr, st_rows, num_threads=nt)
            if sums:
                row_sums[r0:r0 + rr.shape[0]] = blk.sum(axis=1, dtype=np.float64)
                col_sums += blk.sum(axis=0, dtype=np.float64)
    return s_cols, st_rows, row_sums, col_sums


_GEMM_ADDRESS = [0]


def _gemm_address():
    """The address of the kernels' sgemm (SciPy's), fetched once."""
    _GEMM_ADDRESS[0] = _K.blas_address()
    return _GEMM_ADDRESS[0]


def _softmax_rows(queries, cands, inv_tau, mask_self, pos_shift, nt, return_grad, labels=None,
                  arc=_ARC.NO_MARGIN, margin=0.0, pos_cos=None, pos_sin=None):
    """Per-row losses of -log softmax(q_i . c_j * inv_tau)_{pos(i)} (the positive by pos_shift, or by
    ``labels`` with an optional ``arc`` margin (an ArcMargin) of ``margin`` radians, from the positives'
    pos_cos / pos_sin: kernel softmax_rows), and with return_grad the gradients of their sum w.r.t.
    queries and candidates.  A bad label raises IndexError."""
    row_loss = np.zeros(queries.shape[0])
    bad = []

    def softmax(blk, s_cols, r0, n):
        first = _K.softmax_rows(queries, cands, row_loss, labels, pos_cos, pos_sin, blk, s_cols, row0=r0,
                                n_rows=n, inv_tau=inv_tau, mask_self=mask_self, pos_shift=pos_shift,
                                want_grad=return_grad, arc=arc, margin=margin, num_threads=nt)
        if first >= 0:
            bad.append(first)

    grads = _row_blocks(queries, cands, softmax, return_grad, nt, sums=False)
    if bad:
        raise_first_bad(min(bad), BadLabel(labels, cands.shape[0], None, name="labels", classes_of="class_weights"))
    if not return_grad:
        return row_loss, None, None
    return row_loss, grads[0] * inv_tau, grads[1] * inv_tau


def _finish_rows(row_loss, reduction, dtype, out, nt):
    total = _K.reduce_rows(row_loss, num_threads=nt)[0]
    if reduction == "none":
        o = V.output_array(out, row_loss.shape, dtype)
        o[...] = row_loss
        return o, 1.0
    n = row_loss.shape[0]
    return V.reduced(total, n, reduction, dtype), (1.0 / n if (reduction == "mean" and n) else 1.0)


@overload
def info_nce_loss(query: ArrayLike, key: ArrayLike, temperature: float = ..., reduction: str = ..., *,
                  num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[False] = ..., grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def info_nce_loss(query: ArrayLike, key: ArrayLike, temperature: float = ..., reduction: str = ..., *,
                  num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: Literal[True], grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def info_nce_loss(query: ArrayLike, key: ArrayLike, temperature: float = ..., reduction: str = ..., *,
                  num_threads: int | None = ..., out: FloatArray | None = ...,
                  return_grad: bool = ..., grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="metric", grad=("query", "key"), items="rows", in_batch=True)
def info_nce_loss(query: ArrayLike, key: ArrayLike, temperature: float = 0.07, reduction: str = "mean", *,
                  num_threads: int | None = None, out: FloatArray | None = None,
                  return_grad: bool = False, grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""InfoNCE: softmax cross-entropy of each query against all keys (van den Oord et al., 2018).

    Key :math:`i` is the positive of query :math:`i`; every other key is a negative:

    .. math::

        \ell_i = -\log \frac{\exp(q_i \cdot k_i / \tau)}{\sum_{j=1}^{M} \exp(q_i \cdot k_j / \tau)}

    The rows are used as given: normalise them first for a cosine InfoNCE.  Row blocks of the
    similarity matrix (a BLAS matrix product) feed a fused, max-shifted log-sum-exp kernel: memory
    O(block x M).  float32 input is computed in float64 where the logits can exceed 10
    (:math:`\max\lVert q \rVert \max\lVert k \rVert / \tau > 10`: a float32 dot product's rounding,
    divided by the temperature, would exceed SPEC §4) and with ``return_grad=True``.

    Parameters
    ----------
    query : array_like
        Queries of shape (N, D), floating point.
    key : array_like
        Keys of shape (M, D) with :math:`M \ge N`: the first N are the queries' positives.
    temperature : float, optional
        :math:`\tau > 0`; default 0.07.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the (N,) row losses; ``"sum"``; ``"mean"`` (default) over the queries.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_query, g_key))`` (for ``"none"``: the gradients
        of the sum of the losses).
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (N,) row losses
        for ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to ``query`` and ``key``.

    Raises
    ------
    ValueError
        ``query`` that is not 2-d, ``key`` that is not (M, D) with :math:`M \ge N`,
        ``temperature <= 0`` or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> q, k = rng.standard_normal((4, 8)), rng.standard_normal((6, 8))
    >>> s = q @ k.T / 0.5
    >>> ref = np.mean(np.log(np.exp(s).sum(axis=1)) - np.diag(s[:, :4]))
    >>> bool(np.isclose(fl.info_nce_loss(q, k, temperature=0.5), ref))
    True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    tau = V.check_real(temperature, "temperature", low=0.0, low_open=True)
    nt = resolve_num_threads(num_threads)
    q = _embeddings(query, "query")
    k = V.float_array(key, "key", dtype=q.dtype)
    if k.ndim != 2 or k.shape[1] != q.shape[1] or k.shape[0] < q.shape[0]:
        raise ValueError(f"key must be (M, {q.shape[1]}) with M >= {q.shape[0]} (query rows), got {k.shape}")
    dtype = q.dtype
    # float32 similarities only while the logits are small enough (_LOGIT_NOTE): the rows are not
    # normalised, so the bound is max |q| max |k| / tau (float64 when it is over: 1.8e-5 relative per row
    # at temperature 0.02, D = 16, in float32); float64 for the gradient (_GRAD_NOTE)
    sim = np.dtype(np.float64) if return_grad else dtype
    if sim == np.float32:                       # (the norms' pass only where it can matter)
        sim = _similarity_dtype(sim, _max_norm(q, nt) * _max_norm(k, nt) / tau)
    q, k = q.astype(sim, copy=False), k.astype(sim, copy=False)
    row_loss, gq, gk = _softmax_rows(q, k, 1.0 / tau, False, 0, nt, return_grad)
    value, scale = _finish_rows(row_loss, reduction, dtype, out, nt)
    if not return_grad:
        return value
    return value, V.deliver_grads(grad_out, ((gq * scale).astype(dtype), (gk * scale).astype(dtype)),
                                  (query, key, q, k, value))


_NORMALIZE_EPS = 1e-12      # torch.nn.functional.normalize's default
# nt_xent_loss's symmetric path (the loss alone: half the similarity GEMM, metric.pyx SymCtx): up to this
# many views (its column parts take views^2 / 8 bytes: 32 MiB here) and logits up to the bound of the
# dtype's itemsize (its fixed shift: exp(-2 / tau) must stay a normal number)
_SYMMETRIC_ROWS = 16384
_SYMMETRIC_LOGIT = {4: 40.0, 8: 300.0}


def _normalize(parts, dtype, nt, scratch=False):
    """The rows of the (n_i, D) arrays ``parts``, stacked, over max(|z|, 1e-12), as ``F.normalize``
    (kernel unit_rows: one pass per row on nt threads, the norms in float64); returns (u (sum n_i, D) in
    dtype, |z| (sum n_i, 1), the divisor).  (An inf row gives nan, as in torch.)  scratch: u in the
    thread's kernel workspace (metric.pyx: no page faults), for a u used only within the call."""
    shape = (sum(z.shape[0] for z in parts), parts[0].shape[1])
    if scratch:
        nbytes = shape[0] * shape[1] * np.dtype(dtype).itemsize
        u = _K.workspace("unit_rows", nbytes).view(dtype).reshape(shape)
    else:
        u = np.empty(shape, dtype=dtype)
    norm = np.empty(u.shape[0])
    r0 = 0
    for z in parts:     # (float32 rows of float64 similarities are widened first: exact)
        _K.unit_rows(np.ascontiguousarray(z, dtype=dtype), u, norm, row0=r0, eps=_NORMALIZE_EPS, num_threads=nt)
        r0 += z.shape[0]
    norm = norm[:, None]
    return u, norm, np.maximum(norm, _NORMALIZE_EPS)


def _normalize_grad(u, gu, norm, den):
    """The gradient through u = z / max(|z|, eps): (g - u (u.g)) / |z| where |z| >= eps, g / eps below
    it (torch's clamp_min passes the gradient to the norm only where |z| >= eps)."""
    radial = np.where(norm >= _NORMALIZE_EPS, np.einsum("ij,ij->i", u, gu)[:, None], 0.0)
    return (gu - u * radial) / den


@overload
def nt_xent_loss(z1: ArrayLike, z2: ArrayLike, temperature: float = ..., reduction: str = ..., *,
                 num_threads: int | None = ..., out: FloatArray | None = ...,
                 return_grad: Literal[False] = ..., grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def nt_xent_loss(z1: ArrayLike, z2: ArrayLike, temperature: float = ..., reduction: str = ..., *,
                 num_threads: int | None = ..., out: FloatArray | None = ...,
                 return_grad: Literal[True], grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def nt_xent_loss(z1: ArrayLike, z2: ArrayLike, temperature: float = ..., reduction: str = ..., *,
                 num_threads: int | None = ..., out: FloatArray | None = ...,
                 return_grad: bool = ..., grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="metric", grad=("z1", "z2"), items="pair_rows", in_batch=True)
def nt_xent_loss(z1: ArrayLike, z2: ArrayLike, temperature: float = 0.5, reduction: str = "mean", *,
                 num_threads: int | None = None, out: FloatArray | None = None,
                 return_grad: bool = False, grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""NT-Xent, the SimCLR loss (Chen et al., 2020) over the 2N views :math:`z = [z_1; z_2]`.

    With :math:`u = z / \max(\lVert z \rVert, 10^{-12})` (as :func:`torch.nn.functional.normalize`)
    and :math:`s_{ij} = u_i \cdot u_j / \tau`, the self pair excluded and the positive of view
    :math:`i` its other view (:math:`i \pm N`),

    .. math::

        \ell_i = \log \sum_{j \ne i} e^{s_{ij}} - s_{i,\operatorname{pos}(i)},
        \qquad \text{mean over the } 2N \text{ views}

    Row blocks of the similarity matrix (a BLAS matrix product) feed a fused log-sum-exp kernel:
    memory O(block x 2N), never :math:`(2N)^2`.  float32 input is computed in float64 for
    :math:`\tau < 0.1` (logits beyond 10: a float32 similarity's rounding over the temperature would
    exceed SPEC §4) and with ``return_grad=True``.

    Parameters
    ----------
    z1 : array_like
        First views, shape (N, D), floating point (normalised inside).
    z2 : array_like
        Second views of ``z1``'s shape; row :math:`i` of ``z2`` is the positive of row :math:`i`
        of ``z1``.
    temperature : float, optional
        :math:`\tau > 0`; default 0.5.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the (2N,) per-view losses; ``"sum"``; ``"mean"`` (default) over the 2N views.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_z1, g_z2))`` (for ``"none"``: the gradients of
        the sum of the losses).
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the computation dtype for ``"mean"`` / ``"sum"``; the (2N,) per-view
        losses for ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to ``z1`` and ``z2``.

    Raises
    ------
    ValueError
        Views that are not 2-d or of different shapes, ``temperature <= 0`` or a bad
        ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> z1, z2 = rng.standard_normal((2, 3, 5))
    >>> u = np.concatenate([z1, z2])
    >>> u /= np.linalg.norm(u, axis=1, keepdims=True)
    >>> s = u @ u.T / 0.5
    >>> np.fill_diagonal(s, -np.inf)
    >>> pos = (np.arange(6) + 3) % 6
    >>> ref = np.mean(np.log(np.exp(s).sum(axis=1)) - s[np.arange(6), pos])
    >>> bool(np.isclose(fl.nt_xent_loss(z1, z2), ref))
    True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    tau = V.check_real(temperature, "temperature", low=0.0, low_open=True)
    nt = resolve_num_threads(num_threads)
    a = _embeddings(z1, "z1")
    b = V.float_array(z2, "z2", dtype=a.dtype)
    V.check_same_shape(a, b, "z1", "z2")
    N = a.shape[0]
    # unit rows: logits within 1 / tau (_LOGIT_NOTE); float64 for the gradient (_GRAD_NOTE)
    sim = np.float64 if return_grad else _similarity_dtype(a.dtype, 1.0 / tau)
    symmetric = (not return_grad and 0 < 2 * N <= _SYMMETRIC_ROWS
                 and 1.0 / tau <= _SYMMETRIC_LOGIT[np.dtype(sim).itemsize])
    u, norm, den = _normalize([a, b], sim, nt, scratch=symmetric)
    if symmetric:
        # the loss alone from half of u u^T (metric.pyx: SymCtx)
        row_loss = np.empty(2 * N)
        with _kernel_gemm_single_threaded(_GEMM_ADDRESS[0] or _gemm_address()):
            _K.nt_xent_symmetric(u, row_loss, inv_tau=1.0 / tau, pos_shift=N, num_threads=nt)
        return _finish_rows(row_loss, reduction, a.dtype, out, nt)[0]
    row_loss, gu, gu2 = _softmax_rows(u, u, 1.0 / tau, True, N, nt, return_grad)
    value, scale = _finish_rows(row_loss, reduction, a.dtype, out, nt)
    if not return_grad:
        return value
    gz = _normalize_grad(u, (gu + gu2) * scale, norm, den).astype(a.dtype)
    return value, V.deliver_grads(grad_out, (gz[:N], gz[N:]), (z1, z2, a, b, value))


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


@overload
def arcface_loss(embeddings: ArrayLike, labels: ArrayLike, class_weights: ArrayLike, scale: float = ...,
                 margin: float = ..., reduction: str = ..., *, easy_margin: bool = ...,
                 plain_margin: bool = ..., num_threads: int | None = ...,
                 out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                 grad_out: GradOut2 | None = ...) -> Loss: ...
@overload
def arcface_loss(embeddings: ArrayLike, labels: ArrayLike, class_weights: ArrayLike, scale: float = ...,
                 margin: float = ..., reduction: str = ..., *, easy_margin: bool = ...,
                 plain_margin: bool = ..., num_threads: int | None = ...,
                 out: FloatArray | None = ..., return_grad: Literal[True],
                 grad_out: GradOut2 | None = ...) -> LossGrads2: ...
@overload
def arcface_loss(embeddings: ArrayLike, labels: ArrayLike, class_weights: ArrayLike, scale: float = ...,
                 margin: float = ..., reduction: str = ..., *, easy_margin: bool = ...,
                 plain_margin: bool = ..., num_threads: int | None = ...,
                 out: FloatArray | None = ..., return_grad: bool = ...,
                 grad_out: GradOut2 | None = ...) -> Loss | LossGrads2: ...
@loss_info(family="metric", grad=("embeddings", "class_weights"), items="rows")
def arcface_loss(embeddings: ArrayLike, labels: ArrayLike, class_weights: ArrayLike, scale: float = 64.0,
                 margin: float = 0.5, reduction: str = "mean", *, easy_margin: bool = False,
                 plain_margin: bool = False, num_threads: int | None = None,
                 out: FloatArray | None = None, return_grad: bool = False,
                 grad_out: GradOut2 | None = None) -> Loss | LossGrads2:
    r"""ArcFace, the additive angular margin softmax loss (Deng et al., 2019).

    There is no torch function; this is insightface's ``ArcMarginProduct`` (also
    pytorch-metric-learning's ``ArcFaceLoss``).
    Embeddings and class centres are L2-normalised as :func:`torch.nn.functional.normalize` does
    (:math:`u(x) = x / \max(\lVert x \rVert, 10^{-12})`, so a zero row stays 0).  With scale
    :math:`s`, margin :math:`m` and the row's label :math:`y = y_i`,

    .. math::

        \cos_{ij} = u(e_i) \cdot u(w_j), \quad \theta_i = \arccos \cos_{iy}, \quad
        z_{ij} = s \cos_{ij}\ (j \ne y), \quad z_{iy} = s\, \phi(\theta_i)

    .. math::

        \ell_i = \log \sum_j e^{z_{ij}} - z_{iy}

    with the target logit, by default insightface's fallback, which keeps it decreasing in
    :math:`\theta` (:math:`\cos(\theta + m)` grows again past :math:`\theta = \pi - m`):

    .. math::

        \phi(\theta) = \cos(\theta + m) \ \text{where}\ \cos\theta > \cos(\pi - m), \qquad
        \phi(\theta) = \cos\theta - m \sin(\pi - m) \ \text{elsewhere}.

    ``easy_margin=True`` (insightface's switch) uses :math:`\cos(\theta + m)` where
    :math:`\cos\theta > 0` and :math:`\cos\theta` elsewhere; ``plain_margin=True`` uses
    :math:`\cos(\theta + m)` for every :math:`\theta` (no fallback, fastloss 0.1's behaviour).
    The target's :math:`\cos\theta` and :math:`\sin\theta` are computed in float64 from the input
    rows, with :math:`\sin\theta = \sqrt{(1 - \cos\theta)(1 + \cos\theta)}` and
    :math:`1 \mp \cos\theta = \lVert u \mp v \rVert^2 / 2`, exact near :math:`\theta = 0` and
    :math:`\pi` where :math:`\sqrt{1 - \cos^2}` of a rounded cosine is not.
    Gradient convention: where :math:`\sin\theta = 0` (:math:`\theta = 0` or :math:`\pi`, e.g.
    an embedding along its class centre, or D = 1) the infinite :math:`d\sin/d\cos` is taken as 0,
    so :math:`dz_{iy}/d\cos = s \cos m` (1 in the fallback branches); autograd of the literal
    formula gives inf or nan there.
    The similarities come from row blocks of :math:`u(E)\, u(W)^\top` (BLAS; memory O(block x C),
    never N x C); the margin, max-shifted log-sum-exp and reduction from a fused kernel.  With
    ``return_grad=True`` float32 input is computed in float64.

    Parameters
    ----------
    embeddings : array_like
        Embeddings of shape (N, D), floating point.
    labels : array_like
        Integer class labels of shape (N,), in [0, C).
    class_weights : array_like
        Class centres :math:`W` of shape (C, D).
    scale : float, optional
        :math:`s > 0`, finite; default 64.
    margin : float, optional
        :math:`m` in radians, finite; default 0.5.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"``: the (N,) row losses; ``"sum"``; ``"mean"`` (default) over the N rows.
    easy_margin : bool, optional
        Keyword-only.  insightface's easy margin: the margin only where :math:`\cos\theta > 0`.
        Default False.
    plain_margin : bool, optional
        Keyword-only.  :math:`\cos(\theta + m)` for every :math:`\theta`, without the fallback;
        default False.  Excludes ``easy_margin`` (both True raises ``ValueError``).
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, return ``(loss, (g_embeddings, g_class_weights))`` (for
        ``"none"``: the gradients of the sum of the losses).
    grad_out : tuple of numpy.ndarray or None, optional
        Keyword-only.  With ``return_grad=True``: a tuple of 2 preallocated arrays, in the order of
        the gradients (each of its gradient's shape and dtype, C-contiguous, writable, not
        overlapping the inputs or each other) that receive the gradients and are returned as them;
        a ``None`` entry gets a fresh array.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        A NumPy scalar of the embeddings' dtype for ``"mean"`` / ``"sum"``; the (N,) row losses
        for ``"none"``.
    grads : tuple of numpy.ndarray
        Only with ``return_grad=True``: the gradients with respect to ``embeddings`` and
        ``class_weights``.

    Raises
    ------
    ValueError
        Embeddings that are not 2-d, ``class_weights`` that is not (C, D), labels of the wrong
        shape, ``scale <= 0``, or a non-finite ``scale`` / ``margin``.
    IndexError
        A label outside [0, C), naming ``labels`` and its first position.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> e, W = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    >>> y = np.array([0, 1, 4, 4])
    >>> unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)
    >>> cos = unit(e) @ unit(W).T
    >>> z = 10.0 * cos
    >>> z[np.arange(4), y] = 10.0 * np.cos(np.arccos(cos[np.arange(4), y]) + 0.3)
    >>> ref = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(4), y])
    >>> bool(np.isclose(fl.arcface_loss(e, y, W, scale=10.0, margin=0.3), ref))
    True
    """
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
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
    arc = _ARC.ARC_EASY if easy_margin else (_ARC.ARC_PLAIN if plain_margin else _ARC.ARC_FALLBACK)
    nt = resolve_num_threads(num_threads)
    e = _embeddings(embeddings, "embeddings")
    w = V.float_array(class_weights, "class_weights", dtype=e.dtype)
    if w.ndim != 2 or w.shape[1] != e.shape[1]:
        raise ValueError(f"class_weights must be (C, {e.shape[1]}) (embeddings are {e.shape}), got {w.shape}")
    lab = V.labels_array(labels, "labels")
    N, C = e.shape[0], w.shape[0]
    if lab.shape != (N,):
        raise ValueError(f"labels must have shape ({N},) (one per row of embeddings {e.shape}), got "
                         f"{lab.shape}")
    dtype = np.dtype(np.float64) if return_grad else e.dtype    # see _GRAD_NOTE
    ue, norm_e, den_e = _normalize([e], dtype, nt)
    uw, norm_w, den_w = _normalize([w], dtype, nt)
    pos_cos, pos_sin = _positive_angle(e, w, lab, C)
    row_loss, gue, guw = _softmax_rows(ue, uw, s, False, 0, nt, return_grad, labels=lab, arc=arc, margin=m,
                                       pos_cos=pos_cos, pos_sin=pos_sin)
    value, red_scale = _finish_rows(row_loss, reduction, e.dtype, out, nt)
    if not return_grad:
        return value
    ge = _normalize_grad(ue, gue * red_scale, norm_e, den_e).astype(e.dtype)
    gw = _normalize_grad(uw, guw * red_scale, norm_w, den_w).astype(e.dtype)
    return value, V.deliver_grads(grad_out, (ge, gw), (embeddings, class_weights, labels, e, w, lab, value))
