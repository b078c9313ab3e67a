"""Type assertions on fastloss's public API: checked by ``mypy --strict`` and also run.

``tests/test_typing.py`` runs mypy on this directory (every ``assert_type`` below is an error if the
static type differs) and then runs :func:`check_losses` and :func:`check_others`, so that each
asserted type is also the type the call returns (the runtime checks follow every ``assert_type``).
The ``return_grad`` overloads: ``False`` (the default) gives the loss, ``True`` a ``(loss, grad)`` tuple
whose ``grad`` is one array or, for losses differentiated with respect to several arguments, a tuple
of arrays; a plain ``bool`` gives the union of the two.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

import fastloss as fl

if TYPE_CHECKING:
    import dask.array as da
    import dask.dataframe as dd
    from dask.delayed import Delayed

FloatArray = NDArray[np.floating[Any]]
Loss = Union[FloatArray, np.floating[Any]]
Grads2 = tuple[FloatArray, FloatArray]

rng = np.random.default_rng(0)
logits = rng.standard_normal((4, 3))            # (N, C) scores / embeddings
other = rng.standard_normal((4, 3))
labels = np.array([0, 2, 1, 2])
x = rng.standard_normal(4)                      # elementwise predictions and targets
t = rng.standard_normal(4)
probs = np.array([0.1, 0.4, 0.6, 0.9])
signs = np.array([1.0, -1.0, 1.0, -1.0])
positive = np.array([0.5, 1.0, 2.0, 3.0])
boxes1 = np.array([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]])
boxes2 = np.array([[0.5, 0.0, 2.0, 3.0], [1.0, 2.0, 2.0, 4.0]])
seg_logits = rng.standard_normal((2, 3, 4, 4))  # (N, C, H, W)
seg_labels = rng.integers(0, 3, (2, 4, 4))
bin_logits = rng.standard_normal((2, 1, 4, 4))
bin_mask = (rng.random((2, 1, 4, 4)) > 0.5).astype(np.float64)


def _is_loss(v: object) -> bool:
    return isinstance(v, (np.ndarray, np.floating))


def _grad_ok(r: object, n: int) -> bool:
    """r is (loss, grad) with one gradient array (n == 1) or a tuple of n of them."""
    if not (isinstance(r, tuple) and len(r) == 2 and _is_loss(r[0])):
        return False
    g = r[1]
    grads = (g,) if n == 1 else g
    return isinstance(grads, tuple) and len(grads) == n and all(isinstance(a, np.ndarray) for a in grads)


def check_return_grad_overloads(flag: bool) -> None:
    """The three ways of passing return_grad, on one loss."""
    assert_type(fl.cross_entropy(logits, labels), Loss)
    assert_type(fl.cross_entropy(logits, labels, return_grad=False), Loss)
    assert_type(fl.cross_entropy(logits, labels, return_grad=True), tuple[Loss, FloatArray])
    assert_type(fl.cross_entropy(logits, labels, return_grad=flag), Union[Loss, tuple[Loss, FloatArray]])
    loss, grad = fl.cross_entropy(logits, labels, reduction="sum", label_smoothing=0.1, num_threads=1,
                                  return_grad=True)
    assert_type(loss, Loss)
    assert_type(grad, FloatArray)
    out = np.empty(4)
    assert_type(fl.cross_entropy(logits, labels, reduction="none", out=out), Loss)
    r = fl.cross_entropy(logits, labels, return_grad=flag)
    assert _grad_ok(r, 1) if flag else _is_loss(r)
    buf = np.empty_like(logits)                 # grad_out=: the buffer is the gradient returned
    assert assert_type(fl.cross_entropy(logits, labels, return_grad=True, grad_out=buf),
                       tuple[Loss, FloatArray])[1] is buf
    bufs = (np.empty_like(logits), None, np.empty_like(logits))
    r3 = assert_type(fl.triplet_margin_loss(logits, other, -other, return_grad=True, grad_out=bufs),
                     tuple[Loss, tuple[FloatArray, FloatArray, FloatArray]])
    assert r3[1][0] is bufs[0] and r3[1][2] is bufs[2]


def check_losses() -> None:
    """Every loss of fastloss.__all__ with return_grad=False (default) and return_grad=True."""
    # classification
    assert_type(fl.cross_entropy(logits, labels), Loss)
    assert _grad_ok(assert_type(fl.cross_entropy(logits, labels, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.nll_loss(logits, labels), Loss)
    assert _grad_ok(assert_type(fl.nll_loss(logits, labels, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.softmax_focal_loss(logits, labels, alpha=[0.2, 0.3, 0.5]), Loss)
    assert _grad_ok(assert_type(fl.softmax_focal_loss(logits, labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.multi_margin_loss(logits, labels, p=2), Loss)
    assert _grad_ok(assert_type(fl.multi_margin_loss(logits, labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.distillation_loss(logits, other, temperature=2.0), Loss)
    assert _grad_ok(assert_type(fl.distillation_loss(logits, other, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.binary_cross_entropy_with_logits(x, probs, pos_weight=2.0), Loss)
    assert _grad_ok(assert_type(fl.binary_cross_entropy_with_logits(x, probs, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    # regression
    assert_type(fl.mse_loss(x, t, weight=positive), Loss)
    assert _grad_ok(assert_type(fl.mse_loss(x, t, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.l1_loss(x, t), Loss)
    assert _grad_ok(assert_type(fl.l1_loss(x, t, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.huber_loss(x, t, delta=0.5), Loss)
    assert _grad_ok(assert_type(fl.huber_loss(x, t, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.smooth_l1_loss(x, t, beta=0.5), Loss)
    assert _grad_ok(assert_type(fl.smooth_l1_loss(x, t, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.poisson_nll_loss(x, positive), Loss)
    assert _grad_ok(assert_type(fl.poisson_nll_loss(x, positive, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.gaussian_nll_loss(x, t, positive), Loss)
    assert _grad_ok(assert_type(fl.gaussian_nll_loss(x, t, positive, return_grad=True), tuple[Loss, Grads2]), 2)
    assert_type(fl.log_cosh_loss(x, t), Loss)
    assert _grad_ok(assert_type(fl.log_cosh_loss(x, t, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.quantile_loss(x, t, q=0.9), Loss)
    assert _grad_ok(assert_type(fl.quantile_loss(x, t, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.mape_loss(x, positive, eps=None), Loss)
    assert _grad_ok(assert_type(fl.mape_loss(x, positive, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.smape_loss(x, t), Loss)
    assert _grad_ok(assert_type(fl.smape_loss(x, t, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.msle_loss(probs, positive), Loss)
    assert _grad_ok(assert_type(fl.msle_loss(probs, positive, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.gaussian_kl_loss(logits, other), Loss)
    assert _grad_ok(assert_type(fl.gaussian_kl_loss(logits, other, return_grad=True), tuple[Loss, Grads2]), 2)
    # boxes
    assert_type(fl.iou_loss(boxes1, boxes2, reduction="mean"), Loss)
    assert _grad_ok(assert_type(fl.iou_loss(boxes1, boxes2, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.generalized_box_iou_loss(boxes1, boxes2, box_format="xywh"), Loss)
    assert _grad_ok(assert_type(fl.generalized_box_iou_loss(boxes1, boxes2, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.distance_box_iou_loss(boxes1, boxes2), Loss)
    assert _grad_ok(assert_type(fl.distance_box_iou_loss(boxes1, boxes2, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.complete_box_iou_loss(boxes1, boxes2, eps=1e-6), Loss)
    assert _grad_ok(assert_type(fl.complete_box_iou_loss(boxes1, boxes2, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    # metric learning
    assert_type(fl.triplet_margin_loss(logits, other, -other, swap=True), Loss)
    assert _grad_ok(assert_type(fl.triplet_margin_loss(logits, other, -other, return_grad=True),
                                tuple[Loss, tuple[FloatArray, FloatArray, FloatArray]]), 3)
    assert_type(fl.margin_ranking_loss(x, t, signs, margin=0.1), Loss)
    assert _grad_ok(assert_type(fl.margin_ranking_loss(x, t, signs, return_grad=True), tuple[Loss, Grads2]), 2)
    assert_type(fl.cosine_embedding_loss(logits, other, signs), Loss)
    assert _grad_ok(assert_type(fl.cosine_embedding_loss(logits, other, signs, return_grad=True),
                                tuple[Loss, Grads2]), 2)
    assert_type(fl.hinge_embedding_loss(x, signs), Loss)
    assert _grad_ok(assert_type(fl.hinge_embedding_loss(x, signs, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.contrastive_loss(logits, other, labels % 2), Loss)
    assert _grad_ok(assert_type(fl.contrastive_loss(logits, other, labels % 2, return_grad=True),
                                tuple[Loss, Grads2]), 2)
    assert_type(fl.batch_hard_triplet_loss(logits, labels, squared=True), Loss)
    assert _grad_ok(assert_type(fl.batch_hard_triplet_loss(logits, labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.batch_all_triplet_loss(logits, labels), Loss)
    assert _grad_ok(assert_type(fl.batch_all_triplet_loss(logits, labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.info_nce_loss(logits, other, temperature=0.1), Loss)
    assert _grad_ok(assert_type(fl.info_nce_loss(logits, other, return_grad=True), tuple[Loss, Grads2]), 2)
    assert_type(fl.nt_xent_loss(logits, other), Loss)
    assert _grad_ok(assert_type(fl.nt_xent_loss(logits, other, return_grad=True), tuple[Loss, Grads2]), 2)
    assert_type(fl.arcface_loss(logits, labels, other[:3], scale=30.0), Loss)
    assert _grad_ok(assert_type(fl.arcface_loss(logits, labels, other[:3], return_grad=True),
                                tuple[Loss, Grads2]), 2)
    # linear (a language-model head)
    assert_type(fl.linear_cross_entropy(logits, other, labels % 3, logit_softcap=5.0), Loss)
    assert _grad_ok(assert_type(fl.linear_cross_entropy(logits, other, labels % 3, return_grad=True),
                                tuple[Loss, tuple[FloatArray, FloatArray, FloatArray]]), 3)
    # binary
    assert_type(fl.binary_cross_entropy(probs, probs[::-1]), Loss)
    assert _grad_ok(assert_type(fl.binary_cross_entropy(probs, probs[::-1], return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.sigmoid_focal_loss(x, probs, alpha=-1), Loss)
    assert _grad_ok(assert_type(fl.sigmoid_focal_loss(x, probs, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.hinge_loss(x, signs, squared=True), Loss)
    assert _grad_ok(assert_type(fl.hinge_loss(x, signs, return_grad=True), tuple[Loss, FloatArray]), 1)
    assert_type(fl.kl_div(np.log(probs), probs[::-1], reduction="batchmean"), Loss)
    assert _grad_ok(assert_type(fl.kl_div(np.log(probs), probs[::-1], return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    # segmentation
    assert_type(fl.dice_loss(seg_logits, seg_labels, ignore_index=None), Loss)
    assert _grad_ok(assert_type(fl.dice_loss(seg_logits, seg_labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.jaccard_loss(seg_logits, seg_labels, smooth=1.0), Loss)
    assert _grad_ok(assert_type(fl.jaccard_loss(seg_logits, seg_labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.tversky_loss(seg_logits, seg_labels, alpha=0.3, beta=0.7), Loss)
    assert _grad_ok(assert_type(fl.tversky_loss(seg_logits, seg_labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.focal_tversky_loss(seg_logits, seg_labels, gamma=0.75), Loss)
    assert _grad_ok(assert_type(fl.focal_tversky_loss(seg_logits, seg_labels, return_grad=True),
                                tuple[Loss, FloatArray]), 1)
    assert_type(fl.dice_bce_loss(bin_logits, bin_mask, dice_weight=0.3), Loss)
    assert _grad_ok(assert_type(fl.dice_bce_loss(bin_logits, bin_mask, return_grad=True),
                                tuple[Loss, FloatArray]), 1)


def check_others() -> None:
    """The functions without return_grad, the mergeable states and the library settings."""
    iou = assert_type(fl.box_iou(boxes1, boxes2, num_threads=1), FloatArray)
    assert isinstance(iou, np.ndarray) and iou.shape == (2, 2)
    assert isinstance(assert_type(fl.generalized_box_iou(boxes1, boxes2), FloatArray), np.ndarray)
    area = assert_type(fl.box_area(boxes1), NDArray[Union[np.floating[Any], np.integer[Any]]])
    assert isinstance(area, np.ndarray)
    w = assert_type(fl.class_balanced_weights([10, 5, 1]), NDArray[np.float64])
    assert w.dtype == np.float64

    a = assert_type(fl.partial("mse_loss", x[:2], t[:2]), fl.LossState)
    b = assert_type(fl.partial(fl.mse_loss, x[2:], t[2:], weight=positive[2:]), fl.LossState)
    merged = assert_type(a + b, fl.LossState)
    assert_type(a.merge(b), fl.LossState)
    assert_type(sum([a, b]), Union[fl.LossState, Literal[0]])   # typeshed: sum() of nothing is its start, 0
    assert_type(fl.LossState.merge_all([a, b]), fl.LossState)
    assert_type(fl.LossState.empty("mse_loss"), fl.LossState)
    mean = assert_type(merged.finalize("mean"), float)
    assert isinstance(mean, float)
    assert_type(merged.count, int)
    assert_type(merged.loss, str)
    d = assert_type(merged.to_dict(), dict[str, Any])
    assert assert_type(fl.LossState.from_dict(d), fl.LossState) == merged

    n = assert_type(fl.get_num_threads(), int)
    fl.set_num_threads(n)
    assert_type(fl.openmp_enabled(), bool)
    assert_type(fl.config(), dict[str, Any])


def check_scoring(path: str) -> None:
    """Scoring files (type-checked only: it needs files)."""
    res = assert_type(fl.score_file(path, "cross_entropy", "logits", "label", batch_size=1024),
                      fl.ScoreResult)
    assert_type(fl.score_parquet([path], "mse_loss", ["x"], "y", progress=lambda done, total: None),
                fl.ScoreResult)
    assert_type(res.loss, float)
    assert_type(res.state, fl.LossState)
    assert_type(res.rows_per_s, float)
    many = assert_type(fl.score_parquet(path, ["cross_entropy", ("softmax_focal_loss", {"gamma": 2.0})],
                                        "logits", "label", by=["country", "day"], key=["id"]), fl.ScoreResult)
    assert_type(many.losses, dict[str, float])
    assert_type(fl.score_table(object(), "cross_entropy", "logits", "label", by="country", weight=[1.0, 2.0]),
                fl.ScoreResult)


def check_dask(x: da.Array, y: da.Array, df: dd.DataFrame) -> None:
    """fastloss.dask (type-checked only: it needs dask)."""
    import fastloss.dask as fld
    assert_type(fld.partial("cross_entropy", x, y, num_threads=2), Delayed)
    assert_type(fld.loss(fl.cross_entropy, x, y, reduction="sum", split_every=4), Delayed)
    assert_type(fld.partial_frame("mse_loss", df, input=["a", "b"], target="y"), Delayed)
    assert_type(fld.loss_frame("mse_loss", df, "x", "y", weight="w"), Delayed)


if __name__ == "__main__":
    check_return_grad_overloads(True)
    check_return_grad_overloads(False)
    check_losses()
    check_others()
