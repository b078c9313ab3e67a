"""Accuracy on hostile inputs for the non-cross-entropy families (issue 14): regression, binary,
BCE-with-logits, boxes, metric learning, segmentation.  (The cross-entropy family has its own.)

Three parts:

1. The reported cases, one test each, named ``test_hostile_*``: tests/test_threads.py re-runs every
   hostile test at each usable ISA level forced with ``FASTLOSS_ISA``, so each holds on every level.
2. ``test_one_answer_on_every_isa_level``: the hostile input set of ``tests/_accuracy_cases.py`` (the
   cases above, +-1e4, +-inf, nan, zero-area and identical boxes, identical embeddings, near-pi ArcFace
   rows, ...) computed in a fresh interpreter per usable level; every level must agree with the float64
   reference and with every other level within SPEC §4, and a float64 gradient that the reference and
   one level give as exactly 0 must be exactly 0 on every level (FMA contraction is the usual culprit).
3. ``test_float32_accuracy_sweep``: per loss, the worst error of float32 results (values, means,
   gradients) over the finite hostile grid against the float64 reference, printed as a table
   (``pytest -s``) and held to SPEC §4.

References are independent: the shared torch / NumPy formulas in float64 on the exactly upcast
inputs (gradients by torch.autograd), and mpmath where float64 itself is not exact enough.  For float64
input the reference's own rounding is allowed for (``spread``: how far the reference moves when its
inputs move by 16 ulp, as in tests/test_fuzz.py); float32 results get no such allowance.  Where an
input is +-inf or nan, gradients are implementation artifacts in torch too (0 * inf, a max over nan):
they are compared between levels only.
"""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from fl_testing import assert_close_spec, tolerances

import fastloss as fl
from fastloss._kernels import ISA_LEVEL, usable_levels
from fastloss._reference import REFERENCES

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))


def _load_cases():
    spec = importlib.util.spec_from_file_location("_accuracy_cases", os.path.join(HERE, "_accuracy_cases.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


A = _load_cases()
USABLE = usable_levels()


# ------------------------------------------------------------------------------------ agreement
def tolerance_ratio(got, ref, dtype, reduced, spread=None):
    """|got - ref| / (rtol |ref| + atol [+ 2 spread]) elementwise (SPEC §4: <= 1 passes), with
    non-finite references matched exactly (nan == nan, infinities equal in sign): inf otherwise.
    A reduction is held to SPEC's relative bound alone (no absolute floor: a mean of small losses,
    e.g. 1.7e-4 for near-identical boxes, must keep its 1e-6 relative too)."""
    rtol, atol = tolerances(dtype, reduced)
    if reduced:
        atol = 1e-300
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    with np.errstate(all="ignore"):
        allowed = rtol * np.abs(ref) + atol
        if spread is not None:
            allowed = allowed + 2 * np.where(np.isfinite(spread), spread, 0)
        ratio = np.abs(got - ref) / allowed
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))
        ratio = np.where(same, 0.0, ratio)
        ratio = np.where(np.isfinite(ref), ratio, np.where(same, 0.0, np.inf))
        return np.where(np.isnan(ratio), np.inf, ratio)


def worst(ratio, got, ref):
    """(worst ratio, description of the worst element)."""
    if ratio.size == 0:
        return 0.0, ""
    i = np.unravel_index(np.argmax(ratio), ratio.shape)
    g, r = np.asarray(got, np.float64)[i], np.asarray(ref, np.float64)[i]
    return float(ratio[i]), f"at {tuple(int(k) for k in i)}: got {g!r}, reference {r!r}"


def is_finite_case(case):
    return all(np.isfinite(a).all() for a in case[2] if isinstance(a, np.ndarray) and a.dtype.kind == "f")


def perturbed_spread(case, ref, rng, times=2):
    """Per part: the largest move of the float64 reference under 16-ulp relative perturbations of the
    differentiated inputs (targets keep their exact values: +-1 labels, probabilities <= 1)."""
    spread = {k: np.zeros(np.shape(v)) for k, v in ref.items()}
    argnums = REFERENCES[case[1]].grad_argnums
    for _ in range(times):
        args = tuple(a * (1 + rng.uniform(-16, 16, a.shape) * np.finfo(np.float64).eps)
                     if i in argnums and isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
                     for i, a in enumerate(case[2]))
        moved = A.reference_case((case[0], case[1], args, case[3]))
        for k, r in ref.items():
            with np.errstate(all="ignore"):
                spread[k] = np.fmax(spread[k], np.abs(moved[k] - r))
    return spread


