"""Bounding-box losses and pairwise IoU matrices, mirroring ``torchvision.ops``.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/boxes.pyx``; the arithmetic lives there.

Conventions shared by every function here (torchvision's):

* Boxes are (..., 4) arrays; ``box_format`` (keyword-only) is ``"xyxy"`` (default), ``"xywh"`` or
  ``"cxcywh"`` and is converted inside the kernel, box by box (no converted copy is made).
* Integer boxes compute in float32 (torchvision's ``_upcast_non_float``); float16/bfloat16 too.
  boxes2 computes in boxes1's dtype.
* Degenerate boxes -- zero area, identical boxes, ``x2 < x1`` or ``y2 < y1`` -- are computed exactly as
  torchvision computes them, without a check: negative widths give negative areas, the losses' ``eps``
  keeps 0/0 away only where torchvision's does.  NaN propagates.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

import numpy as np

from . import _validate as V
from ._kernels import load
from ._losses import loss_info
from ._threads import resolve_num_threads
from ._typing import ArrayLike, FloatArray, Loss, LossGrad, NDArray

_K = load("boxes")

__all__ = ["iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss",
           "box_iou", "generalized_box_iou", "box_area"]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
# The kernels' typed configuration (boxes.pyx: BoxFormat, BoxKind), as the plain ints of the members:
# Cython converts an IntEnum member to the C enum through Python (~900 instructions a call), an int not.
_FORMAT = {name: int(_K.BoxFormat[name.upper()]) for name in BOX_FORMATS}
_IOU, _GIOU, _DIOU, _CIOU = (int(_K.BoxKind[k]) for k in ("IOU", "GIOU", "DIOU", "CIOU"))
_TORCHVISION_EPS = 1e-7     # torchvision's CIoU computes its IoU and distance terms with this eps


def _check_format(box_format, name="box_format"):
    return V.check_choice(box_format, name, BOX_FORMATS)


def _boxes(x, name, dtype=None):
    """(..., 4) float32/float64 C-contiguous boxes (integers and half precision upcast to float32)."""
    a = V.float_array(x, name, dtype=dtype)
    if a.ndim == 0 or a.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got {a.shape}")
    return a


def _pair_loss(kind, boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad, grad_out,
               eps_alpha=None):
    V.check_reduction(reduction, out=out, return_grad=return_grad, grad_out=grad_out)
    if type(box_format) is not str or box_format not in BOX_FORMATS:    # (inline: the usual call)
        _check_format(box_format)
    if type(eps) is not float:
        eps = V.check_real(eps, "eps")
    nt = resolve_num_threads(num_threads)
    single1 = single2 = False
    if V.plain_pair(boxes1, boxes2) and boxes1.ndim == 2 and boxes1.shape[1] == 4:   # (N, 4) pairs
        b1, b2 = boxes1, boxes2
        shape = b1.shape[:1]
        n = shape[0]
    else:
        b1 = _boxes(boxes1, "boxes1")
        b2 = _boxes(boxes2, "boxes2", dtype=b1.dtype)
        lead1, lead2 = b1.shape[:-1], b2.shape[:-1]
        if lead1 != lead2:
            # torch broadcasting, limited to one side being a single box
            single1, single2 = b1.size == 4, b2.size == 4 and b1.size != 4
            if not (single1 or single2):
                raise ValueError(f"boxes1 shape {b1.shape} and boxes2 shape {b2.shape} do not match "
                                 "(equal leading shapes, or one of them a single box)")
        shape = lead1 if lead1 == lead2 else np.broadcast_shapes(lead1, lead2)
        n = math.prod(shape)
    o = V.output_array(out, shape, b1.dtype) if reduction == "none" else None
    grad = None
    if return_grad:
        # a broadcast single boxes1 gets per-pair gradients first, summed below (one (n, 4) temporary)
        if single1:
            grad = np.empty((n, 4), dtype=b1.dtype)
        elif grad_out is None:
            grad = np.empty(b1.shape, dtype=b1.dtype)
        else:
            grad = V.grad_buffer(grad_out, b1.shape, b1.dtype, (boxes1, boxes2, b1, b2, o))
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    if eps_alpha is None:
        eps_alpha = eps
    # (the kernel reads the items of C-contiguous arrays of any shape: no flat views, ~0.3 us each)
    total = _K.box_pair_loss(b1, b2, o, grad,
                             kind=kind, fmt=_FORMAT[box_format], eps=eps, eps_alpha=eps_alpha, n=n,
                             single1=single1, single2=single2, grad_scale=scale, num_threads=nt)
    if reduction == "none":
        value = o
    else:   # torchvision: mean over an empty batch is 0 (0.0 * loss.sum())
        value = V.reduced(total, n, reduction, b1.dtype, empty_mean=0.0)
    if grad is None:
        return value
    if single1:
        grad = grad.sum(axis=0, dtype=np.float64).astype(b1.dtype).reshape(b1.shape)
        grad = V.deliver_grad(grad_out, grad, (boxes1, boxes2, b1, b2, o))
    return value, grad


_COMMON_DOC = """
    Notes
    -----
    Conventions of the four box losses, torchvision's: ``boxes1`` and ``boxes2`` have equal
    leading shapes, or one of them is a single box broadcast against the other; a (4,) pair gives a
    0-d result; the ``"mean"`` of an empty batch is 0, not nan.  Degenerate boxes (zero area,
    ``x2 < x1`` or ``y2 < y1``) are computed exactly as torchvision computes them, without a check:
    negative widths give negative areas, and ``eps`` keeps 0/0 away only where torchvision's does;
    nan propagates.  The gradient of ``return_grad=True`` is with respect to ``boxes1``, in
    ``boxes1``'s format, and equals autograd through torchvision's formula: ties in its min/max split
    the gradient in half as torch does, and a pair with no overlap passes no gradient through the
    intersection.
