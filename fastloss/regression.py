"""Regression and probabilistic losses: the torch.nn.functional ones (mse, l1, huber, smooth_l1,
poisson_nll, gaussian_nll) and the SPEC §6 ones (log_cosh, quantile, mape, smape, msle), plus the VAE
Gaussian KL term.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/regression.pyx`` (one elementwise loop specialised per loss, or the KL row loop);
the arithmetic lives there.

Common to all of them: ``input`` and ``target`` have the same shape (torch only warns and broadcasts;
we raise ``ValueError``); keyword-only ``weight`` is a per-element sample weight broadcastable to
``input`` (scalars and last-axis vectors are read in place, other shapes materialised once); with a
weight, ``mean`` is sum(w * l) / sum(w) -- torch's rule for mse_loss / l1_loss -- except for
``huber_loss``, where torch divides the weighted sum by the element count and so do we.
``return_grad=True`` returns (loss, grad) with grad = d(result)/d(input) (of the sum for "none").
"""
import math
import numbers

import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads
from .classification import _elementwise_operand

_K = load("regression")
_KIND = _K.LossKind

__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "poisson_nll_loss", "gaussian_nll_loss",
           "log_cosh_loss", "quantile_loss", "mape_loss", "smape_loss", "msle_loss", "gaussian_kl_loss"]


def _no_legacy(size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")


def _position(index, shape):
    return tuple(int(i) for i in np.unravel_index(index, shape)) if len(shape) > 1 else index


def _sum_to(g, shape, dtype):
    """Sum a full-shape gradient over the axes a same-ndim operand of ``shape`` was broadcast along."""
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, dtype=np.float64).reshape(shape).astype(dtype)


def _inputs(input, target, reduction, num_threads):
    V.check_reduction(reduction)
    nt = resolve_num_threads(num_threads)
    x = V.prediction(input, "input")
    y = V.float_array(target, "target", dtype=x.dtype)
    V.check_same_shape(x, y, "input", "target")
    return x, y, nt


def _elementwise(kind, x, y, nt, reduction, weight, out, return_grad, a=0.0, b=0.0, var=1.0, var_rows=False,
                 grad_var=None, weighted_mean=True):
    """Run one elementwise kernel; returns (value, grad, first_bad)."""
    K = x.shape[-1] if x.ndim else 1
    w = _elementwise_operand(weight, x, "weight")
    weighted_mean = weighted_mean and weight is not None and reduction == "mean"
    n = x.size
    grad = np.empty_like(x) if return_grad else None
    o = V.output_array(out, x.shape, x.dtype) if reduction == "none" else None
    scale = 1.0 / n if (reduction == "mean" and n) else 1.0
    loss_sum, denom, bad = _K.elementwise(
        kind, x.reshape(-1), y.reshape(-1), w, var, var_rows, K, float(a), float(b), reduction, weighted_mean,
        None if o is None else o.reshape(-1), grad, grad_var, scale, nt)
    if reduction == "none":
        value = o
    else:
        value = V.reduced(loss_sum, denom if weighted_mean else n, reduction, x.dtype)
    return value, grad, bad


def _result(value, grad):
    return (value, grad) if grad is not None else value


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None, *, num_threads=None,
             out=None, return_grad=False):
    """Mean squared error (input - target)^2, mirroring ``torch.nn.functional.mse_loss``.

    ``weight`` (torch's optional per-element weight): mean = sum(w (x - y)^2) / sum(w), as torch.
    """
    _no_legacy(size_average, reduce)
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, _ = _elementwise(_KIND.MSE, x, y, nt, reduction, weight, out, return_grad)
    return _result(value, grad)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None, *, num_threads=None,
            out=None, return_grad=False):
    """Mean absolute error |input - target|, mirroring ``torch.nn.functional.l1_loss``.

    The gradient is sign(input - target) (0 where they are equal, as torch).  ``weight``: as mse_loss.
    """
    _no_legacy(size_average, reduce)
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, _ = _elementwise(_KIND.L1, x, y, nt, reduction, weight, out, return_grad)
    return _result(value, grad)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None, *, num_threads=None, out=None,
               return_grad=False):
    """Huber loss, mirroring ``torch.nn.functional.huber_loss``; with d = input - target::

        l = d^2 / 2             if |d| < delta
            delta (|d| - delta / 2)   otherwise

    ``delta > 0``.  ``weight``: torch multiplies the per-element loss and, for ``mean``, divides by the
    element count (not by sum(w) as its mse_loss does); we match torch.
    """
    delta = V.check_real(delta, "delta", low=0.0, low_open=True)
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, _ = _elementwise(_KIND.HUBER, x, y, nt, reduction, weight, out, return_grad, a=delta,
                                  weighted_mean=False)
    return _result(value, grad)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0, *, weight=None,
                   num_threads=None, out=None, return_grad=False):
    """Smooth L1, mirroring ``torch.nn.functional.smooth_l1_loss``; with d = input - target::

        l = d^2 / (2 beta)   if |d| < beta
            |d| - beta / 2   otherwise

    ``beta >= 0``; ``beta = 0`` is exactly l1_loss (as torch).
    """
    _no_legacy(size_average, reduce)
    beta = V.check_real(beta, "beta", low=0.0)
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, _ = _elementwise(_KIND.SMOOTH_L1, x, y, nt, reduction, weight, out, return_grad, a=beta)
    return _result(value, grad)


