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
import math

import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads

_K = load("boxes")

__all__ = ["iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss",
           "box_iou", "generalized_box_iou", "box_area"]

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
_TORCHVISION_EPS = 1e-7     # torchvision's CIoU computes its IoU and distance terms with this eps


def _check_format(box_format, name="box_format"):
    if box_format not in BOX_FORMATS:
        raise ValueError(f"{name} must be one of {BOX_FORMATS}, got {box_format!r}")
    return box_format


def _boxes(x, name, dtype=None):
    """(..., 4) float32/float64 C-contiguous boxes (integers and half precision upcast to float32)."""
    a = V.float_array(x, name, dtype=dtype)
    if a.ndim == 0 or a.shape[-1] != 4:
        raise ValueError(f"{name} must have shape (..., 4), got {a.shape}")
    return a


def _pair_loss(kind, boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad,
               eps_alpha=None):
    V.check_reduction(reduction)
    _check_format(box_format)
    eps = V.check_real(eps, "eps")
    nt = resolve_num_threads(num_threads)
    b1 = _boxes(boxes1, "boxes1")
    b2 = _boxes(boxes2, "boxes2", dtype=b1.dtype)
    lead1, lead2 = b1.shape[:-1], b2.shape[:-1]
    single1 = single2 = False
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
        grad = np.empty((n, 4) if single1 else b1.shape, dtype=b1.dtype)
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    if eps_alpha is None:
        eps_alpha = eps
    total = _K.box_pair_loss(b1.reshape(-1), b2.reshape(-1), single1, single2, n, kind, box_format, eps,
                             eps_alpha, None if o is None else o.reshape(-1), grad, scale, nt)
    if reduction == "none":
        value = o
    else:   # torchvision: mean over an empty batch is 0 (0.0 * loss.sum())
        value = V.reduced(total, n, reduction, b1.dtype, empty_mean=0.0)
    if grad is None:
        return value
    if single1:
        grad = grad.sum(axis=0, dtype=np.float64).astype(b1.dtype).reshape(b1.shape)
    return value, grad


_COMMON_DOC = """
    ``boxes1``, ``boxes2``: (N, 4) or (4,) (any leading shape, equal on both sides, or one side a
    single box broadcast against the other).  ``reduction`` is ``"none"`` (default, as torchvision),
    ``"mean"`` or ``"sum"``; the mean of an empty batch is 0 and a (4,) pair gives a 0-d result, as in
    torchvision.  ``return_grad=True`` also returns d(result)/d(boxes1) in boxes1's format, equal to
    ``torch.autograd`` through torchvision's formula (ties in its min/max split the gradient in half as
    torch does; pairs with no overlap pass no gradient through the intersection).  Degenerate boxes
    (zero area, x2 < x1, y2 < y1) are computed as torchvision computes them, without a check.
"""


def _common_doc(f):
    f.__doc__ += _COMMON_DOC
    return f


@_common_doc
def iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, *, box_format="xyxy", num_threads=None, out=None,
             return_grad=False):
    """IoU loss ``1 - I / (U + eps)`` per box pair (SPEC §6, torchvision's conventions).

    I is the intersection area (0 unless both overlaps are positive, torchvision's
    ``_loss_inter_union``), U = area1 + area2 - I.  For overlapping boxes 1 - I / (U + eps) is computed
    as (U - I + eps) / (U + eps) with U - I from the box edges beyond the intersection (no cancellation),
    so near-identical boxes keep their small losses' relative precision (every IoU-family loss; GIoU's
    C - U likewise).
    """
    return _pair_loss("iou", boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad)


@_common_doc
def generalized_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, *, box_format="xyxy",
                             num_threads=None, out=None, return_grad=False):
    """Generalized IoU loss, mirroring ``torchvision.ops.generalized_box_iou_loss``::

        iou = I / (U + eps),   loss = 1 - (iou - (C - U) / (C + eps))

    with C the area of the smallest enclosing box.
    """
    return _pair_loss("giou", boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad)


@_common_doc
def distance_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, *, box_format="xyxy",
                          num_threads=None, out=None, return_grad=False):
    """Distance IoU loss, mirroring ``torchvision.ops.distance_box_iou_loss``::

        loss = 1 - I / (U + eps) + rho^2 / (c^2 + eps)

    rho the distance between the box centres, c the diagonal of the smallest enclosing box.
    """
    return _pair_loss("diou", boxes1, boxes2, reduction, eps, box_format, num_threads, out, return_grad)


@_common_doc
def complete_box_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7, *, box_format="xyxy",
                          num_threads=None, out=None, return_grad=False):
    """Complete IoU loss, mirroring ``torchvision.ops.complete_box_iou_loss``::

        loss = DIoU loss + alpha * v,   v = 4 / pi^2 * (atan(w2 / h2) - atan(w1 / h1))^2,
        alpha = v / (1 - iou + v + eps)   (a constant for the gradient: torchvision uses no_grad)

    As in torchvision, the IoU and distance terms use eps = 1e-7 whatever ``eps`` is (its
    ``complete_box_iou_loss`` calls ``_diou_iou_loss`` without passing eps); ``eps`` enters alpha.
    """
    return _pair_loss("ciou", boxes1, boxes2, reduction, _TORCHVISION_EPS, box_format, num_threads, out,
                      return_grad, eps_alpha=V.check_real(eps, "eps"))


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
    _K.pairwise(b1, b2, kind, box_format, B, N, M, res, nt)
    if integer:
        if o is None:
            return res.astype(np.float32)
        o[...] = res
        return o
    return res


def box_iou(boxes1, boxes2, fmt=None, *, box_format="xyxy", num_threads=None, out=None):
    """Pairwise IoU matrix, mirroring ``torchvision.ops.box_iou``: (..., N, 4) x (..., M, 4) -> (..., N, M).

    ``iou = inter / (area1 + area2 - inter)`` with no eps (0/0 is NaN, as torchvision), inter from
    overlaps clamped at 0.  Areas follow torchvision's ``box_area`` (w * h read directly for xywh and
    cxcywh).  ``fmt`` is torchvision's (>= 0.23) name for ``box_format``.  Computed in row tiles; the
    only memory is the output.  Integer boxes compute in float64 and return float32.
    """
    return _pairwise("iou", boxes1, boxes2, fmt, box_format, num_threads, out)


def generalized_box_iou(boxes1, boxes2, *, box_format="xyxy", num_threads=None, out=None):
    """Pairwise generalized IoU matrix, mirroring ``torchvision.ops.generalized_box_iou``::

        giou = iou - (E - union) / E,   E the area of the smallest enclosing box

    For ``xywh``/``cxcywh`` (torchvision has xyxy only) the corners and areas are those of ``box_iou``.
    """
    return _pairwise("giou", boxes1, boxes2, None, box_format, num_threads, out)


def box_area(boxes, fmt=None, *, box_format="xyxy", out=None):
    """Area of each box, mirroring ``torchvision.ops.box_area``: (..., 4) -> (...).

    xyxy: (x2 - x1) * (y2 - y1); xywh / cxcywh: w * h.  Integer boxes give integer areas as in
    torchvision (int32/int64 kept, smaller integers as int32).
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
    _K.box_area(b.reshape(-1), box_format, o.reshape(-1))
    return o