"""


_F = TypeVar("_F", bound=Callable[..., Any])


def _common_doc(f: _F) -> _F:
    if f.__doc__ is not None:       # None under python -OO
        f.__doc__ += _COMMON_DOC
    return f


@overload
def iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
             box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
             return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
             box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
             return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
             box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
             return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@_common_doc
@loss_info(family="boxes", grad=("boxes1",), items="boxes")
def iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = "none", eps: float = 1e-7, *,
             box_format: str = "xyxy", num_threads: int | None = None, out: FloatArray | None = None,
             return_grad: bool = False, grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""IoU loss per box pair, with torchvision's conventions (torchvision has no IoU loss).

    With :math:`I` the intersection area (0 unless both overlaps are positive, as torchvision's
    ``_loss_inter_union``) and :math:`U = A_1 + A_2 - I` the union,

    .. math::

        \ell = 1 - \frac{I}{U + \epsilon}

    For overlapping boxes this is computed as :math:`(U - I + \epsilon) / (U + \epsilon)` with
    :math:`U - I` from the box edges beyond the intersection (no cancellation), so near-identical
    boxes keep their small losses' relative precision (every IoU-family loss; GIoU's :math:`C - U`
    likewise).

    Parameters
    ----------
    boxes1 : array_like
        Predicted boxes, shape (N, 4), (4,) or any (..., 4), in ``box_format``.  Integer and
        half-precision boxes compute in float32.
    boxes2 : array_like
        Target boxes of the same leading shape (or a single box, or ``boxes1`` a single box);
        computed in ``boxes1``'s dtype.
    reduction : {"none", "mean", "sum"}, optional
        ``"none"`` (default, as torchvision): one loss per pair; ``"mean"``; ``"sum"``.
    eps : float, optional
        :math:`\epsilon`, added to the union; default 1e-7.
    box_format : {"xyxy", "xywh", "cxcywh"}, optional
        Keyword-only.  Coordinates of both box arrays: corners ``(x1, y1, x2, y2)`` (default),
        corner and size ``(x, y, w, h)``, or centre and size ``(cx, cy, w, h)``; converted box by
        box inside the kernel (no converted copy).
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to
        ``boxes1`` (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        The per-pair losses for ``"none"``; a NumPy scalar of the computation dtype otherwise.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(boxes1), of ``boxes1``'s shape.

    Raises
    ------
    ValueError
        Boxes whose last axis is not 4, leading shapes that do not match, an unknown
        ``box_format`` or a bad ``reduction``.

    See Also
    --------
    generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss
    box_iou : the pairwise IoU matrix.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> b1 = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    >>> b2 = np.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]])
    >>> # pair 0: I = 1, U = 4 + 4 - 1 = 7; pair 1: no overlap
    >>> bool(np.allclose(fl.iou_loss(b1, b2), [1 - 1 / (7 + 1e-7), 1.0]))
    True
    """
    return _pair_loss(_IOU, boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad,
                      grad_out)