def check_case_against_reference(case, got, ref, dtype, spread=None):
    """Failures (strings) of one case's parts against the reference."""
    fails = []
    finite = is_finite_case(case)
    for part, r in ref.items():
        if part.startswith("grad") and not finite:
            continue
        g = got[part]
        if np.shape(g) != np.shape(r):
            fails.append(f"{case[0]} {part}: shape {np.shape(g)}, reference {np.shape(r)}")
            continue
        ratio = tolerance_ratio(g, r, dtype, part == "mean", None if spread is None else spread[part])
        w, where = worst(ratio, g, r)
        if w > 1:
            fails.append(f"{case[0]} {part}: {w:.3g} x SPEC tolerance {where}")
    return fails


# ================================================================================ 1. reported cases
def test_hostile_log_cosh_issue_case_and_every_d():
    """float32 full(10**6, 0.06267813) vs zeros: mean 0.0019629891 (was 0.0019629002, 4.5e-5 off: the
    stable form |d| + log1p(exp(-2|d|)) - log 2 cancels for small |d|); and every |d| from 1e-30 to 1e3
    in both dtypes, value and gradient tanh(d), against mpmath."""
    import mpmath as mp
    mp.mp.dps = 40
    x = np.full(10**6, 0.06267813, np.float32)
    d0 = mp.mpf(float(x[0]))
    want = float(mp.log(mp.cosh(d0)))
    assert_close_spec(fl.log_cosh_loss(x, np.zeros_like(x), reduction="mean"), want, np.float32, what="mean")
    assert_close_spec(fl.log_cosh_loss(x, np.zeros_like(x), reduction="sum"), want * 10**6, np.float32, what="sum")
    d = np.concatenate([np.linspace(-3, 3, 601), np.logspace(-30, 3, 200), -np.logspace(-30, 3, 200),
                        [0.0625, 1.0, -1.0, np.nextafter(1.0, 0), 0.0]])
    for dtype in (np.float32, np.float64):
        dd = d.astype(dtype)
        ref_v = np.array([float(mp.log(mp.cosh(mp.mpf(float(v))))) for v in dd])
        ref_g = np.array([float(mp.tanh(mp.mpf(float(v)))) for v in dd])
        y = np.zeros_like(dd)
        v, g = fl.log_cosh_loss(dd, y, reduction="none", return_grad=True)
        # float64: 1e-12 relative, and denormal results (d^2 / 2 < 1e-308) to the last denormal bits
        assert_close_spec(v, ref_v, dtype, what=f"value {dtype.__name__}")
        assert_close_spec(g, ref_g, dtype, what=f"gradient {dtype.__name__}")
        # the gradient of x and of the target: same numbers, opposite sign (no separate formula)
        np.testing.assert_array_equal(fl.log_cosh_loss(y, dd, reduction="none"), v)


@pytest.mark.parametrize("name", ["iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss",
                                  "complete_box_iou_loss"])
