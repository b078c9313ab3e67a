"""Regression tests for what differential fuzz runs against torch found (issue 16's thirteenth session; the
runs' scripts are not part of the suite): each case against torch (float64) or the rule of SPEC §5 that it
broke -- a parameter or label that slipped past validation, a NaN that a gradient or a pairwise IoU lost, an
empty shape that reached a kernel, a mean over zero weight.  (The pairwise IoU's NaN: tests/test_boxes.py.)"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fl_testing import assert_close_spec

NAN = float("nan")


# ------------------------------------------------------------------ parameters and labels
@pytest.mark.parametrize("call", [
    lambda: fl.huber_loss(np.array([0.5, 3.0]), np.zeros(2), delta=NAN),
    lambda: fl.smooth_l1_loss(np.array([0.5, 3.0]), np.zeros(2), beta=NAN),
    lambda: fl.quantile_loss(np.array([0.5, 3.0]), np.zeros(2), q=NAN),
    lambda: fl.cross_entropy(np.zeros((2, 3)), [0, 1], label_smoothing=NAN),
    lambda: fl.softmax_focal_loss(np.zeros((2, 3)), [0, 1], gamma=NAN),
], ids=["delta", "beta", "q", "label_smoothing", "gamma"])
def test_nan_parameter_with_a_range_is_a_value_error(call):
    """A bounded parameter of nan passed every `v < low` check and made the result nan (or, for
    label_smoothing, torch's accidental 'no smoothing'): now a ValueError naming its range."""
    with pytest.raises(ValueError, match="must be a number .*got nan"):
        call()


def test_uint64_labels_past_int64_are_an_index_error_with_their_value():
    """uint64 labels were cast to int64: 2^64 - 100 wrapped to -100 = ignore_index and was skipped."""
    x = np.zeros((3, 4))
    for f in (fl.cross_entropy, fl.nll_loss, fl.multi_margin_loss):
        with pytest.raises(IndexError, match="18446744073709551516 at position 1"):
            f(x, np.array([0, 2**64 - 100, 1], dtype=np.uint64))
    y = np.array([0, 2, 1], dtype=np.uint64)        # small uint64 labels stay valid
    assert_close_spec(fl.cross_entropy(x, y), F.cross_entropy(torch.tensor(x), torch.tensor([0, 2, 1])),
                      np.float64)


@pytest.mark.parametrize("value", [2**63, -2**63 - 1, 2**70])
def test_ignore_index_beyond_int64_is_a_value_error_naming_it(value):
    """An ignore_index outside int64 reached the kernels' int64 argument: an OverflowError naming nothing."""
    with pytest.raises(ValueError, match="ignore_index must be an integer within int64"):
        fl.cross_entropy(np.zeros((2, 3)), [0, 1], ignore_index=value)
    with pytest.raises(ValueError, match="ignore_index must be an integer within int64"):
        fl.dice_loss(np.zeros((2, 3, 4)), np.zeros((2, 4), dtype=np.int64), ignore_index=value)
    assert np.isfinite(fl.cross_entropy(np.zeros((2, 3)), [0, 1], ignore_index=2**63 - 1))


def test_num_threads_huge_or_numpy():
    """num_threads=2**40 was an OverflowError from inside a kernel; a NumPy integer was refused."""
    x = np.ones(3)
    with pytest.raises(ValueError, match="num_threads must be None or an int >= 1"):
        fl.mse_loss(x, x, num_threads=2**40)
    for n in (np.int64(2), np.int32(1)):
        assert fl.mse_loss(x, x + 1, num_threads=n) == 1.0


def test_str_subclass_choices():
    """numpy.str_ (what np.random.choice of strings returns) is a str: accepted as torch accepts it."""
    x, y = np.array([[0.0, 1.0], [2.0, 0.5]]), np.array([1, 0])
    ref = F.cross_entropy(torch.tensor(x), torch.tensor(y), reduction="sum")
    assert_close_spec(fl.cross_entropy(x, y, reduction=np.str_("sum")), ref, np.float64)
    b = np.array([[0.0, 0.0, 2.0, 2.0]])
    assert fl.box_iou(b, b, box_format=np.str_("xywh"))[0, 0] == 1.0
    state = fl.partial("cross_entropy", x, y, reduction=np.str_("mean"))
    assert np.isclose(state.finalize(), F.cross_entropy(torch.tensor(x), torch.tensor(y)).item(), rtol=1e-12)
    with pytest.raises(ValueError, match="reduction must be one of"):
        fl.cross_entropy(x, y, reduction=np.str_("avg"))


# ------------------------------------------------------------------ values
def test_weighted_smoothed_mean_over_zero_target_weight_is_nan():
    """Every target weighing 0: torch's mean is nan (0/0 plus the smoothing terms' x/0); fastloss gave inf."""
    x, y, w = np.array([[0.0, 1.0], [2.0, 0.0]]), np.array([1, 1]), np.array([1.0, 0.0])
    for eps in (0.0, 0.1):
        ref = F.cross_entropy(torch.tensor(x), torch.tensor(y), weight=torch.tensor(w), label_smoothing=eps)
        assert np.isnan(ref.item())
        assert np.isnan(fl.cross_entropy(x, y, weight=w, label_smoothing=eps))
        assert np.isnan(fl.cross_entropy(x.astype(np.float32), y, weight=w.astype(np.float32),
                                         label_smoothing=eps))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gaussian_nll_empty_rows_with_one_variance_each(reduction):
    """An empty last axis with a variance per row reached the kernel's rows check (K = 0) as an internal
    error; torch gives an empty loss, nan and 0."""
    x = np.zeros((3, 0))
    for var in (np.ones(3), np.ones((3, 1))):
        ref = F.gaussian_nll_loss(torch.tensor(x), torch.tensor(x), torch.tensor(var), reduction=reduction)
        got = fl.gaussian_nll_loss(x, x, var, reduction=reduction)
        assert np.shape(got) == tuple(ref.shape)
        assert np.array_equal(np.asarray(got), ref.numpy(), equal_nan=True)
    val, (g, gv) = fl.gaussian_nll_loss(x, x, np.ones((3, 1)), reduction="sum", return_grad=True)
    assert g.shape == (3, 0) and gv.shape == (3, 1) and not gv.any()


# ------------------------------------------------------------------ gradients at nan
def grad64(f, *args, **kw):
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=i < 2) for i, a in enumerate(args)]
    f(*ts, reduction="sum", **kw).backward()
    return [t.grad.numpy() for t in ts[:2]]


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
def test_smooth_l1_gradient_at_nan_is_torchs(beta):
    """smooth_l1's gradient took sign(nan) = 0 at a nan difference; torch's backward (d < -beta, d > beta,
    else d / beta) gives nan for beta > 0 and its l1_loss's 0 for beta = 0."""
    x, y = np.array([NAN, 2.0, 0.0, 0.2, -5.0]), np.array([0.0, 0.0, 0.0, NAN, 0.0])
    ref_x, _ = grad64(F.smooth_l1_loss, x, y, beta=beta)
    for dt in (np.float64, np.float32):
        _, gx = fl.smooth_l1_loss(x.astype(dt), y.astype(dt), beta=beta, reduction="sum", return_grad=True)
        assert np.array_equal(np.isnan(gx), np.isnan(ref_x)), (beta, dt, gx, ref_x)
        assert_close_spec(gx, ref_x, dt, reduced=False)


