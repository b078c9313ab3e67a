"""fastloss.torch: autograd, nn.Module losses, torch.compile (issue 18).

Independent references: ``torch.autograd.gradcheck`` (finite differences of the fastloss forward, float64)
for every loss and reduction; torch's own losses and modules (float64, autograd) for the mirrored ones;
the float64 torch formulas of ``fastloss._reference`` differentiated by torch.autograd for the others.
"""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastloss as fl
import fastloss.torch as flt
from fastloss._losses import LOSSES
from fastloss._reference import REFERENCES
from fl_testing import assert_close_spec

# the directory holding the fastloss under test (site-packages in CI, the checkout in an in-place build):
# a child process started there imports that one, not an unbuilt source tree
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))

# the mining losses need a batch with positives and negatives per anchor: their sampler's smallest
# batches are 2 rows
_N = {"batch_hard_triplet_loss": 160, "batch_all_triplet_loss": 160}


def sample(name, dtype=torch.float64, seed=0, n=40):
    """A valid small call of ``name`` as tensors: (args, kwargs); differentiated args require grad."""
    info = LOSSES[name]
    rng = np.random.default_rng(seed)
    args, kw = REFERENCES[name].sample(rng, _N.get(name, n), np.float64)
    out = []
    for i, a in enumerate(args):
        if a is None or np.isscalar(a):
            out.append(a)
            continue
        t = torch.as_tensor(np.array(a))
        if t.is_floating_point():
            t = t.to(dtype)
        if i in info.grad_argnums:
            t.requires_grad_(True)
        out.append(t)
    return out, dict(kw)


def cases():
    for name, info in LOSSES.items():
        for red in info.reductions:
            yield pytest.param(name, red, id=f"{name}-{red}")


def call_with(name, args, kw, grads):
    a = list(args)
    for i, g in zip(LOSSES[name].grad_argnums, grads):
        a[i] = g
    return getattr(flt, name)(*a, **kw)


# CIoU's gradient is torchvision's: its aspect-ratio weight alpha is a constant of the backward pass
# (computed under no_grad, as in the CIoU paper), so it is not the derivative of the value; it is checked
# against torch autograd of that formula below instead of finite differences.
NOT_A_DERIVATIVE = {"complete_box_iou_loss"}


@pytest.mark.parametrize("name,reduction", list(cases()))
def test_gradcheck(name, reduction):
    """Backward = finite differences of forward, float64, every output component (gradcheck's random
    projections stand for a random grad_output; reduction="none" covers the per-item scaling)."""
    if name in NOT_A_DERIVATIVE:
        pytest.skip("not the derivative of the value by design (torchvision); see test_vjp_against_torch")
    args, kw = sample(name)
    kw["reduction"] = reduction
    grads = [args[i] for i in LOSSES[name].grad_argnums]
    assert torch.autograd.gradcheck(lambda *g: call_with(name, args, kw, g), grads, eps=1e-6, atol=1e-6,
                                    rtol=1e-4, fast_mode=True)


