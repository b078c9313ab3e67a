"""Reference entries of the regression family (see fastloss/_reference/__init__.py).

Losses torch has are referenced to torch.nn.functional (mse_loss and huber_loss also to a NumPy formula,
the benchmark's NumPy competitor); the SPEC §6 ones get a NumPy formula (``numpy_ref``) and the same
formula in torch ops (``torch_ref``), which the tests differentiate with autograd.  Every reference takes
``reduction=`` and returns the reduced value.
"""
import math

import numpy as np

from . import Reference, register


def _torch():
    import torch
    import torch.nn.functional as F
    return torch, F


def _t(a):
    torch, _ = _torch()
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float64))


def _reduce(loss, reduction):
    """Reduce a per-element (or per-row) loss, tensor or ndarray, the torch way (mean of none is nan)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if isinstance(loss, np.ndarray):
        with np.errstate(invalid="ignore"):
            return loss.sum() / loss.size
    return loss.mean()


# ------------------------------------------------------------------- samplers
def _sample_pair(rng, n, dtype, scale=2.0):
    return (rng.standard_normal(n).astype(dtype) * scale, rng.standard_normal(n).astype(dtype) * scale), {}


def _sample_poisson(rng, n, dtype):
    return (rng.standard_normal(n).astype(dtype), rng.poisson(2.0, n).astype(dtype)), {}


def _sample_gaussian_nll(rng, n, dtype):
    (x, y), _ = _sample_pair(rng, n, dtype)
    return (x, y, (rng.random(n) + 0.05).astype(dtype)), {}


def _sample_mape(rng, n, dtype):
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0) * (0.5 + rng.random(n))
    return (rng.standard_normal(n).astype(dtype), y.astype(dtype)), {}


def _sample_msle(rng, n, dtype):
    return ((rng.random(n) * 5 - 0.5).astype(dtype), (rng.random(n) * 5 - 0.5).astype(dtype)), {}


def _sample_kl(rng, n, dtype, D=8):
    N = max(n // D, 1)
    return (rng.standard_normal((N, D)).astype(dtype), rng.standard_normal((N, D)).astype(dtype)), {}


# ------------------------------------------------------------------- torch.nn.functional references
def _F(name):
    def ref(*args, **kw):
        return getattr(_torch()[1], name)(*(_t(a) for a in args), **kw)
    ref.__name__ = f"torch_{name}"
    return ref


def np_mse_loss(input, target, reduction="mean"):
    d = input - target
    return _reduce(d * d, reduction)


def np_huber_loss(input, target, reduction="mean", delta=1.0):
    d = input - target
    ad = np.abs(d)
    return _reduce(np.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta)), reduction)


for _name, _sampler, _numpy_ref in [
    ("mse_loss", _sample_pair, np_mse_loss),
    ("l1_loss", _sample_pair, None),
    ("huber_loss", _sample_pair, np_huber_loss),
    ("smooth_l1_loss", _sample_pair, None),
    ("poisson_nll_loss", _sample_poisson, None),
    ("gaussian_nll_loss", _sample_gaussian_nll, None),
]:
    register(Reference(_name, "regression", _sampler, torch_ref=_F(_name), numpy_ref=_numpy_ref))


# ------------------------------------------------------------------- SPEC §6 formulas (torch ops and NumPy)
# Each elementwise formula is written once over a namespace `m` (torch or numpy) so the two references
# cannot drift apart; torch_ref evaluates in float64, numpy_ref in its inputs' dtype.
def _log_cosh(m, x, y):
    # accurate everywhere (not the kernel's form): cosh a - 1 = expm1(a)^2 / (2 exp a) for a < 20,
    # the asymptotic a - log 2 + log1p(exp(-2a)) beyond (exact to rounding there)
    a = m.abs(x - y)
    mid = m.where(a < 20, a, m.zeros_like(a))
    return m.where(a < 20, m.log1p(m.expm1(mid) ** 2 / (2 * m.exp(mid))), a + m.log1p(m.exp(-2 * a)) - math.log(2.0))


def _quantile(m, x, y, q=0.5):
    u = y - x
    return m.maximum(q * u, (q - 1) * u)


def _mape(m, x, y, eps=None):
    den = m.abs(y) if eps is None else m.maximum(m.abs(y), m.full_like(y, eps))
    return m.abs(y - x) / den


def _smape(m, x, y):
    den = m.abs(x) + m.abs(y)
    safe = m.where(den == 0, m.ones_like(den), den)
    return m.where(den == 0, m.zeros_like(den), 2 * m.abs(y - x) / safe)


def _msle(m, x, y):
    return (m.log1p(x) - m.log1p(y)) ** 2


def _gauss_kl(m, mu, lv):
    # -(1 + lv - mu^2 - e^lv) / 2 accurate everywhere (not the kernel's form): (mu^2 + (e^lv - 1 - lv)) / 2, two
    # terms >= 0, with e^lv - 1 - lv as expm1(lv) - lv and, for |lv| < 1e-3 where even that cancels, its series
    # lv^2/2 + lv^3/6 + lv^4/24 + lv^5/120 (truncation < 3e-15 relative; its input zeroed elsewhere, so that
    # the unselected branch never meets inf: no nan gradient through the where)
    small = m.abs(lv) < 1e-3
    ls = m.where(small, lv, m.zeros_like(lv))
    series = ls * ls * (0.5 + ls * (1 / 6 + ls * (1 / 24 + ls / 120)))
    return 0.5 * (mu ** 2 + m.where(small, series, m.expm1(lv) - lv)).sum(-1)


def _refs(formula):
    def torch_ref(*args, reduction="mean", **kw):
        return _reduce(formula(_torch()[0], *(_t(a) for a in args), **kw), reduction)

    def numpy_ref(*args, reduction="mean", **kw):
        with np.errstate(all="ignore"):
            return _reduce(formula(np, *(np.asarray(a) for a in args), **kw), reduction)
    return torch_ref, numpy_ref


for _name, _formula, _sampler in [
    ("log_cosh_loss", _log_cosh, _sample_pair),
    ("quantile_loss", _quantile, _sample_pair),
    ("mape_loss", _mape, _sample_mape),
    ("smape_loss", _smape, _sample_pair),
    ("msle_loss", _msle, _sample_msle),
    ("gaussian_kl_loss", _gauss_kl, _sample_kl),
]:
    _tr, _nr = _refs(_formula)
    register(Reference(_name, "regression", _sampler, torch_ref=_tr, numpy_ref=_nr))
