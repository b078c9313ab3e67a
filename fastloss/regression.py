"""Regression and probabilistic losses: the torch.nn.functional ones (mse, l1, huber, smooth_l1,
poisson_nll, gaussian_nll) and the SPEC §6 ones (log_cosh, quantile, mape, smape, msle), plus the VAE
Gaussian KL term.

Each function validates and converts its arguments, then calls one kernel from
``fastloss/_kernels/regression.pyx`` (one elementwise loop specialised per loss, or the KL row loop);
the arithmetic lives there.

Shapes: the torch losses broadcast ``target`` against ``input`` as torch does -- mse_loss, l1_loss,
huber_loss and smooth_l1_loss with torch's UserWarning ("Using a target size ... that is different to
the input size"), poisson_nll_loss and gaussian_nll_loss silently -- and return the broadcast shape
(an operand of another shape is materialised once; the gradient is summed back to ``input``'s shape).
The SPEC §6 losses (log_cosh, quantile, mape, smape, msle) take equal shapes (else ``ValueError``).
Keyword-only ``weight`` is a per-element sample weight broadcastable to ``input`` (scalars and
last-axis vectors are read in place, other shapes materialised once); with a weight, ``mean`` is
sum(w * l) / sum(w) -- torch's rule for mse_loss / l1_loss -- except for ``huber_loss``, where torch
divides the weighted sum by the element count and so do we.  (With a broadcast target torch wants the
weight of ``input``'s shape and sums it unbroadcast for that mean; so do we.)
``return_grad=True`` returns (loss, grad) with grad = d(result)/d(input) (of the sum for "none").
"""
import math
import numbers
import warnings

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


# torch broadcasts target against input in these losses; the first four warn that it does
_BROADCAST_WARN = ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss")
_BROADCAST_SILENT = ("poisson_nll_loss", "gaussian_nll_loss")


def _inputs(input, target, reduction, num_threads, out, return_grad, loss=None, weight=None):
    """The converted prediction and target -- broadcast to one shape where ``loss``'s reference does --
    as ``args = (x, y, num_threads, input's own shape, repeat)``; ``repeat``: how many broadcast elements
    each input element stands for (torch's weighted mean sums the weights of input's shape)."""
    V.check_reduction(reduction, out=out, return_grad=return_grad)
    nt = resolve_num_threads(num_threads)
    x = V.prediction(input, "input")
    y = V.float_array(target, "target", dtype=x.dtype)
    shape, repeat = x.shape, 1
    if x.shape != y.shape:
        if loss not in _BROADCAST_WARN and loss not in _BROADCAST_SILENT:
            V.check_same_shape(x, y, "input", "target")
        if loss in _BROADCAST_WARN:
            warnings.warn(f"Using a target size ({y.shape}) that is different to the input size "
                          f"({x.shape}). This will likely lead to incorrect results due to broadcasting. "
                          "Please ensure they have the same size.", UserWarning, stacklevel=3)
        (x, y), full = V.broadcast_together([x, y], ["input", "target"])
        if weight is not None and np.shape(weight) != shape:
            raise ValueError(f"weight shape {np.shape(weight)} must be input's shape {shape} when target "
                             f"is broadcast against it (torch's rule)")
        repeat = math.prod(full) // math.prod(shape) if math.prod(shape) else 1
    return x, y, nt, shape, repeat


def _elementwise(kind, args, reduction, weight, out, return_grad, a=0.0, b=0.0, var=1.0, var_rows=False,
                 grad_var=None, weighted_mean=True):
    """Run one elementwise kernel on ``_inputs``'s ``args``: (value, grad of input's shape, first_bad)."""
    x, y, nt, shape, repeat = args
    K = x.shape[-1] if x.ndim else 1
    if weight is not None and repeat != 1:     # (input's shape: _inputs checked it) broadcast like input
        weight = np.broadcast_to(V.float_array(weight, "weight", dtype=x.dtype), x.shape)
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
    else:   # torch's weighted mean divides by the weights of input's shape: each stands for `repeat` items
        value = V.reduced(loss_sum, denom / repeat if weighted_mean else n, reduction, x.dtype)
    if grad is not None and x.shape != shape:
        grad = V.unbroadcast(grad * repeat if weighted_mean else grad, shape)
    return value, grad, bad


