"""Every output element is written (issue 13, SPEC §5): no loss returns what ``np.empty`` held.

For every loss with a reference and every reduction, over its sampled call and over variants with a
zero-size axis at each position of the prediction (the other arguments cut to match, plus a variant
whose class labels are all ``ignore_index``, so that zero classes still give a result):

* the float64 torch reference (fastloss._reference) either raises -- then fastloss raises a ValueError /
  IndexError / TypeError too -- or returns a value, and then
* ``reduction="none"`` with ``out=`` pre-filled with a sentinel returns ``out`` itself with every
  element overwritten by the reference's value, and without ``out=`` equals the reference;
* every other reduction equals the reference (value and 0-d shape).

Losses with a torch / torchvision reference follow it exactly (its result or its error).  For the SPEC §6
losses the shared reference is a formula written in torch ops that may not handle every empty
shape (e.g. ``max`` over an empty batch): where it raises, fastloss may return a result -- every
element written -- and where it returns, fastloss may raise a SPEC §5 error.
"""

import inspect
import warnings

import numpy as np
import pytest
import torch

import fastloss as fl
from fastloss._reference import REFERENCES
from fl_testing import assert_close_spec

SENTINEL = -7.25e30  # no loss value of these samples; an unwritten element keeps it
SPEC5 = (ValueError, IndexError, TypeError)
LOSSES = sorted(n for n in REFERENCES if "reduction" in inspect.signature(getattr(fl, n)).parameters)
CLASS_INDEX_LOSSES = ("cross_entropy", "nll_loss", "softmax_focal_loss")
TORCHVISION = (
    "sigmoid_focal_loss",
    "generalized_box_iou_loss",
    "distance_box_iou_loss",
    "complete_box_iou_loss",
    "box_iou",
    "generalized_box_iou",
)
TORCH_SEMANTICS = frozenset(n for n in REFERENCES if hasattr(torch.nn.functional, n) or n in TORCHVISION)


def _known_reference_bug(name, args, reduction):
    """torch.multi_margin_loss over an empty batch returns uninitialised memory for mean and sum (torch
    2.13: the output is never written); fastloss gives the sum over nothing, 0, and its mean, nan."""
    return name == "multi_margin_loss" and args[0].shape[0] == 0 and reduction != "none"


def _reductions(name):
    allowed = ["none", "mean", "sum"]
    if name in ("kl_div", "distillation_loss"):
        allowed.append("batchmean")
    return allowed


def _cut(a, axis):
    return np.take(a, np.arange(0), axis=axis) if isinstance(a, np.ndarray) and axis < a.ndim else a


def _variants(name, args, kwargs):
    """(label, args, kwargs): the sample and its zero-size-axis variants (each axis of the prediction,
    the other arrays cut where they line up with it: leading, trailing, or class-label alignment)."""
    yield "sample", args, kwargs
    x = args[0]
    seen = set()
    for i in range(x.ndim):
        aligned = {
            "leading": lambda a, i=i: i if a.ndim > i and a.shape[i] == x.shape[i] else None,
            "trailing": lambda a, i=i: (
                (i - x.ndim + a.ndim)
                if 0 <= i - x.ndim + a.ndim and a.shape[i - x.ndim + a.ndim] == x.shape[i]
                else None
            ),
            "labels": lambda a, i=i: (
                (0 if i == 0 else i - 1 if i > 1 else None)
                if a.ndim == x.ndim - 1
                else (i if a.ndim > i and a.shape[i] == x.shape[i] else None)
            ),
        }
        for how, axis_of in aligned.items():

            def cut(a, i=i, axis_of=axis_of):
                if not isinstance(a, np.ndarray) or a is x:
                    return _cut(a, i) if a is x else a
                j = axis_of(a)
                return a if j is None else _cut(a, j)

            new_args = tuple(cut(a) for a in args)
            new_kwargs = {k: cut(v) for k, v in kwargs.items()}
            key = tuple(np.shape(a) for a in new_args) + tuple(np.shape(v) for v in new_kwargs.values())
            if key not in seen:
                seen.add(key)
                yield f"axis {i} = 0 ({how})", new_args, new_kwargs
    if name in CLASS_INDEX_LOSSES:  # zero classes: only ignored labels give a result
        lab = np.full_like(args[1], -100)
        yield "0 classes, labels ignored", (x[:, :0], lab), kwargs
        yield "labels ignored", (x, lab), kwargs
    if name == "cross_entropy":  # probability targets, and zero classes with them
        p = np.full(x.shape, 1.0 / x.shape[1])
        yield "probabilities", (x, p), kwargs
        yield "0 classes, probabilities", (x[:, :0], p[:, :0]), kwargs


