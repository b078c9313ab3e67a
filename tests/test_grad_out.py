"""``grad_out=``: the preallocated, reusable gradient buffer of every loss with ``return_grad`` (issue 16).

Driven by the loss table (every ``LOSSES`` entry; its ``grad_argnums`` say how many gradients) and each
loss's sampler in ``fastloss._reference``, for float32 and float64 and the reductions "mean" and "none":

* the buffers passed as ``grad_out`` come back as the gradients (the same objects), holding bit for bit
  the gradient the call returns without ``grad_out`` (whose values the family tests check against torch),
  and the loss value is unchanged;
* the inputs are not written, and the same buffers are reused across calls;
* a buffer of the wrong shape, dtype, layout or type, a read-only one, one that overlaps an input, a
  tuple of the wrong length, or ``grad_out`` without ``return_grad=True`` raises naming ``grad_out``.
"""
import warnings

import numpy as np
import pytest

import fastloss as fl
from fastloss._losses import LOSSES
from fastloss._reference import REFERENCES

NAMES = sorted(n for n in LOSSES if n in REFERENCES)
SENTINEL = -7.25e30


def _sample(name, dtype, seed=0):
    rng = np.random.default_rng(seed)
    args, kwargs = REFERENCES[name].sample(rng, 40, dtype)
    return list(args), dict(kwargs)


def _call(name, args, kwargs, **extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # broadcast targets warn, as in torch
        return getattr(fl, name)(*args, **{**kwargs, **extra})


def _grads(name, g):
    return (g,) if len(LOSSES[name].grad_args) == 1 else tuple(g)


def _pack(name, bufs):
    return bufs[0] if len(LOSSES[name].grad_args) == 1 else tuple(bufs)


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _snapshot(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _unchanged(args, before):
    return all(not isinstance(a, np.ndarray) or _same_bits(a, b) for a, b in zip(args, before))


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", NAMES)
def test_grad_out_is_the_gradient(name, dtype, reduction):
    args, kwargs = _sample(name, dtype)
    kwargs["reduction"] = reduction
    value, g = _call(name, args, kwargs, return_grad=True)
    expected = _grads(name, g)
    bufs = [None if e is None else np.full(e.shape, SENTINEL, dtype=e.dtype) for e in expected]
    before = _snapshot(args)
    value2, g2 = _call(name, args, kwargs, return_grad=True, grad_out=_pack(name, bufs))
    assert _unchanged(args, before), "an input was written"
    got = _grads(name, g2)
    for e, b, r in zip(expected, bufs, got):
        if e is None:
            assert r is None
            continue
        assert r is b, "the gradient is not the grad_out buffer"
        assert _same_bits(r, e)
    assert _same_bits(np.asarray(value2), np.asarray(value))

    # reuse: the same buffers for a second call on other data of the same shapes
    args3, kwargs3 = _sample(name, dtype, seed=1)
    kwargs3["reduction"] = reduction
    _, g3 = _call(name, args3, kwargs3, return_grad=True)
    expected3 = _grads(name, g3)
    if [None if e is None else e.shape for e in expected3] != [None if e is None else e.shape for e in expected]:
        return
    _, g4 = _call(name, args3, kwargs3, return_grad=True, grad_out=_pack(name, bufs))
    for e, b, r in zip(expected3, bufs, _grads(name, g4)):
        if e is not None:
            assert r is b and _same_bits(r, e)


def _bad_buffers(e, first_input):
    """(label, buffer) pairs that grad_out must refuse in place of a correct buffer like ``e``."""
    other = np.float32 if e.dtype == np.float64 else np.float64
    yield "shape", np.zeros(e.shape + (1,), dtype=e.dtype)
    yield "dtype", np.zeros(e.shape, dtype=other)
    yield "list", np.zeros(e.shape, dtype=e.dtype).tolist()
    ro = np.zeros(e.shape, dtype=e.dtype)
    ro.flags.writeable = False
    yield "read-only", ro
    if e.ndim >= 1 and e.size > 1:
        yield "non-contiguous", np.zeros(e.shape[:-1] + (2 * e.shape[-1],), dtype=e.dtype)[..., ::2]
    if isinstance(first_input, np.ndarray) and first_input.shape == e.shape and first_input.dtype == e.dtype \
            and first_input.flags.c_contiguous and first_input.flags.writeable:
        yield "an input", first_input


@pytest.mark.parametrize("name", NAMES)
def test_bad_grad_out_raises_naming_it(name):
    args, kwargs = _sample(name, np.float64)
    _, g = _call(name, args, kwargs, return_grad=True)
    expected = _grads(name, g)
    n = len(expected)
    good = [None if e is None else np.empty_like(e) for e in expected]
    for i, e in enumerate(expected):
        if e is None:
            continue
        first = args[LOSSES[name].grad_argnums[i]]
        for label, bad in _bad_buffers(e, first):
            bufs = list(good)
            bufs[i] = bad
            before = _snapshot(args)
            with pytest.raises((ValueError, TypeError), match="grad_out") as info:
                _call(name, args, kwargs, return_grad=True, grad_out=_pack(name, bufs))
            assert "\n" not in str(info.value), label
            assert _unchanged(args, before), f"{label}: an input was written"
    if n > 1:
        with pytest.raises(TypeError, match="grad_out"):
            _call(name, args, kwargs, return_grad=True, grad_out=tuple(good[:-1]))
        with pytest.raises(TypeError, match="grad_out"):
            _call(name, args, kwargs, return_grad=True, grad_out=good[0])
        if all(b is not None for b in good):       # two gradients into one buffer
            same = [good[0]] * n if all(e.shape == expected[0].shape for e in expected) else None
            if same is not None:
                with pytest.raises(ValueError, match="grad_out"):
                    _call(name, args, kwargs, return_grad=True, grad_out=tuple(same))
    with pytest.raises(ValueError, match="grad_out"):
        _call(name, args, kwargs, grad_out=_pack(name, good))


def test_grad_out_none_entries_get_fresh_arrays():
    rng = np.random.default_rng(0)
    a, p, n = (rng.standard_normal((8, 4)) for _ in range(3))
    _, ref = fl.triplet_margin_loss(a, p, n, return_grad=True)
    buf = np.empty_like(a)
    _, (ga, gp, gn) = fl.triplet_margin_loss(a, p, n, return_grad=True, grad_out=(None, buf, None))
    assert gp is buf and ga is not buf and gn is not buf
    for r, g in zip(ref, (ga, gp, gn)):
        assert _same_bits(r, g)