def test_margin_ranking_gradient_at_nan_is_torchs():
    """The gradient selected -y where z >= 0, else 0: torch multiplies the mask by -y, so a nan target
    gives nan (0 * nan) and a nan score with a finite target 0."""
    x1, x2 = np.array([NAN, 1.0, 0.0, 2.0, 0.1]), np.array([0.0, 0.0, 0.0, 0.0, NAN])
    y = np.array([1.0, NAN, -1.0, 1.0, -1.0])
    ref1, ref2 = grad64(F.margin_ranking_loss, x1, x2, y, margin=0.5)
    for dt in (np.float64, np.float32):
        _, (g1, g2) = fl.margin_ranking_loss(x1.astype(dt), x2.astype(dt), y.astype(dt), margin=0.5,
                                             reduction="sum", return_grad=True)
        for g, ref in ((g1, ref1), (g2, ref2)):
            assert np.array_equal(np.isnan(g), np.isnan(ref)), (g, ref)
            assert_close_spec(g, ref, dt, reduced=False)


# ------------------------------------------------------------------ shapes torch accepts
@pytest.mark.parametrize("shapes", [((4, 5), (1, 5), (4, 5)), ((2, 3, 5),) * 3, ((2, 1, 5), (1, 3, 5), (2, 3, 1)),
                                    ((3, 1, 4), (3, 2, 4), (1, 2, 4)), ((0, 5), (1, 5), (0, 5))],
                         ids=["row-broadcast", "3d", "3d-broadcast", "mixed", "empty"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_triplet_margin_broadcasts_as_torch(shapes, dtype):
    """triplet_margin_loss refused what torch's pairwise_distance broadcasts (a (1, D) positive, (A, B, D)
    operands): now the loss of the broadcast batch shape, each gradient summed back to its operand."""
    rng = np.random.default_rng(7)
    a, p, n = (rng.standard_normal(s).astype(dtype) for s in shapes)
    for reduction in ("none", "mean", "sum"):
        for swap in (False, True):
            ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, p, n)]
            ref = F.triplet_margin_loss(*ts, reduction=reduction, swap=swap)
            ref.sum().backward()
            val, grads = fl.triplet_margin_loss(a, p, n, reduction=reduction, swap=swap, return_grad=True)
            assert np.shape(val) == tuple(ref.shape)
            assert_close_spec(val, ref.detach().numpy(), dtype)
            assert_close_spec(fl.triplet_margin_loss(a, p, n, reduction=reduction, swap=swap),
                              ref.detach().numpy(), dtype)
            for g, t in zip(grads, ts):
                assert g.shape == t.shape
                assert_close_spec(g, t.grad.numpy(), dtype, reduced=False)
    with pytest.raises(ValueError, match="same number of dimensions"):
        fl.triplet_margin_loss(a, p[..., 0, :] if p.ndim > 2 else p[0], n)