def _reference(spec, args, kwargs, reduction):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = spec.torch_ref(*args, **kwargs, reduction=reduction)
    return r.detach().numpy() if isinstance(r, torch.Tensor) else np.asarray(r)


def _cases():
    rng = np.random.default_rng(13)
    for name in LOSSES:
        spec = REFERENCES[name]
        if spec.torch_ref is None:
            continue
        args, kwargs = spec.sample(rng, 40, np.float64)
        for label, a, kw in _variants(name, args, kwargs):
            yield pytest.param(name, a, kw, id=f"{name}-{label}")


@pytest.mark.parametrize("name,args,kwargs", list(_cases()))
def test_every_output_element_is_written(name, args, kwargs):
    spec = REFERENCES[name]
    fn = getattr(fl, name)
    for reduction in _reductions(name):
        try:
            ref = _reference(spec, args, kwargs, reduction)
        except Exception:  # noqa: BLE001 - the reference refuses these shapes
            if name in TORCH_SEMANTICS:
                with pytest.raises(SPEC5):  # so must fastloss
                    fn(*args, **kwargs, reduction=reduction)
                continue
            ref = None
        if _known_reference_bug(name, args, reduction):
            ref = np.float64(0.0 if reduction == "sum" else np.nan)
        try:
            got = fn(*args, **kwargs, reduction=reduction)
        except SPEC5:
            if ref is not None and name in TORCH_SEMANTICS:
                raise
            continue
        if ref is not None:
            assert_close_spec(got, ref, np.float64, what=f"{name} {reduction}")
        if reduction == "none":
            out = np.full(np.shape(got), SENTINEL)
            res = fn(*args, **kwargs, reduction="none", out=out)
            assert res is out, f"{name}: out= was not returned"
            assert not np.any(out == SENTINEL), f"{name}: elements of out= left unwritten"
            assert_close_spec(out, got if ref is None else ref, np.float64, what=f"{name} out=")


@pytest.mark.parametrize("name", ["nll_loss", "multi_margin_loss", "cross_entropy", "distillation_loss"])
def test_zero_classes_issue_13(name):
    """The four losses of issue 13 with C = 0: torch's value (0 or -0 per row, nan mean) or torch's error."""
    x = np.zeros((3, 0))
    out = np.full(3, SENTINEL)
    if name == "nll_loss":
        with pytest.raises(IndexError, match="target"):  # torch: "Target 0 is out of bounds"
            fl.nll_loss(x, np.zeros(3, np.int64))
        got = fl.nll_loss(x, np.full(3, -100), reduction="none", out=out)
        np.testing.assert_array_equal(
            got,
            torch.nn.functional.nll_loss(
                torch.zeros(3, 0, dtype=torch.float64), torch.full((3,), -100), reduction="none"
            ).numpy(),
        )
    elif name == "multi_margin_loss":
        with pytest.raises(ValueError, match="input"):  # torch: "Expected non-empty vector or matrix"
            fl.multi_margin_loss(x, np.zeros(3, np.int64), reduction="none", out=out)
        assert np.all(out == SENTINEL)
        return
    elif name == "cross_entropy":
        got = fl.cross_entropy(x, np.zeros((3, 0)), reduction="none", out=out)
        ref = torch.nn.functional.cross_entropy(
            torch.zeros(3, 0, dtype=torch.float64), torch.zeros(3, 0, dtype=torch.float64), reduction="none"
        ).numpy()
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref))  # -0.0, as torch
        assert np.isnan(fl.cross_entropy(x, np.zeros((3, 0)))) and np.isnan(ref.sum() / 0)
    else:
        got = fl.distillation_loss(x, x, reduction="none", out=out)
        assert fl.distillation_loss(x, x) == 0.0  # batchmean: 0 / N
    assert got is out
    np.testing.assert_array_equal(out, 0.0)
