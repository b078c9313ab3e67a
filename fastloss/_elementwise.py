"""The Python side of the elementwise loop shape, shared by the elementwise losses of ``_binary.py`` and
``_regression.py``: the one kernel module (``fastloss/_kernels/elementwise.pyx``), its ``Kind`` enum,
operand conversion and the output and gradient buffers.  A wrapper then calls
``K.elementwise(Kind.X, x, y, weight, out, grad, scale, num_threads, <the kind's keywords>)``.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import _validate as V
from ._kernels import load

K = load("elementwise")
# The kernel's ``Kind`` enum as plain ints (``Kind.HUBER``): an attribute of the enum class itself costs
# ~0.2 us on Python 3.11 (its member lookup), a few percent of a small call.
Kind = SimpleNamespace(**{k.name: int(k) for k in K.Kind})


def operand(value, x, name, default=1.0):
    """A broadcastable per-element operand as a kernel operand: a float (scalar), a last-axis vector
    read in place (period = x.shape[-1]), or a full-shape array (materialised only if it must be)."""
    if value is None:
        return default
    if type(value) is np.ndarray and value.size == 1 and value.dtype is x.dtype and \
            (value.ndim <= 1 or value.ndim <= x.ndim):
        return value.item()     # (the usual pos_weight=np.array([w]): what the lines below return, ~0.3 us sooner)
    a = V.float_array(value, name, dtype=x.dtype)
    if a.size == 1 and (a.ndim <= 1 or a.ndim <= x.ndim):
        return a.item()     # (a Python float of the element, as float(a.reshape(())), ~0.3 us sooner)
    if x.ndim >= 1 and a.ndim >= 1 and a.shape[-1] == x.shape[-1] and a.size == x.shape[-1] \
            and a.ndim <= x.ndim:
        return a.reshape(-1)
    return V.broadcast_weight(a, x.shape, x.dtype, name).reshape(-1)


def buffers(x, reduction, out, return_grad, count, grad_out=None, inputs=()):
    """The kernel's output buffers for prediction ``x``: (out array for "none" or None, grad or None, the
    gradient's scale d(result)/d(element loss) for an unweighted reduction, ``count`` its mean's
    divisor).  The kernel takes them, and x, y, in their own shape.  ``grad_out``: the user's gradient
    buffer, checked against ``x``, ``inputs`` (the other arrays the call reads) and the out array."""
    if reduction != "none" and not return_grad:     # a reduced value alone: the usual call
        return None, None, 1.0 / count if (reduction in ("mean", "batchmean") and count) else 1.0
    o = V.output_array(out, x.shape, x.dtype) if reduction == "none" else None
    if not return_grad:
        grad = None
    elif grad_out is None:      # (a fresh gradient: no tuple of inputs to build for the overlap check)
        grad = np.empty(x.shape, dtype=x.dtype)
    else:
        grad = V.grad_buffer(grad_out, x.shape, x.dtype, (x, o, *inputs))
    scale = 1.0 / count if (reduction in ("mean", "batchmean") and count) else 1.0
    return o, grad, scale


def reused(out, grad_out):
    """The kernel's ``reused`` flags: out (1) and grad (2) are the caller's buffers (out=, grad_out= as
    ``buffers`` received them), not fresh arrays; a large one is written with streaming stores."""
    return (out is not None) + 2 * (grad_out is not None)