@pytest.mark.parametrize("shapes", [((5, 3), (1, 3), (5,)), ((1, 3), (5, 3), (5,)), ((5, 3), (5, 3), (1,)),
                                    ((1, 3), (1, 3), (5,)), ((4, 3), (1, 3), (1,)), ((0, 3), (1, 3), (0,))],
                         ids=["input2-row", "input1-row", "one-target", "target-broadcasts-rows", "both",
                              "empty"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_cosine_embedding_broadcasts_as_torch(shapes, dtype):
    """cosine_embedding_loss refused the rows and targets torch's products and ``where`` broadcast: now the
    loss of the broadcast shape, each gradient summed back to its input's shape."""
    rng = np.random.default_rng(8)
    a, b = (rng.standard_normal(s).astype(dtype) for s in shapes[:2])
    y = rng.choice([-1.0, 1.0], size=shapes[2])
    for reduction in ("none", "mean", "sum"):
        ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, b)]
        ref = F.cosine_embedding_loss(*ts, torch.tensor(y), margin=0.1, reduction=reduction)
        ref.sum().backward()
        val, grads = fl.cosine_embedding_loss(a, b, y, margin=0.1, reduction=reduction, return_grad=True)
        assert np.shape(val) == tuple(ref.shape)
        assert_close_spec(val, ref.detach().numpy(), dtype)
        for g, t in zip(grads, ts):
            assert g.shape == t.shape
            assert_close_spec(g, t.grad.numpy(), dtype, reduced=False)
    with pytest.raises(ValueError, match="must broadcast together"):
        fl.cosine_embedding_loss(np.zeros((5, 3)), np.zeros((4, 3)), np.ones(5))