@pytest.mark.parametrize("name,reduction", list(cases()))
def test_vjp_against_torch(name, reduction):
    """loss and grad_output-weighted gradients = torch autograd of the float64 torch reference."""
    info = LOSSES[name]
    args, kw = sample(name, seed=1)
    kw["reduction"] = reduction
    loss = getattr(flt, name)(*args, **kw)
    ref_args = [a.detach().clone().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a
                for a in args]
    ref = REFERENCES[name].torch_ref(*ref_args, **kw)
    assert loss.dtype == torch.float64 and loss.shape == ref.shape
    assert_close_spec(loss, ref, np.float64, what=f"{name} value")
    go = torch.randn(loss.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got = torch.autograd.grad(loss, [args[i] for i in info.grad_argnums], go)
    want = torch.autograd.grad(ref, [ref_args[i] for i in info.grad_argnums], go, allow_unused=True)
    for g, w, argname in zip(got, want, info.grad_args):
        w = torch.zeros_like(g) if w is None else w
        # a grad_output-weighted gradient entry sums per-item terms of both signs: the absolute floor
        # scales with the largest entry (SPEC §4's loosening for cancelling sums)
        assert_close_spec(g, w, np.float64, reduced=False, what=f"{name} d/d{argname}",
                          cancel=float(w.abs().max()) if w.numel() else None)


def test_fake_kernel_shapes_match_the_op():
    """The fake kernel (what torch.compile traces) gives the real outputs' shapes and dtypes."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    for name, info in LOSSES.items():
        for red in info.reductions:
            for dtype in (torch.float32, torch.float64):
                args, kw = sample(name, dtype)
                args = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
                kw["reduction"] = red
                real = _op_call(name, args, kw)
                with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                    fake = _op_call(name, [mode.from_tensor(a) if isinstance(a, torch.Tensor) else a
                                           for a in args], kw)
                assert [(t.shape, t.dtype) for t in fake] == [(t.shape, t.dtype) for t in real], (name, red)


def _op_call(name, args, kw):
    spec = flt._SPECS[name]
    full = dict(spec.defaults)
    full.update(zip(spec.names, args))
    full.update(kw)
    return flt.OPS[name](*(full[n] for n in spec.names))


def test_every_loss_has_a_function_and_only_out_return_grad_grad_out_are_left_out():
    assert flt.UNSUPPORTED == {}
    for name in LOSSES:
        assert callable(getattr(flt, name)) and name in flt.__all__
        assert set(flt.EXCLUDED_PARAMS[name]) <= {"out", "return_grad", "grad_out"}, name
        import inspect
        want = [p for p in inspect.signature(getattr(fl, name)).parameters
                if p not in ("out", "return_grad", "grad_out")]
        assert list(inspect.signature(getattr(flt, name)).parameters) == want


# ------------------------------------------------------------------------------- mirrored modules
MIRRORED = {  # module -> (fastloss loss, constructor options to try besides the defaults)
    "CrossEntropyLoss": ("cross_entropy", [{"label_smoothing": 0.1, "ignore_index": 1}]),
    "NLLLoss": ("nll_loss", [{"reduction": "sum"}]),
    "BCEWithLogitsLoss": ("binary_cross_entropy_with_logits", [{"reduction": "none"}]),
    "BCELoss": ("binary_cross_entropy", [{"reduction": "sum"}]),
    "KLDivLoss": ("kl_div", [{"reduction": "batchmean"}, {"log_target": True}]),
    "MSELoss": ("mse_loss", [{"reduction": "none"}]),
    "L1Loss": ("l1_loss", [{"reduction": "sum"}]),
    "HuberLoss": ("huber_loss", [{"delta": 0.5}]),
    "SmoothL1Loss": ("smooth_l1_loss", [{"beta": 0.5, "reduction": "none"}]),
    "PoissonNLLLoss": ("poisson_nll_loss", [{"full": True}]),
    "GaussianNLLLoss": ("gaussian_nll_loss", [{"full": True, "reduction": "none"}]),
    "TripletMarginLoss": ("triplet_margin_loss", [{"margin": 0.5, "swap": True}]),
    "MarginRankingLoss": ("margin_ranking_loss", [{"margin": 0.2, "reduction": "none"}]),
    "CosineEmbeddingLoss": ("cosine_embedding_loss", [{"margin": 0.1}]),
    "HingeEmbeddingLoss": ("hinge_embedding_loss", [{"margin": 0.5}]),
    "MultiMarginLoss": ("multi_margin_loss", [{"p": 2, "margin": 0.5}]),
}


def _module_cases():
    for cls, (loss, opts) in MIRRORED.items():
        for o in [{}] + opts:
            for dt in ("float32", "float64"):
                yield pytest.param(cls, loss, o, dt, id=f"{cls}-{o}-{dt}")


@pytest.mark.parametrize("cls,loss,opts,dtype", list(_module_cases()))
def test_module_matches_torch(cls, loss, opts, dtype):
    """fastloss.torch.<Module>(**opts) = torch.nn.<Module>(**opts): value and input gradients,
    the fastloss run in ``dtype`` against torch's in float64 (SPEC §4)."""
    dt = getattr(torch, dtype)
    args, kw = sample(loss, dt, seed=5)
    kw.pop("reduction", None)
    ctor = {k: v for k, v in kw.items() if k in {"margin", "p", "eps", "swap", "delta", "beta", "full",
                                                  "log_input", "log_target", "label_smoothing"}}
    ctor.update(opts)
    data = args[:len(flt._SPECS[loss].data_idx)]
    extra = {k: torch.as_tensor(np.asarray(v)).to(dt) for k, v in kw.items() if k in ("weight", "pos_weight")}
    ours = getattr(flt, cls)(**ctor, **extra)
    theirs = getattr(torch.nn, cls)(**ctor, **{k: v.double() for k, v in extra.items()})
    assert isinstance(ours, getattr(torch.nn, cls))
    ref_data = [a.detach().double().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor)
                and a.is_floating_point() else a for a in data]
    got, want = ours(*data), theirs(*ref_data)
    assert got.dtype == dt
    npdt = np.float32 if dtype == "float32" else np.float64
    assert_close_spec(got, want, npdt, what=f"{cls} value")
    go = torch.rand(got.shape, dtype=torch.float64) + 0.5
    diff = [i for i, a in enumerate(data) if isinstance(a, torch.Tensor) and a.requires_grad]
    g_got = torch.autograd.grad(got, [data[i] for i in diff], go.to(dt))
    g_want = torch.autograd.grad(want, [ref_data[i] for i in diff], go)
    for a, b in zip(g_got, g_want):
        assert_close_spec(a, b, npdt, reduced=False, what=f"{cls} gradient", cancel=float(b.abs().max()))