@overload
def generalized_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                             box_format: str = ..., num_threads: int | None = ...,
                             out: FloatArray | None = ..., return_grad: Literal[False] = ...,
                             grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def generalized_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                             box_format: str = ..., num_threads: int | None = ...,
                             out: FloatArray | None = ..., return_grad: Literal[True],
                             grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def generalized_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                             box_format: str = ..., num_threads: int | None = ...,
                             out: FloatArray | None = ..., return_grad: bool = ...,
                             grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@_common_doc
@loss_info(family="boxes", grad=("boxes1",), items="boxes")
def generalized_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = "none", eps: float = 1e-7,
                             *, box_format: str = "xyxy", num_threads: int | None = None,
                             out: FloatArray | None = None, return_grad: bool = False,
                             grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Generalized IoU loss, mirroring :func:`torchvision.ops.generalized_box_iou_loss`.

    With :math:`I`, :math:`U` as in :func:`iou_loss` and :math:`C` the area of the smallest box
    enclosing both,

    .. math::

        \ell = 1 - \Bigl(\frac{I}{U + \epsilon} - \frac{C - U}{C + \epsilon}\Bigr)

    Parameters
    ----------
    boxes1 : array_like
        Predicted boxes, shape (N, 4), (4,) or any (..., 4), in ``box_format``.  Integer and
        half-precision boxes compute in float32.
    boxes2 : array_like
        Target boxes of the same leading shape (or a single box, or ``boxes1`` a single box);
        computed in ``boxes1``'s dtype.
    reduction : {"none", "mean", "sum"}, optional
        ``"none"`` (default, as torchvision): one loss per pair; ``"mean"``; ``"sum"``.
    eps : float, optional
        :math:`\epsilon`; default 1e-7.
    box_format : {"xyxy", "xywh", "cxcywh"}, optional
        Keyword-only.  Coordinates of both box arrays (see :func:`iou_loss`); default ``"xyxy"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to
        ``boxes1`` (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        The per-pair losses for ``"none"``; a NumPy scalar of the computation dtype otherwise.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(boxes1), of ``boxes1``'s shape.

    Raises
    ------
    ValueError
        Boxes whose last axis is not 4, leading shapes that do not match, an unknown
        ``box_format`` or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> b1 = np.array([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    >>> b2 = np.array([[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]])
    >>> # enclosing box 3 x 3 for both pairs; unions 7 and 2
    >>> ref = 1 - np.array([1 / 7 - (9 - 7) / 9, 0 - (9 - 2) / 9])
    >>> bool(np.allclose(fl.generalized_box_iou_loss(b1, b2), ref))
    True
    """
    return _pair_loss(_GIOU, boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad,
                      grad_out)


@overload
def distance_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                          box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def distance_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                          box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def distance_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                          box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@_common_doc
@loss_info(family="boxes", grad=("boxes1",), items="boxes")
def distance_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = "none", eps: float = 1e-7, *,
                          box_format: str = "xyxy", num_threads: int | None = None,
                          out: FloatArray | None = None, return_grad: bool = False,
                          grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Distance IoU loss, mirroring :func:`torchvision.ops.distance_box_iou_loss`.

    With :math:`\rho` the distance between the box centres and :math:`c` the diagonal of the
    smallest enclosing box,

    .. math::

        \ell = 1 - \frac{I}{U + \epsilon} + \frac{\rho^2}{c^2 + \epsilon}

    Parameters
    ----------
    boxes1 : array_like
        Predicted boxes, shape (N, 4), (4,) or any (..., 4), in ``box_format``.  Integer and
        half-precision boxes compute in float32.
    boxes2 : array_like
        Target boxes of the same leading shape (or a single box, or ``boxes1`` a single box);
        computed in ``boxes1``'s dtype.
    reduction : {"none", "mean", "sum"}, optional
        ``"none"`` (default, as torchvision): one loss per pair; ``"mean"``; ``"sum"``.
    eps : float, optional
        :math:`\epsilon`; default 1e-7.
    box_format : {"xyxy", "xywh", "cxcywh"}, optional
        Keyword-only.  Coordinates of both box arrays (see :func:`iou_loss`); default ``"xyxy"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to
        ``boxes1`` (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        The per-pair losses for ``"none"``; a NumPy scalar of the computation dtype otherwise.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(boxes1), of ``boxes1``'s shape.

    Raises
    ------
    ValueError
        Boxes whose last axis is not 4, leading shapes that do not match, an unknown
        ``box_format`` or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> b1, b2 = np.array([0.0, 0.0, 2.0, 2.0]), np.array([1.0, 1.0, 3.0, 3.0])
    >>> # centres (1, 1) and (2, 2): rho^2 = 2; enclosing diagonal c^2 = 3^2 + 3^2
    >>> bool(np.isclose(fl.distance_box_iou_loss(b1, b2), 1 - 1 / 7 + 2 / 18))
    True
    """
    return _pair_loss(_DIOU, boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad,
                      grad_out)


@overload
def complete_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                          box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: Literal[False] = ..., grad_out: FloatArray | None = ...) -> Loss: ...
@overload
def complete_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                          box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: Literal[True], grad_out: FloatArray | None = ...) -> LossGrad: ...
@overload
def complete_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = ..., eps: float = ..., *,
                          box_format: str = ..., num_threads: int | None = ..., out: FloatArray | None = ...,
                          return_grad: bool = ..., grad_out: FloatArray | None = ...) -> Loss | LossGrad: ...
