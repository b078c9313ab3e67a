"""Metric family: every loss with a reference against its float64 torch reference (torch.nn.functional, or the
SPEC §6 formula in torch ops from fastloss/_reference/metric.py), plus hostile inputs and errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fastloss._reference import REFERENCES
from fl_testing import assert_close_spec, to_torch64

METRIC = sorted(name for name, s in REFERENCES.items() if s.family == "metric")
REDUCTIONS = ["none", "mean", "sum"]


def reference(spec, args, kw, reduction):
    """float64 torch value and gradients (of the sum for 'none') w.r.t. spec.grad_argnums."""
    ts = [torch.tensor(np.asarray(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a),
                       requires_grad=i in spec.grad_argnums) for i, a in enumerate(args)]
    val = spec.torch_ref(*ts, reduction=reduction, **kw)
    val.sum().backward()
    return val.detach().numpy(), [ts[i].grad.numpy() for i in spec.grad_argnums]


def call(name, args, kw, **extra):
    return getattr(fl, name)(*args, **kw, **extra)


def as_list(g):
    return list(g) if isinstance(g, tuple) else [g]


def assert_close(got, want, dtype, what="", reduced=None):
    """SPEC §4 against the float64 reference (conftest.assert_close_spec); reduced: a 0-d reference."""
    assert_close_spec(got, want, dtype, reduced=reduced, what=what)


@pytest.mark.parametrize("name", METRIC)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_value_and_grad_match_torch(name, dtype, reduction):
    spec = REFERENCES[name]
    args, kw = spec.sample(np.random.default_rng(1), 3000, dtype)
    want, want_g = reference(spec, args, kw, reduction)
    got, got_g = call(name, args, kw, reduction=reduction, return_grad=True)
    assert np.asarray(got).dtype == dtype
    assert_close(got, want, dtype, "value")
    for g, w in zip(as_list(got_g), want_g):
        assert g.dtype == dtype and g.shape == w.shape
        assert_close(g, w, dtype, "grad", reduced=False)
    assert_close(call(name, args, kw, reduction=reduction), want, dtype, "value without grad")


@pytest.mark.parametrize("name", METRIC)
def test_out_and_inputs_unmodified_and_layouts(name):
    spec = REFERENCES[name]
    args, kw = spec.sample(np.random.default_rng(2), 800, np.float64)
    copies = [np.array(a, copy=True) for a in args]
    want, _ = reference(spec, args, kw, "none")
    out = np.empty(np.shape(want), dtype=np.float64)
    res = call(name, args, kw, reduction="none", out=out)
    assert res is out
    assert_close(out, want, np.float64)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)
    # Fortran-ordered / strided / read-only numpy inputs and torch tensors give the same numbers
    fortran = [np.asfortranarray(a) for a in args]
    strided = [np.repeat(a, 2, axis=-1)[..., ::2] for a in args]
    readonly = [np.array(a) for a in args]
    for a in readonly:
        a.flags.writeable = False
    tensors = [torch.from_numpy(np.array(a)) for a in args]
    for variant in (fortran, strided, readonly, tensors):
        assert_close(call(name, variant, kw, reduction="none"), want, np.float64)


@pytest.mark.parametrize("name", METRIC)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_bitwise_identical_across_threads(name, dtype):
    spec = REFERENCES[name]
    args, kw = spec.sample(np.random.default_rng(3), 200_000, dtype)
    results = []
    for nt in (1, 2, 3):
        v, g = call(name, args, kw, reduction="mean", num_threads=nt, return_grad=True)
        v2 = call(name, args, kw, reduction="sum", num_threads=nt)
        results.append((v.tobytes(), v2.tobytes(), [x.tobytes() for x in as_list(g)]))
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("name", METRIC)
def test_empty_batch(name):
    spec = REFERENCES[name]
    args, kw = spec.sample(np.random.default_rng(4), 64, np.float64)
    empty = [np.asarray(a)[:0] for a in args]
    if name == "batch_all_triplet_loss":       # mean over positive triplets: 0 when there is none
        assert call(name, empty, kw) == 0.0
    else:
        assert np.isnan(call(name, empty, kw))
    assert call(name, empty, kw, reduction="sum") == 0.0
    assert call(name, empty, kw, reduction="none").shape == (0,)


# ---------------------------------------------------------------------------------- torch losses
def torch_triplet(x_a, x_p, x_n, **kw):
    ts = [torch.tensor(x, requires_grad=True) for x in (x_a, x_p, x_n)]
    v = F.triplet_margin_loss(*ts, **kw)
    v.sum().backward()
    return v.detach().numpy(), [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("p", [2, 1, 3, 0.5, 1.5, float("inf")])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_any_p_and_swap(p, swap):
    rng = np.random.default_rng(5)
    a, pos, neg = (rng.standard_normal((300, 9)) for _ in range(3))
    a[:20] = pos[:20]                          # d(a, n) == d(p, n): swap ties
    want, want_g = torch_triplet(a, pos, neg, p=p, swap=swap, margin=0.7, reduction="sum")
    got, got_g = fl.triplet_margin_loss(a, pos, neg, p=p, swap=swap, margin=0.7, reduction="sum",
                                        return_grad=True)
    assert_close(got, want, np.float64)
    for g, w in zip(got_g, want_g):
        assert_close(g, w, np.float64)


def test_triplet_hostile_rows():
    """Identical anchor/positive (distance eps only), zero rows, huge values, B=1, D=1, unbatched."""
    rng = np.random.default_rng(6)
    a = rng.standard_normal((6, 4))
    pos = a.copy()
    neg = a.copy()
    neg[1] = 0
    a[2] = 0
    pos[2] = 0
    a[3] *= 1e4
    neg[4] = a[4] + 1.0
    for kw in ({}, {"swap": True}, {"p": 1}, {"eps": 0.0}):
        want, want_g = torch_triplet(a, pos, neg, reduction="none", **kw)
        got, got_g = fl.triplet_margin_loss(a, pos, neg, reduction="none", return_grad=True, **kw)
        assert_close(got, want, np.float64)
        for g, w in zip(got_g, want_g):
            assert np.all(np.isfinite(g))
            assert_close(g, w, np.float64)
    for shape in [(1, 5), (7, 1), (5,)]:
        xs = [rng.standard_normal(shape) for _ in range(3)]
        want, want_g = torch_triplet(*xs, reduction="mean")
        got, got_g = fl.triplet_margin_loss(*xs, return_grad=True)
        assert_close(got, want, np.float64)
        for g, w in zip(got_g, want_g):
            assert_close(g, w, np.float64)
    want, _ = torch_triplet(*xs, reduction="none")
    assert fl.triplet_margin_loss(*xs, reduction="none").shape == want.shape == ()


@pytest.mark.parametrize("swap", [False, True])
def test_triplet_float32_rows_every_length_and_hostile_values(swap):
    """float32 rows through the distance loop of each ISA level (AVX2: half-vectors converted from memory):
    lengths around the 8-element vector step (tails of 0-7, rows shorter than one step), values of +-1e4,
    tiny values, and rows with nan / +-inf, against the float64 reference; the mean is the same bits for
    every thread count."""
    rng = np.random.default_rng(12)
    for D in (1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 127, 128, 129):
        a, pos, neg = (rng.standard_normal((24, D)).astype(np.float32) for _ in range(3))
        a[1] *= 1e4
        pos[1] = a[1] + rng.standard_normal(D).astype(np.float32)
        neg[2] = -1e4
        a[3], pos[3], neg[3] = a[3] * 1e-3, a[3] * 1e-3, 0
        want, _ = torch_triplet(*(x.astype(np.float64) for x in (a, pos, neg)), swap=swap, reduction="none")
        got = fl.triplet_margin_loss(a, pos, neg, swap=swap, reduction="none")
        assert_close(got, want, np.float32, f"D={D}", reduced=False)
        mean = fl.triplet_margin_loss(a, pos, neg, swap=swap)
        assert_close(mean, want.mean(), np.float32, f"D={D} mean")
        for T in (2, 3):
            assert fl.triplet_margin_loss(a, pos, neg, swap=swap, num_threads=T).tobytes() == mean.tobytes()
        a[5, D // 2], pos[6, 0], neg[7, D - 1], a[8, 0] = np.nan, np.inf, -np.inf, -np.inf
        want, _ = torch_triplet(*(x.astype(np.float64) for x in (a, pos, neg)), swap=swap, reduction="none")
        got = fl.triplet_margin_loss(a, pos, neg, swap=swap, reduction="none")
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"D={D}")
        assert_close(got[~np.isnan(want)], want[~np.isnan(want)], np.float32, f"D={D} specials", reduced=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [2, 1])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_loss_of_many_long_rows(dtype, p, swap):
    """The loss alone of rows too long for the feature-major tiles, more of them than one chunk of the
    rows' finish (metric.pyx's triplet_rows_loss_block, PAIR_ROWS = 256 rows): each row's loss and the mean
    against torch in float64, swap ties (a = p) and inactive rows among them, and the mean the same bits
    for every thread count."""
    rng = np.random.default_rng(31)
    for D in (40, 129):
        a, pos, neg = (rng.standard_normal((700, D)).astype(dtype) for _ in range(3))
        a[::7] = pos[::7]                          # d(a, n) == d(p, n): swap ties; d(a, p) = eps
        neg[3::11] = a[3::11] + dtype(0.01)        # the negative inside the margin: active rows
        pos[5::13] = a[5::13] + dtype(3)           # far positives: active too
        want, _ = torch_triplet(*(x.astype(np.float64) for x in (a, pos, neg)), p=p, swap=swap,
                                reduction="none")
        assert 0 < (want == 0).sum() < 600
        # the loss is margin + d_ap - d_neg: cancellation at the distances' magnitude (float64's sums of
        # 129 terms differ from torch's by their rounding there)
        x64 = [x.astype(np.float64) for x in (a, pos, neg)]
        cancel = np.max([np.linalg.norm(u - v + 1e-6, ord=p, axis=1)
                         for u, v in ((x64[0], x64[1]), (x64[0], x64[2]), (x64[1], x64[2]))], axis=0)
        got = fl.triplet_margin_loss(a, pos, neg, p=p, swap=swap, reduction="none")
        assert_close_spec(got, want, dtype, reduced=False, what=f"D={D}", cancel=cancel)
        mean = fl.triplet_margin_loss(a, pos, neg, p=p, swap=swap)
        assert_close_spec(mean, want.mean(), dtype, what=f"D={D} mean", cancel=cancel.mean())
        for T in (2, 3):
            again = fl.triplet_margin_loss(a, pos, neg, p=p, swap=swap, num_threads=T)
            assert again.tobytes() == mean.tobytes()


def test_triplet_nan_and_inf_propagate_like_torch():
    a = np.array([[np.nan, 1.0], [np.inf, 0.0], [1.0, 2.0]])
    p = np.zeros((3, 2))
    n = np.ones((3, 2))
    want, _ = torch_triplet(a, p, n, reduction="none")
    got = fl.triplet_margin_loss(a, p, n, reduction="none")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])


def test_cosine_zero_vectors_and_other_targets():
    x1 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    x2 = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    y = np.array([1.0, -1.0, -1.0, -1.0, 0.0])       # cos == margin exactly in row 3; y = 0 gives 0
    ts = [torch.tensor(x, requires_grad=True) for x in (x1, x2)]
    for margin in (0.0, -0.5, 1.0):
        for t in ts:
            t.grad = None
        v = F.cosine_embedding_loss(*ts, torch.tensor(y), margin=margin, reduction="none")
        v.sum().backward()
        got, (g1, g2) = fl.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="none", return_grad=True)
        assert_close(got, v.detach().numpy(), np.float64)
        assert_close(g1, ts[0].grad.numpy(), np.float64)
        assert_close(g2, ts[1].grad.numpy(), np.float64)
    # unbatched: (D,) rows with a 0-d target
    v = F.cosine_embedding_loss(torch.tensor(x1[2]), torch.tensor(x2[4]), torch.tensor(-1.0), reduction="none")
    got = fl.cosine_embedding_loss(x1[2], x2[4], -1.0, reduction="none")
    assert_close(got, v.numpy(), np.float64, reduced=False)


def test_score_losses_at_kinks_match_torch():
    x1 = np.array([1.0, 2.0, 0.5, 1.0, -3.0])
    x2 = np.array([1.0, 2.0, 0.0, 0.7, 4.0])
    y = np.array([1.0, -1.0, 1.0, -1.0, 0.5])
    ts = [torch.tensor(x, requires_grad=True) for x in (x1, x2)]
    v = F.margin_ranking_loss(*ts, torch.tensor(y), margin=0.0, reduction="sum")
    v.backward()
    got, (g1, g2) = fl.margin_ranking_loss(x1, x2, y, reduction="sum", return_grad=True)
    assert_close(got, v.item(), np.float64)
    np.testing.assert_array_equal(g1, ts[0].grad.numpy())
    np.testing.assert_array_equal(g2, ts[1].grad.numpy())
    t = torch.tensor(x1, requires_grad=True)
    yy = np.array([-1.0, 1.0, 0.5, -1.0, -1.0])          # x = margin exactly at 0 and 3
    v = F.hinge_embedding_loss(t, torch.tensor(yy), margin=1.0, reduction="sum")
    v.backward()
    got, g = fl.hinge_embedding_loss(x1, yy, reduction="sum", return_grad=True)
    assert_close(got, v.item(), np.float64)
    np.testing.assert_array_equal(g, t.grad.numpy())


def test_float32_inputs_half_and_mixed():
    rng = np.random.default_rng(7)
    a, p, n = (rng.standard_normal((40, 8)).astype(np.float32) for _ in range(3))
    want, _ = torch_triplet(*(x.astype(np.float64) for x in (a, p, n)), reduction="mean")
    assert fl.triplet_margin_loss(a, p.astype(np.float64), n).dtype == np.float32
    assert_close(fl.triplet_margin_loss(a, p.astype(np.float64), n), want, np.float32)
    h = torch.from_numpy(a).half()
    assert fl.triplet_margin_loss(h, h, h).dtype == np.float32


# ---------------------------------------------------------------------------------- SPEC §6 losses
def test_contrastive_zero_distance_and_margin():
    x1 = np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0], [3.0, 0.0]])
    x2 = np.array([[1.0, 2.0], [1.0, 2.0], [0.5, 0.0], [0.0, 0.0]])
    y = np.array([1.0, 0.0, 0.0, 0.0])
    got, (g1, g2) = fl.contrastive_loss(x1, x2, y, margin=1.0, reduction="none", return_grad=True)
    # y d^2 + (1 - y) max(0, m - d)^2 with d = 0, 0, 0.5, 3 (exact in binary)
    assert_close(got, [0.0, 1.0, 0.25, 0.0], np.float64)
    assert np.all(np.isfinite(g1)) and np.all(g1[:2] == 0)
    # d/dx1 of (m - d)^2 = -2 (m - d) (x1 - x2) / d: row 2 is -2 * 0.5 * (-0.5, 0) / 0.5 = (1, 0); row 3 is
    # past the margin: 0; d/dx2 = -d/dx1
    want_g1 = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert_close(g1, want_g1, np.float64, reduced=False)
    assert_close(g2, -want_g1, np.float64, reduced=False)


@pytest.mark.parametrize("name", ["batch_hard_triplet_loss", "batch_all_triplet_loss"])
def test_mining_degenerate_batches(name):
    spec = REFERENCES[name]
    rng = np.random.default_rng(8)
    e = rng.standard_normal((6, 3))
    cases = [(e, np.zeros(6, dtype=np.int32)),             # one class: no negatives
             (e, np.arange(6)),                            # all singletons: no positives
             (e[:1], np.zeros(1, dtype=np.int64)),         # B = 1
             (e[:, :1], np.array([0, 0, 1, 1, 2, 2])),     # D = 1
             (np.repeat(e[:2], 3, axis=0), np.array([0, 0, 0, 1, 1, 1]))]   # duplicated embeddings
    for x, lab in cases:
        for reduction in REDUCTIONS:
            want, (want_g,) = reference(spec, (x, lab), {"margin": 0.3}, reduction)
            got, g = fl.__dict__[name](x, lab, margin=0.3, reduction=reduction, return_grad=True)
            assert_close(got, want, np.float64, what=f"{x.shape} {reduction}")
            assert_close(g, want_g, np.float64, what=f"{x.shape} {reduction} grad", reduced=False)
    for squared in (False, True):
        lab = rng.integers(0, 3, 40)
        x = rng.standard_normal((40, 5))
        want, (want_g,) = reference(spec, (x, lab), {"squared": squared}, "mean")
        got, g = fl.__dict__[name](x, lab, squared=squared, return_grad=True)
        assert_close(got, want, np.float64, what=f"squared={squared}")
        assert_close(g, want_g, np.float64, what=f"squared={squared} grad", reduced=False)


def _hard_rows_exact(e, lab, margin, squared):
    """batch-hard per-anchor losses from distances summed from the coordinate differences in float64
    (no Gram cancellation); nan where the anchor has no positive or no negative."""
    e = e.astype(np.float64)
    out = np.full(len(e), np.nan)
    for i in range(len(e)):
        d = ((e - e[i]) ** 2).sum(axis=1)
        d = d if squared else np.sqrt(d)
        pos, neg = lab == lab[i], lab != lab[i]
        pos[i] = False
        if pos.any() and neg.any():
            out[i] = max(d[pos].max() - d[neg].min() + margin, 0.0)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_hard_loss_over_many_tiles_with_ties(dtype):
    """The loss alone mines on the symmetric Gram in tiles (128 rows; more past 2048 rows, the last one
    partial) reduced from both sides: every anchor's loss is the exact hardest pair's, where the float32
    Gram cancels (offset rows), where distances tie (duplicated and integer rows), for int64 labels
    beyond int32, and the same bits for every num_threads."""
    rng = np.random.default_rng(21)
    B, D = 2100, 6
    lab = rng.integers(0, 40, B)
    e = rng.standard_normal((40, D))[lab] + 0.5 * rng.standard_normal((B, D))
    e[:, 0] += 300.0                                   # |e|^2 ~ 1e5 over d^2 ~ 1: float32 Gram cancels
    e[1500:1800] = e[1200:1500]                        # duplicated rows: exact ties
    e[1800:] = np.round(e[1800:])                      # integer rows: many equal distances
    e = e.astype(dtype)
    for labels in (lab, lab * 2 ** 40 - 3):
        for squared in (False, True):
            want = _hard_rows_exact(e, lab, 0.4, squared)
            got = fl.batch_hard_triplet_loss(e, labels, margin=0.4, squared=squared, reduction="none",
                                             num_threads=1)
            ok = ~np.isnan(want)
            assert (got[~ok] == 0).all()
            # (float32: the exact float64 loss rounded once to the output, half an ulp)
            rtol = 2.0 ** -24 * 1.001 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(got[ok], want[ok], rtol=rtol, atol=0, err_msg=f"squared={squared}")
            got2 = fl.batch_hard_triplet_loss(e, labels, margin=0.4, squared=squared, reduction="none",
                                              num_threads=2)
            assert got2.tobytes() == got.tobytes()


def test_nt_xent_zero_vectors_and_single_pair():
    rng = np.random.default_rng(9)
    z1, z2 = rng.standard_normal((2, 5, 4))
    z1[1] = 0
    for a, b in ((z1, z2), (z1[:1], z2[:1])):
        want, want_g = reference(REFERENCES["nt_xent_loss"], (a, b), {"temperature": 0.3}, "mean")
        got, g = fl.nt_xent_loss(a, b, temperature=0.3, return_grad=True)
        assert_close(got, want, np.float64)
        for x, w in zip(g, want_g):
            assert_close(x, w, np.float64, reduced=False)


# ---------------------------------------------------------------------------------- errors
def test_errors_name_the_argument():
    a = np.zeros((4, 3))
    with pytest.raises(ValueError, match="positive"):
        fl.triplet_margin_loss(a, np.zeros((4, 2)), a)
    with pytest.raises(ValueError, match="margin"):
        fl.triplet_margin_loss(a, a, a, margin=0.0)
    with pytest.raises(ValueError, match="p must"):
        fl.triplet_margin_loss(a, a, a, p=float("nan"))     # (p <= 0 is a norm, as torch)
    with pytest.raises(ValueError, match="reduction"):
        fl.triplet_margin_loss(a, a, a, reduction="avg")
    with pytest.raises(ValueError, match="anchor"):     # (3-d operands broadcast as torch's; mixed ndim do not)
        fl.triplet_margin_loss(np.zeros((2, 2, 2)), np.zeros((2, 2)), np.zeros((2, 2, 2)))
    with pytest.raises(TypeError, match="anchor"):
        fl.triplet_margin_loss(np.array([["a"]]), a, a)
    with pytest.raises(TypeError, match="anchor"):
        fl.triplet_margin_loss(np.zeros((4, 3), dtype=np.int64), a, a)
    with pytest.raises(ValueError, match="target"):
        fl.cosine_embedding_loss(a, a, np.ones(3))
    with pytest.raises(ValueError, match="target"):
        fl.margin_ranking_loss(np.zeros(3), np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="input2"):
        fl.margin_ranking_loss(np.zeros(3), np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="target"):      # ((3,) and (3, 1) broadcast, as in torch)
        fl.hinge_embedding_loss(np.zeros(3), np.ones(4))
    with pytest.raises(ValueError, match="label"):
        fl.contrastive_loss(a, a, np.ones(5))
    with pytest.raises(ValueError, match="out"):
        fl.triplet_margin_loss(a, a, a, reduction="none", out=np.empty(3))
    with pytest.raises(ValueError, match="num_threads"):
        fl.triplet_margin_loss(a, a, a, num_threads=0)
    with pytest.raises(ValueError, match="labels"):
        fl.batch_hard_triplet_loss(a, np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="labels"):
        fl.batch_all_triplet_loss(a, np.zeros(4))
    with pytest.raises(ValueError, match="embeddings"):
        fl.batch_hard_triplet_loss(np.zeros(4), np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="temperature"):
        fl.nt_xent_loss(a, a, temperature=0.0)
    with pytest.raises(ValueError, match="z2"):
        fl.nt_xent_loss(a, a[:3])
    with pytest.raises(ValueError, match="key"):
        fl.info_nce_loss(a, a[:3])
    with pytest.raises(ValueError, match="size_average"):
        fl.hinge_embedding_loss(np.zeros(3), np.ones(3), size_average=True)


# ------------------------------------------------------------------- rows of few features (feature-major tiles)
def _few_feature_rows(rng, N, D, dtype):
    """Three (N, D) arrays with hostile rows among ordinary ones: identical rows (distances of eps only),
    swap ties (a = p: d(a, n) = d(p, n)), zero rows, +-1e4 and 1e-3 scales, and +-inf / nan entries."""
    a, p, n = (rng.standard_normal((N, D)) for _ in range(3))
    p[:7] = a[:7]
    n[:4] = a[:4]
    a[7:11] = 0
    p[9:11] = 0
    a[11:14] *= 1e4
    p[11:14] = a[11:14] + rng.standard_normal((3, D))
    a[14:17] *= 1e-3
    p[14:17] = a[14:17] * (1 + 1e-3)
    n[14:17] = 0
    a[20, D // 2], p[21, 0], n[22, D - 1], a[23, 0], p[24, :] = np.nan, np.inf, -np.inf, -np.inf, np.inf
    p[25:28, 0] = a[25:28, 0]                   # one equal entry: a zero difference in a nonzero norm
    n[26:28, D - 1] = a[26:28, D - 1]
    return [x.astype(dtype) for x in (a, p, n)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1, 2, 3, 4, 5, 8, 16, 17, 33])
def test_triplet_few_features_tiles_and_rows_match_torch(dtype, D):
    """Rows of few features go through feature-major tiles (metric.pyx's pair_tiles_win: the loss alone up
    to D = 16, with the gradient up to 4 / 3), the rest through the rows: both sides of each bound, p = 2
    and 1, swap, more than one tile (N = 1037: 256-row tiles and a tail), hostile rows, against float64 torch;
    values, gradients and nan / inf positions."""
    rng = np.random.default_rng(40 + D)
    a, pos, neg = _few_feature_rows(rng, 1037, D, dtype)
    for kw in ({}, {"swap": True}, {"p": 1}, {"p": 1, "swap": True}, {"eps": 0.0, "margin": 0.3},
               {"p": 1, "eps": 0.0, "margin": 3.0}):
        want, want_g = torch_triplet(*(x.astype(np.float64) for x in (a, pos, neg)), reduction="none", **kw)
        # |margin + d_ap - d_an| cancels terms of the distances' size (1e4 rows): SPEC's cancellation rule
        scale = 1 + np.abs(a.astype(np.float64)).sum(1) + np.abs(pos.astype(np.float64)).sum(1)
        got, got_g = fl.triplet_margin_loss(a, pos, neg, reduction="none", return_grad=True, **kw)
        assert_close_spec(got, want, dtype, reduced=False, what=f"D={D} {kw} value", cancel=scale)
        assert_close_spec(fl.triplet_margin_loss(a, pos, neg, reduction="none", **kw), want, dtype, reduced=False,
                          what=f"D={D} {kw} value without the gradient", cancel=scale)
        for g, w, name in zip(got_g, want_g, ("anchor", "positive", "negative")):
            assert_close_spec(g, w, dtype, reduced=False, what=f"D={D} {kw} grad {name}")
        finite = np.isfinite(want)
        assert_close_spec(fl.triplet_margin_loss(a[finite], pos[finite], neg[finite], reduction="sum", **kw),
                          want[finite].sum(), dtype, what=f"D={D} {kw} sum")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1, 2, 3, 4, 5, 16, 17, 64, 65])
def test_cosine_embedding_few_features_tiles_and_rows_match_torch(dtype, D):
    """cosine_embedding_loss through feature-major tiles (loss alone up to D = 64 / 16, with the gradient up
    to 16 / 4) and rows, on both sides of each bound: targets 1, -1 and other values, zero and parallel
    vectors, cos = margin, +-1e4 and inf / nan rows, against float64 torch."""
    rng = np.random.default_rng(60 + D)
    x1, x2, _ = _few_feature_rows(rng, 1037, D, dtype)
    x2[30:40] = x1[30:40] * 3                       # parallel: cos = 1
    x2[40:45] = -x1[40:45]                          # opposite: cos = -1 = margin below
    y = np.where(rng.random(1037) < 0.5, 1.0, -1.0)
    y[::17] = 0.0
    y[40:45] = -1.0
    y = y.astype(dtype)
    for margin in (0.0, -1.0, 0.5):
        ts = [to_torch64(x, requires_grad=True) for x in (x1, x2)]
        v = F.cosine_embedding_loss(*ts, torch.from_numpy(y.astype(np.float64)), margin=margin, reduction="none")
        v.sum().backward()
        got, (g1, g2) = fl.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="none", return_grad=True)
        assert_close_spec(got, v.detach().numpy(), dtype, reduced=False, what=f"D={D} margin={margin} value")
        assert_close_spec(fl.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="none"), v.detach().numpy(),
                          dtype, reduced=False, what=f"D={D} margin={margin} value without the gradient")
        # d cos / d x1 = x2 / |x1||x2| - cos x1 / |x1|^2: near-parallel rows cancel terms of size 1 / |x1|
        with np.errstate(all="ignore"):
            m1, m2 = (np.sum(x.astype(np.float64) ** 2, 1, keepdims=True) + 1e-12 for x in (x1, x2))
            terms = (np.abs(x1) + np.abs(x2)) / np.sqrt(m1 * m2) + np.abs(x1) / m1 + np.abs(x2) / m2
        assert_close_spec(g1, ts[0].grad.numpy(), dtype, reduced=False, what=f"D={D} margin={margin} grad x1",
                          cancel=terms)
        assert_close_spec(g2, ts[1].grad.numpy(), dtype, reduced=False, what=f"D={D} margin={margin} grad x2",
                          cancel=terms)


@pytest.mark.parametrize("name", ["triplet_margin_loss", "cosine_embedding_loss"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_few_feature_tiles_same_bits_for_every_thread_count(name, dtype):
    """Tiles inside blocks: the mean, the sum, the per-row losses and the gradient keep their bits at 1-4
    threads (D = 3: the loss alone and the gradient both take tiles)."""
    rng = np.random.default_rng(70)
    a, b, c = (rng.standard_normal((200_003, 3)).astype(dtype) for _ in range(3))
    args = (a, b, c) if name == "triplet_margin_loss" else (a, b, np.sign(c[:, 0]))
    first = None
    for nt in (1, 2, 3, 4):
        got = [np.asarray(getattr(fl, name)(*args, reduction=r, num_threads=nt)).tobytes()
               for r in ("mean", "sum", "none")]
        v, g = getattr(fl, name)(*args, reduction="mean", num_threads=nt, return_grad=True)
        got += [v.tobytes()] + [x.tobytes() for x in g]
        first = first or got
        assert got == first, f"num_threads={nt}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_all_duplicate_embeddings(dtype):
    """Repeated embeddings (the same image twice in a batch, or embeddings collapsed at initialisation) are
    at distance 0, where the Gram form's d^2 is pure rounding noise: its square root (~1e-8 |e|) made the
    gradient's 1/d huge and the gradient GEMM cancel to noise (relative errors of 1.5e-8 in float64; 5e-10
    instead of 0 for identical rows).  Against distances from the differences themselves (torch, float64;
    d = 0 passes no gradient, as sqrt's clamp in the usual formula), at scales from 1e-58 to 1e3; and rows
    that are all identical have the loss margin and a gradient of exactly 0."""
    rng = np.random.default_rng(11)
    for scale in [1e-58, 1e-20, 1e-3, 1.0, 1e3]:
        for _ in range(3):
            e = (rng.standard_normal((4, 16)) * scale)[rng.integers(0, 4, 12)].astype(dtype)
            y = rng.integers(0, 3, 12)
            margin = 0.5 * scale
            t = torch.tensor(e, dtype=torch.float64, requires_grad=True)
            d = ((t[:, None, :] - t[None, :, :]) ** 2).sum(-1).clamp_min(1e-300).sqrt()
            yy = torch.tensor(y)
            same = yy[:, None] == yy[None, :]
            valid = (same & ~torch.eye(12, dtype=torch.bool))[:, :, None] & (~same)[:, None, :]
            loss = torch.where(valid, torch.clamp_min(d[:, :, None] - d[:, None, :] + margin, 0), 0.0)
            (loss.sum() / (loss > 0).sum()).backward()
            got, g = fl.batch_all_triplet_loss(e, y, margin=margin, return_grad=True)
            ref = (loss.sum() / (loss > 0).sum()).item()
            assert_close_spec(got, ref, dtype, what=f"loss, scale {scale}")
            gmax = np.abs(t.grad.numpy()).max()
            # the gradient to SPEC's relative rule on its largest entry (entries are sums of +-(e_i - e_j)/d)
            assert np.abs(g - t.grad.numpy()).max() <= (1e-5 if dtype == np.float32 else 1e-12) * gmax, scale
        same_rows = np.full((8, 16), scale, dtype)
        got, g = fl.batch_all_triplet_loss(same_rows, np.array([-1, -2, -3, 0, 0, 0, 0, 0]), margin=0.5,
                                           return_grad=True)
        assert got == dtype(0.5) and not g.any(), (scale, got, np.abs(g).max())
