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
with ``reduction="none"`` into one chunk-sized buffer and the kernel ``_kernels/_weighted_sum.pxi`` (in the elementwise module) forms
sum(w * l) and sum(w) in one deterministic float64 pass.

Merging uses TwoSum (Knuth): the rounding error of every ``total`` addition is carried in
``compensation``, so merging is associative and order-independent up to float64 rounding of the
compensation (far below 1e-12 relative), and bitwise reproducible when states are merged in the same
order.  ``weight_sum`` and ``count`` are plain sums (exact for integer counts below 2**53).

``partial``'s usual chunk, ``LossState``'s fields and ``merge`` are compiled (``_kernels/_state.pyx``):
an evaluation loop pays them once a batch, next to the kernel.  This module holds the rest.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from . import _validate as V
from ._kernels import _state, load
from ._losses import ITEM_RULES, LOSSES
from ._threads import resolve_num_threads
from ._typing import ArrayLike

_K = load("elementwise")   # weighted_sum (_kernels/_weighted_sum.pxi)

__all__ = ["LossState", "partial"]

_FIELDS = ("loss", "total", "compensation", "weight_sum", "count")


class LossState(_state.StateFields):
    """The mergeable reduction state of one loss over some data.

    A state holds what a reduced loss is made of, so that chunks of data (files, record batches,
    Dask partitions, workers) can be scored separately and combined: the float64 sum of the
    (weighted) per-item losses, carried with a compensation term, the sum of the mean's
    denominators and the item count.  States are immutable values: ``a.merge(b)`` and ``a + b``
    return a new state, and ``sum(states)`` works.  They pickle, and ``to_dict`` / ``from_dict``
    give a JSON-friendly form.

    Merging uses TwoSum (Knuth): the rounding error of every addition of ``total`` is carried in
    ``compensation``, so merging is associative and order-independent up to float64 rounding of
    the compensation (far below 1e-12 relative), and bitwise reproducible when states are merged
    in the same order.  ``weight_sum`` and ``count`` are plain sums (exact for integer counts below
    :math:`2^{53}`).

    Parameters
    ----------
    loss : str
        The loss's public name, e.g. ``"cross_entropy"``; only states of the same loss merge.
    total : float, optional
        Sum of the (weighted) per-item losses; default 0.
    compensation : float, optional
        The rounding error carried by merges (``total + compensation`` is the sum); default 0.
    weight_sum : float, optional
        Sum of the mean's denominators: the sample weights, or without them the loss's own
        denominator (the item count, or e.g. the summed class weights :math:`\\sum w_{y_i}` of a
        class-weighted cross-entropy); default 0.
    count : int, optional
        The number of per-item losses (the size of the loss's ``reduction="none"`` output);
        default 0.

    Raises
    ------
    TypeError
        A ``loss`` that is not a str, or non-real sums.
    ValueError
        A negative or non-integer ``count``.

    See Also
    --------
    partial : the state of a loss over one chunk.
    fastloss.dask.partial : the same over Dask collections.

    Notes
    -----
    The constructor arguments are also the state's read-only attributes.

    Examples
    --------
    >>> import numpy as np
    >>> import fastloss as fl
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.standard_normal((1000, 5)), rng.integers(0, 5, 1000)
    >>> states = [fl.partial("cross_entropy", x[i:i + 250], y[i:i + 250]) for i in range(0, 1000, 250)]
    >>> total = fl.LossState.merge_all(states)
    >>> total.loss, total.count, total.weight_sum
    ('cross_entropy', 1000, 1000.0)
    >>> ref = np.mean(np.log(np.exp(x).sum(axis=1)) - x[np.arange(1000), y])
    >>> bool(np.isclose(total.finalize("mean"), ref, rtol=1e-12, atol=0))
    True
    >>> fl.LossState.from_dict(total.to_dict()) == total
    True
    """
    __slots__ = ()
    loss: str
    total: float
    compensation: float
    weight_sum: float
    count: int

    def __init__(self, loss: str, total: float = 0.0, compensation: float = 0.0, weight_sum: float = 0.0,
                 count: int = 0) -> None:
        if not isinstance(loss, str):
            raise TypeError(f"loss must be a loss name (str), got {type(loss).__name__}")
        for name, v in (("total", total), ("compensation", compensation), ("weight_sum", weight_sum)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name} must be a real number, got {v!r}")
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 0:
            raise ValueError(f"count must be a non-negative integer, got {count!r}")
        _state.init_state(self, loss, float(total), float(compensation), float(weight_sum), int(count))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("LossState is immutable; merge() returns a new state")

    @classmethod
    def empty(cls, loss: str | Callable[..., Any]) -> LossState:
        """The state of no data: the identity of :meth:`merge`.

        Parameters
        ----------
        loss : str or callable
            A public loss name or the fastloss loss function.

        Returns
        -------
        LossState
            A state with zero sums and count.
        """
        return cls(_resolve(loss)[0])

    merge = _state.merge    # (in C: once per chunk; its docstring is there, _kernels/_state.pyx)
    __add__ = merge

    def __radd__(self, other: object) -> LossState:
        if isinstance(other, numbers.Number) and other == 0:     # sum(states) starts from 0
            return self
        return NotImplemented

    @classmethod
    def merge_all(cls, states: Iterable[LossState],
                  loss: str | Callable[..., Any] | None = None) -> LossState:
        """Merge an iterable of states, left to right.

        Parameters
        ----------
        states : iterable of LossState
            The states to merge, all of one loss.
        loss : str, optional
            The loss of an empty iterable: then its empty state is returned.  Without it, an empty
            iterable is a ``ValueError``.

        Returns
        -------
        LossState
            The merged state.
        """
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

    def finalize(self, reduction: str = "mean") -> float:
        """The reduced loss as a Python float.

        Parameters
        ----------
        reduction : {"mean", "sum"}, optional
            ``"sum"``: ``total + compensation``; ``"mean"`` (default): that divided by
            ``weight_sum`` (nan when both are 0: the mean over nothing).

        Returns
        -------
        float
            The loss; for ``"mean"`` equal to the loss's one-shot mean over all the merged data
            within float64 rounding.
        """
        V.check_reduction(reduction, ("mean", "sum"))
        s = self.total + self.compensation if math.isfinite(self.total) else self.total
        if reduction == "sum":
            return s
        if self.weight_sum == 0:
            return math.nan if s == 0 or math.isnan(s) else math.copysign(math.inf, s)
        return s / self.weight_sum

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (a str, floats and an int: JSON-friendly) that :meth:`from_dict` reads back.

        Returns
        -------
        dict
            Keys ``loss``, ``total``, ``compensation``, ``weight_sum`` and ``count``.
        """
        return {f: getattr(self, f) for f in _FIELDS}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LossState:
        """The state a :meth:`to_dict` dict describes.

        Parameters
        ----------
        d : dict
            Exactly the keys ``loss``, ``total``, ``compensation``, ``weight_sum`` and ``count``.

        Returns
        -------
        LossState

        Raises
        ------
        ValueError
            Missing or unknown keys.
        """
        if not isinstance(d, dict):
            raise TypeError(f"d must be a dict (as to_dict() returns), got {type(d).__name__}")
        missing = [f for f in _FIELDS if f not in d]
        extra = [k for k in d if k not in _FIELDS]
        if missing or extra:
            raise ValueError(f"LossState dict: missing keys {missing}, unknown keys {extra}")
        return cls(**{f: d[f] for f in _FIELDS})

    def __reduce__(self) -> tuple[type[LossState], tuple[Any, ...]]:
        return (LossState, tuple(getattr(self, f) for f in _FIELDS))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LossState):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in _FIELDS)

    __hash__ = None  # type: ignore[assignment]  # unhashable: states compare by value

    def __repr__(self) -> str:
        return ("LossState(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS) + ")")


# ------------------------------------------------------------------------------------ partial
def _resolve(loss):
    """(public name, LossInfo) of a loss given by name or as the fastloss function itself."""
    if type(loss) is str:       # the usual call, once per chunk: one dict lookup
        info = LOSSES.get(loss)
        if info is not None:
            return loss, info
    import fastloss     # noqa: F401  (LOSSES is filled as the family modules import)
    if isinstance(loss, str):
        name = loss
    elif callable(loss):
        name = getattr(loss, "__name__", "")
        if getattr(fastloss, name, None) is not loss:
            raise ValueError(f"loss {loss!r} is not a public fastloss loss function")
    else:
        raise TypeError(f"loss must be a loss name or a fastloss loss function, got {type(loss).__name__}")
    info = LOSSES.get(name)
    if info is None:
        raise ValueError(f"unknown loss {name!r}: expected a fastloss loss with a reduction, e.g. "
                         f"'cross_entropy', 'mse_loss'")
    return name, info


def _mean_reduction(info, kwargs):
    """The reduction partial runs: the caller's ``reduction`` ("mean" / "batchmean"), else the loss's
    default when it is one of those (distillation_loss: batchmean), else "mean"."""
    red = kwargs.pop("reduction", None)
    if red is None:
        default = info.default_reduction      # (one of info.reductions, which always hold "mean")
        return default if default == "mean" or default == "batchmean" else "mean"
    if isinstance(red, str) and (red == "mean" or (red == "batchmean" and red in info.reductions)):
        return red
    allowed = tuple(r for r in ("mean", "batchmean") if r in info.reductions)
    raise ValueError(f"reduction must be one of {allowed} for a state (finalize() chooses mean or sum), "
                     f"got {V.short_repr(red)}")


# partial's plan for a loss, by public name: (name, LossInfo, the function, its default mean reduction, its
# item-count rule).  partial runs once per chunk, and its Python is what an evaluation loop pays beside the
# kernel (issue 16: partial + merge at most 1.05x the plain calls): one dict lookup gives all of it.
_PLANS: dict[str, tuple[str, Any, Callable[..., Any], str, Callable[..., int]]] = {}


def _plan(loss):
    """partial's plan (see _PLANS) for a loss given by name or as the fastloss function itself."""
    name, info = _resolve(loss)
    plan = _PLANS.get(name)
    if plan is None:
        plan = _PLANS[name] = (name, info, info.function, _mean_reduction(info, {}),
                               ITEM_RULES[info.items])
    return plan


# Loss keywords partial handles itself: out / return_grad / grad_out refused, loss_weight renamed to the
# loss's weight=, reduction checked.  Any other keyword passes through to the loss unchanged.
_OWN_KEYWORDS = frozenset(("out", "return_grad", "grad_out", "loss_weight", "reduction"))


def _own_keywords(info, kw):
    """The reduction partial runs, after acting on its own keywords in ``kw`` (see _OWN_KEYWORDS)."""
    bad = next((b for b in ("out", "return_grad", "grad_out") if b in kw), None)
    if bad is not None:
        raise ValueError(f"partial does not take {bad}= (a state holds sums only)")
    if "loss_weight" in kw:
        kw["weight"] = kw.pop("loss_weight")
    return _mean_reduction(info, kw)


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


# fl.partial's usual chunk and LossState.merge run in C (_kernels/_state.pyx: an evaluation loop pays them
# once a batch); they call back into this module's Python for the rest.
_state.connect(LossState, _PLANS, _plan, _own_keywords, _OWN_KEYWORDS, _weighted_state, V.REDUCTION_SINK)
partial = _state.partial
partial.__module__ = __name__       # (documented and doctested as fastloss.state.partial / fastloss.partial)
