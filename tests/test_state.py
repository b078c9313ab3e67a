"""Mergeable loss states (fastloss/state.py): partial / merge / finalize against float64 torch
references, random chunkings against the one-shot state, serialisation, errors."""
import json
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fl_testing import DTYPE_IDS, DTYPES, assert_close_spec, to_torch64, to_torch_long

import fastloss as fl
from fastloss._reference import REFERENCES
from fastloss._reference.boxes import sample_boxes, tv_giou_loss

C = 7


def _t(a):
    a = np.asarray(a)
    return to_torch64(a) if a.dtype.kind == "f" else to_torch_long(a)


# name -> (sample(rng, n, dtype) -> (positional args, all cut along axis 0), loss kwargs, torch reference
# fn(*float64 tensors, reduction=...) of the loss's per-item / reduced values)
def _ce(rng, n, dt):
    return (rng.standard_normal((n, C)).astype(dt) * 3, rng.integers(0, C, n)), {}


def _ce_weighted(rng, n, dt):
    y = rng.integers(0, C, n)
    y[rng.random(n) < 0.2] = -100
    return (rng.standard_normal((n, C)).astype(dt) * 3, y), {"loss_weight": rng.uniform(0.1, 2.0, C)}


def _bce(rng, n, dt):
    return (rng.standard_normal((n, 3)).astype(dt) * 4, (rng.random((n, 3)) > 0.5).astype(dt)), {}


def _reg(rng, n, dt):
    return (rng.standard_normal(n).astype(dt), rng.standard_normal(n).astype(dt)), {}


def _huber(rng, n, dt):
    return (rng.standard_normal((n, 2)).astype(dt) * 2, rng.standard_normal((n, 2)).astype(dt)), {"delta": 0.5}


def _boxes(rng, n, dt):
    b1 = sample_boxes(rng, n)
    b2 = b1 + rng.normal(0, 2.0, b1.shape)
    b2[:, 2:] = np.maximum(b2[:, 2:], b2[:, :2] + 0.05)
    return (b1.astype(dt), b2.astype(dt)), {}


def _triplet(rng, n, dt):
    return tuple(rng.standard_normal((n, 5)).astype(dt) for _ in range(3)), {"margin": 2.0}


def _kl(rng, n, dt):
    x = rng.standard_normal((n, 4))
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    t = rng.random((n, 4))
    return (logp.astype(dt), (t / t.sum(1, keepdims=True)).astype(dt)), {"reduction": "batchmean"}


def _class_w(kw):
    w = kw.get("loss_weight")
    return {"weight": _t(w), "ignore_index": -100} if w is not None else {}


CASES = {
    "cross_entropy": (_ce, lambda x, y, **kw: F.cross_entropy(x, y, **kw)),
    "cross_entropy[class weight]": (_ce_weighted, None),     # reference built in the test (needs kw)
    "binary_cross_entropy_with_logits": (_bce, F.binary_cross_entropy_with_logits),
    "mse_loss": (_reg, F.mse_loss),
    "huber_loss": (_huber, lambda x, y, **kw: F.huber_loss(x, y, delta=0.5, **kw)),
    "generalized_box_iou_loss": (_boxes, tv_giou_loss),
    "triplet_margin_loss": (_triplet, lambda a, p, n, **kw: F.triplet_margin_loss(a, p, n, margin=2.0, **kw)),
    "kl_div": (_kl, lambda x, t, **kw: F.kl_div(x, t, **kw)),
}


def _case(case, rng, n, dtype):
    name = case.split("[")[0]
    sample, ref = CASES[case]
    args, kw = sample(rng, n, dtype)
    if ref is None:
        def ref(x, y, **k):
            return F.cross_entropy(x, y, **_class_w(kw), **k)
    return name, args, kw, ref


def _ref_mean(ref, args, kw):
    red = kw.get("reduction", "mean")
    return float(ref(*map(_t, args), reduction=red))


def _chunks(rng, n, k):
    cuts = np.sort(rng.choice(np.arange(1, n), size=k - 1, replace=False))
    return list(zip(np.r_[0, cuts], np.r_[cuts, n]))


def _state(name, args, kw, i=None, j=None, **extra):
    sl = (lambda a: a[i:j]) if i is not None else (lambda a: a)
    return fl.partial(name, *map(sl, args), **{**kw, **extra})


def _close(got, ref, dtype=np.float64, what=""):
    """A state's float64 total / mean (a reduction of ``dtype`` inputs) against its reference: SPEC §4."""
    assert_close_spec(float(got), float(ref), dtype, reduced=True, result_type=False, what=what)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(CASES))