def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """Poisson negative log-likelihood, mirroring ``torch.nn.functional.poisson_nll_loss``::

        log_input=True:   l = exp(input) - target * input
        log_input=False:  l = input - target * log(input + eps)
        full=True adds    target * log(target) - target + log(2 pi target) / 2   where target > 1
    """
    _no_legacy(size_average, reduce)
    eps = V.check_real(eps, "eps")
    x, y, nt = _inputs(input, target, reduction, num_threads)
    kind = _KIND.POISSON_LOG if log_input else _KIND.POISSON
    value, grad, _ = _elementwise(kind, x, y, nt, reduction, weight, out, return_grad, a=eps,
                                  b=1.0 if full else 0.0)
    return _result(value, grad)


def _gaussian_var(var, x):
    """torch's var rules -> (operand, var_rows, var array or None).

    A real number is used for every element; an array of input's shape is heteroscedastic; one of shape
    input.shape[:-1] or input.shape[:-1] + (1,) holds one variance per row (read in place); any other
    shape torch accepts (same ndim, exactly one mismatched dimension, of size 1) is materialised once.
    """
    if isinstance(var, numbers.Real) and not isinstance(var, (bool, np.ndarray)):
        v = V.check_real(var, "var")
        if v < 0:
            raise ValueError(f"var has negative entry/entries: {var!r}")
        return v, False, None
    v = V.float_array(var, "var", dtype=x.dtype)
    if v.shape == x.shape:
        return v.reshape(-1), False, v
    if x.ndim >= 1 and (v.shape == x.shape[:-1] or (v.ndim == x.ndim and v.shape == x.shape[:-1] + (1,))):
        return v.reshape(-1), True, v
    if v.ndim == x.ndim and sum(b for a, b in zip(x.shape, v.shape) if a != b) == 1:
        return np.ascontiguousarray(np.broadcast_to(v, x.shape)).reshape(-1), False, v
    raise ValueError(f"var is of incorrect size: var shape {v.shape} for input shape {x.shape} (expected the "
                     f"input's shape, or it with the last dimension removed or set to 1)")


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean", *, weight=None,
                      num_threads=None, out=None, return_grad=False):
    """Gaussian negative log-likelihood, mirroring ``torch.nn.functional.gaussian_nll_loss``::

        v = max(var, eps);   l = (log v + (input - target)^2 / v) / 2  [+ log(2 pi) / 2 if full]

    ``var``: a real number, an array of input's shape (heteroscedastic), or one variance per row of the
    last axis (shape input.shape[:-1] or [..., 1]), or any shape torch accepts (same ndim, one mismatched
    dimension of size 1).  A negative variance is a ``ValueError`` naming its position (as torch).
    ``return_grad=True`` returns (loss, (grad_input, grad_var)); grad_var has var's shape and, as in
    torch, passes through the eps clamp unchanged; it is None when var is a Python number.
    """
    eps = V.check_real(eps, "eps")
    x, y, nt = _inputs(input, target, reduction, num_threads)
    op, var_rows, varr = _gaussian_var(var, x)
    gv_full = np.empty_like(x) if (return_grad and varr is not None) else None
    value, grad, bad = _elementwise(_KIND.GAUSSIAN_NLL, x, y, nt, reduction, weight, out, return_grad, a=eps,
                                    b=0.5 * math.log(2 * math.pi) if full else 0.0, var=op, var_rows=var_rows,
                                    grad_var=gv_full)
    if bad >= 0:
        raise ValueError(f"var has negative entry/entries: var = {op.reshape(-1)[bad // x.shape[-1] if var_rows else bad]}"
                         f" for the input element at position {_position(bad, x.shape)}")
    if not return_grad:
        return value
    gvar = None
    if gv_full is not None:
        if varr.shape == x.shape:
            gvar = gv_full
        elif var_rows:                                   # one variance per row: sum over the last axis
            gvar = gv_full.sum(axis=-1, dtype=np.float64).reshape(varr.shape).astype(x.dtype)
        else:
            gvar = _sum_to(gv_full, varr.shape, x.dtype)
    return value, (grad, gvar)