def _result(value, grad):
    return (value, grad) if grad is not None else value


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None, *, num_threads=None,
             out=None, return_grad=False):
    """Mean squared error (input - target)^2, mirroring ``torch.nn.functional.mse_loss``.

    ``weight`` (torch's optional per-element weight): mean = sum(w (x - y)^2) / sum(w), as torch.
    """
    _no_legacy(size_average, reduce)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, "mse_loss", weight)
    value, grad, _ = _elementwise(_KIND.MSE, args, reduction, weight, out, return_grad)
    return _result(value, grad)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None, *, num_threads=None,
            out=None, return_grad=False):
    """Mean absolute error |input - target|, mirroring ``torch.nn.functional.l1_loss``.

    The gradient is sign(input - target) (0 where they are equal, as torch).  ``weight``: as mse_loss.
    """
    _no_legacy(size_average, reduce)
    args = _inputs(input, target, reduction, num_threads, out, return_grad, "l1_loss", weight)
    value, grad, _ = _elementwise(_KIND.L1, args, reduction, weight, out, return_grad)
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
    args = _inputs(input, target, reduction, num_threads, out, return_grad, "huber_loss", weight)
    value, grad, _ = _elementwise(_KIND.HUBER, args, reduction, weight, out, return_grad, a=delta,
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
    args = _inputs(input, target, reduction, num_threads, out, return_grad, "smooth_l1_loss", weight)
    value, grad, _ = _elementwise(_KIND.SMOOTH_L1, args, reduction, weight, out, return_grad, a=beta)
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
    args = _inputs(input, target, reduction, num_threads, out, return_grad, "poisson_nll_loss", weight)
    kind = _KIND.POISSON_LOG if V.check_bool(log_input, "log_input") else _KIND.POISSON
    value, grad, _ = _elementwise(kind, args, reduction, weight, out, return_grad, a=eps,
                                  b=1.0 if V.check_bool(full, "full") else 0.0)
    return _result(value, grad)


def _gaussian_var(var, shape, dtype):
    """torch's var rules for an input of ``shape`` -> (operand, var_rows, var array or None).

    A real number is used for every element; an array of input's shape is heteroscedastic; one of shape
    input.shape[:-1] or input.shape[:-1] + (1,) holds one variance per row (read in place); any other
    shape torch accepts (same ndim, exactly one mismatched dimension, of size 1) is materialised once.
    """
    if isinstance(var, numbers.Real) and not isinstance(var, (bool, np.ndarray)):
        v = V.check_real(var, "var")
        if v < 0:
            raise ValueError(f"var has negative entry/entries: {var!r}")
        return v, False, None
    v = V.float_array(var, "var", dtype=dtype)
    ndim = len(shape)
    if v.shape == shape:
        return v.reshape(-1), False, v
    if ndim >= 1 and (v.shape == shape[:-1] or (v.ndim == ndim and v.shape == shape[:-1] + (1,))):
        return v.reshape(-1), True, v
    if v.ndim == ndim and sum(b for a, b in zip(shape, v.shape) if a != b) == 1:
        return np.ascontiguousarray(np.broadcast_to(v, shape)).reshape(-1), False, v
    raise ValueError(f"var is of incorrect size: var shape {v.shape} for input shape {shape} (expected the "
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
    args = _inputs(input, target, reduction, num_threads, out, return_grad, "gaussian_nll_loss", weight)
    x, shape = args[0], args[3]
    # var's shape rules refer to input's own shape (torch checks var against input before broadcasting)
    op, var_rows, varr = _gaussian_var(var, shape, x.dtype)
    var_shape = None if varr is None else (shape[:-1] + (1,) if var_rows else varr.shape)
    if varr is not None and x.shape != shape:      # a broadcast target: var follows input's broadcast
        op = np.ascontiguousarray(np.broadcast_to(varr.reshape(var_shape), x.shape)).reshape(-1)
        var_rows = False
    gv_full = np.empty_like(x) if (return_grad and varr is not None) else None
    value, grad, bad = _elementwise(_KIND.GAUSSIAN_NLL, args, reduction, weight, out, return_grad, a=eps,
                                    b=0.5 * math.log(2 * math.pi) if V.check_bool(full, "full") else 0.0,
                                    var=op, var_rows=var_rows, grad_var=gv_full)
    if bad >= 0:
        raise ValueError(f"var has negative entry/entries: var = "
                         f"{op.reshape(-1)[bad // x.shape[-1] if var_rows else bad]} for the input element "
                         f"at position {_position(bad, x.shape)}")
    if not return_grad:
        return value
    # grad_var: of var's shape, summed over the elements each variance served (grad_var passes the clamp)
    gvar = None if gv_full is None else V.unbroadcast(gv_full, var_shape).reshape(varr.shape)
    return value, (grad, gvar)


def log_cosh_loss(input, target, reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """log(cosh(input - target)) (SPEC §6), in the stable form |d| + log1p(exp(-2|d|)) - log 2, so any
    finite d (1e30 included) gives a finite loss; the gradient tanh(d) is computed from the same exp."""
    args = _inputs(input, target, reduction, num_threads, out, return_grad)
    value, grad, _ = _elementwise(_KIND.LOG_COSH, args, reduction, weight, out, return_grad)
    return _result(value, grad)


def quantile_loss(input, target, q=0.5, reduction="mean", *, weight=None, num_threads=None, out=None,
                  return_grad=False):
    """Pinball loss (SPEC §6): with u = target - input, l = max(q u, (q - 1) u), 0 < q < 1.

    The gradient at u = 0 is 1/2 - q (the middle of the subgradient, what torch.maximum's autograd gives).
    """
    q = V.check_real(q, "q", low=0.0, high=1.0, low_open=True, high_open=True)
    args = _inputs(input, target, reduction, num_threads, out, return_grad)
    value, grad, _ = _elementwise(_KIND.QUANTILE, args, reduction, weight, out, return_grad, a=q)
    return _result(value, grad)


def mape_loss(input, target, reduction="mean", *, eps=None, weight=None, num_threads=None, out=None,
              return_grad=False):
    """Mean absolute percentage error (SPEC §6) as a fraction: |target - input| / |target|.

    A zero target is a ``ValueError`` naming its position, unless ``eps`` (> 0) is given: then the
    denominator is max(|target|, eps), like scikit-learn's mean_absolute_percentage_error.
    """
    e = 0.0 if eps is None else V.check_real(eps, "eps", low=0.0, low_open=True)
    args = _inputs(input, target, reduction, num_threads, out, return_grad)
    value, grad, bad = _elementwise(_KIND.MAPE, args, reduction, weight, out, return_grad, a=e)
    if bad >= 0:
        raise ValueError(f"mape_loss: target is 0 at position {_position(bad, args[1].shape)}; pass eps= to "
                         f"divide by max(|target|, eps)")
    return _result(value, grad)


def smape_loss(input, target, reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """Symmetric MAPE (SPEC §6): 2 |target - input| / (|target| + |input|), 0 where both are 0
    (gradient 0 there too)."""
    args = _inputs(input, target, reduction, num_threads, out, return_grad)
    value, grad, _ = _elementwise(_KIND.SMAPE, args, reduction, weight, out, return_grad)
    return _result(value, grad)


def msle_loss(input, target, reduction="mean", *, weight=None, num_threads=None, out=None, return_grad=False):
    """Mean squared log error (SPEC §6): (log1p(input) - log1p(target))^2.

    ``input`` or ``target`` <= -1 is a ``ValueError`` naming the argument and the first position.
    """
    args = _inputs(input, target, reduction, num_threads, out, return_grad)
    value, grad, bad = _elementwise(_KIND.MSLE, args, reduction, weight, out, return_grad)
    if bad >= 0:
        x, y = args[:2]
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
    V.check_reduction(reduction, out=out, return_grad=return_grad)
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