def test_partial_finalize_matches_reference(case, dtype, rng):
    name, args, kw, ref = _case(case, rng, 300, dtype)
    st = _state(name, args, kw)
    assert st.loss == name and st.compensation == 0.0
    ref_mean = _ref_mean(ref, args, kw)
    _close(st.finalize(), ref_mean, dtype, "mean")
    ref_sum = float(ref(*map(_t, args), reduction="sum"))
    _close(st.finalize("sum"), ref_sum, dtype, "sum")
    per_item = ref(*map(_t, args), reduction="none")
    assert st.count == per_item.numel()
    # the denominator, from the reference's definition of the mean: the items (batchmean: the rows), or
    # the class weights of the non-ignored targets (weights rounded to the inputs' dtype, as the kernel)
    if "loss_weight" in kw:
        y = args[1]
        want_wsum = kw["loss_weight"].astype(dtype).astype(np.float64)[y[y != -100]].sum()
    elif kw.get("reduction") == "batchmean":
        want_wsum = len(args[0])
    else:
        want_wsum = per_item.numel()
    _close(st.weight_sum, want_wsum, np.float64, "weight_sum")
    # the loss's own mean: the same kernel total and denominator (float64: same bits up to the division)
    own = getattr(fl, name)(*args, **{k: v for k, v in kw.items() if k != "loss_weight"},
                            **({"weight": kw["loss_weight"]} if "loss_weight" in kw else {}))
    if "reduction" not in kw and name in ("generalized_box_iou_loss",):
        own = getattr(fl, name)(*args, reduction="mean")
    _close(own, ref_mean, dtype, "the loss's own mean")
    _close(st.finalize(), float(own), dtype, "state vs the loss's own mean (rounded to dtype)")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(CASES))
def test_random_chunkings_equal_one_shot(case, dtype, rng):
    n = 500
    name, args, kw, _ = _case(case, rng, n, dtype)
    one = _state(name, args, kw)
    for trial in range(4):
        parts = [_state(name, args, kw, i, j) for i, j in _chunks(rng, n, int(rng.integers(2, 12)))]
        order = rng.permutation(len(parts))
        for merged in (fl.LossState.merge_all(parts), sum(parts[k] for k in order),
                       fl.LossState.merge_all(parts[k] for k in order)):
            # float64 totals in another order: equal to float64 rounding (SPEC §4's float64 rule)
            assert merged.count == one.count
            _close(merged.weight_sum, one.weight_sum)
            _close(merged.finalize(), one.finalize())
            _close(merged.finalize("sum"), one.finalize("sum"))
        # the same merge order gives the same bits
        assert fl.LossState.merge_all(parts) == fl.LossState.merge_all(list(parts))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", ["cross_entropy", "cross_entropy[class weight]", "mse_loss",
                                  "generalized_box_iou_loss", "triplet_margin_loss"])
def test_per_item_weight(case, dtype, rng):
    n = 400
    name, args, kw, ref = _case(case, rng, n, dtype)
    w = rng.uniform(0.0, 3.0, n)
    st = _state(name, args, kw, weight=w)
    per_item = ref(*map(_t, args), reduction="none").numpy()
    expected = (w * per_item).sum() / w.sum()
    _close(st.finalize(), expected, dtype)
    _close(st.weight_sum, w.sum())
    assert st.count == n
    parts = [fl.partial(name, *(a[i:j] for a in args), weight=w[i:j], **kw) for i, j in _chunks(rng, n, 5)]
    _close(fl.LossState.merge_all(parts).finalize(), expected, dtype)


def test_row_weight_covers_row_items(rng):
    (x, y), _ = _bce(rng, 50, np.float64)
    w = rng.uniform(0.5, 2.0, 50)
    st = fl.partial("binary_cross_entropy_with_logits", x, y, weight=w)
    per = F.binary_cross_entropy_with_logits(_t(x), _t(y), reduction="none").numpy()
    want = (w[:, None] * per).sum() / (3 * w.sum())
    _close(st.finalize(), want)
    assert st.count == 150
    _close(st.weight_sum, 3 * w.sum())
    full = fl.partial("binary_cross_entropy_with_logits", x, y, weight=np.repeat(w[:, None], 3, 1))
    _close(full.finalize(), want)


def test_batchmean_weights(rng):
    (x, t), kw = _kl(rng, 60, np.float64)
    w = rng.uniform(0.5, 2.0, 60)
    st = fl.partial("kl_div", x, t, weight=w, **kw)
    per = F.kl_div(_t(x), _t(t), reduction="none").numpy().sum(1)
    _close(st.finalize(), (w * per).sum() / w.sum())
    d = fl.partial("distillation_loss", x, t)          # default reduction: batchmean
    assert d.weight_sum == 60 and d.count == 60


