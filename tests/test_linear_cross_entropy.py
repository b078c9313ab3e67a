"""fl.linear_cross_entropy (issue 19) against the unfused float64 torch computation,
``F.cross_entropy(F.linear(hidden, weight, bias), target, ...)`` (+ soft-cap and z-loss written out in torch
ops: fastloss._reference.linear), and its autograd gradients.

Chunks and blocks are shrunk (monkeypatched ``_CHUNK_BYTES`` / ``_VOCAB_BLOCK`` / ``_HIDDEN_BLOCK``) so
that small inputs cross several token chunks, vocabulary blocks and hidden blocks, none of them a
multiple of the others."""
import numpy as np
import pytest

import fastloss as fl
from fastloss import _linear
from fastloss._reference.linear import linear_cross_entropy_torch
from fl_testing import assert_close_spec

torch = pytest.importorskip("torch")

OPTIONS = [
    {},
    {"label_smoothing": 0.15},
    {"logit_softcap": 2.5},
    {"z_loss": 1e-2},
    {"ignore_index": 5},
    {"label_smoothing": 0.3, "logit_softcap": 4.0, "z_loss": 0.05, "ignore_index": -1},
]


@pytest.fixture
def small_blocks(monkeypatch):
    """Chunks of 7 tokens (at V = 67, float64), vocabulary blocks of 16 classes, hidden blocks of 5; the
    loss alone in chunks of 5 tokens (float64; 10 in float32)."""
    monkeypatch.setattr(_linear, "_CHUNK_BYTES", 7 * 67 * 8)
    monkeypatch.setattr(_linear, "_BLOCK_BYTES", 5 * 16 * 8)
    monkeypatch.setattr(_linear, "_VOCAB_BLOCK", 16)
    monkeypatch.setattr(_linear, "_HIDDEN_BLOCK", 5)


def _data(rng, lead=(29,), d=12, V=67, dtype=np.float64, bias=True, scale=1.0, ignore=-100):
    h = (scale * rng.standard_normal(lead + (d,))).astype(dtype)
    w = (rng.standard_normal((V, d)) / np.sqrt(d)).astype(dtype)
    b = rng.standard_normal(V).astype(dtype) if bias else None
    y = rng.integers(0, V, lead)
    y.reshape(-1)[::7] = ignore
    return h, w, y, b


def _reference(h, w, y, b, reduction, **opts):
    """(value, [grad_hidden, grad_weight, grad_bias]) of the float64 torch computation, on the same values."""
    th, tw = (torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in (h, w))
    tb = torch.tensor(np.asarray(b, dtype=np.float64) if b is not None else np.zeros(w.shape[0]),
                      requires_grad=True)
    val = linear_cross_entropy_torch(th, tw, torch.tensor(y), tb, reduction=reduction, **opts)
    grads = torch.autograd.grad(val.sum(), [th, tw, tb])
    return val.detach().numpy(), [g.numpy() for g in grads]


