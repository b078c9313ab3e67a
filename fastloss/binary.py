"""Elementwise binary / probabilistic losses: binary cross-entropy on probabilities, sigmoid focal loss,
binary hinge loss and pointwise KL divergence.

Each function validates and converts its arguments, then calls the one entry of
``fastloss/_kernels/binary.pyx`` (``elementwise``) with its loss kind; the arithmetic lives there.
"""
import numpy as np

from . import _validate as V
from ._kernels import load
from ._threads import resolve_num_threads
from .classification import _elementwise_operand, _finish

_K = load("binary")

__all__ = ["binary_cross_entropy", "sigmoid_focal_loss", "hinge_loss", "kl_div"]


def _reject_legacy(size_average, reduce):
    if size_average is not None or reduce is not None:
        raise ValueError("size_average and reduce are deprecated in torch; use reduction=")


def _pair(input, target, input_name="input", target_name="target"):
    """Prediction and target as C-contiguous arrays of the prediction's float dtype and the same shape."""
    x = V.prediction(input, input_name)
    y = V.float_array(target, target_name, dtype=x.dtype)
    V.check_same_shape(x, y, input_name, target_name)
    return x, y


def _position(shape, index):
    return tuple(int(i) for i in np.unravel_index(index, shape)) if len(shape) > 1 else index


def _run(kind, x, y, reduction, nt, out, return_grad, weight=1.0, params=(0.0, 0.0, 0.0), count=None):
    """Run the kernel; return (kernel_result, out_array, grad).  ``count`` is the mean's divisor
    (default: the number of elements)."""
    n = x.size
    count = n if count is None else count
    grad = np.empty_like(x) if return_grad else None
    o = V.output_array(out, x.shape, x.dtype) if reduction == "none" else None
    scale = 1.0 / count if (reduction in ("mean", "batchmean") and count) else 1.0
    res = _K.elementwise(kind, x.reshape(-1), y.reshape(-1), weight, x.shape[-1] if x.ndim else 1,
                         *params, None if o is None else o.reshape(-1), grad, scale, nt)
    return res, o, grad, count


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean", *,
                         num_threads=None, out=None, return_grad=False):
    """Binary cross-entropy between probabilities ``input`` and targets, mirroring
    ``torch.nn.functional.binary_cross_entropy``::

        loss = -w * (y * max(log(p), -100) + (1 - y) * max(log(1 - p), -100))

    The logs are clamped at -100 as torch does, so p exactly 0 or 1 gives a finite loss (at most 100).
    ``input`` and ``target`` must have the same shape and lie in [0, 1]; an element outside (nan
    included) is a ValueError naming the argument, its first position and value (torch raises
    RuntimeError there).  ``weight`` broadcasts to ``input``'s shape (scalars and last-axis vectors are
    read in place).  ``mean`` divides by the number of elements (nan for empty input).
    ``return_grad=True`` returns what torch's autograd gives: w * (p - y) / max((1 - p) p, 1e-12)
    (times 1/n for ``mean``) -- torch's formula, so it is +-1e12 * w at p = 0 or 1 with y != p.
    """
    _reject_legacy(size_average, reduce)
    V.check_reduction(reduction)
    nt = resolve_num_threads(num_threads)
    x, y = _pair(input, target)
    w = _elementwise_operand(weight, x, "weight")
    res, o, grad, count = _run("bce", x, y, reduction, nt, out, return_grad, weight=w)
    bad = res[2]
    if bad >= 0:
        xv, yv = x.reshape(-1)[bad], y.reshape(-1)[bad]
        name, v = ("input", xv) if not (0 <= xv <= 1) else ("target", yv)
        raise ValueError(f"binary_cross_entropy: all elements of {name} should be between 0 and 1; got "
                         f"{v!r} at position {_position(x.shape, bad)}")
    return _finish(res, reduction, x.dtype, o, grad, count=count)


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none", *, num_threads=None, out=None,
                       return_grad=False):
    """Sigmoid focal loss on logits, mirroring ``torchvision.ops.sigmoid_focal_loss`` (default
    ``reduction="none"``, as there)::

        p = sigmoid(x),  ce = BCE-with-logits(x, t),  p_t = p t + (1 - p)(1 - t)
        loss = alpha_t * ce * (1 - p_t) ** gamma,  alpha_t = alpha t + (1 - alpha)(1 - t)

    ``alpha < 0`` disables the alpha weighting (alpha_t = 1); ``gamma = 0`` gives plain BCE-with-logits
    (0 ** 0 = 1 as in torch.pow).  Computed stably from the logits: p and 1 - p both come from
    exp(-|x|), and 1 - p_t is formed as p (1 - t) + (1 - p) t (the gradient's p - t as
    p (1 - t) - (1 - p) t), so logits of +-1e4 neither overflow nor cancel and confident rows (x = 40,
    t = 1) keep the relative precision of their tiny loss and gradient (torchvision's literal formula
    loses 1 - p_t to rounding for large |x|; values agree within rounding elsewhere).  ``inputs`` and ``targets`` must have the same shape.  ``return_grad=True``
    returns d(result)/d(inputs) as autograd through torchvision's formula, except that the
    (1 - p_t) ** (gamma - 1) term is taken at its limit 0 where 1 - p_t is exactly 0 (autograd gives
    nan there when 0 < gamma < 1).
    """
    V.check_reduction(reduction)
    a = V.check_real(alpha, "alpha")
    g = V.check_real(gamma, "gamma")
    nt = resolve_num_threads(num_threads)
    x, y = _pair(inputs, targets, "inputs", "targets")
    a0, da = (1.0, 0.0) if a < 0 else (1.0 - a, a - (1.0 - a))
    kind = "focal_square" if g == 2 else "focal"   # gamma = 2 (the default): q * q, no pow
    res, o, grad, count = _run(kind, x, y, reduction, nt, out, return_grad, params=(a0, da, g))
    return _finish(res, reduction, x.dtype, o, grad, count=count)