def test_hostile_near_identical_float32_boxes(name):
    """500 random boxes and the same + 1e-4 noise, float32: iou_loss mean was 1.7044591e-4 (baseline) /
    1.7044842e-4 (avx2) against 1.7045241e-4 -- 1 - iou of two numbers ~1 in float32."""
    rng = np.random.default_rng(0)
    b1 = rng.random((500, 4)) * 100
    b1[:, 2:] += b1[:, :2] + 1
    b2 = b1 + 1e-4 * rng.standard_normal(b1.shape)
    b1, b2 = b1.astype(np.float32), b2.astype(np.float32)
    ref = REFERENCES[name].torch_ref
    t1, t2 = torch.from_numpy(b1).double(), torch.from_numpy(b2).double()
    for red in ("none", "mean", "sum"):
        assert_close_spec(getattr(fl, name)(b1, b2, reduction=red), ref(t1, t2, reduction=red), np.float32,
                          what=red)
    _, g = getattr(fl, name)(b1, b2, reduction="none", return_grad=True)
    t1.requires_grad_(True)
    ref(t1, t2, reduction="none").sum().backward()
    assert_close_spec(g, t1.grad, np.float32, what="gradient")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hostile_box_pair_results_do_not_depend_on_position(dtype):
    """A pair's loss and gradient are the same bits whether computed in one call or in chunks: the
    kernel's loop has no scalar remainder (GCC contracted its multiply-adds differently there, so the
    last bit depended on the pair's position in a segment; chunked sums then differed by 1e-10)."""
    rng = np.random.default_rng(7)
    b1 = rng.random((3000, 4)) * 10
    b1[:, 2:] += b1[:, :2] + 0.5
    b2 = b1 + rng.standard_normal(b1.shape) * rng.choice([1e-3, 0.3, 5.0], (3000, 1))
    b1, b2 = b1.astype(dtype), b2.astype(dtype)
    for name in ("iou_loss", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        fn = getattr(fl, name)
        v, g = fn(b1, b2, reduction="none", return_grad=True)
        for step in (1, 7, 29):
            parts = [fn(b1[i:i + step], b2[i:i + step], reduction="none", return_grad=True)
                     for i in range(0, len(b1), step)]
            np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), v, err_msg=f"{name} {step}")
            np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), g, err_msg=f"{name} {step}")


def test_hostile_triplet_identical_rows_float64_gradient_exactly_zero():
    """triplet_margin_loss(a, a, a): the anchor's gradient is +f d - f d = 0 in exact arithmetic; an FMA
    contraction of the second term left +-1e-18 on avx2/avx512 (torch and the baseline level: 0)."""
    a = np.random.default_rng(2).standard_normal((64, 33))
    for swap in (False, True):
        v, (ga, gp, gn) = fl.triplet_margin_loss(a, a, a, swap=swap, return_grad=True, reduction="sum")
        ta, tp, tn = (torch.from_numpy(a.copy()).requires_grad_(True) for _ in range(3))
        torch.nn.functional.triplet_margin_loss(ta, tp, tn, swap=swap, reduction="sum").backward()
        assert_close_spec(v, 64.0, np.float64, what="value")   # margin 1 on every row
        assert_close_spec(ga, ta.grad, np.float64, what="g_anchor")
        if not swap:        # (with swap, d(p, n) ties d(a, n) and takes half of its gradient: ga = f d / 2)
            np.testing.assert_array_equal(ta.grad.numpy(), 0.0)
            np.testing.assert_array_equal(ga, 0.0)
        assert_close_spec(gp, tp.grad, np.float64, what="g_positive")
        assert_close_spec(gn, tn.grad, np.float64, what="g_negative")


def _focal_mp(x, t, alpha, gamma):
    import mpmath as mp
    p = 1 / (1 + mp.exp(-x))
    log_p = -mp.log1p(mp.exp(-x))          # log sigmoid(x)
    log_1mp = -mp.log1p(mp.exp(x))         # log sigmoid(-x)
    ce = -(t * log_p + (1 - t) * log_1mp)
    q = p * (1 - t) + (1 - p) * t
    at = 1 if alpha < 0 else alpha * t + (1 - alpha) * (1 - t)
    return at * ce * q ** gamma


@pytest.mark.parametrize("gamma", [2.0, 1.5])
def test_hostile_sigmoid_focal_confident_float64(gamma):
    """Confident rows (x = +-40, t = 1 / 0): the gradient lost a third (the (p - t) q^g ce' term: p - t
    rounded to 0); value and gradient against mpmath at 60 digits, float64 to 1e-12."""
    import mpmath as mp
    mp.mp.dps = 60
    xs = np.array([40.0, -40.0, 30.0, -30.0, 20.0, 100.0, -100.0, 600.0, 1e-3, -3.0])
    for t in (1.0, 0.0, 0.25):
        tt = np.full_like(xs, t)
        v, g = fl.sigmoid_focal_loss(xs, tt, gamma=gamma, reduction="none", return_grad=True)
        rv = np.array([float(_focal_mp(mp.mpf(x), mp.mpf(t), 0.25, gamma)) for x in xs])
        rg = np.array([float(mp.diff(lambda z, t=t: _focal_mp(z, mp.mpf(t), 0.25, gamma), mp.mpf(x))) for x in xs])
        np.testing.assert_allclose(v, rv, rtol=1e-12, atol=0, err_msg=f"value t={t}")
        np.testing.assert_allclose(g, rg, rtol=1e-12, atol=0, err_msg=f"gradient t={t}")


