"""Regression tests for the edge bugs of issue 13 ("Trust at the edges"), each against torch in float64:
a segfault on None, shapes torch accepts that fastloss refused, messages that misled, and arguments
accepted silently.  (Zero classes and unwritten outputs: tests/test_outputs_written.py; hostile
arguments everywhere: tests/test_surface_fuzz.py; the kernels' own checks: tests/test_kernel_boundary.py.)"""

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
from fl_testing import DTYPE_IDS, DTYPES, assert_close_spec, to_torch64

RNG = np.random.default_rng(1313)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))


# ------------------------------------------------------------------------------------------ None
@pytest.mark.parametrize("position", [0, 1, 2])
def test_none_for_a_required_argument_is_a_type_error_naming_it(position):
    """fl.contrastive_loss(x, None, label) killed the interpreter (a NULL buffer reached the kernel)."""
    args = [RNG.standard_normal((4, 3)), RNG.standard_normal((4, 3)), np.ones(4)]
    names = ["x1", "x2", "label"]
    args[position] = None
    with pytest.raises(TypeError, match=names[position]):
        fl.contrastive_loss(*args)


def test_none_everywhere_in_a_fresh_interpreter():
    """The same calls in a child: a crash would be an exit status, not an exception (fails here)."""
    code = (
        "import numpy as np, fastloss as fl\n"
        "x = np.ones((4, 3))\n"
        "for f, args in [(fl.contrastive_loss, (x, None, np.ones(4))), (fl.cosine_embedding_loss, (x, None, "
        "np.ones(4))), (fl.triplet_margin_loss, (x, x, None)), (fl.margin_ranking_loss, (x, None, x))]:\n"
        "    try:\n        f(*args)\n    except TypeError:\n        pass\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


# ------------------------------------------------------------------------------------------ shapes
def _same_as_torch(got, ref, dtype, what=""):
    assert_close_spec(got, ref.detach(), dtype, what=what)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "shapes",
    [
        ((5, 2), (5, 1), (1, 2)),
        ((5,), (1,), (5,)),
        ((1, 3), (4, 3), (4, 1)),
        ((), (), ()),
        ((0, 2), (1, 2), (0, 1)),
    ],
)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_margin_ranking_loss_broadcasts_as_torch(dtype, shapes, reduction):
    x1, x2 = (RNG.standard_normal(s).astype(dtype) for s in shapes[:2])
    y = np.sign(RNG.standard_normal(shapes[2])).astype(dtype)
    t1, t2 = to_torch64(x1, True), to_torch64(x2, True)
    ref = F.margin_ranking_loss(t1, t2, to_torch64(y), margin=0.3, reduction=reduction)
    got, (g1, g2) = fl.margin_ranking_loss(x1, x2, y, margin=0.3, reduction=reduction, return_grad=True)
    _same_as_torch(got, ref, dtype, reduction)
    r1, r2 = torch.autograd.grad(ref.sum(), (t1, t2))
    _same_as_torch(g1, r1, dtype, "grad input1")
    _same_as_torch(g2, r2, dtype, "grad input2")


def test_margin_ranking_loss_different_ndims_are_refused_as_torch():
    with pytest.raises(RuntimeError):
        F.margin_ranking_loss(torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(5))
    with pytest.raises(ValueError, match="number of dimensions"):
        fl.margin_ranking_loss(np.zeros((5, 2)), np.zeros((5, 2)), np.zeros(5))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "shapes", [((5, 2), (5, 1)), ((5, 1), (5, 2)), ((5, 2), (2,)), ((), (3,)), ((3,), ()), ((0, 2), (1, 2))]
)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_hinge_embedding_loss_broadcasts_as_torch(dtype, shapes, reduction):
    x = RNG.standard_normal(shapes[0]).astype(dtype)
    y = np.sign(RNG.standard_normal(shapes[1])).astype(dtype)
    xt = to_torch64(x, True)
    ref = F.hinge_embedding_loss(xt, to_torch64(y), margin=0.7, reduction=reduction)
    got, g = fl.hinge_embedding_loss(x, y, margin=0.7, reduction=reduction, return_grad=True)
    _same_as_torch(got, ref, dtype, reduction)
    _same_as_torch(g, torch.autograd.grad(ref.sum(), xt)[0], dtype, "grad")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "xshape,yshape",
    [
        ((), ()),
        ((), (1,)),
        ((3,), ()),
        ((3,), (1,)),
        ((1, 3), ()),
        ((1, 3), (1,)),
        ((4, 3), (4,)),
        ((0, 3), (0,)),
    ],
)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_multi_margin_loss_shapes_as_torch(dtype, xshape, yshape, reduction):
    x = RNG.standard_normal(xshape).astype(dtype)
    C = 1 if x.ndim == 0 else x.shape[-1]
    y = RNG.integers(0, C, yshape)
    if x.shape[:1] == (0,) and reduction != "none":
        pytest.skip("torch returns uninitialised memory for an empty batch (tests/test_outputs_written.py)")
    xt = to_torch64(x, True)
    ref = F.multi_margin_loss(xt, torch.from_numpy(y), p=2, margin=0.8, reduction=reduction)
    got, g = fl.multi_margin_loss(x, y, p=2, margin=0.8, reduction=reduction, return_grad=True)
    _same_as_torch(got, ref, dtype, reduction)
    _same_as_torch(g, torch.autograd.grad(ref.sum(), xt)[0], dtype, "grad")