def test_weighted_sum_deterministic_across_threads(rng):
    x = rng.standard_normal(300_000)
    y = rng.standard_normal(300_000)
    w = rng.random(300_000)
    states = [fl.partial("mse_loss", x, y, weight=w, num_threads=k) for k in (1, 2, 3)]
    assert states[0] == states[1] == states[2]
    plain = [fl.partial("mse_loss", x, y, num_threads=k) for k in (1, 2, 3)]
    assert plain[0] == plain[1] == plain[2]


def test_compensation_keeps_cancelled_bits():
    a = fl.LossState("mse_loss", 1e16, 0.0, 1.0, 1)
    b = fl.LossState("mse_loss", 1.0, 0.0, 1.0, 1)
    c = fl.LossState("mse_loss", -1e16, 0.0, 1.0, 1)
    for order in ((a, b, c), (c, b, a), (b, a, c)):
        assert fl.LossState.merge_all(order).finalize("sum") == 1.0
    assert (a + b + c).finalize() == 1.0 / 3.0


def test_inf_and_nan_totals():
    inf = fl.LossState("mse_loss", math.inf, 0.0, 1.0, 1)
    one = fl.LossState("mse_loss", 1.0, 0.0, 1.0, 1)
    assert (inf + one).finalize() == math.inf
    nan = fl.LossState("mse_loss", math.nan, 0.0, 1.0, 1)
    assert math.isnan((nan + one + inf).finalize())


def test_serialisation_round_trips(rng):
    (x, y), _ = _ce(rng, 20, np.float32)
    st = fl.partial(fl.cross_entropy, x, y) + fl.partial("cross_entropy", x[:3], y[:3])
    assert pickle.loads(pickle.dumps(st)) == st
    d = st.to_dict()
    assert d == json.loads(json.dumps(d))
    assert fl.LossState.from_dict(json.loads(json.dumps(d))) == st
    assert isinstance(d["count"], int) and d["count"] == 23
    with pytest.raises(ValueError, match="missing"):
        fl.LossState.from_dict({"loss": "cross_entropy"})
    with pytest.raises(AttributeError):
        st.total = 0.0


def test_built_states_are_plain_immutable_states(rng):
    """partial and merge build states without the constructor's checks: still exactly LossState
    objects, immutable, without a __dict__, equal to the same values given to the constructor."""
    (x, y), _ = _ce(rng, 12, np.float64)
    a, b = fl.partial("cross_entropy", x[:5], y[:5]), fl.partial("cross_entropy", x[5:], y[5:])
    for st in (a, b, a + b, a.merge(b)):
        assert type(st) is fl.LossState and not hasattr(st, "__dict__")
        for f in ("loss", "total", "compensation", "weight_sum", "count", "other"):
            with pytest.raises(AttributeError):
                setattr(st, f, 1.0)
        assert st == fl.LossState(st.loss, st.total, st.compensation, st.weight_sum, st.count)
    assert (a + b).count == 12 and (a + b).weight_sum == 12.0


def test_empty_state_and_empty_chunk(rng):
    e = fl.LossState.empty("cross_entropy")
    assert (e.total, e.compensation, e.weight_sum, e.count) == (0.0, 0.0, 0.0, 0)
    assert math.isnan(e.finalize()) and e.finalize("sum") == 0.0
    (x, y), _ = _ce(rng, 10, np.float64)
    st = fl.partial("cross_entropy", x, y)
    assert e + st == st and st + e == st
    empty_chunk = fl.partial("cross_entropy", x[:0], y[:0])
    assert empty_chunk == fl.LossState.empty(fl.cross_entropy)
    assert fl.LossState.merge_all([], loss="mse_loss") == fl.LossState.empty("mse_loss")
    assert fl.partial("mse_loss", x[:0, 0], x[:0, 0], weight=np.ones(0)).count == 0
    with pytest.raises(ValueError, match="loss="):
        fl.LossState.merge_all([])


