"""The one place where a kernel's report of an invalid item becomes a Python exception.

Kernels validate what they read (a class index, a probability in [0, 1], a variance >= 0) and report the
*first* invalid item index, in item order, after the GIL is retaken -- the same index for every thread
count (``_kernels/_common.pxd``, design note e).  A wrapper describes, before it runs the kernel, what an
invalid item means for its loss (``BadLabel`` or ``BadValue``); ``raise_first_bad`` turns the kernel's
index into that exception, naming the argument, the offending value and its position.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def position(shape: Sequence[int], index: int):
    """The position of flat item ``index`` in an array of ``shape``: a tuple for 2-d and more, else the int."""
    return tuple(int(i) for i in np.unravel_index(index, shape)) if len(shape) > 1 else int(index)


@dataclass(frozen=True)
class BadLabel:
    """IndexError for a class index outside [0, n_classes) (and not ``ignore_index``).

    ``classes_of`` names the argument whose class axis gives ``n_classes``."""
    labels: Any
    n_classes: int
    ignore_index: int | None = None
    name: str = "target"
    classes_of: str = "input"

    def exception(self, index: int) -> IndexError:
        labels = np.asarray(self.labels)
        value = int(labels.reshape(-1)[index])
        return IndexError(
            f"{self.name} has class index {value} at position {position(labels.shape, index)}, outside "
            f"[0, {self.n_classes})"
            + (f" and not ignore_index={self.ignore_index}" if self.ignore_index is not None else "")
            + f" ({self.n_classes} = the number of classes of {self.classes_of})")


@dataclass(frozen=True)
class BadValue:
    """ValueError for an element outside a loss's domain.

    ``message`` is formatted with ``name`` (the operand named), ``value`` (its element) and ``position``
    (in ``shape``, by default the first operand's shape).  ``operands`` are ``(name, array, is_bad)``: the
    first whose element fails ``is_bad`` is named (``is_bad=None`` always matches), so a loss that checks
    input and target names the one that is wrong.  ``locate`` maps the kernel's item index to the index of
    the operand arrays when they are shorter (e.g. one variance per row)."""
    message: str
    operands: tuple[tuple[str, Any, Callable[[Any], bool] | None], ...]
    shape: Sequence[int] | None = None
    locate: Callable[[int], int] | None = None

    def exception(self, index: int) -> ValueError:
        at = self.locate(index) if self.locate is not None else index
        name, value = None, None
        for name, arr, is_bad in self.operands:
            value = np.asarray(arr).reshape(-1)[at]
            if is_bad is None or is_bad(value):
                break
        shape = self.shape if self.shape is not None else np.shape(self.operands[0][1])
        return ValueError(self.message.format(name=name, value=value, position=position(shape, index)))


def raise_first_bad(first_bad: int, error: BadLabel | BadValue) -> None:
    """Raise ``error``'s exception for the kernel's first invalid item, if there is one (``first_bad >= 0``)."""
    if first_bad >= 0:
        raise error.exception(int(first_bad))