@pytest.mark.parametrize("p", [0.0, -1.0, -2.5, -np.inf, 0.5], ids=["0", "-1", "-2.5", "-inf", "0.5"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_triplet_margin_norm_degree_zero_and_negative_as_torch(p, dtype):
    """triplet_margin_loss refused p <= 0, which torch's norm computes: p = 0 counts the nonzero entries
    (gradient 0), p < 0 is (sum |d|^p)^(1/p) (0 when an entry is 0), p = -inf the smallest |d|."""
    rng = np.random.default_rng(9)
    a, pos, neg = (rng.standard_normal((6, 5)).astype(dtype) for _ in range(3))
    pos[1, 2] = a[1, 2]             # a zero difference (eps=0 below): a zero p < 0 norm, a smaller count
    neg[2, :2] = a[2, :2] + 0.25    # a tie of the smallest |d| (p = -inf shares the gradient)
    for eps in (0.0, 1e-6):
        for swap in (False, True):
            for reduction in ("none", "sum"):
                ts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, pos, neg)]
                ref = F.triplet_margin_loss(*ts, margin=0.5, p=p, eps=eps, swap=swap, reduction=reduction)
                ref_grads = torch.autograd.grad(ref.sum(), ts, allow_unused=True, materialize_grads=True)
                val, grads = fl.triplet_margin_loss(a, pos, neg, margin=0.5, p=p, eps=eps, swap=swap,
                                                    reduction=reduction, return_grad=True)
                assert_close_spec(val, ref.detach().numpy(), dtype)
                for g, r in zip(grads, ref_grads):
                    assert_close_spec(g, r.numpy(), dtype, reduced=False)
    with pytest.raises(ValueError, match="p must be a number"):
        fl.triplet_margin_loss(a, pos, neg, p=NAN)


@pytest.mark.parametrize("p", [-1.0, np.inf, -np.inf])
def test_triplet_margin_norm_of_no_entries_is_a_value_error(p):
    """torch has no max, min or negative-power norm of an empty vector (a RuntimeError); fastloss gave 1."""
    e = np.zeros((3, 0))
    with pytest.raises(ValueError, match="needs at least one entry per vector"):
        fl.triplet_margin_loss(e, e, e, p=p)
    assert fl.triplet_margin_loss(e, e, e, p=2) == 1.0      # torch: d = 0, loss = margin


def test_ignore_index_naming_a_class_with_probability_targets_is_refused_as_torch():
    """torch refuses ignore_index >= 0 with probability targets (it cannot apply); fastloss ignored it."""
    x = np.random.default_rng(10).standard_normal((4, 3))
    t = np.full((4, 3), 1 / 3)
    for ii in (0, 2, 10):
        with pytest.raises(RuntimeError, match="ignore_index is not supported"):
            F.cross_entropy(torch.tensor(x), torch.tensor(t), ignore_index=ii)
        with pytest.raises(ValueError, match=f"ignore_index={ii} names a class"):
            fl.cross_entropy(x, t, ignore_index=ii)
    for ii in (-100, -1):           # torch's accepted values: no effect on probability targets
        assert_close_spec(fl.cross_entropy(x, t, ignore_index=ii),
                          F.cross_entropy(torch.tensor(x), torch.tensor(t), ignore_index=ii), np.float64)