def log_cosh_loss(input, target, reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """log(cosh(input - target)) (SPEC §6), computed without overflow or cancellation for every d.

    From u = expm1(-2|d|): tanh|d| = -u / (2 + u); for |d| >= 1 the stable form |d| + log1p(exp(-2|d|))
    - log 2 (any finite d, 1e30 included, gives a finite loss), for |d| < 1 -log1p(-tanh(d)^2) / 2, which
    keeps full relative precision down to the smallest d (the stable form loses it there: d^2 / 2 is the
    difference of terms ~0.7).  The gradient tanh(d) comes from the same expm1."""
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, _ = _elementwise(_KIND.LOG_COSH, x, y, nt, reduction, weight, out, return_grad)
    return _result(value, grad)


def quantile_loss(input, target, q=0.5, reduction="mean", *, weight=None, num_threads=None, out=None,
                  return_grad=False):
    """Pinball loss (SPEC §6): with u = target - input, l = max(q u, (q - 1) u), 0 < q < 1.

    The gradient at u = 0 is 1/2 - q (the middle of the subgradient, what torch.maximum's autograd gives).
    """
    q = V.check_real(q, "q", low=0.0, high=1.0, low_open=True, high_open=True)
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, _ = _elementwise(_KIND.QUANTILE, x, y, nt, reduction, weight, out, return_grad, a=q)
    return _result(value, grad)


def mape_loss(input, target, reduction="mean", *, eps=None, weight=None, num_threads=None, out=None,
              return_grad=False):
    """Mean absolute percentage error (SPEC §6) as a fraction: |target - input| / |target|.

    A zero target is a ``ValueError`` naming its position, unless ``eps`` (> 0) is given: then the
    denominator is max(|target|, eps), like scikit-learn's mean_absolute_percentage_error.
    """
    e = 0.0 if eps is None else V.check_real(eps, "eps", low=0.0, low_open=True)
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, bad = _elementwise(_KIND.MAPE, x, y, nt, reduction, weight, out, return_grad, a=e)
    if bad >= 0:
        raise ValueError(f"mape_loss: target is 0 at position {_position(bad, y.shape)}; pass eps= to divide "
                         f"by max(|target|, eps)")
    return _result(value, grad)


def smape_loss(input, target, reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """Symmetric MAPE (SPEC §6): 2 |target - input| / (|target| + |input|), 0 where both are 0
    (gradient 0 there too)."""
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, _ = _elementwise(_KIND.SMAPE, x, y, nt, reduction, weight, out, return_grad)
    return _result(value, grad)


def msle_loss(input, target, reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """Mean squared log error (SPEC §6): (log1p(input) - log1p(target))^2.

    ``input`` or ``target`` <= -1 is a ``ValueError`` naming the argument and the first position.
    """
    x, y, nt = _inputs(input, target, reduction, num_threads)
    value, grad, bad = _elementwise(_KIND.MSLE, x, y, nt, reduction, weight, out, return_grad)
    if bad >= 0:
        name, arr = ("input", x) if x.reshape(-1)[bad] <= -1 else ("target", y)
        raise ValueError(f"msle_loss: {name} has value {arr.reshape(-1)[bad]} <= -1 at position "
                         f"{_position(bad, x.shape)} (log1p needs values > -1)")
    return _result(value, grad)


def gaussian_kl_loss(mu, logvar, reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """KL(N(mu, exp(logvar)) || N(0, I)), the VAE latent term::

        l_row = -1/2 sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))     (j over the last, latent axis)

    ``mu`` and ``logvar`` have the same shape (..., D); "none" gives one value per row (shape
    mu.shape[:-1]), "mean" averages over rows (sum(w l) / sum(w) with ``weight``, broadcastable to
    mu.shape[:-1]), "sum" sums them.  ``return_grad=True`` returns (loss, (grad_mu, grad_logvar)).
    """
    V.check_reduction(reduction)
    nt = resolve_num_threads(num_threads)
    m = V.prediction(mu, "mu")
    lv = V.float_array(logvar, "logvar", dtype=m.dtype)
    V.check_same_shape(m, lv, "mu", "logvar")
    if m.ndim == 0:
        raise ValueError("mu must have at least 1 dimension (the latent axis), got a 0-d array")
    batch, D = m.shape[:-1], m.shape[-1]
    rows = int(np.prod(batch, dtype=np.int64))
    w = V.broadcast_weight(weight, batch, m.dtype, "weight")
    w = 1.0 if w is None else (w if isinstance(w, float) else w.reshape(-1))
    weighted_mean = weight is not None and reduction == "mean"
    gm = np.empty_like(m) if return_grad else None
    gl = np.empty_like(m) if return_grad else None
    o = V.output_array(out, batch, m.dtype) if reduction == "none" else None
    scale = 1.0 / rows if (reduction == "mean" and rows) else 1.0
    loss_sum, denom, _ = _K.gaussian_kl(m.reshape(-1), lv.reshape(-1), w, rows, D, reduction, weighted_mean,
                                        None if o is None else o.reshape(-1), gm, gl, scale, nt)
    value = o if reduction == "none" else V.reduced(loss_sum, denom if weighted_mean else rows, reduction,
                                                    m.dtype)
    return (value, (gm, gl)) if return_grad else value