@_common_doc
@loss_info(family="boxes", grad=("boxes1",), items="boxes")
def complete_box_iou_loss(boxes1: ArrayLike, boxes2: ArrayLike, reduction: str = "none", eps: float = 1e-7, *,
                          box_format: str = "xyxy", num_threads: int | None = None,
                          out: FloatArray | None = None, return_grad: bool = False,
                          grad_out: FloatArray | None = None) -> Loss | LossGrad:
    r"""Complete IoU loss, mirroring :func:`torchvision.ops.complete_box_iou_loss`.

    The distance IoU loss plus an aspect-ratio term, with :math:`w_k, h_k` the box sizes:

    .. math::

        \ell = 1 - \mathrm{IoU} + \frac{\rho^2}{c^2} + \alpha v, \qquad
        v = \frac{4}{\pi^2} \Bigl(\arctan\frac{w_2}{h_2} - \arctan\frac{w_1}{h_1}\Bigr)^2, \qquad
        \alpha = \frac{v}{1 - \mathrm{IoU} + v + \epsilon}

    :math:`\alpha` is a constant for the gradient (torchvision computes it under ``no_grad``).  As
    in torchvision, the IoU and distance terms use :math:`10^{-7}` whatever ``eps`` is (its
    ``complete_box_iou_loss`` calls ``_diou_iou_loss`` without passing ``eps``); ``eps`` enters
    :math:`\alpha` only.

    Parameters
    ----------
    boxes1 : array_like
        Predicted boxes, shape (N, 4), (4,) or any (..., 4), in ``box_format``.  Integer and
        half-precision boxes compute in float32.
    boxes2 : array_like
        Target boxes of the same leading shape (or a single box, or ``boxes1`` a single box);
        computed in ``boxes1``'s dtype.
    reduction : {"none", "mean", "sum"}, optional
        ``"none"`` (default, as torchvision): one loss per pair; ``"mean"``; ``"sum"``.
    eps : float, optional
        :math:`\epsilon` of :math:`\alpha`; default 1e-7.
    box_format : {"xyxy", "xywh", "cxcywh"}, optional
        Keyword-only.  Coordinates of both box arrays (see :func:`iou_loss`); default ``"xyxy"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
        The result is bitwise identical for every value.
    out : numpy.ndarray or None, optional
        Keyword-only.  With ``reduction="none"``, a writable C-contiguous array of the result's
        shape and dtype that receives the losses and is returned.  Ignored for other reductions.
    return_grad : bool, optional
        Keyword-only.  If True, also return the gradient of the result with respect to
        ``boxes1`` (for ``"none"``: the gradient of the sum of the losses).
    grad_out : numpy.ndarray, optional
        Keyword-only.  With ``return_grad=True``: a preallocated array of the gradient's shape and
        dtype (C-contiguous, writable, not overlapping the inputs) that receives the gradient and is
        returned as it; reusing it across calls saves allocating (and first touching) a fresh one.

    Returns
    -------
    loss : numpy.floating or numpy.ndarray
        The per-pair losses for ``"none"``; a NumPy scalar of the computation dtype otherwise.
    grad : numpy.ndarray
        Only with ``return_grad=True``: d(loss)/d(boxes1), of ``boxes1``'s shape.

    Raises
    ------
    ValueError
        Boxes whose last axis is not 4, leading shapes that do not match, an unknown
        ``box_format`` or a bad ``reduction``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> b1, b2 = np.array([0.0, 0.0, 2.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])   # 2 x 1 and 1 x 1
    >>> iou = 1 / 2
    >>> v = 4 / np.pi ** 2 * (np.arctan(1.0) - np.arctan(2.0)) ** 2
    >>> rho2, c2 = 0.5 ** 2, 2.0 ** 2 + 1.0 ** 2
    >>> ref = 1 - iou + rho2 / c2 + v / (1 - iou + v) * v
    >>> bool(np.isclose(fl.complete_box_iou_loss(b1, b2, eps=0.0), ref))
    True
    """
    return _pair_loss(_CIOU, boxes1, boxes2, reduction, _TORCHVISION_EPS, box_format, num_threads, out,
                      return_grad, grad_out, eps_alpha=V.check_real(eps, "eps"))


