"""The Python side of the elementwise loop shape, shared by the elementwise losses of ``_binary.py`` and
``_regression.py``: the one kernel module (``fastloss/_kernels/elementwise.pyx``), its ``Kind`` enum,
operand conversion, and the kernel call with its output and gradient buffers.
"""
from __future__ import annotations

import numpy as np

from . import _validate as V
from ._kernels import load

K = load("elementwise")
Kind = K.Kind


def operand(value, x, name, default=1.0):
    """A broadcastable per-element operand as a kernel operand: a float (scalar), a last-axis vector
    read in place (period = x.shape[-1]), or a full-shape array (materialised only if it must be)."""
    if value is None:
        return default
    a = V.float_array(value, name, dtype=x.dtype)
    if a.size == 1 and a.ndim <= max(x.ndim, 1):
        return float(a.reshape(()))
    if x.ndim >= 1 and a.ndim >= 1 and a.shape[-1] == x.shape[-1] and a.size == x.shape[-1] \
            and a.ndim <= x.ndim:
        return a.reshape(-1)
    return V.broadcast_weight(a, x.shape, x.dtype, name).reshape(-1)


def run(kind, x, y, weight, reduction, nt, out, return_grad, count, **config):
    """Run the kernel of ``kind`` on x, y (C-contiguous, one shape and dtype) with ``weight`` (an
    ``operand``) and the kind's keyword ``config`` (see ``elementwise.pyx``'s entry).  ``count`` is the
    divisor of an unweighted mean.  Returns ((loss_sum, denom_sum, first_bad), out array for "none" or
    None, grad or None)."""
    grad = np.empty_like(x) if return_grad else None
    o = V.output_array(out, x.shape, x.dtype) if reduction == "none" else None
    scale = 1.0 / count if (reduction in ("mean", "batchmean") and count) else 1.0
    res = K.elementwise(kind, x.reshape(-1), y.reshape(-1), weight, x.shape[-1] if x.ndim else 1,
                        None if o is None else o.reshape(-1), grad, scale, nt, **config)
    return res, o, grad


def result(value, grad):
    """The public result: the value, or (value, grad) with ``return_grad``."""
    return (value, grad) if grad is not None else value