@pytest.mark.parametrize(
    "xshape,yshape",
    [((2, 3), (1,)), ((3,), (3,)), ((2, 3), (2, 1)), ((2, 0), (2,)), ((0,), ()), ((2, 3, 4), (2,))],
)
def test_multi_margin_loss_refuses_what_torch_refuses(xshape, yshape):
    with pytest.raises(RuntimeError):
        F.multi_margin_loss(torch.zeros(xshape), torch.zeros(yshape, dtype=torch.long))
    with pytest.raises(ValueError):
        fl.multi_margin_loss(np.zeros(xshape), np.zeros(yshape, np.int64))


WARNS = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"]
SILENT = ["poisson_nll_loss", "gaussian_nll_loss"]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", WARNS + SILENT)
@pytest.mark.parametrize(
    "xshape,yshape", [((5, 3), (5, 1)), ((5, 1), (5, 3)), ((5, 3), (3,)), ((2, 1, 3), (4, 1))]
)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_regression_target_broadcasts_as_torch(dtype, name, xshape, yshape, reduction):
    """torch broadcasts target against input -- the first four with a UserWarning, the others silently --
    and so does fastloss, with the result's shape and the gradient summed to input's shape."""
    x = RNG.standard_normal(xshape).astype(dtype)
    y = (RNG.poisson(2.0, yshape) if name == "poisson_nll_loss" else RNG.standard_normal(yshape)).astype(
        dtype
    )
    extra = (
        {"var": (RNG.random(xshape[:-1] + (1,)) + 0.5).astype(dtype)} if name == "gaussian_nll_loss" else {}
    )
    xt = to_torch64(x, True)
    with warnings.catch_warnings(record=True) as torch_warned:
        warnings.simplefilter("always")
        ref = getattr(F, name)(
            xt, to_torch64(y), *(to_torch64(v) for v in extra.values()), reduction=reduction
        )
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        got, g = getattr(fl, name)(x, y, *extra.values(), reduction=reduction, return_grad=True)
    if name == "gaussian_nll_loss":
        g = g[0]
    _same_as_torch(got, ref, dtype, reduction)
    _same_as_torch(g, torch.autograd.grad(ref.sum(), xt)[0], dtype, "grad")
    ours = [str(w.message) for w in warned if issubclass(w.category, UserWarning)]
    theirs = [str(w.message) for w in torch_warned if "target size" in str(w.message)]
    assert bool(ours) == bool(theirs) == (name in WARNS), (ours, theirs)
    if ours:
        assert "target size" in ours[0] and warned[0].filename == __file__  # (points at the caller)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_weighted_loss_with_broadcast_input_as_torch(name, reduction):
    """With a broadcast input torch's weight has input's shape and its mean divides by sum(weight)."""
    x, y, w = RNG.standard_normal((5, 1)), RNG.standard_normal((5, 3)), RNG.random((5, 1)) + 0.1
    xt = to_torch64(x, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = getattr(F, name)(xt, to_torch64(y), reduction=reduction, weight=to_torch64(w))
        got, g = getattr(fl, name)(x, y, reduction=reduction, weight=w, return_grad=True)
        with pytest.raises(ValueError, match="weight"):
            getattr(fl, name)(x, y, weight=np.ones((5, 3)))
    _same_as_torch(got, ref, np.float64, reduction)
    _same_as_torch(g, torch.autograd.grad(ref.sum(), xt)[0], np.float64, "grad")


@pytest.mark.parametrize("vshape", [(5, 3), (5, 1), (5,), (1, 3)])
def test_gaussian_nll_var_forms_with_broadcast_target(vshape):
    """var's torch forms (heteroscedastic, input.shape[:-1], (*, 1), one mismatched size-1 dim) with a
    broadcast target; grad_var has var's shape."""
    x, y = RNG.standard_normal((5, 3)), RNG.standard_normal((1, 3))
    v = RNG.random(vshape) + 0.2
    xt, vt = to_torch64(x, True), to_torch64(v, True)
    ref = F.gaussian_nll_loss(xt, to_torch64(y), vt, reduction="sum")
    got, (gx, gv) = fl.gaussian_nll_loss(x, y, v, reduction="sum", return_grad=True)
    rx, rv = torch.autograd.grad(ref, (xt, vt))
    _same_as_torch(got, ref, np.float64)
    _same_as_torch(gx, rx, np.float64, "grad input")
    _same_as_torch(gv, rv, np.float64, "grad var")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("name", ["kl_div", "kl_div[log_target]"])
@pytest.mark.parametrize("xshape,yshape", [((5, 3), (5, 1)), ((1, 3), (5, 3)), ((5, 3), (3,)), ((), (4,))])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum", "batchmean"])
def test_kl_div_target_broadcasts_as_torch(dtype, name, xshape, yshape, reduction):
    """kl_div broadcasts silently; batchmean divides by input's own first dimension (a sum for 0-d)."""
    x = RNG.standard_normal(xshape).astype(dtype)
    y = RNG.random(yshape).astype(dtype)
    xt = to_torch64(x, True)
    lt = name.endswith("[log_target]")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = F.kl_div(xt, to_torch64(y), reduction=reduction, log_target=lt)
    got, g = fl.kl_div(x, y, reduction=reduction, log_target=lt, return_grad=True)
    _same_as_torch(got, ref, dtype, reduction)
    _same_as_torch(g, torch.autograd.grad(ref.sum(), xt)[0], dtype, "grad")


def test_sigmoid_focal_loss_refuses_what_torchvision_refuses():
    """torchvision's sigmoid_focal_loss calls binary_cross_entropy_with_logits, which wants equal shapes."""
    from fastloss._reference.binary import torchvision_sigmoid_focal_loss

    with pytest.raises(ValueError):
        torchvision_sigmoid_focal_loss(torch.zeros(5, 3), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="targets"):
        fl.sigmoid_focal_loss(np.zeros((5, 3)), np.zeros((5, 1)))


def test_partial_state_of_a_broadcast_loss_counts_broadcast_items():
    x, y = RNG.standard_normal((5, 1)), RNG.standard_normal((5, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = fl.partial("mse_loss", x, y)
        ref = F.mse_loss(to_torch64(x), to_torch64(y))
    assert st.count == 15
    assert st.finalize() == pytest.approx(float(ref), rel=1e-12)


def test_spec6_regression_losses_still_take_equal_shapes():
    with pytest.raises(ValueError, match="target"):
        fl.log_cosh_loss(np.zeros((5, 3)), np.zeros((5, 1)))


# ------------------------------------------------------------------------------------------ messages
X, Y = RNG.standard_normal((5, 3)), RNG.integers(0, 3, 5)


@pytest.mark.parametrize("labels", [Y.astype(np.float32), Y.astype(np.float64)])
def test_float_class_labels_say_integer_dtype(labels):
    with pytest.raises(RuntimeError, match="Long"):
        F.cross_entropy(torch.from_numpy(X), torch.from_numpy(labels))
    with pytest.raises(TypeError, match=r"target.*not integer.*astype\(np.int64\)"):
        fl.cross_entropy(X, labels)
    with pytest.raises(TypeError, match=r"target must be an integer array.*astype\(np.int64\)"):
        fl.nll_loss(X, labels)


def test_pandas_int64_labels_with_na_say_missing_labels():
    pd = pytest.importorskip("pandas")
    labels = pd.array([0, 1, None, 2, 1], dtype="Int64")
    with pytest.raises(TypeError, match="missing labels.*ignore_index"):
        fl.cross_entropy(X, labels)
    assert fl.cross_entropy(X, pd.array(Y, dtype="Int64")) == fl.cross_entropy(X, Y)  # without NA: fine


def test_logits_vector_with_labels_vector_explains_unbatched_input():
    with pytest.raises(ValueError, match=r"1-d input is ONE sample.*\(N, C\)"):
        fl.cross_entropy(X[:, 0], Y)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss", "softmax_focal_loss"])
@pytest.mark.parametrize("bad", [None, 1.5, "x", True])
def test_ignore_index_must_be_an_integer(name, bad):
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        getattr(fl, name)(X, Y, ignore_index=bad)


def test_none_or_categorical_input_say_what_they_are():
    pd = pytest.importorskip("pandas")
    with pytest.raises(TypeError, match="input is None"):
        fl.mse_loss(None, np.zeros(3))
    cat = pd.Series(["a", "b", "a"], dtype="category")
    with pytest.raises(TypeError, match=r"input .*pandas Categorical.*cat\.codes"):
        fl.mse_loss(cat, np.zeros(3))
    with pytest.raises(TypeError, match=r"target .*pandas Categorical"):
        fl.cross_entropy(X[:3], cat)
    with pytest.raises(TypeError, match=r"input .*strings"):
        fl.mse_loss(np.array(["1", "2"]), np.zeros(2))
    with pytest.raises(TypeError, match=r"target .*holding NoneType.*missing values"):
        fl.mse_loss(np.zeros(2), np.array([None, 1.0]))


# ------------------------------------------------------------------------------------------ silent acceptance
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_out_with_a_reduced_result_is_refused(reduction):
    for call in (
        lambda **kw: fl.mse_loss(X, X, **kw),
        lambda **kw: fl.cross_entropy(X, Y, **kw),
        lambda **kw: fl.kl_div(X, X, **kw),
        lambda **kw: fl.dice_loss(X[:, :, None], Y[:, None], **kw),
        lambda **kw: fl.info_nce_loss(X, X, **kw),
        lambda **kw: fl.gaussian_kl_loss(X, X, **kw),
    ):
        with pytest.raises(ValueError, match="out= is only used with reduction='none'"):
            call(reduction=reduction, out=np.empty(()))


def test_partial_refuses_negative_sample_weights():
    w = np.ones(5)
    w[3] = -0.5
    with pytest.raises(ValueError, match=r"weight.*>= 0.*-0.5 at position 3"):
        fl.partial("mse_loss", X[:, 0], X[:, 1], weight=w)
    w[3] = np.nan  # nan is no error: it propagates
    assert np.isnan(fl.partial("mse_loss", X[:, 0], X[:, 1], weight=w).finalize())


def test_cli_refuses_a_repeated_param(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=X[:, 0], y=X[:, 1])
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    base = [
        sys.executable,
        "-m",
        "fastloss",
        "score",
        str(path),
        "--loss",
        "huber_loss",
        "--input",
        "x",
        "--target",
        "y",
        "--json",
    ]
    ok = subprocess.run(
        base + ["--param", "delta=0.5"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["loss"] == pytest.approx(
        float(fl.huber_loss(X[:, 0], X[:, 1], delta=0.5)), rel=1e-12
    )
    bad = subprocess.run(
        base + ["--param", "delta=0.5", "--param", "delta=2"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--param delta is given 2 times" in bad.stderr, bad.stderr


# ------------------------------------------------------------------- small-call fast paths (issue 16)
@pytest.mark.parametrize("value", [0.1, 1 / 3, 2.5e-45, 1e-46, -0.0, 3.4028235e38, float("nan"), float("inf"),
                                   1.0 + 2.0 ** -24, 1.0 + 3 * 2.0 ** -24])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_float32_results_round_as_numpys_float32(value, reduction):
    """A reduced float32 result is built without float32's constructor (1.0f times the Python float): it
    must be exactly NumPy's float32(v) -- ties to even, subnormals, the overflow to inf -- and a float32."""
    from fastloss import _validate
    got = _validate.reduced(value, 1, reduction, np.dtype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.float32(value)
    assert type(got) is np.float32
    assert got.tobytes() == ref.tobytes() or (np.isnan(got) and np.isnan(ref))


def test_float32_result_overflow_warns_as_numpy():
    from fastloss import _validate
    with pytest.warns(RuntimeWarning, match="overflow"):
        assert _validate.reduced(1e39, 1, "sum", np.dtype(np.float32)) == np.inf


def _not_plain(a, how):
    """``a``'s values in an argument that the small-call fast paths must not take as they are."""
    if how == "fortran":
        return np.asfortranarray(a) if a.ndim > 1 else a[::-1].copy()[::-1]
    if how == "strided":
        return np.repeat(a, 2, axis=0)[::2]
    if how == "float64":
        return a.astype(np.float64)
    return a.tolist()


@pytest.mark.parametrize("how", ["fortran", "strided", "float64", "list"])
def test_small_calls_convert_what_the_fast_path_does_not_take(how):
    """The wrappers recognise C-contiguous arrays of the computing dtype inline; any other argument
    (a Fortran-order, strided, other-dtype or list target) still goes through the conversion, and the
    result is torch's on the same values."""
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    t = RNG.standard_normal((5, 4)).astype(np.float32)
    xt, tt = to_torch64(x), to_torch64(t)
    assert_close_spec(fl.mse_loss(x, _not_plain(t, how)), F.mse_loss(xt, tt), np.float32)
    assert_close_spec(fl.huber_loss(x, _not_plain(t, how)), F.huber_loss(xt, tt), np.float32)
    p = (t > 0).astype(np.float32)
    assert_close_spec(fl.binary_cross_entropy_with_logits(x, _not_plain(p, how)),
                      F.binary_cross_entropy_with_logits(xt, to_torch64(p)), np.float32)
    y = RNG.integers(0, 4, 5)
    labels = y.astype(np.int16) if how == "float64" else _not_plain(y, how)
    assert_close_spec(fl.cross_entropy(x, labels), F.cross_entropy(xt, torch.from_numpy(y)), np.float32)
    a, pos, neg = (RNG.standard_normal((5, 8)).astype(np.float32) for _ in range(3))
    assert_close_spec(fl.triplet_margin_loss(a, pos, _not_plain(neg, how)),
                      F.triplet_margin_loss(to_torch64(a), to_torch64(pos), to_torch64(neg)), np.float32)
    b1 = np.array([[0, 0, 2, 2], [1, 1, 3, 4], [0, 0, 1, 1]], dtype=np.float32)
    b2 = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 3, 3]], dtype=np.float32)
    c1, c2 = b1.astype(np.float64), b2.astype(np.float64)     # torchvision's formula, eps = 1e-7
    wh = np.clip(np.minimum(c1[:, 2:], c2[:, 2:]) - np.maximum(c1[:, :2], c2[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    union = np.prod(c1[:, 2:] - c1[:, :2], axis=1) + np.prod(c2[:, 2:] - c2[:, :2], axis=1) - inter
    hull = np.prod(np.maximum(c1[:, 2:], c2[:, 2:]) - np.minimum(c1[:, :2], c2[:, :2]), axis=1)
    giou = inter / (union + 1e-7) - (hull - union) / (hull + 1e-7)
    assert_close_spec(fl.generalized_box_iou_loss(b1, _not_plain(b2, how), reduction="sum"),
                      np.sum(1 - giou), np.float32)


# ------------------------------------------------------------------ non-native byte order keeps precision
@pytest.mark.parametrize("name", ["cross_entropy", "mse_loss", "huber_loss", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_native_byte_order_keeps_the_dtype(name, dtype):
    """A big-endian (non-native) float64 prediction computes in float64 (it was converted to float32):
    the result's dtype and value are those of the same values in native order, against torch float64."""
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((64, 7)) * 3).astype(dtype)
    if name == "cross_entropy":
        t = rng.integers(0, 7, 64)
        t_swapped, ref_t = t, torch.from_numpy(t)
    else:
        t = rng.standard_normal((64, 7)).astype(dtype)
        if name == "binary_cross_entropy_with_logits":
            t = (t > 0).astype(dtype)
        t_swapped, ref_t = t.astype(t.dtype.newbyteorder(">")), torch.from_numpy(t.astype(np.float64))
    x_swapped = x.astype(x.dtype.newbyteorder(">"))
    got = getattr(fl, name)(x_swapped, t_swapped)
    native = getattr(fl, name)(x, t)
    assert np.asarray(got).dtype == np.dtype(dtype)
    assert np.asarray(got).tobytes() == np.asarray(native).tobytes()
    ref = getattr(F, name)(torch.from_numpy(x.astype(np.float64)), ref_t).item()
    np.testing.assert_allclose(float(got), ref, rtol=1e-12 if dtype == np.float64 else 1e-6)