def hinge_loss(input, target, margin=1.0, squared=False, reduction="mean", *, num_threads=None, out=None,
               return_grad=False):
    """Binary SVM hinge loss on scores (SPEC section 6; no torch function)::

        loss = max(0, margin - y * s)        (squared=True: its square)

    ``target`` holds -1 or +1 (any numeric dtype, same shape as ``input``); any other value (nan
    included) is a ValueError naming its first position and value.  The gradient is -y where
    margin - y s > 0 and 0 elsewhere (the subgradient at the hinge is 0, like relu's in torch);
    squared: -2 y max(0, margin - y s).  A nan score gives a nan loss and gradient.
    """
    V.check_reduction(reduction)
    m = V.check_real(margin, "margin")
    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"squared must be a bool, got {squared!r}")
    nt = resolve_num_threads(num_threads)
    x, y = _pair(input, target)
    res, o, grad, count = _run("hinge", x, y, reduction, nt, out, return_grad, params=(m, float(squared), 0.0))
    bad = res[2]
    if bad >= 0:
        raise ValueError(f"hinge_loss: target must be -1 or +1; got {y.reshape(-1)[bad]!r} at position "
                         f"{_position(y.shape, bad)}")
    return _finish(res, reduction, x.dtype, o, grad, count=count)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False, *,
           num_threads=None, out=None, return_grad=False):
    """Pointwise KL divergence, mirroring ``torch.nn.functional.kl_div``; ``input`` holds
    log-probabilities::

        log_target=False:  loss = xlogy(t, t) - t * x      (0 where t == 0, as torch)
        log_target=True:   loss = exp(t) * (t - x)

    Reductions: ``none``, ``sum``, ``mean`` (over all elements; torch warns that it is not the true KL,
    fastloss does not warn) and ``batchmean`` (sum / input.shape[0]; just the sum for 0-d input, as
    torch).  ``input`` and ``target`` must have the same shape (torch would broadcast).  The gradient
    with respect to ``input`` is -t (or -exp(t)) times the reduction's scale.
    """
    _reject_legacy(size_average, reduce)
    V.check_reduction(reduction, allowed=("none", "batchmean", "sum", "mean"))
    if not isinstance(log_target, (bool, np.bool_)):
        raise TypeError(f"log_target must be a bool, got {log_target!r}")
    nt = resolve_num_threads(num_threads)
    x, y = _pair(input, target)
    count = None
    if reduction == "batchmean":
        if x.ndim == 0:
            reduction = "sum"
        else:
            count = x.shape[0]
    res, o, grad, count = _run("kl", x, y, reduction, nt, out, return_grad, params=(float(log_target), 0.0, 0.0),
                               count=count)
    return _finish(res, reduction, x.dtype, o, grad, count=count)