def test_module_legacy_size_average_reduce_map_like_torch():
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 4, dtype=torch.float64)
    with pytest.warns(UserWarning):
        m = flt.MSELoss(size_average=False)
    assert m.reduction == "sum"
    assert_close_spec(m(x, y), F.mse_loss(x, y, reduction="sum"), np.float64)


def test_modules_under_no_grad_and_inference_mode():
    x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    crit = flt.CrossEntropyLoss()
    want = F.cross_entropy(x.detach(), y)
    with torch.no_grad():
        a = crit(x, y)
    with torch.inference_mode():
        b = crit(x, y)
        c = flt.FocalLoss(gamma=1.0)(x, y)
    assert not a.requires_grad and not b.requires_grad and not c.requires_grad
    assert_close_spec(a, want, np.float64)
    assert_close_spec(b, want, np.float64)


def test_arcface_module_trains_its_centres():
    torch.manual_seed(0)
    m = flt.ArcFaceLoss(8, 5, scale=16.0, margin=0.3, dtype=torch.float64)
    assert isinstance(m.weight, torch.nn.Parameter)
    e = torch.randn(12, 8, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (12,))
    loss = m(e, y)
    loss.backward()
    w = m.weight.detach().clone().requires_grad_(True)
    e2 = e.detach().clone().requires_grad_(True)
    ref = REFERENCES["arcface_loss"].torch_ref(e2, y, w, scale=16.0, margin=0.3)
    ref.backward()
    assert_close_spec(loss, ref, np.float64)
    for got, want in ((m.weight.grad, w.grad), (e.grad, e2.grad)):
        assert_close_spec(got, want, np.float64, reduced=False, cancel=float(want.abs().max()))


def test_generic_modules_take_the_functions_options():
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (6, 4, 4))
    assert_close_spec(flt.DiceLoss(smooth=1.0)(x, y), flt.dice_loss(x, y, smooth=1.0), np.float64)
    with pytest.raises(TypeError, match="unexpected keyword"):
        flt.DiceLoss(smoothing=1.0)
    z1, z2 = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    assert_close_spec(flt.NTXentLoss(temperature=0.3)(z1, z2),
                      REFERENCES["nt_xent_loss"].torch_ref(z1, z2, temperature=0.3), np.float64)