@pytest.mark.parametrize("f", [fl.cross_entropy, fl.nll_loss], ids=["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("spatial", [(3, 4), (3,), (3, 4, 2)], ids=["2d", "1d", "3d"])
def test_zero_classes_at_spatial_positions_all_ignored_as_torch(f, spatial):
    """(N, 0, d...) logits with every target ignored: torch's (N, 0, H, W) gives losses 0, a nan mean, a
    zero gradient (its 1-d and 3-d spatial cases fail a reshape, "size mismatch", an artefact: the same
    values are taken); fastloss refused every spatial case.  A target that is not ignored stays an
    IndexError, as torch's "Target 0 is out of bounds"."""
    shape = (2, 0) + spatial
    x = np.zeros(shape)
    y = np.full((2,) + spatial, -100)
    ref_x = torch.zeros((2, 0, 3, 4), dtype=torch.float64, requires_grad=True)
    ref_y = torch.full((2, 3, 4), -100)
    tf = F.cross_entropy if f is fl.cross_entropy else F.nll_loss
    for reduction in ("mean", "sum"):
        ref = tf(ref_x, ref_y, reduction=reduction)
        (ref_g,) = torch.autograd.grad(ref, ref_x)
        val, g = f(x, y, reduction=reduction, return_grad=True)
        assert_close_spec(val, ref.detach().numpy(), np.float64)
        assert g.shape == shape and ref_g.shape == (2, 0, 3, 4)
    none = f(x, y, reduction="none")
    assert none.shape == y.shape and not none.any() and not tf(ref_x, ref_y, reduction="none").detach().any()
    y[1, 0] = 0
    with pytest.raises(IndexError, match="Target 0 is out of bounds"):
        tf(ref_x, torch.zeros((2, 3, 4), dtype=torch.long))
    with pytest.raises(IndexError, match="class index 0 at position"):
        f(x, y)


@pytest.mark.parametrize("C", [5, 10, 30, 100], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("spatial", [False, True], ids=["rows", "spatial"])
def test_ignored_item_with_nan_or_inf_logits_has_gradient_zero(C, dtype, spatial):
    """An ignored item's gradient is 0 (the documented rule; torch's is all nan where the item holds a nan
    logit, an artefact of 0 * nan): the class-major tiles and the spatial layout left nan at the nan /
    +inf entries (exp of them times a scale of 0); the row path wrote 0.  The other items: float64 torch."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((6, C) + ((3,) if spatial else ())).astype(dtype)
    y = rng.integers(0, C, (6,) + ((3,) if spatial else ()))
    y[1] = -100
    y[4] = -100
    x[1, 2] = np.nan
    x[4, 0] = np.inf
    clean = x.copy()
    clean[[1, 4]] = 0                       # torch's reference on the same targets, the ignored items finite
    w = rng.uniform(0.5, 2, C).astype(dtype)
    for kw in ({}, {"label_smoothing": 0.1, "weight": w}):
        for f, tf in ((fl.cross_entropy, F.cross_entropy), (fl.softmax_focal_loss, None)):
            if tf is None and "label_smoothing" in kw:
                continue
            val, g = f(x, y, reduction="sum", return_grad=True, **kw)
            assert not g[[1, 4]].any(), f"{f.__name__} {kw}: an ignored item's gradient is not 0"
            if tf is not None:
                tx = torch.tensor(clean, dtype=torch.float64, requires_grad=True)
                tkw = {k: torch.tensor(v, dtype=torch.float64) if k == "weight" else v for k, v in kw.items()}
                ref = tf(tx, torch.tensor(y), reduction="sum", **tkw)
                (rg,) = torch.autograd.grad(ref, tx)
                assert_close_spec(val, ref.detach().numpy(), dtype)
                keep = [0, 2, 3, 5]
                assert_close_spec(g[keep], rg.numpy()[keep], dtype, reduced=False)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_sigmoid_focal_gradient_at_infinite_logits_as_torchvision(gamma, dtype):
    """gamma = 0 at +-inf logits: torch's pow backward gives zeros for exponent 0, so the gradient is
    alpha_t (p - t); fastloss formed ce * 0 with ce infinite, nan.  (Other gammas: torch's own nans kept.)"""
    from fastloss._reference.binary import torchvision_sigmoid_focal_loss
    x = np.array([np.inf, -np.inf, np.inf, -np.inf, 30.0, -30.0, 0.5, np.nan], dtype=dtype)
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.3, 1.0], dtype=dtype)
    for alpha in (0.25, -1.0):
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        ref = torchvision_sigmoid_focal_loss(tx, torch.tensor(t, dtype=torch.float64), alpha=alpha, gamma=gamma,
                                             reduction="none")
        (rg,) = torch.autograd.grad(ref.sum(), tx)
        val, g = fl.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction="none", return_grad=True)
        rv, rg = ref.detach().numpy(), rg.numpy()
        np.testing.assert_array_equal(np.isnan(val), np.isnan(rv))
        np.testing.assert_array_equal(np.isnan(g), np.isnan(rg))
        fin = ~np.isnan(rg)
        assert_close_spec(g[fin], rg[fin], dtype, reduced=False)