@pytest.mark.parametrize("pos_weight", [None, 2.0, 1.0])
def test_hostile_bce_with_logits_infinite_targets_match_torch(pos_weight):
    """An infinite target without pos_weight gave nan (l = 1 + 0 * inf) where torch gives +-inf; with
    pos_weight (even 1.0) torch forms l and gives nan in places: every value and gradient as torch's."""
    x = np.array([-1.0, 0.0, 1.0, 2.0, -np.inf, np.inf, 30.0, -30.0])
    xx, yy = np.meshgrid(x, [np.inf, -np.inf, np.nan, 0.5, 0.0, 1.0])
    xx, yy = xx.ravel(), yy.ravel()
    kw = {} if pos_weight is None else {"pos_weight": np.array(pos_weight)}
    with np.errstate(all="ignore"):
        v, g = fl.binary_cross_entropy_with_logits(xx, yy, reduction="none", return_grad=True, **kw)
    xt = torch.tensor(xx, requires_grad=True)
    tkw = {} if pos_weight is None else {"pos_weight": torch.tensor(pos_weight, dtype=torch.float64)}
    tv = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(yy), reduction="none", **tkw)
    tv.sum().backward()
    # torch forms the loss as (1 - y) x + log(1 + e^-x)-style sums of terms of size |x| (at x = 30, y = 1
    # it is 1.3% off exp(-30)): its absolute error scales with |x|
    assert_close_spec(v, tv, np.float64, what="value", cancel=np.where(np.isfinite(xx), np.abs(xx), 1.0))
    finite_x = np.isfinite(xx)          # d/dx at x = +-inf: torch's autograd of its literal form, 0 * inf
    assert_close_spec(g[finite_x], xt.grad.numpy()[finite_x], np.float64, what="gradient")
    # reduced: a nan sum sends the call through its second, literal-form run (+-inf, not nan, where torch)
    keep = np.isfinite(xx) & ~np.isnan(yy) & ~((xx == 0) & np.isinf(yy))
    for sel in (keep, keep & (yy >= 0), keep & (yy != -np.inf) & (xx > 0)):
        for red in ("sum", "mean"):
            with np.errstate(all="ignore"):
                got, gg = fl.binary_cross_entropy_with_logits(xx[sel], yy[sel], reduction=red, return_grad=True, **kw)
            xs = torch.tensor(xx[sel], requires_grad=True)
            want = torch.nn.functional.binary_cross_entropy_with_logits(xs, torch.tensor(yy[sel]), reduction=red, **tkw)
            want.backward()
            assert_close_spec(got, want, np.float64, what=red)
            assert_close_spec(gg, xs.grad, np.float64, what=red + " gradient")
    if pos_weight is None:              # the rerun really happens: -inf, where the stable form gives nan
        assert fl.binary_cross_entropy_with_logits(xx[sel], yy[sel], reduction="sum") == -np.inf


def test_hostile_mining_infinite_and_nan_embeddings_propagate():
    """batch_all_triplet_loss returned 0 for infinite embeddings (a nan hinge is not > 0); the torch-ops
    reference gives nan, and so do both mining losses now, for the anchors that meet the bad row."""
    rng = np.random.default_rng(3)
    e = rng.standard_normal((8, 5))
    lab = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    for bad in (np.inf, np.nan):
        eb = e.copy()
        eb[1, 2] = bad
        for name in ("batch_all_triplet_loss", "batch_hard_triplet_loss"):
            ref = REFERENCES[name].torch_ref(torch.from_numpy(eb), torch.from_numpy(lab), reduction="none").numpy()
            with np.errstate(all="ignore"):
                got = getattr(fl, name)(eb, lab, reduction="none")
                mean = getattr(fl, name)(eb, lab)
            assert np.isnan(ref).any()
            np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg=f"{name} {bad}")
            assert_close_spec(got[~np.isnan(ref)], ref[~np.isnan(ref)], np.float64, what=name)
            assert np.isnan(mean)
    # every triplet nan, none counted (loss > 0 is false for nan): the mean over no counted triplet is
    # 0 for batch_all -- and nan here, as the reference's 0 * sum
    lab2 = np.array([-1, -1, -3, 0])
    e2 = np.full((4, 16), np.inf, np.float32)
    ref = REFERENCES["batch_all_triplet_loss"].torch_ref(torch.from_numpy(e2).double(), torch.from_numpy(lab2))
    assert np.isnan(ref.item())
    with np.errstate(all="ignore"):
        assert np.isnan(fl.batch_all_triplet_loss(e2, lab2))