# ------------------------------------------------------------------------------- training
def _mlp(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.Tanh(), torch.nn.Linear(32, 7)).to(dtype)


def test_sgd_run_matches_torch_loss_every_step():
    """200 SGD steps of an MLP in float64: the loss at every step equals the same run with torch's
    loss to 1e-10 relative (the trajectories stay together: fastloss's gradients are torch's to SPEC §4)."""
    g = torch.Generator().manual_seed(1)
    X = torch.randn(96, 10, dtype=torch.float64, generator=g)
    Y = torch.randint(0, 7, (96,), generator=g)
    runs = []
    for crit in (flt.CrossEntropyLoss(label_smoothing=0.05), torch.nn.CrossEntropyLoss(label_smoothing=0.05)):
        model = _mlp()
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        losses = []
        for _ in range(200):
            opt.zero_grad()
            loss = crit(model(X), Y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append(np.array(losses))
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-10, atol=0)
    assert runs[0][-1] < 0.5 * runs[0][0]           # it trained


def test_compile_fullgraph_aot_eager_every_loss_family():
    """torch.compile(fullgraph=True) traces the custom ops (fake kernels + autograd) without a graph
    break; aot_eager runs the traced graphs without a C++ compiler (the inductor test is below)."""
    for name in ("cross_entropy", "mse_loss", "gaussian_nll_loss", "triplet_margin_loss", "nt_xent_loss",
                 "dice_loss", "generalized_box_iou_loss", "arcface_loss"):
        args, kw = sample(name)
        for red in ("mean", "none"):
            kw["reduction"] = red
            f = getattr(flt, name)

            def step(*a):
                return f(*a, **kw).sum()

            torch._dynamo.reset()
            compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
            grads_of = [args[i] for i in LOSSES[name].grad_argnums]
            got = compiled(*args)
            g_got = torch.autograd.grad(got, grads_of)
            want = step(*args)
            g_want = torch.autograd.grad(want, grads_of)
            assert_close_spec(got, want, np.float64, what=name)
            for a, b in zip(g_got, g_want):
                assert_close_spec(a, b, np.float64, reduced=False, what=name)
    torch._dynamo.reset()


def test_compile_fullgraph_inductor_model():
    """The real thing: an MLP + fastloss cross-entropy under torch.compile(fullgraph=True) (inductor, CPU)
    trains like the eager model (float32; inductor compiles C++, ~30 s)."""
    model = _mlp(torch.float32)
    ref = copy.deepcopy(model)
    crit = flt.CrossEntropyLoss()

    def step(m, x, y):
        return crit(m(x), y)

    compiled = torch.compile(step, fullgraph=True)
    g = torch.Generator().manual_seed(2)
    X, Y = torch.randn(64, 10, generator=g), torch.randint(0, 7, (64,), generator=g)
    got = compiled(model, X, Y)
    got.backward()
    want = F.cross_entropy(ref(X), Y)
    want.backward()
    assert_close_spec(got.double(), want.double(), np.float32, reduced=True, result_type=False)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6)
    torch._dynamo.reset()


