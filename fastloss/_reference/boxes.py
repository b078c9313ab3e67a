"""Reference entries of the boxes family (see fastloss/_reference/__init__.py).

The references are torchvision.ops' formulas transcribed into torch ops (torchvision itself is not a
dependency; the four losses are written over the array namespace, so the same code is the NumPy reference): ``_utils._loss_inter_union``, ``giou_loss.py``, ``diou_loss._diou_iou_loss``,
``ciou_loss.py``, ``boxes.py`` (``box_area``, ``_box_inter_union``, ``box_iou``,
``generalized_box_iou``) and ``_box_convert.py``.  tests/test_boxes.py uses them too.
"""
import math

import numpy as np

from . import Reference, register


def _torch():
    import torch
    return torch


def _xp(a):
    """The array namespace of ``a``: numpy for ndarrays, else torch (imported only then)."""
    return np if isinstance(a, np.ndarray) else _torch()


def _cols(b):
    return tuple(b[..., i] for i in range(4))


# The loss formulas below are torchvision's, written once over the array namespace: on tensors they
# are the torch reference (torch ops, as torchvision runs them), on ndarrays the NumPy one (in the
# arrays' dtype).
def tv_to_xyxy(b, fmt):
    if fmt == "xyxy":
        return b
    xp = _xp(b)
    if fmt == "xywh":
        x, y, w, h = _cols(b)
        return xp.stack([x, y, x + w, y + h], -1)
    cx, cy, w, h = _cols(b)
    return xp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def tv_loss_inter_union(boxes1, boxes2):
    xp = _xp(boxes1)
    x1, y1, x2, y2 = _cols(boxes1)
    x1g, y1g, x2g, y2g = _cols(boxes2)
    xkis1 = xp.maximum(x1, x1g)
    ykis1 = xp.maximum(y1, y1g)
    xkis2 = xp.minimum(x2, x2g)
    ykis2 = xp.minimum(y2, y2g)
    intsctk = xp.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    return intsctk, unionk


def tv_enclosure(boxes1, boxes2):
    """The smallest enclosing box, as torchvision's GIoU and DIoU losses compute it (repeated there)."""
    xp = _xp(boxes1)
    x1, y1, x2, y2 = _cols(boxes1)
    x1g, y1g, x2g, y2g = _cols(boxes2)
    return xp.minimum(x1, x1g), xp.minimum(y1, y1g), xp.maximum(x2, x2g), xp.maximum(y2, y2g)


def tv_reduce(loss, reduction):
    if reduction == "mean":
        size = loss.size if isinstance(loss, np.ndarray) else loss.numel()
        return loss.mean() if size > 0 else 0.0 * loss.sum()
    if reduction == "sum":
        return loss.sum()
    return loss


def tv_iou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    inter, union = tv_loss_inter_union(boxes1, boxes2)
    return tv_reduce(1 - inter / (union + eps), reduction)


def tv_giou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    intsctk, unionk = tv_loss_inter_union(boxes1, boxes2)
    iouk = intsctk / (unionk + eps)
    xc1, yc1, xc2, yc2 = tv_enclosure(boxes1, boxes2)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    miouk = iouk - ((area_c - unionk) / (area_c + eps))
    return tv_reduce(1 - miouk, reduction)


def tv_diou_iou_loss(boxes1, boxes2, eps=1e-7):
    intsct, union = tv_loss_inter_union(boxes1, boxes2)
    iou = intsct / (union + eps)
    x1, y1, x2, y2 = _cols(boxes1)
    x1g, y1g, x2g, y2g = _cols(boxes2)
    xc1, yc1, xc2, yc2 = tv_enclosure(boxes1, boxes2)
    diagonal_distance_squared = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps
    x_p = (x2 + x1) / 2
    y_p = (y2 + y1) / 2
    x_g = (x1g + x2g) / 2
    y_g = (y1g + y2g) / 2
    centers_distance_squared = ((x_p - x_g) ** 2) + ((y_p - y_g) ** 2)
    loss = 1 - iou + (centers_distance_squared / diagonal_distance_squared)
    return loss, iou


def tv_diou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    return tv_reduce(tv_diou_iou_loss(boxes1, boxes2, eps)[0], reduction)


def tv_ciou_loss(boxes1, boxes2, reduction="none", eps=1e-7):
    xp = _xp(boxes1)
    diou_loss, iou = tv_diou_iou_loss(boxes1, boxes2)       # sic: torchvision passes no eps here
    x1, y1, x2, y2 = _cols(boxes1)
    x1g, y1g, x2g, y2g = _cols(boxes2)
    w_pred = x2 - x1
    h_pred = y2 - y1
    w_gt = x2g - x1g
    h_gt = y2g - y1g
    v = (4 / (math.pi**2)) * ((xp.arctan(w_gt / h_gt) - xp.arctan(w_pred / h_pred)) ** 2)
    alpha = v / (1 - iou + v + eps)
    if xp is not np:
        alpha = alpha.detach()                              # torchvision computes alpha under no_grad
    return tv_reduce(diou_loss + alpha * v, reduction)


TV = {"iou_loss": tv_iou_loss, "generalized_box_iou_loss": tv_giou_loss,
      "distance_box_iou_loss": tv_diou_loss, "complete_box_iou_loss": tv_ciou_loss}


def tv_box_area(boxes, fmt="xyxy"):
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]


