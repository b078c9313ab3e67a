"""Mergeable loss states: score data in chunks (files, record batches, Dask partitions) and combine.

``partial(loss, input, target)`` reduces one chunk to a :class:`LossState` -- the float64 loss sum
with a compensation term, the sum of the mean's denominators and the item count -- and states merge
exactly like the sums they hold, so::

    fl.LossState.merge_all(fl.partial("cross_entropy", x[i:j], y[i:j]) for i, j in chunks).finalize()

equals ``fl.cross_entropy(x, y)`` (as float64) within float64 rounding (1e-12 relative), for any chunking.

How a chunk is reduced (one kernel pass, nothing N-sized allocated without ``weight``): every reduced
result of fastloss passes through ``_validate.reduced(total, count, ...)``; ``partial`` calls the loss
with its mean reduction while a sink is set there and keeps the float64 (total, count) the kernel
produced -- exactly the numbers the loss's own mean divides.  With a per-item ``weight``, the loss runs
with ``reduction="none"`` into one chunk-sized buffer and the kernel ``_kernels/state.pyx`` forms
sum(w * l) and sum(w) in one deterministic float64 pass.

Merging uses TwoSum (Knuth): the rounding error of every ``total`` addition is carried in
``compensation``, so merging is associative and order-independent up to float64 rounding of the
compensation (far below 1e-12 relative), and bitwise reproducible when states are merged in the same
order.  ``weight_sum`` and ``count`` are plain sums (exact for integer counts below 2**53).
"""
import inspect
import math
import numbers

import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads

_K = load("state")

__all__ = ["LossState", "partial"]

_FIELDS = ("loss", "total", "compensation", "weight_sum", "count")


def _two_sum(a, b):
    """s = fl(a + b) and its exact rounding error e (a + b = s + e); e = 0 once s is not finite."""
    s = a + b
    if not math.isfinite(s):
        return s, 0.0
    bp = s - a
    return s, (a - (s - bp)) + (b - bp)