def _check(got, ref, dtype):
    val, grads = got
    rval, rgrads = ref
    assert_close_spec(val, rval, dtype, what="loss")
    for g, r, name in zip(grads, rgrads, ("hidden", "weight", "bias")):
        assert g.shape == r.shape and g.dtype == dtype, name
        assert_close_spec(g, r, dtype, reduced=False, what=f"grad {name}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_matches_torch(dtype, reduction, opts, small_blocks, rng):
    h, w, y, b = _data(rng, dtype=dtype, ignore=opts.get("ignore_index", -100))
    for bias in (b, None):
        got = fl.linear_cross_entropy(h, w, y, bias, reduction=reduction, return_grad=True, **opts)
        _check(got, _reference(h, w, y, bias, reduction, **opts), np.dtype(dtype))
        # the loss alone takes another path (block statistics merged per token, no chunk of logits)
        value = fl.linear_cross_entropy(h, w, y, bias, reduction=reduction, **opts)
        assert_close_spec(value, _reference(h, w, y, bias, reduction, **opts)[0], np.dtype(dtype), what="loss")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_leading_shapes_and_default_blocks(dtype, rng):
    """(*, d) hidden states with target (*,); the default (large) chunk and blocks."""
    h, w, y, b = _data(rng, lead=(3, 5), d=9, V=130, dtype=dtype)
    for red in ("none", "mean"):
        got = fl.linear_cross_entropy(h, w, y, b, reduction=red, return_grad=True, logit_softcap=3.0)
        assert np.shape(got[0]) == ((3, 5) if red == "none" else ())
        assert got[1][0].shape == h.shape
        _check(got, _reference(h, w, y, b, red, logit_softcap=3.0), np.dtype(dtype))
    # one token: hidden (d,), target ()
    got = fl.linear_cross_entropy(h[0, 0], w, y[0, 0], b, reduction="none", return_grad=True)
    assert np.shape(got[0]) == ()
    _check(got, _reference(h[0, 0], w, y[0, 0], b, "none"), np.dtype(dtype))


def test_vocabulary_blocks_even_and_few():
    """_vocab_block: the fewest blocks of at most _VOCAB_BLOCK classes, each but the last a multiple of 16
    classes, the last short by less than 16 per block (V = 32000: 16 blocks of 2000, not 15 of 2048 and one of
    1280, which left a thread idle at the end of each GEMM phase)."""
    assert _linear._vocab_block(32000) == 2000
    top = _linear._VOCAB_BLOCK
    for V in [1, 15, 16, 17, 2047, 2048, 2049, 4097, 32000, 50257, 128256, 151936]:
        vb = _linear._vocab_block(V)
        blocks = _linear._blocks(V, vb)
        assert len(blocks) == -(-V // top) and vb <= top and blocks[-1][1] == V
        if len(blocks) > 1:
            assert vb % 16 == 0 and vb - (blocks[-1][1] - blocks[-1][0]) < 16 * len(blocks)


def test_every_output_bitwise_identical_for_every_thread_count(small_blocks, rng):
    for dtype in (np.float32, np.float64):
        h, w, y, b = _data(rng, lead=(61,), d=23, V=67, dtype=dtype)
        for red in ("mean", "none"):
            runs = [fl.linear_cross_entropy(h, w, y, b, reduction=red, return_grad=True, z_loss=1e-3,
                                            label_smoothing=0.1, num_threads=t) for t in (1, 2, 3)]
            for val, grads in runs[1:]:
                assert np.asarray(val).tobytes() == np.asarray(runs[0][0]).tobytes()
            alone = [fl.linear_cross_entropy(h, w, y, b, reduction=red, z_loss=1e-3, label_smoothing=0.1,
                                             logit_softcap=2.0, num_threads=t) for t in (1, 2, 3)]
            for val in alone[1:]:
                assert np.asarray(val).tobytes() == np.asarray(alone[0]).tobytes()
                for g, g0 in zip(grads, runs[0][1]):
                    assert g.tobytes() == g0.tobytes()


def test_hostile_rows(rng):
    """All logits equal (loss log V), a +1e4 and a -1e4 logit, in float32 and float64."""
    V, d = 50, 6
    for dtype in (np.float64, np.float32):
        h = rng.standard_normal((6, d)).astype(dtype)
        w = rng.standard_normal((V, d)).astype(dtype)
        w[:] = 0                                           # every logit 0 (before the bias)
        b = np.zeros(V, dtype=dtype)
        y = np.array([0, 1, 2, 3, 4, 5])
        got = fl.linear_cross_entropy(h, w, y, b, reduction="none", return_grad=True)
        _check(got, _reference(h, w, y, b, "none"), np.dtype(dtype))
        assert_close_spec(got[0], np.full(6, np.log(V)), dtype)
        w = (rng.standard_normal((V, d)) / 4).astype(dtype)
        b[7], b[9] = 1e4, -1e4                              # a huge logit for every token, a tiny one
        y = np.array([7, 9, 0, 7, 9, 3])
        for opts in ({}, {"label_smoothing": 0.1}, {"logit_softcap": 30.0}):
            got = fl.linear_cross_entropy(h, w, y, b, reduction="none", return_grad=True, **opts)
            ref = _reference(h, w, y, b, "none", **opts)
            # the loss of a token is a difference of logits of size 1e4 (ill-conditioned: any evaluation,
            # torch's included, has an error ~ ulp(1e4) there), as are the gradients of the huge logit
            assert_close_spec(got[0], ref[0], dtype, cancel=1e4)
            for g, r in zip(got[1], ref[1]):
                assert_close_spec(g, r, dtype, reduced=False, cancel=np.abs(r).max())


def test_every_token_ignored(rng):
    h, w, y, b = _data(rng)
    y[:] = -100
    val, grads = fl.linear_cross_entropy(h, w, y, b, return_grad=True)
    rval, rgrads = _reference(h, w, y, b, "mean")
    assert np.isnan(val) and np.isnan(rval)                 # mean over no token: nan, as torch
    for g, r in zip(grads, rgrads):
        assert not g.any() and not r.any()
    assert fl.linear_cross_entropy(h, w, y, b, reduction="sum") == 0


def test_empty_and_one_class(rng):
    w = rng.standard_normal((5, 3))
    val, (gh, gw, gb) = fl.linear_cross_entropy(np.zeros((0, 3)), w, np.zeros(0, dtype=np.int64),
                                                reduction="sum", return_grad=True)
    assert val == 0 and gh.shape == (0, 3) and not gw.any() and not gb.any()
    assert np.isnan(fl.linear_cross_entropy(np.zeros((0, 3)), w, np.zeros(0, dtype=np.int64)))
    assert fl.linear_cross_entropy(np.zeros((0, 3)), w, np.zeros(0, dtype=np.int64), reduction="none").shape == (0,)
    # V = 1: every loss is 0 (plus the z-loss), the gradient of the logits too
    h, w1, b1 = rng.standard_normal((4, 3)), rng.standard_normal((1, 3)), rng.standard_normal(1)
    y = np.zeros(4, dtype=np.int64)
    for opts in ({}, {"z_loss": 0.1}):
        got = fl.linear_cross_entropy(h, w1, y, b1, reduction="mean", return_grad=True, **opts)
        _check(got, _reference(h, w1, y, b1, "mean", **opts), np.dtype(np.float64))


def test_out_inputs_and_half_precision(rng):
    h, w, y, b = _data(rng, lead=(4, 6))
    saved = [a.copy() for a in (h, w, y, b)]
    out = np.empty((4, 6))
    res = fl.linear_cross_entropy(h, w, y, b, reduction="none", out=out)
    assert res is out
    assert_close_spec(out, _reference(h, w, y, b, "none")[0], np.float64)
    for a, s in zip((h, w, y, b), saved):
        assert np.array_equal(a, s)                         # inputs never written
    # float16 (and torch bfloat16) compute in float32; a float32 weight with float64 hidden in float64
    h16, w16 = h.astype(np.float16), w.astype(np.float16)
    val = fl.linear_cross_entropy(h16, w16, y, reduction="none")
    assert val.dtype == np.float32
    assert_close_spec(val, _reference(h16, w16, y, None, "none")[0], np.float32)
    val = fl.linear_cross_entropy(torch.tensor(h).bfloat16(), torch.tensor(w).bfloat16(), torch.tensor(y))
    assert val.dtype == np.float32
    assert fl.linear_cross_entropy(h, w.astype(np.float32), y).dtype == np.float64
    # a weight given transposed (F-contiguous) is read as it is
    wt = np.asfortranarray(w)
    assert fl.linear_cross_entropy(h, wt, y, b, reduction="sum") == fl.linear_cross_entropy(h, w, y, b, reduction="sum")


def test_partial_and_merge_equal_the_whole(rng):
    h, w, y, b = _data(rng, lead=(40,))
    whole = fl.partial("linear_cross_entropy", h, w, y, b, z_loss=1e-3)
    parts = [fl.partial("linear_cross_entropy", h[a:a + 13], w, y[a:a + 13], b, z_loss=1e-3)
             for a in range(0, 40, 13)]
    merged = fl.LossState.merge_all(parts)
    assert merged.count == whole.count == 40
    assert merged.weight_sum == whole.weight_sum == np.count_nonzero(y != -100)
    ref = _reference(h, w, y, b, "mean", z_loss=1e-3)[0]
    assert_close_spec(np.float64(merged.finalize()), ref, np.float64)
    assert_close_spec(np.float64(whole.finalize()), ref, np.float64)


def test_bad_inputs(rng):
    h, w, y, b = _data(rng)
    f = fl.linear_cross_entropy
    with pytest.raises(ValueError, match="weight must be .*d = 12"):
        f(h, w[:, :5], y)
    with pytest.raises(ValueError, match="bias must have length V = 67"):
        f(h, w, y, b[:-1])
    with pytest.raises(ValueError, match="logit_softcap"):
        f(h, w, y, logit_softcap=0.0)
    with pytest.raises(ValueError, match="logit_softcap"):
        f(h, w, y, logit_softcap=-1.0)
    with pytest.raises(ValueError, match="z_loss"):
        f(h, w, y, z_loss=-0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        f(h, w, y, label_smoothing=1.5)
    with pytest.raises(ValueError, match="target must have"):
        f(h, w, y[:-1])
    with pytest.raises(TypeError, match="hidden"):
        f(h.astype(np.int64), w, y)
    with pytest.raises(TypeError, match="weight"):
        f(h, w.astype(np.int32), y)
    with pytest.raises(TypeError, match="bias"):
        f(h, w, y, np.arange(67))
    with pytest.raises(TypeError, match="target"):
        f(h, w, y.astype(np.float64))
    with pytest.raises(ValueError, match="reduction"):
        f(h, w, y, reduction="batchmean")
    for bad_value, at in ((67, 10), (-3, 22)):
        yb = y.copy()
        yb[at] = bad_value
        yb[at + 3] = 1000                                   # a later bad target is not the one reported
        with pytest.raises(IndexError, match=rf"target has class index {bad_value} at position {at}, outside "
                                             r"\[0, 67\) and not ignore_index=-100"):
            f(h, w, yb, return_grad=True)
