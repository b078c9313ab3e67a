"""The one runtime description of the losses (fastloss/_losses.py: LossInfo, LOSSES) against what the
functions do.

Every public loss has exactly one LossInfo, and each field is checked by calling the loss on the
references' samplers: the differentiated arguments against what ``return_grad=True`` returns (count,
shapes, and the values: torch.autograd's gradient of the float64 reference (fastloss._reference) with respect
to that argument), the
reductions against the ones the function accepts, the item rule against the size of the
``reduction="none"`` output, ``in_batch`` against whether an item's loss changes when the rest of the
batch is cut away.  Then the readers: ``fl.partial``, scoring's name list and the bench's workloads.
"""
import inspect
import warnings

import numpy as np
import pytest

import fastloss as fl
from fastloss import scoring
from fastloss._losses import ITEM_RULES, LOSSES, LossInfo, loss_info
from fastloss.bench import workloads as W
from fastloss._reference import REFERENCES

FAMILIES = ("classification", "regression", "binary", "boxes", "metric", "segmentation", "linear")
NAMES = sorted(LOSSES)


def _public_losses():
    """The public functions of the family modules that take a ``reduction``: the losses."""
    out = set()
    for name in fl.__all__:
        fn = getattr(fl, name)
        module = getattr(fn, "__module__", "")
        if inspect.isfunction(fn) and module.startswith("fastloss._") \
                and module[len("fastloss._"):] in FAMILIES and "reduction" in inspect.signature(fn).parameters:
            out.add(name)
    return out


def _sample(name, n=400, seed=0):
    args, kw = REFERENCES[name].sample(np.random.default_rng(seed), n, np.float64)
    return list(args), kw


def test_every_public_loss_has_exactly_one_description():
    assert set(LOSSES) == _public_losses()
    for name, info in LOSSES.items():
        fn = getattr(fl, name)
        assert isinstance(info, LossInfo) and info.name == name
        # the decorator returns the function itself: no wrapper in the way of signature, docs, speed
        assert info.function is fn and inspect.unwrap(fn) is fn and fn.__name__ == name
        assert info.family == fn.__module__[len("fastloss._"):], name
        assert info.items in ITEM_RULES
    with pytest.raises(ValueError, match="described twice"):
        loss_info(family="regression")(fl.mse_loss)
    assert LOSSES["mse_loss"].function is fl.mse_loss


def test_non_losses_have_no_description():
    for name in ("box_iou", "generalized_box_iou", "box_area", "class_balanced_weights", "partial",
                 "score_file", "score_parquet", "LossState"):
        assert name in fl.__all__ and name not in LOSSES


@pytest.mark.parametrize("name", NAMES)
def test_grad_args_are_what_return_grad_differentiates(name):
    info = LOSSES[name]
    fn = getattr(fl, name)
    params = [p for p, prm in inspect.signature(fn).parameters.items()
              if prm.kind is prm.POSITIONAL_OR_KEYWORD]
    assert info.grad_argnums and tuple(params[i] for i in info.grad_argnums) == info.grad_args
    args, kw = _sample(name, 60)
    _, grad = fn(*args, **kw, reduction="sum", return_grad=True)
    grads = (grad,) if len(info.grad_argnums) == 1 else grad
    assert isinstance(grads, tuple) and len(grads) == len(info.grad_argnums), name
    want = _torch_grads(name, args, kw)
    for i, g in zip(info.grad_argnums, grads):
        assert isinstance(g, np.ndarray) and g.shape == np.shape(args[i]), (name, info.grad_args)
        # the gradient is the one with respect to argument i (torch.autograd on the float64 reference)
        scale = max(1.0, float(np.abs(want[i]).max()))
        assert np.allclose(g, want[i], rtol=0, atol=1e-9 * scale), (name, info.grad_args, i)


def _torch_grads(name, args, kw):
    """{positional index: gradient of the summed reference loss} for every float argument."""
    import torch
    tin, leaves = [], {}
    for i, a in enumerate(args):
        a = np.asarray(a)
        if a.dtype.kind == "f":
            t = torch.from_numpy(a.astype(np.float64)).requires_grad_(True)
            leaves[i] = t
        else:
            t = torch.from_numpy(a.astype(np.int64))
        tin.append(t)
    val = REFERENCES[name].torch_ref(*tin, **kw, reduction="sum")
    gs = torch.autograd.grad(val, list(leaves.values()), allow_unused=True)
    return {i: np.zeros(tuple(t.shape)) if g is None else g.numpy() for (i, t), g in zip(leaves.items(), gs)}