@pytest.mark.parametrize("name", ["batch_hard_triplet_loss", "batch_all_triplet_loss"])
@pytest.mark.parametrize("squared", [False, True])
def test_hostile_mining_float32_through_the_gram_matrix(name, squared):
    """float32 mining losses drifted 1.8e-5 relative (one coordinate of 745: |a|^2 + |b|^2 - 2 a.b in
    float32 loses ~ulp(|a|^2)); every anchor's loss, the mean and the sum within SPEC §4."""
    rng = np.random.default_rng(4)
    B, D = 200, 16
    lab = rng.integers(0, 10, B)
    e = rng.standard_normal((10, D))[lab] * 2 + 0.3 * rng.standard_normal((B, D))
    for offset in (0.0, 745.0, 1e4):
        eo = e.copy()
        eo[:, 0] += offset
        eo = eo.astype(np.float32)
        te = torch.from_numpy(eo).double()
        for red in ("none", "mean", "sum"):
            want = REFERENCES[name].torch_ref(te, torch.from_numpy(lab), margin=0.5, squared=squared, reduction=red)
            got = getattr(fl, name)(eo, lab, margin=0.5, squared=squared, reduction=red)
            assert_close_spec(got, want, np.float32, what=f"offset {offset} {red}")


@pytest.mark.parametrize("name", ["info_nce_loss", "nt_xent_loss"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hostile_confident_softmax_rows_keep_small_losses(name, dtype):
    """Rows whose positive dominates: loss = log(s + e_p) + m - x_p with s + e_p ~ 1 rounded a loss of
    1e-5 to 1e-2 relative; log1p(s / e_p) keeps it.  Every row, the mean and the gradients within SPEC.
    (float32 nt_xent at tau = 0.02: float32 similarities put the mean 1.8e-6 relative off; logits
    beyond 10 now take float64 similarities, _metric.py's _LOGIT_NOTE.)"""
    rng = np.random.default_rng(5)
    q = rng.standard_normal((64, 16))
    k = q + 0.05 * rng.standard_normal(q.shape)
    for tau in (0.02, 0.07, 0.5):
        qq, kk = q.astype(dtype), k.astype(dtype)
        tq, tk = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (qq, kk))
        ref = REFERENCES[name].torch_ref
        for red in ("none", "mean"):
            assert_close_spec(getattr(fl, name)(qq, kk, temperature=tau, reduction=red),
                              ref(tq, tk, temperature=tau, reduction=red), dtype, what=f"tau {tau} {red}")
        rows = ref(tq, tk, temperature=tau, reduction="none")
        rows.sum().backward()
        _, (gq, gk) = getattr(fl, name)(qq, kk, temperature=tau, reduction="none", return_grad=True)
        assert_close_spec(gq, tq.grad, dtype, what=f"tau {tau} g1")
        assert_close_spec(gk, tk.grad, dtype, what=f"tau {tau} g2")
        if tau == 0.02:
            assert (rows.detach().numpy() < 1e-4).mean() > 0.5       # mostly confident rows


@pytest.mark.parametrize("D", [16, 128])
@pytest.mark.parametrize("tau", [0.1, 0.25, 0.5])
def test_softmax_rows_float32_similarities_within_spec(tau, D):
    """The side of _LOGIT_NOTE's rule that keeps float32 similarities (logits within 10): unit rows at
    tau >= 0.1, confident and not, for both in-batch softmax losses, rows and mean, within SPEC."""
    rng = np.random.default_rng(7)
    for noise in (0.05, 0.5):
        q = rng.standard_normal((96, D))
        k = q + noise * rng.standard_normal(q.shape)
        q, k = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (q, k))
        q32, k32 = q.astype(np.float32), k.astype(np.float32)
        tq, tk = (torch.tensor(a.astype(np.float64)) for a in (q32, k32))
        for name in ("info_nce_loss", "nt_xent_loss"):
            ref = REFERENCES[name].torch_ref
            for red in ("none", "mean"):
                assert_close_spec(getattr(fl, name)(q32, k32, temperature=tau, reduction=red),
                                  ref(tq, tk, temperature=tau, reduction=red), np.float32,
                                  what=f"{name} noise {noise} {red}")


