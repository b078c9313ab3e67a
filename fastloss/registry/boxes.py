"""Registry entries of the boxes family (see fastloss/registry/__init__.py).

The references are torchvision.ops' formulas transcribed into torch ops (torchvision itself is not a
dependency): ``_utils._loss_inter_union``, ``giou_loss.py``, ``diou_loss._diou_iou_loss``,
``ciou_loss.py``, ``boxes.py`` (``box_area``, ``_box_inter_union``, ``box_iou``,
``generalized_box_iou``) and ``_box_convert.py``.  tests/test_boxes.py uses them too.
"""
import numpy as np

from . import LossSpec, register


def _torch():
    import torch
    return torch


def tv_to_xyxy(b, fmt):
    torch = _torch()
    if fmt == "xyxy":
        return b
    if fmt == "xywh":
        x, y, w, h = b.unbind(-1)
        return torch.stack([x, y, x + w, y + h], dim=-1)
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def tv_loss_inter_union(boxes1, boxes2):
    torch = _torch()
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1 = torch.max(x1, x1g)
    ykis1 = torch.max(y1, y1g)
    xkis2 = torch.min(x2, x2g)
    ykis2 = torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    return intsctk, unionk


def tv_enclosure(boxes1, boxes2):
    """The smallest enclosing box, as torchvision's GIoU and DIoU losses compute it (repeated there)."""
    torch = _torch()
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    return torch.min(x1, x1g), torch.min(y1, y1g), torch.max(x2, x2g), torch.max(y2, y2g)


def tv_reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
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
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
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
    torch = _torch()
    diou_loss, iou = tv_diou_iou_loss(boxes1, boxes2)       # sic: torchvision passes no eps here
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    w_pred = x2 - x1
    h_pred = y2 - y1
    w_gt = x2g - x1g
    h_gt = y2g - y1g
    v = (4 / (torch.pi**2)) * torch.pow((torch.atan(w_gt / h_gt) - torch.atan(w_pred / h_pred)), 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
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




# ------------------------------------------------------------------ registry entries
def _tensor(a):
    if isinstance(a, _torch().Tensor):   # already a (float64, maybe requires_grad) tensor: keep it
        return a
    return _torch().as_tensor(np.asarray(a, dtype=np.float64))


def _loss_ref(name):
    def ref(boxes1, boxes2, reduction="none", eps=1e-7, *, box_format="xyxy"):
        return TV[name](tv_to_xyxy(_tensor(boxes1), box_format), tv_to_xyxy(_tensor(boxes2), box_format),
                        reduction=reduction, eps=eps)
    return ref


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
    register(LossSpec(_name, "boxes", _sample_pairs, torch_ref=_loss_ref(_name), default_reduction="none",
                      notes="torchvision.ops semantics (iou_loss: SPEC 6); empty-batch mean is 0"))

register(LossSpec("box_iou", "boxes", _sample_matrix, torch_ref=_pairwise_ref(tv_box_iou), grad_argnums=(),
                  default_reduction="none", notes="pairwise N x M matrix: no reduction, no gradient"))
register(LossSpec("generalized_box_iou", "boxes", _sample_matrix, torch_ref=_pairwise_ref(tv_generalized_box_iou),
                  grad_argnums=(), default_reduction="none",
                  notes="pairwise N x M matrix: no reduction, no gradient"))