# ---------------------------------------------------------------- pairwise matrices
def _pairwise(kind, boxes1, boxes2, fmt, box_format, num_threads, out):
    box_format = _check_format(box_format if fmt is None else _check_format(fmt, "fmt"))
    nt = resolve_num_threads(num_threads)
    a1 = V._to_numpy(boxes1, "boxes1")
    a2 = V._to_numpy(boxes2, "boxes2")
    integer = a1.dtype.kind in "iub" and a2.dtype.kind in "iub"
    # integer boxes: torchvision computes areas in integers, then divides in float32; compute in float64
    # (exact for coordinates below 2**26) and return float32
    b1 = _boxes(a1, "boxes1", dtype=np.float64 if integer else None)
    b2 = _boxes(a2, "boxes2", dtype=b1.dtype)
    if b1.ndim < 2 or b2.ndim < 2 or b1.shape[:-2] != b2.shape[:-2]:
        raise ValueError(f"boxes1 (..., N, 4) and boxes2 (..., M, 4) must have the same leading shape, "
                         f"got {b1.shape} and {b2.shape}")
    lead, N, M = b1.shape[:-2], b1.shape[-2], b2.shape[-2]
    B = int(np.prod(lead, dtype=np.int64))
    shape = lead + (N, M)
    res_dtype = np.dtype(np.float32) if integer else b1.dtype
    o = V.output_array(out, shape, res_dtype) if not integer or out is not None else None
    res = o if o is not None and not integer else np.empty(shape, dtype=b1.dtype)
    _K.pairwise(b1, b2, res, kind=kind, fmt=_FORMAT[box_format], B=B, N=N, M=M, num_threads=nt)
    if integer:
        if o is None:
            return res.astype(np.float32)
        o[...] = res
        return o
    return res