# ------------------------------------------------------------------------------- errors and contracts
def test_errors_before_any_kernel_and_no_autograd_state():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="meta.*CPU"):
        flt.cross_entropy(x.detach().to("meta"), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(RuntimeError, match="derivative for 'target'"):
        flt.mse_loss(x, torch.randn(4, 3, dtype=torch.float64, requires_grad=True))
    with pytest.raises(ValueError):
        flt.mse_loss(x, torch.randn(5, 3, dtype=torch.float64))
    with pytest.raises(IndexError):
        flt.cross_entropy(x, torch.tensor([0, 1, 7, 0]))
    assert x.grad is None and x.grad_fn is None
    flt.cross_entropy(x, torch.tensor([0, 1, 2, 0])).backward()   # a later call works
    assert x.grad is not None


def test_double_backward_refused_clearly():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(flt.cross_entropy(x, torch.tensor([0, 1, 2, 0])), x, create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        g.sum().backward()


def test_inputs_not_modified_and_results_zero_copy_dtype():
    x = torch.randn(5, 4, dtype=torch.float32, requires_grad=True)
    y = torch.randint(0, 4, (5,))
    x0, y0 = x.detach().clone(), y.clone()
    loss = flt.cross_entropy(x, y, reduction="none")
    loss.sum().backward()
    assert torch.equal(x.detach(), x0) and torch.equal(y, y0)
    assert loss.dtype == torch.float32 and x.grad.dtype == torch.float32
    xh = torch.randn(5, 4, dtype=torch.bfloat16, requires_grad=True)
    lh = flt.cross_entropy(xh, y)
    lh.backward()
    assert lh.dtype == torch.bfloat16 and xh.grad.dtype == torch.bfloat16


def test_numpy_api_warns_once_on_a_tensor_that_requires_grad():
    code = ("import warnings, torch, fastloss as fl\n"
            "x = torch.randn(4, 3, requires_grad=True); y = torch.tensor([0, 1, 2, 0])\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    fl.cross_entropy(x.detach(), y); fl.cross_entropy(x, y); fl.mse_loss(x, x.detach())\n"
            "from fastloss.torch import DetachedTensorWarning\n"
            "assert len(w) == 1 and w[0].category is DetachedTensorWarning, w\n"
            "assert 'fastloss.torch' in str(w[0].message) and w[0].filename == '<string>', w[0]\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_import_without_torch_says_so():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import fastloss.torch\nexcept ImportError as e:\n"
            "    assert 'fastloss[torch]' in str(e), e\nelse:\n    raise SystemExit('imported')\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_backward_twice_with_retained_graph_and_scaled_losses():
    """loss.backward() hands the saved gradient over without a copy; a retained graph must still give the
    same gradient on its second backward, and a scaled loss a scaled gradient (vs torch)."""
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 5, (6,))
    xr = x.detach().clone().requires_grad_(True)
    loss, ref = flt.cross_entropy(x, y), F.cross_entropy(xr, y)
    loss.backward(retain_graph=True)
    loss.backward(retain_graph=True)
    (0.25 * loss).backward()
    for _ in range(2):
        ref.backward(retain_graph=True)
    (0.25 * ref).backward()
    assert_close_spec(x.grad, xr.grad, np.float64, reduced=False)


@pytest.mark.parametrize("name", list(LOSSES))
def test_custom_op_registration(name):
    """The fastloss::<name> op that torch.compile traces: torch.library.opcheck (schema, fake kernel,
    autograd registration) on a float64 sample with reduction="none" and the default."""
    spec = flt._SPECS[name]
    for red in ("none", LOSSES[name].default_reduction):
        args, kw = sample(name)
        kw["reduction"] = red
        full = dict(spec.defaults)
        full.update(zip(spec.names, args))
        full.update(kw)
        torch.library.opcheck(flt.OPS[name], tuple(full[n] for n in spec.names),
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.filterwarnings("ignore:Using a target size")   # (torch's and fastloss's warning, as intended)
def test_none_backward_of_broadcast_arguments():
    """reduction="none" with an argument broadcast against the loss (var of shape (N, 1), a target wider
    than the input): the per-item gradient cannot be read off the sum's, backward recomputes it; checked
    by finite differences."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(5, 3, dtype=torch.float64, generator=g)
    var = (torch.rand(5, 1, dtype=torch.float64, generator=g) + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, v: flt.gaussian_nll_loss(a, t, v, reduction="none"), (x, var))
    x1 = torch.randn(3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: flt.mse_loss(a, t, reduction="none"), (x1,))