def test_hostile_gaussian_nll_variance_gradient_float32():
    """d/dvar = (1 - d^2 / v) / (2 v) cancels where d^2 ~ v: float32 was 18x outside SPEC there."""
    rng = np.random.default_rng(6)
    v = np.logspace(-4, 4, 400)
    d = np.sqrt(v) * (1 + rng.uniform(-1e-3, 1e-3, v.size))
    x, y, var = (a.astype(np.float32) for a in (d + 3.0, np.full_like(v, 3.0), v))
    _, (gx, gv) = fl.gaussian_nll_loss(x, y, var, reduction="none", return_grad=True)
    tx, tvar = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, var))
    torch.nn.functional.gaussian_nll_loss(tx, torch.tensor(y.astype(np.float64)), tvar,
                                          reduction="none").sum().backward()
    assert_close_spec(gx, tx.grad, np.float32, what="d/dx")
    assert_close_spec(gv, tvar.grad, np.float32, what="d/dvar")


# float32 means of a million items: the elementwise kernels sum the float32 losses (and weights) in double
# lanes (src_c/fl_lanes.h; SPEC §4: reductions accumulate in float64), so the sum is off the exact sum of the
# float32 items by double rounding plus the float32 rounding of the result (2^-24).  The bound below is
# looser (it would hold a float-lane sum of runs of 8 too): a regression to a float32 running sum fails it.
F32_LANE_SUM_BOUND = 8 * 2.0 ** -24