def box_iou(boxes1: ArrayLike, boxes2: ArrayLike, fmt: str | None = None, *, box_format: str = "xyxy",
            num_threads: int | None = None, out: FloatArray | None = None) -> FloatArray:
    r"""Pairwise IoU matrix, mirroring :func:`torchvision.ops.box_iou`.

    For boxes (..., N, 4) and (..., M, 4), the (..., N, M) matrix

    .. math::

        \mathrm{IoU}_{nm} = \frac{I_{nm}}{A_n + A_m - I_{nm}}

    with intersections from overlaps clamped at 0 and areas as :func:`box_area`, and no
    :math:`\epsilon` (0/0 is nan, as torchvision).  Computed in row tiles: the only memory is the
    output.  Integer boxes compute in float64 and return float32 (torchvision computes integer
    areas, then divides in float32).

    Parameters
    ----------
    boxes1 : array_like
        Boxes of shape (..., N, 4).
    boxes2 : array_like
        Boxes of shape (..., M, 4), with ``boxes1``'s leading shape.
    fmt : {"xyxy", "xywh", "cxcywh"} or None, optional
        torchvision's (0.23 and later) name for ``box_format``; overrides it when given.
    box_format : {"xyxy", "xywh", "cxcywh"}, optional
        Keyword-only.  Coordinates of both box arrays; default ``"xyxy"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
    out : numpy.ndarray or None, optional
        Keyword-only.  A writable C-contiguous array of shape (..., N, M) and the result dtype to
        write the matrix into; it is returned.

    Returns
    -------
    numpy.ndarray
        The (..., N, M) IoU matrix in the computation dtype (float32 for integer boxes).

    Raises
    ------
    ValueError
        Boxes that are not (..., N, 4), different leading shapes, an unknown format or a bad
        ``out``.

    See Also
    --------
    generalized_box_iou, iou_loss

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> a = np.array([[0, 0, 2, 2], [1, 1, 3, 3]])
    >>> b = np.array([[0, 0, 2, 2], [2, 2, 4, 4], [4, 4, 5, 5]])
    >>> ref = np.array([[1, 0, 0], [1 / 7, 1 / 7, 0]])   # a[0] and b[1] only touch at a corner
    >>> iou = fl.box_iou(a, b)
    >>> iou.dtype, bool(np.allclose(iou, ref))
    (dtype('float32'), True)
    """
    return _pairwise(_IOU, boxes1, boxes2, fmt, box_format, num_threads, out)