class LossState:
    """The mergeable reduction state of one loss over some data.

    Fields: ``loss`` (the loss's public name), ``total`` (float64 sum of the weighted per-item losses),
    ``compensation`` (float64 rounding error carried by merges; ``total + compensation`` is the sum),
    ``weight_sum`` (float64 sum of the mean's denominators: the sample weights, or without them the
    loss's own denominator, e.g. sum of w_y of a class-weighted cross-entropy) and ``count`` (int,
    the number of per-item losses: the size of the loss's ``reduction="none"`` output).

    States are immutable values: ``a.merge(b)`` / ``a + b`` return a new state; ``sum(states)`` works.
    """
    __slots__ = _FIELDS

    def __init__(self, loss, total=0.0, compensation=0.0, weight_sum=0.0, count=0):
        if not isinstance(loss, str):
            raise TypeError(f"loss must be a loss name (str), got {type(loss).__name__}")
        for name, v in (("total", total), ("compensation", compensation), ("weight_sum", weight_sum)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {v!r}")
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        set_ = object.__setattr__
        set_(self, "loss", loss)
        set_(self, "total", float(total))
        set_(self, "compensation", float(compensation))
        set_(self, "weight_sum", float(weight_sum))
        set_(self, "count", int(count))

    def __setattr__(self, name, value):
        raise AttributeError("LossState is immutable; merge() returns a new state")

    @classmethod
    def empty(cls, loss):
        """The state of no data (the identity of ``merge``)."""
        return cls(_resolve(loss)[0])

    def merge(self, other):
        """The state of both chunks' data.  Raises ValueError when the losses differ."""
        if not isinstance(other, LossState):
            raise TypeError(f"other must be a LossState (can only merge states), got {type(other).__name__}")
        if other.loss != self.loss:
            raise ValueError(f"cannot merge states of different losses: {self.loss!r} and {other.loss!r}")
        total, err = _two_sum(self.total, other.total)
        return LossState(self.loss, total, self.compensation + other.compensation + err,
                         self.weight_sum + other.weight_sum, self.count + other.count)

    __add__ = merge

    def __radd__(self, other):
        if isinstance(other, numbers.Number) and other == 0:     # sum(states) starts from 0
            return self
        return NotImplemented

    @classmethod
    def merge_all(cls, states, loss=None):
        """Merge an iterable of states left to right.  ``loss`` names the loss of an empty iterable
        (then the empty state is returned); without it an empty iterable is a ValueError."""
        acc = None if loss is None else cls.empty(loss)
        if isinstance(states, (LossState, str, bytes, np.ndarray)) or not hasattr(states, "__iter__"):
            raise TypeError(f"states must be an iterable of LossState objects, got {type(states).__name__}")
        for s in states:
            if not isinstance(s, LossState):
                raise TypeError(f"states must hold LossState objects only, got a {type(s).__name__}")
            acc = s if acc is None else acc.merge(s)
        if acc is None:
            raise ValueError("merge_all of no states: pass loss= to get the empty state")
        return acc

    def finalize(self, reduction="mean"):
        """The reduced loss as a Python float: ``"sum"`` (total + compensation) or ``"mean"`` (divided by
        ``weight_sum``; nan when it is 0, i.e. the mean over nothing)."""
        V.check_reduction(reduction, ("mean", "sum"))
        s = self.total + self.compensation if math.isfinite(self.total) else self.total
        if reduction == "sum":
            return s
        if self.weight_sum == 0:
            return math.nan if s == 0 or math.isnan(s) else math.copysign(math.inf, s)
        return s / self.weight_sum

    def to_dict(self):
        """A plain dict (str, floats and an int: JSON-friendly) that ``from_dict`` reads back."""
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise TypeError(f"d must be a dict (as to_dict() returns), got {type(d).__name__}")
        missing = [f for f in _FIELDS if f not in d]
        extra = [k for k in d if k not in _FIELDS]
        if missing or extra:
            raise ValueError(f"LossState dict: missing keys {missing}, unknown keys {extra}")
        return cls(**{f: d[f] for f in _FIELDS})

    def __reduce__(self):
        return (LossState, tuple(getattr(self, f) for f in _FIELDS))

    def __eq__(self, other):
        if not isinstance(other, LossState):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    __hash__ = None

    def __repr__(self):
        return ("LossState(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS) + ")")


# ------------------------------------------------------------------------------------ partial
def _resolve(loss):
    """(public name, function) of a loss given by name or as the fastloss function itself."""
    import fastloss
    from .registry import REGISTRY
    if isinstance(loss, str):
        fn = getattr(fastloss, loss, None) if (loss in REGISTRY or loss in fastloss.__all__) else None
        name = loss
    elif callable(loss):
        name = getattr(loss, "__name__", "")
        fn = loss if getattr(fastloss, name, None) is loss else None
        if fn is None:
            raise ValueError(f"loss {loss!r} is not a public fastloss loss function")
    else:
        raise TypeError(f"loss must be a loss name or a fastloss loss function, got {type(loss).__name__}")
    if fn is None or "reduction" not in _parameters(fn):
        raise ValueError(f"unknown loss {name!r}: expected a fastloss loss with a reduction, e.g. "
                         f"'cross_entropy', 'mse_loss'")
    return name, fn


def _parameters(fn):
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


# Losses whose per-item losses are not one per element of the prediction: the number of items (the
# size of their reduction="none" output) from the positional arguments.  Every other loss is
# elementwise (an item per element of the prediction).
def _rows(a):           # (..., D) rows -> prod(leading shape)
    return int(np.prod(np.shape(a)[:-1], dtype=np.int64))


def _class_items(x):    # (N, C, d1, ...) -> N * d1 * ...; unbatched (C,) -> 1
    s = np.shape(x)
    return 1 if len(s) <= 1 else int(s[0] * np.prod(s[2:], dtype=np.int64))


def _box_items(b1, b2):
    return int(np.prod(np.broadcast_shapes(np.shape(b1)[:-1], np.shape(b2)[:-1]), dtype=np.int64))


_ITEMS = {
    **dict.fromkeys(("cross_entropy", "nll_loss", "softmax_focal_loss"), lambda x, *a: _class_items(x)),
    **dict.fromkeys(("multi_margin_loss", "distillation_loss", "gaussian_kl_loss", "triplet_margin_loss",
                     "cosine_embedding_loss", "contrastive_loss", "batch_hard_triplet_loss",
                     "batch_all_triplet_loss", "info_nce_loss", "arcface_loss"), lambda x, *a: _rows(x)),
    # segmentation overlap losses: one item per (sample, class) pair of the (N, C, *spatial) input
    **dict.fromkeys(("dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss", "dice_bce_loss"),
                    lambda x, *a: int(np.prod(np.shape(x)[:2], dtype=np.int64))),
    **dict.fromkeys(("iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss",
                     "complete_box_iou_loss"), lambda b1, b2, *a: _box_items(b1, b2)),
    "nt_xent_loss": lambda z1, *a: 2 * _rows(z1),
}

# Losses that look at the whole batch at once (in-batch mining and negatives): a state per chunk is
# that chunk's loss, and merged chunks give the mean of per-chunk losses, not the one-shot loss.
IN_BATCH_LOSSES = frozenset(("batch_hard_triplet_loss", "batch_all_triplet_loss", "info_nce_loss",
                             "nt_xent_loss"))


_BATCHMEAN_LOSSES = frozenset(("kl_div", "distillation_loss"))


def _mean_reduction(name, fn, kwargs):
    """The reduction partial runs: the caller's ``reduction`` ("mean" / "batchmean"), else the loss's
    default when it is one of those (distillation_loss: batchmean), else "mean"."""
    allowed = ("mean", "batchmean") if name in _BATCHMEAN_LOSSES else ("mean",)
    red = kwargs.pop("reduction", None)
    if red is None:
        default = _parameters(fn)["reduction"].default
        return default if default in allowed else "mean"
    if red not in allowed:
        raise ValueError(f"reduction must be one of {allowed} for a state (finalize() chooses mean or sum), "
                         f"got {red!r}")
    return red


def partial(loss, input, target, *args, weight=None, **loss_kwargs):
    """The mergeable :class:`LossState` of ``loss`` over one chunk of data.

    ``loss``: a public loss name (``"cross_entropy"``) or the function (``fl.cross_entropy``).
    ``input``, ``target`` and any further positional ``args`` (``triplet_margin_loss``'s negative,
    ``gaussian_nll_loss``'s var...) and ``loss_kwargs`` are passed to the loss as they are; the loss's
    own ``weight=`` argument (class weights of cross-entropy, per-element weights of mse_loss, ...) is
    passed as ``loss_weight=``.  ``reduction`` may be given as ``"mean"`` or, for losses that have it,
    ``"batchmean"`` (it picks the mean's denominator; default: the loss's default if it is one of them).

    ``weight=None``: ``total`` is the loss's float64 sum and ``weight_sum`` its own mean denominator
    (the number of items, or torch's sum of w_y for class-weighted cross-entropy, ...), so
    ``finalize("mean")`` is the loss's mean, computed in one kernel pass without temporaries.

    ``weight``: a per-item sample weight of the loss's ``reduction="none"`` shape (or a leading part
    of it: one weight per row covers the row's items, e.g. (N,) for a (N, K) multilabel loss).  Then
    ``total = sum_i w_i * loss_i`` and ``weight_sum = sum_i w_i`` (for ``batchmean``: divided by the
    items per leading row), from the per-item losses of one chunk-sized buffer.
    ``count`` is the number of items either way.  ``out=`` and ``return_grad=`` are not accepted.
    """
    name, fn = _resolve(loss)
    kw = dict(loss_kwargs)
    for bad in ("out", "return_grad"):
        if bad in kw:
            raise ValueError(f"partial does not take {bad}= (a state holds sums only)")
    if "loss_weight" in kw:
        kw["weight"] = kw.pop("loss_weight")
    red = _mean_reduction(name, fn, kw)
    pos = (input, target) + args
    if weight is not None:
        return _weighted_state(name, fn, pos, kw, weight, red)
    sink = []
    token = V.REDUCTION_SINK.set(sink)
    try:
        fn(*pos, reduction=red, **kw)
    finally:
        V.REDUCTION_SINK.reset(token)
    if not sink:       # a loss that finishes its reduction elsewhere: per-item losses, unit weights
        return _weighted_state(name, fn, pos, kw, None, red)
    total, denom = sink[-1]
    counter = _ITEMS.get(name)
    count = counter(*pos) if counter is not None else _elementwise_items(pos)
    return LossState(name, total, 0.0, denom, count)


def _elementwise_items(pos):
    """Items of an elementwise loss: the size of its arguments' broadcast shape (torch's losses that
    broadcast a target give the broadcast shape)."""
    return int(np.prod(np.broadcast_shapes(*(np.shape(a) for a in pos)), dtype=np.int64))


def _weighted_state(name, fn, pos, kw, weight, red):
    per_item = np.asarray(fn(*pos, reduction="none", **kw))
    shape = per_item.shape
    if weight is None:
        w, rep = np.ones(1, dtype=np.float64), per_item.size
    else:
        w = V.float_array(weight, "weight", dtype=np.float64)
        if w.shape != shape[:w.ndim]:
            raise ValueError(f"weight shape {w.shape} must be the per-item loss shape {shape} of {name} "
                             f"(or a leading part of it: one weight per row)")
        negative = np.flatnonzero(w.reshape(-1) < 0)     # (a nan weight is no error: it propagates, SPEC §4)
        if negative.size:
            i = int(negative[0])
            pos = tuple(int(k) for k in np.unravel_index(i, w.shape)) if w.ndim > 1 else i
            raise ValueError(f"weight (sample weights) must be >= 0, got {float(w.reshape(-1)[i])} at "
                             f"position {pos}")
        rep = int(np.prod(shape[w.ndim:], dtype=np.int64))
    nt = resolve_num_threads(kw.get("num_threads"))
    if per_item.size == 0:
        total, wsum = 0.0, 0.0
    else:
        total, wsum = _K.weighted_sum(per_item.reshape(-1), w.reshape(-1), max(rep, 1), nt)
    if red == "batchmean" and len(shape) > 1:
        wsum /= int(np.prod(shape[1:], dtype=np.int64))
    return LossState(name, total, 0.0, wsum, per_item.size)