def _f32_sum_cases(rng, n=1_000_000):
    """Adversarial float32 (name, x, y, kwargs) for the lane sums: losses over 16 decades in random
    order; a million equal losses (a float32 running sum is off by percents there); a few huge losses
    among many small ones; weighted (the weight sum goes through the same lanes); and a Poisson NLL
    whose items have both signs and cancel (exp(x) - y x with y around exp(x) / x)."""
    y = rng.standard_normal(n).astype(np.float32)
    mixed = (y + 10.0 ** rng.uniform(-4, 4, n) * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    equal = (y + np.float32(0.1)).astype(np.float32)
    spikes = (y + np.where(rng.random(n) < 1e-4, 1e3, 1e-3)).astype(np.float32)
    w = rng.uniform(0.0, 3.0, n).astype(np.float32)
    px = rng.uniform(0.5, 2.0, n).astype(np.float32)
    py = (np.exp(px.astype(np.float64)) / px * rng.uniform(0.5, 1.5, n)).astype(np.float32)
    return [
        ("mse_loss", mixed, y, {}), ("l1_loss", mixed, y, {}), ("huber_loss", mixed, y, {"delta": 0.5}),
        ("smooth_l1_loss", mixed, y, {"beta": 0.5}), ("mse_loss", equal, y, {}),
        ("huber_loss", spikes, y, {}), ("huber_loss", mixed, y, {"weight": w}),
        ("mse_loss", equal, y, {"weight": w}), ("poisson_nll_loss", px, py, {}),
    ]


_TORCH_ELEM = {name: getattr(torch.nn.functional, name)
               for name in ("mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "poisson_nll_loss")}


def test_hostile_float32_means_of_a_million_items():
    """SPEC §4's float32 reduction rule (1e-6 relative to a float64 reference on the upcast inputs) on
    the adversarial sets above -- and the lane sum's own bound: the kernel's float32 sum against the
    exact sum (math.fsum) of the float32 per-item losses, within F32_LANE_SUM_BOUND of their
    magnitudes' sum (the per-item values are exact in float64; only the summation is measured)."""
    import math
    rng = np.random.default_rng(16)
    for name, x, y, kw in _f32_sum_cases(rng):
        what = f"{name}{sorted(kw)}"
        kw = dict(kw)
        w = kw.pop("weight", None)
        f, ref = getattr(fl, name), _TORCH_ELEM[name]
        x64, y64 = torch.from_numpy(x).double(), torch.from_numpy(y).double()
        if w is not None:     # torch's weighted mean (sum(w l) / sum(w) for MSE, / N for Huber)
            kw_ref = {**kw, "weight": torch.from_numpy(w).double()}
        else:
            kw_ref = kw
        ref_mean = float(ref(x64, y64, reduction="mean", **kw_ref))
        got = f(x, y, reduction="mean", weight=w, **kw)
        # the Poisson items cancel: the result is held relative to the items' magnitudes (``cancel``)
        cancel = None
        if name == "poisson_nll_loss":
            cancel = float(np.abs(ref(x64, y64, reduction="none", **kw).numpy()).mean())
        assert_close_spec(got, ref_mean, np.float32, reduced=True, what=what, cancel=cancel)
        if w is None:
            items = f(x, y, reduction="none", **kw).astype(np.float64)
            exact, mag = math.fsum(items), math.fsum(np.abs(items))
            got_sum = float(f(x, y, reduction="sum", **kw))
            assert abs(got_sum - exact) <= F32_LANE_SUM_BOUND * mag, (what, got_sum, exact)
            # the cancelling case really cancels (else it tests nothing more than the others)
            if name == "poisson_nll_loss":
                assert abs(exact) < 0.1 * mag


def test_hostile_float32_sums_of_losses_near_float32_max():
    """Losses near FLT_MAX: their float64 sum and mean are finite where a float32 accumulation of a few of
    them overflows (a regression to float lanes turned a huber mean of 1.74e36 into inf).  A real inf /
    nan stays one."""
    n = 5000
    x = np.full(n, 1.5e19, np.float32)        # (x - 0)^2 = 2.25e38 < FLT_MAX = 3.4e38
    y = np.zeros(n, np.float32)
    x64, y64 = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    for name in ("mse_loss", "huber_loss", "l1_loss", "smooth_l1_loss"):
        f, ref = getattr(fl, name), getattr(torch.nn.functional, name)
        xx = x if name == "mse_loss" else np.full(n, 3e38, np.float32)     # |d| itself near FLT_MAX
        want = float(ref(torch.from_numpy(xx).double(), y64))
        assert_close_spec(f(xx, y), want, np.float32, reduced=True, what=name)
        assert_close_spec(f(xx, y, return_grad=True)[0], want, np.float32, reduced=True, what=f"{name} +grad")
        for threads in (1, 3):
            assert f(xx, y, num_threads=threads) == f(xx, y, num_threads=1)
    # the weights' sum: a weighted MSE mean is sum(w l) / sum(w)
    w = np.full(n, 1e38, np.float32)
    ones = np.ones(n, np.float32)
    assert_close_spec(fl.mse_loss(ones, y, weight=w), 1.0, np.float32, reduced=True, what="weights")
    assert_close_spec(fl.mse_loss(ones, y, weight=w, return_grad=True)[0], 1.0, np.float32, reduced=True,
                      what="weights +grad")
    # a real inf (the loss itself overflows) and a nan stay
    want_inf = float(torch.nn.functional.mse_loss(torch.from_numpy(x * 2).double(), y64))
    assert want_inf > np.finfo(np.float32).max and fl.mse_loss(x * 2, y) == np.inf
    xn = x.copy()
    xn[7] = np.nan
    assert np.isnan(fl.mse_loss(xn, y)) and np.isnan(fl.huber_loss(xn, y))


# ============================================================================ 2. every ISA level
def _run_level(level, path):
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env["FASTLOSS_ISA"] = level
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('_accuracy_cases', {os.path.join(HERE, '_accuracy_cases.py')!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            f"mod.main({str(path)!r})\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    return np.load(path)


def test_one_answer_on_every_isa_level(tmp_path):
    results = {lvl: _run_level(lvl, tmp_path / f"{lvl}.npz") for lvl in USABLE}
    for lvl, res in results.items():
        assert str(res["level"]) == lvl
    rng = np.random.default_rng(0)
    fails = []
    for dtype in (np.float32, np.float64):
        for case in A.cases(dtype):
            ref = A.reference_case(case)
            spread = perturbed_spread(case, ref, rng) if dtype == np.float64 else None
            prefix = f"{np.dtype(dtype).name}|{case[0]}|"
            per_level = {lvl: {part: res[prefix + part] for part in ref} for lvl, res in results.items()}
            for lvl, got in per_level.items():
                fails += [f"{lvl}: {f}" for f in check_case_against_reference(case, got, ref, dtype, spread)]
            if dtype == np.float64 and is_finite_case(case):
                # exact zeros: where the reference is exactly 0 and some level too, every level must be
                # (an FMA on one level only leaves a rounding error, +-1e-18, where the others cancel
                # exactly).  Where the reference's 0 is its own underflow or cancellation (a confident
                # row's e^-60) fastloss may keep the true tiny value: tolerance_ratio judged that.
                for part, r in ref.items():
                    if part.startswith("grad"):
                        zeros = np.array([np.asarray(per_level[lvl][part]) == 0 for lvl in USABLE])
                        split = (np.asarray(r) == 0) & zeros.any(axis=0) & ~zeros.all(axis=0)
                        if split.any():
                            fails.append(f"{case[0]} {part}: {int(split.sum())} exact zeros on some levels "
                                         f"only: " + ", ".join(f"{lvl} {per_level[lvl][part][split][:3]}"
                                                               for lvl in USABLE))
            first = USABLE[0]
            for lvl in USABLE[1:]:          # the levels against each other (every part, specials included)
                for part in ref:
                    a, b = per_level[lvl][part], per_level[first][part]
                    ratio = tolerance_ratio(a, b, dtype, part == "mean")
                    w, where = worst(ratio, a, b)
                    if w > 1:
                        fails.append(f"{lvl} vs {first}: {case[0]} {part}: {w:.3g} x SPEC {where}")
    assert not fails, "\n".join(fails[:40])


# ======================================================================= 3. float32 accuracy sweep
def test_float32_accuracy_sweep():
    """Worst float32 error per loss over the finite hostile grid (values, means, gradients), against the
    float64 reference: printed (``pytest -s``) and held to SPEC §4 (ratio = error / tolerance <= 1)."""
    rows = {}
    for case in A.cases(np.float32, finite_only=True):
        ref = A.reference_case(case)
        got = A.run_case(fl, case)
        for part, r in ref.items():
            kind = "mean" if part == "mean" else ("grad" if part.startswith("grad") else "value")
            ratio = tolerance_ratio(got[part], r, np.float32, part == "mean")
            w, where = worst(ratio, got[part], r)
            with np.errstate(all="ignore"):
                rr = np.asarray(r, np.float64)
                big = np.abs(rr) >= 0.1         # where SPEC's relative part dominates
                rel = float(np.max(np.abs(np.asarray(got[part], np.float64) - rr)[big] / np.abs(rr[big]),
                                   initial=0.0))
            w_old, rel_old, where_old = rows.get((case[1], kind), (-1.0, 0.0, ""))
            rows[(case[1], kind)] = (max(w_old, w), max(rel_old, rel), f"{case[0]} {where}" if w > w_old else where_old)
    print(f"\nfloat32 accuracy sweep ({ISA_LEVEL}): worst error / SPEC tolerance, worst relative error "
          "where |reference| >= 0.1")
    print(f"{'loss':34s} {'part':6s} {'err/tol':>9s} {'rel err':>10s}")
    for (name, kind), (w, rel, _) in sorted(rows.items()):
        print(f"{name:34s} {kind:6s} {w:9.3f} {rel:10.2e}")
    bad = [f"{name} {kind}: {w:.3g} x tolerance, {where}" for (name, kind), (w, rel, where) in sorted(rows.items())
           if w > 1]
    assert not bad, "\n".join(bad)
    assert len({name for name, _ in rows}) >= 35