@pytest.mark.parametrize("name", NAMES)
def test_reductions_are_those_the_function_accepts(name):
    info = LOSSES[name]
    fn = getattr(fl, name)
    assert info.default_reduction == inspect.signature(fn).parameters["reduction"].default
    assert info.default_reduction in info.reductions
    args, kw = _sample(name, 60)
    for red in ("none", "mean", "sum", "batchmean", "average"):
        if red in info.reductions:
            fn(*args, **kw, reduction=red)
        else:
            with pytest.raises(ValueError, match="reduction"):
                fn(*args, **kw, reduction=red)


@pytest.mark.parametrize("name", NAMES)
def test_items_and_in_batch(name):
    """count_items is the size of the reduction="none" output; a loss is in-batch exactly when the
    per-item losses of the first half of a batch change once the second half is cut away."""
    info = LOSSES[name]
    fn = getattr(fl, name)
    args, kw = _sample(name)
    per_item = np.asarray(fn(*args, **kw, reduction="none"))
    assert info.count_items(*args) == per_item.size
    n = np.shape(args[0])[0]
    k = n // 2
    cut = [a[:k] if np.ndim(a) >= 1 and np.shape(a)[0] == n else a for a in args]
    part = np.asarray(fn(*cut, **kw, reduction="none"))
    assert info.count_items(*cut) == part.size
    unchanged = np.allclose(part[:k], per_item[:k], rtol=1e-12, atol=0)
    assert info.in_batch == (not unchanged), name


@pytest.mark.parametrize("loss, args", [
    ("mse_loss", (np.zeros((3, 1)), np.zeros((1, 4)))),              # broadcast: 12 items
    ("mse_loss", (np.zeros((5, 4)), np.zeros(4))),
    ("mse_loss", (np.zeros((2, 3)), np.zeros((2, 3)))),
    ("mse_loss", ([1.0, 2.0], [3.0, 4.0])),                          # array-likes: np.shape
    ("cross_entropy", (np.zeros(7), 3)),                              # unbatched (C,): 1 item
    ("cross_entropy", (np.zeros((6, 7)), np.zeros(6, np.int64))),
    ("cross_entropy", (np.zeros((2, 7, 3, 5)), np.zeros((2, 3, 5), np.int64))),
    ("triplet_margin_loss", (np.zeros((6, 8)), np.ones((6, 8)), np.full((6, 8), 2.0))),
    ("triplet_margin_loss", (np.zeros(8), np.ones(8), np.full(8, 2.0))),     # unbatched (D,): 1 item
    ("generalized_box_iou_loss", (np.zeros((5, 4)), np.zeros((5, 4)))),
    ("generalized_box_iou_loss", (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))),
    ("generalized_box_iou_loss", (np.zeros((1, 4)), np.zeros((5, 4)))),       # one box against 5
])
def test_item_counts_of_shapes(loss, args):
    """The item-count rule is the size of the loss's reduction="none" output, at shapes that broadcast,
    unbatched and spatial shapes, and array-likes (the rules' shortcuts for equal shapes and ndarrays)."""
    info = LOSSES[loss]
    assert info.items in ("elementwise", "class", "rows", "boxes")
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")       # (torch's warning for a target that broadcasts)
        per_item = np.asarray(getattr(fl, loss)(*args, reduction="none"))
    assert info.count_items(*args) == per_item.size


@pytest.mark.parametrize("name", NAMES)
def test_partial_counts_the_items(name):
    args, kw = _sample(name)
    st = fl.partial(name, *args, **kw)
    assert st.loss == name and st.count == LOSSES[name].count_items(*args)
    assert fl.partial(getattr(fl, name), *args, **kw) == st


def test_partial_takes_the_described_losses_only():
    for name in ("box_iou", "score_file", "partial", "no_such_loss"):
        with pytest.raises(ValueError, match="unknown loss"):
            fl.partial(name, np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="unknown loss"):
        fl.partial(fl.box_iou, np.zeros((1, 4)), np.zeros((1, 4)))
    # "batchmean" exactly for the losses that describe it
    for name, info in LOSSES.items():
        args, kw = _sample(name, 60)
        if "batchmean" in info.reductions:
            fl.partial(name, *args, **kw, reduction="batchmean")
        else:
            with pytest.raises(ValueError, match="reduction"):
                fl.partial(name, *args, **kw, reduction="batchmean")


def test_scoring_names_are_the_losses_not_in_batch():
    want = sorted(n for n, info in LOSSES.items() if not info.in_batch)
    assert scoring.loss_names() == want
    for name, info in LOSSES.items():
        if info.in_batch:
            with pytest.raises(ValueError, match="within a batch"):
                scoring._loss_function(name)
        else:
            assert scoring._loss_function(name) is getattr(fl, name)
    with pytest.raises(ValueError, match="unknown loss 'box_iou'"):
        scoring._loss_function("box_iou")


def test_bench_workloads_agree_with_the_descriptions():
    for w in W.WORKLOADS:
        assert W.implemented(w) and w.loss in LOSSES
        assert w.grad_argnums == LOSSES[w.loss].grad_argnums, w.id