def test_errors(rng):
    (x, y), _ = _ce(rng, 10, np.float64)
    with pytest.raises(ValueError, match="different losses"):
        fl.partial("cross_entropy", x, y).merge(fl.partial("nll_loss", x, y))
    with pytest.raises(ValueError, match="different losses"):
        fl.partial("cross_entropy", x, y) + fl.LossState.empty("mse_loss")
    with pytest.raises(TypeError):
        fl.LossState.empty("mse_loss").merge({"loss": "mse_loss"})
    with pytest.raises(ValueError, match="unknown loss"):
        fl.partial("no_such_loss", x, y)
    with pytest.raises(ValueError, match="unknown loss"):
        fl.partial("box_iou", x[:, :4], x[:, :4])             # not a loss with a reduction
    with pytest.raises(ValueError, match="not a public fastloss loss"):
        fl.partial(lambda a, b, reduction="mean": 0.0, x, y)
    with pytest.raises(ValueError, match="reduction"):
        fl.partial("cross_entropy", x, y, reduction="sum")
    with pytest.raises(ValueError, match="out"):
        fl.partial("cross_entropy", x, y, out=np.empty(10))
    for flag in ({"return_grad": True}, {"grad_out": np.empty_like(x)}):
        with pytest.raises(ValueError, match=next(iter(flag))):
            fl.partial("cross_entropy", x, y, **flag)
    with pytest.raises(ValueError, match="reduction"):
        fl.partial("kl_div", x, y, reduction=np.array(["mean", "mean"]))     # not a str: refused
    with pytest.raises(TypeError, match="loss"):
        fl.partial(3, x, y)
    with pytest.raises(ValueError, match="weight"):
        fl.partial("cross_entropy", x, y, weight=np.ones(9))
    with pytest.raises(ValueError, match="reduction"):
        fl.LossState.empty("mse_loss").finalize("none")
    with pytest.raises(IndexError, match="target"):
        fl.partial("cross_entropy", x, np.full(10, C))       # the loss's own checks still apply
    with pytest.raises(ValueError, match="count"):
        fl.LossState("mse_loss", 0.0, 0.0, 0.0, -1)


def test_torch_inputs_unmodified(rng):
    (x, y), kw = _ce_weighted(rng, 30, np.float32)
    xt, yt = torch.from_numpy(x.copy()), torch.from_numpy(y.copy())
    st = fl.partial("cross_entropy", xt, yt, **kw)
    ref = F.cross_entropy(_t(x), _t(y), weight=_t(kw["loss_weight"]))
    _close(st.finalize(), float(ref), np.float32)
    valid = y != -100
    _close(st.weight_sum, kw["loss_weight"].astype(np.float32)[y[valid]].astype(np.float64).sum())
    assert np.array_equal(xt.numpy(), x) and np.array_equal(yt.numpy(), y)


def test_in_batch_loss_state_is_the_chunk_loss(rng):
    e = rng.standard_normal((40, 6))
    lab = rng.integers(0, 4, 40)
    st = fl.partial("batch_hard_triplet_loss", e, lab)
    spec = REFERENCES["batch_hard_triplet_loss"]
    _close(st.finalize(), spec.torch_ref(to_torch64(e), to_torch_long(lab), reduction="mean"))
    assert st.count == 40
    assert fl.partial("nt_xent_loss", e[:20], e[20:]).count == 40


def test_reduced_paths_kept_their_values(rng):
    # boxes and batch-all mining now finish through _validate.reduced: empty means stay 0
    empty = np.zeros((0, 4))
    assert fl.generalized_box_iou_loss(empty, empty, reduction="mean") == 0.0
    assert fl.batch_all_triplet_loss(rng.standard_normal((3, 2)), np.zeros(3, int), reduction="mean") == 0.0
    b = sample_boxes(rng, 5)
    assert fl.generalized_box_iou_loss(b, b[::-1].copy(), reduction="sum").dtype == np.float64


def _registered_losses():
    import inspect
    return sorted(n for n in REFERENCES if "reduction" in inspect.signature(getattr(fl, n)).parameters)


@pytest.mark.parametrize("name", _registered_losses())
def test_every_registered_loss_has_a_state(name, rng):
    """The state's mean is the reference's mean (the loss's own: the kernel's float64 total and
    denominator) and its count the size of the per-item output, for every loss with a reference."""
    spec = REFERENCES[name]
    args, kw = spec.sample(rng, 240, np.float64)
    kw = dict(kw)
    kw.pop("reduction", None)
    if "weight" in kw:
        kw["loss_weight"] = kw.pop("weight")
    st = fl.partial(name, *args, **kw)
    own_kw = {("weight" if k == "loss_weight" else k): v for k, v in kw.items()}
    red = "batchmean" if name == "distillation_loss" else "mean"      # its default reduction
    targs = [to_torch64(a) if np.asarray(a).dtype.kind == "f" else to_torch_long(a) for a in args]
    tkw = {k: (to_torch64(v) if isinstance(v, np.ndarray) else v) for k, v in own_kw.items()}
    _close(st.finalize(), spec.torch_ref(*targs, reduction=red, **tkw), what="mean")
    per_item = spec.torch_ref(*targs, reduction="none", **tkw).detach().numpy()
    assert st.count == np.size(per_item)
    unit = fl.partial(name, *args, weight=np.ones(np.shape(per_item)), **kw)
    _close(unit.finalize("sum"), spec.torch_ref(*targs, reduction="sum", **tkw), what="unit-weight sum")