def tv_box_inter_union(boxes1, boxes2, fmt="xyxy"):
    torch = _torch()
    area1 = tv_box_area(boxes1, fmt)
    area2 = tv_box_area(boxes2, fmt)
    if fmt == "xyxy":
        lt = torch.max(boxes1[..., None, :2], boxes2[..., None, :, :2])
        rb = torch.min(boxes1[..., None, 2:], boxes2[..., None, :, 2:])
    elif fmt == "xywh":
        lt = torch.max(boxes1[..., None, :2], boxes2[..., None, :, :2])
        rb = torch.min(boxes1[..., None, :2] + boxes1[..., None, 2:], boxes2[..., None, :, :2] + boxes2[..., None, :, 2:])
    else:
        lt = torch.max(boxes1[..., None, :2] - boxes1[..., None, 2:] / 2,
                       boxes2[..., None, :, :2] - boxes2[..., None, :, 2:] / 2)
        rb = torch.min(boxes1[..., None, :2] + boxes1[..., None, 2:] / 2,
                       boxes2[..., None, :, :2] + boxes2[..., None, :, 2:] / 2)
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[..., None] + area2[..., None, :] - inter
    return inter, union, lt, rb


def tv_box_iou(boxes1, boxes2, fmt="xyxy"):
    inter, union, _, _ = tv_box_inter_union(boxes1, boxes2, fmt)
    return inter / union


def tv_generalized_box_iou(boxes1, boxes2, fmt="xyxy"):
    torch = _torch()
    # torchvision's is xyxy only; other formats: the corners of box_iou (fastloss's documented choice)
    inter, union, _, _ = tv_box_inter_union(boxes1, boxes2, fmt)
    iou = inter / union
    c1 = tv_to_xyxy_pairwise(boxes1, fmt)
    c2 = tv_to_xyxy_pairwise(boxes2, fmt)
    lti = torch.min(c1[..., None, :2], c2[..., None, :, :2])
    rbi = torch.max(c1[..., None, 2:], c2[..., None, :, 2:])
    whi = (rbi - lti).clamp(min=0)
    areai = whi[..., 0] * whi[..., 1]
    return iou - (areai - union) / areai


def tv_to_xyxy_pairwise(b, fmt):
    torch = _torch()
    if fmt == "xyxy":
        return b
    if fmt == "xywh":
        return torch.cat([b[..., :2], b[..., :2] + b[..., 2:]], dim=-1)
    return torch.cat([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], dim=-1)




# ------------------------------------------------------------------ reference entries
def _tensor(a):
    if isinstance(a, _torch().Tensor):   # already a (float64, maybe requires_grad) tensor: keep it
        return a
    return _torch().as_tensor(np.asarray(a, dtype=np.float64))


def _loss_refs(name):
    """(torch_ref, numpy_ref) of a box loss: torchvision's formula on float64 tensors / on the arrays."""
    def torch_ref(boxes1, boxes2, reduction="none", eps=1e-7, *, box_format="xyxy"):
        return TV[name](tv_to_xyxy(_tensor(boxes1), box_format), tv_to_xyxy(_tensor(boxes2), box_format),
                        reduction=reduction, eps=eps)

    def numpy_ref(boxes1, boxes2, reduction="none", eps=1e-7, *, box_format="xyxy"):
        return TV[name](tv_to_xyxy(np.asarray(boxes1), box_format), tv_to_xyxy(np.asarray(boxes2), box_format),
                        reduction=reduction, eps=eps)
    return torch_ref, numpy_ref


def _pairwise_ref(fn):
    def ref(boxes1, boxes2, *, box_format="xyxy"):
        return fn(_tensor(boxes1), _tensor(boxes2), box_format)
    return ref


def sample_boxes(rng, n, dtype=np.float64, scale=10.0):
    """n valid xyxy boxes (x2 > x1, y2 > y1)."""
    xy = rng.uniform(-scale, scale, (n, 2))
    wh = rng.uniform(0.1, scale, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def _sample_pairs(rng, n, dtype):
    b1 = sample_boxes(rng, max(n // 4, 1), np.float64)
    b2 = b1 + rng.normal(0, 2.0, b1.shape)           # near boxes1: most pairs overlap, some do not
    b2[:, 2:] = np.maximum(b2[:, 2:], b2[:, :2] + 0.05)
    return (b1.astype(dtype), b2.astype(dtype)), {}


def _sample_matrix(rng, n, dtype):
    m = max(int(np.sqrt(max(n, 1) / 4)), 1)
    return (sample_boxes(rng, m, dtype), sample_boxes(rng, 2 * m, dtype)), {}


for _name in TV:
    _tr, _nr = _loss_refs(_name)
    register(Reference(_name, "boxes", _sample_pairs, torch_ref=_tr, numpy_ref=_nr,
                      notes="torchvision.ops semantics (iou_loss: SPEC 6); empty-batch mean is 0"))

register(Reference("box_iou", "boxes", _sample_matrix, torch_ref=_pairwise_ref(tv_box_iou), grad_argnums=(),
                   default_reduction="none", notes="pairwise N x M matrix: no reduction, no gradient"))
register(Reference("generalized_box_iou", "boxes", _sample_matrix, torch_ref=_pairwise_ref(tv_generalized_box_iou),
                   grad_argnums=(), default_reduction="none",
                   notes="pairwise N x M matrix: no reduction, no gradient"))