def generalized_box_iou(boxes1: ArrayLike, boxes2: ArrayLike, *, box_format: str = "xyxy",
                        num_threads: int | None = None, out: FloatArray | None = None) -> FloatArray:
    r"""Pairwise generalized IoU matrix, mirroring :func:`torchvision.ops.generalized_box_iou`.

    .. math::

        \mathrm{GIoU}_{nm} = \mathrm{IoU}_{nm} - \frac{E_{nm} - U_{nm}}{E_{nm}}

    with :math:`U` the union and :math:`E` the area of the smallest box enclosing both.  For
    ``"xywh"`` / ``"cxcywh"`` (torchvision has ``"xyxy"`` only) the corners and areas are those of
    :func:`box_iou`.

    Parameters
    ----------
    boxes1 : array_like
        Boxes of shape (..., N, 4).
    boxes2 : array_like
        Boxes of shape (..., M, 4), with ``boxes1``'s leading shape.
    box_format : {"xyxy", "xywh", "cxcywh"}, optional
        Keyword-only.  Coordinates of both box arrays; default ``"xyxy"``.
    num_threads : int or None, optional
        Keyword-only.  Threads for this call; None (default) uses :func:`fastloss.get_num_threads`.
    out : numpy.ndarray or None, optional
        Keyword-only.  A writable C-contiguous array of shape (..., N, M) and the result dtype to
        write the matrix into; it is returned.

    Returns
    -------
    numpy.ndarray
        The (..., N, M) GIoU matrix (float32 for integer boxes).

    Raises
    ------
    ValueError
        Boxes that are not (..., N, 4), different leading shapes, an unknown format or a bad
        ``out``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> a = np.array([[0.0, 0.0, 1.0, 1.0]])
    >>> b = np.array([[0.0, 0.0, 1.0, 1.0], [2.0, 0.0, 3.0, 1.0]])
    >>> bool(np.allclose(fl.generalized_box_iou(a, b), [[1.0, 0 - (3 - 2) / 3]]))
    True
    """
    return _pairwise(_GIOU, boxes1, boxes2, None, box_format, num_threads, out)


def box_area(boxes: ArrayLike, fmt: str | None = None, *, box_format: str = "xyxy",
             out: FloatArray | None = None) -> NDArray[np.floating[Any] | np.integer[Any]]:
    r"""Area of each box, mirroring :func:`torchvision.ops.box_area`: (..., 4) -> (...).

    ``"xyxy"``: :math:`(x_2 - x_1)(y_2 - y_1)` (negative for inverted boxes, unchecked, as
    torchvision); ``"xywh"`` / ``"cxcywh"``: :math:`w h`.  Integer boxes give integer areas, as in
    torchvision (int32 and int64 kept, smaller integers as int32).

    Parameters
    ----------
    boxes : array_like
        Boxes of shape (..., 4).
    fmt : {"xyxy", "xywh", "cxcywh"} or None, optional
        torchvision's (0.23 and later) name for ``box_format``; overrides it when given.
    box_format : {"xyxy", "xywh", "cxcywh"}, optional
        Keyword-only.  Coordinates of the boxes; default ``"xyxy"``.
    out : numpy.ndarray or None, optional
        Keyword-only.  A writable C-contiguous array of shape ``boxes.shape[:-1]`` and the
        boxes' float dtype to write the areas into (floating boxes only); it is returned.

    Returns
    -------
    numpy.ndarray
        The areas, shape ``boxes.shape[:-1]``.

    Raises
    ------
    ValueError
        Boxes that are not (..., 4), or an unknown format.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> fl.box_area(np.array([[0, 0, 2, 3], [1, 1, 2, 2]]))
    array([6, 1])
    >>> fl.box_area(np.array([[5.0, 5.0, 2.0, 3.0]]), box_format="cxcywh")
    array([6.])
    """
    box_format = _check_format(box_format if fmt is None else _check_format(fmt, "fmt"))
    a = V._to_numpy(boxes, "boxes")
    if a.dtype.kind in "iub":
        a = a.astype(a.dtype if a.dtype in (np.int32, np.int64) else np.int32)
        if a.ndim == 0 or a.shape[-1] != 4:
            raise ValueError(f"boxes must have shape (..., 4), got {a.shape}")
        if box_format == "xyxy":
            return (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
        return a[..., 2] * a[..., 3]
    b = _boxes(a, "boxes")
    o = V.output_array(out, b.shape[:-1], b.dtype)
    _K.box_area(b.reshape(-1), o.reshape(-1), fmt=_FORMAT[box_format])
    return o
