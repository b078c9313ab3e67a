"""The one runtime description of every public loss: :class:`LossInfo`, kept in :data:`LOSSES`.

Each loss declares its description beside its public function, with the :func:`loss_info` decorator
on the implementation (after its ``@overload`` stubs)::

    @loss_info(family="regression", grad=("input", "var"))
    def gaussian_nll_loss(input, target, var, ...):

The decorator records a :class:`LossInfo` under the function's name and returns the function itself,
unchanged (same object: no wrapper, so signature, docstring, typing overloads and call speed are
untouched).  Everything that needs to know about losses reads :data:`LOSSES`: :func:`fastloss.partial`
(item count, mean reductions), scoring and ``fastloss score`` (the loss names), :mod:`fastloss.dask`
(in-batch losses refused) and ``fastloss bench``.  ``tests/test_losses_table.py`` checks every entry
against what its function does.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

__all__ = ["ITEM_RULES", "LOSSES", "LossInfo", "loss_info"]

F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------------------- item counts
# How many per-item losses a call has (the size of its reduction="none" output), from its positional
# arguments: fl.partial's ``count``, paid once per chunk.  Kept cheap: math.prod of the shape's Python
# ints (exact, and ~10x cheaper than np.prod), and an ndarray's own shape read in place (``_ND``), where
# np.shape's dispatch costs ~0.3 us and each Python call layer ~0.3 us more on a 2 GHz core.
_ND = np.ndarray


def _shape(a: Any) -> tuple[int, ...]:
    """np.shape(a), an ndarray's own shape read directly."""
    return a.shape if type(a) is _ND else np.shape(a)


def _elementwise_items(*pos: Any) -> int:
    """An item per element of the arguments' broadcast shape (torch's losses that broadcast a target
    give the broadcast shape)."""
    first = _shape(pos[0])
    for a in pos[1:]:
        if _shape(a) != first:
            return math.prod(np.broadcast_shapes(*(_shape(b) for b in pos)))
    return math.prod(first)     # (the usual call, equal shapes: np.broadcast_shapes costs ~4 us more)


def _row_items(x: Any, *rest: Any) -> int:
    """(..., D) rows: an item per row, prod(leading shape)."""
    s = x.shape if type(x) is _ND else np.shape(x)
    return s[0] if len(s) == 2 else math.prod(s[:-1])


def _pair_row_items(z1: Any, *rest: Any) -> int:
    """Two views of (N, D) rows, each row an anchor: 2 N (nt_xent_loss)."""
    return 2 * _row_items(z1)


def _class_items(x: Any, *rest: Any) -> int:
    """(N, C, d1, ...) class scores: an item per (sample, position), N * d1 * ...; unbatched (C,): 1."""
    s = x.shape if type(x) is _ND else np.shape(x)
    if len(s) == 2:
        return s[0]
    return 1 if len(s) < 2 else s[0] * math.prod(s[2:])


def _sample_class_items(x: Any, *rest: Any) -> int:
    """(N, C, *spatial) overlap losses: an item per (sample, class) pair, N * C."""
    return math.prod(_shape(x)[:2])


def _box_items(b1: Any, b2: Any, *rest: Any) -> int:
    """(..., 4) boxes: an item per box pair of the broadcast leading shape."""
    s1, s2 = _shape(b1)[:-1], _shape(b2)[:-1]
    return math.prod(s1 if s1 == s2 else np.broadcast_shapes(s1, s2))


ITEM_RULES: dict[str, Callable[..., int]] = {
    "elementwise": _elementwise_items,
    "rows": _row_items,
    "pair_rows": _pair_row_items,
    "class": _class_items,
    "sample_class": _sample_class_items,
    "boxes": _box_items,
}

# ------------------------------------------------------------------------------- the description
@dataclass(frozen=True)
class LossInfo:
    """What the library needs to know about one public loss, besides calling it.

    name : the public name, ``fastloss.<name>`` (the function's ``__name__``).
    family : the kernel family (``"classification"``, ``"regression"``, ``"binary"``, ``"boxes"``,
        ``"metric"``, ``"segmentation"``).
    grad_args, grad_argnums : the positional arguments ``return_grad=True`` returns gradients for, by
        name and by position, in order (one: a single array; several: a tuple of arrays).
    items : the item-count rule, a key of :data:`ITEM_RULES` (see :meth:`count_items`).
    in_batch : the loss compares the items of a batch with each other (in-batch mining or
        negatives): its value depends on how the data is batched.  Scoring, ``fastloss score`` and
        Dask refuse it; ``fl.partial`` accepts it, but merged chunk states give the mean of the
        per-chunk losses, not the one-shot loss.
    reductions : the ``reduction`` values the function accepts.
    default_reduction : the function's default ``reduction``.
    function : the public function itself.
    """
    name: str
    family: str
    grad_args: tuple[str, ...]
    grad_argnums: tuple[int, ...]
    items: str
    in_batch: bool
    reductions: tuple[str, ...]
    default_reduction: str
    function: Callable[..., Any] = field(repr=False, compare=False)

    def count_items(self, *pos: Any) -> int:
        """The number of per-item losses of a call with positional arguments ``pos`` (the size of
        its ``reduction="none"`` output)."""
        return ITEM_RULES[self.items](*pos)


LOSSES: dict[str, LossInfo] = {}


def loss_info(*, family: str, grad: tuple[str, ...] = ("input",), items: str = "elementwise",
              in_batch: bool = False, batchmean: bool = False) -> Callable[[F], F]:
    """Decorator recording a public loss's :class:`LossInfo` in :data:`LOSSES`; returns the function
    itself.

    ``grad`` names the differentiated positional arguments, ``items`` the item-count rule,
    ``in_batch`` marks in-batch losses, ``batchmean`` adds ``"batchmean"`` to the reductions
    ``"none"``, ``"mean"``, ``"sum"``.  The name and the default reduction come from the function.
    """
    if items not in ITEM_RULES:
        raise ValueError(f"unknown item rule {items!r}; known: {', '.join(ITEM_RULES)}")
    reductions = ("none", "mean", "sum") + (("batchmean",) if batchmean else ())

    def record(fn: F) -> F:
        name = fn.__name__
        params = inspect.signature(fn).parameters
        positional = [p for p, prm in params.items()
                      if prm.kind in (prm.POSITIONAL_ONLY, prm.POSITIONAL_OR_KEYWORD)]
        unknown = [g for g in grad if g not in positional]
        if unknown:
            raise ValueError(f"{name}: grad names {unknown} that are not positional parameters")
        default = params["reduction"].default if "reduction" in params else None
        if default not in reductions:
            raise ValueError(f"{name}: default reduction {default!r} is not one of {reductions}")
        if name in LOSSES:
            raise ValueError(f"loss {name!r} described twice")
        LOSSES[name] = LossInfo(name=name, family=family, grad_args=tuple(grad),
                                grad_argnums=tuple(positional.index(g) for g in grad), items=items,
                                in_batch=in_batch, reductions=reductions, default_reduction=default,
                                function=fn)
        return fn

    return record
