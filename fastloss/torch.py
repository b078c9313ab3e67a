"""fastloss for PyTorch training on the CPU: autograd functions, ``nn.Module`` losses, ``torch.compile``.

Every loss of :mod:`fastloss` has a function here with the NumPy function's signature (less ``out``,
``return_grad`` and ``grad_out``: see ``EXCLUDED_PARAMS``) that takes and returns ``torch.Tensor`` s and is differentiable::

    import fastloss.torch as flt
    loss = flt.cross_entropy(logits, labels)     # logits.requires_grad -> loss.backward() works
    criterion = flt.CrossEntropyLoss(label_smoothing=0.1)

How it works
------------
* Each loss is a ``torch.library.custom_op`` named ``fastloss::<name>`` (with a fake kernel and its
  autograd formula registered), so ``torch.compile(model, fullgraph=True)`` traces through it without a
  graph break.  The op calls the NumPy loss once with ``return_grad=True`` -- loss and gradient in one
  kernel pass -- on zero-copy NumPy views of the tensors, and returns ``(loss, grad, ...)``; the public
  function returns the loss only.  Eager calls run the same forward and backward through a
  ``torch.autograd.Function`` (the dispatcher's Python round trips cost more than a small loss);
  calls with nothing to differentiate (``no_grad``, ``inference_mode``) compute the loss only.
* Backward multiplies the saved gradient by ``grad_output``.  For ``reduction="none"`` the gradient
  fastloss returns is that of the sum; when every item's loss depends on its own element / row only
  (elementwise, row, class and box losses whose differentiated arguments have the loss's leading
  shape), ``grad_output`` scales it element- or row-wise.  Where it cannot (in-batch losses, ArcFace's
  class centres, the Dice family's per-(sample, class) items, an argument broadcast against the loss),
  backward of ``reduction="none"`` recomputes the loss with torch ops (the float64 formula of
  ``fastloss._reference``, the one the tests check fastloss against) and lets torch differentiate it:
  exact, but at torch's speed.  The mean / sum reductions always use the one-pass gradient.
* Second derivatives are not supported: differentiating the gradient again raises a clear error.
* Inputs are never modified; a call that fails (bad shapes, labels out of range) raises before any
  autograd state exists.  Tensors must be on the CPU; non-differentiated tensors (targets, labels,
  class weights) must not require grad.
"""
from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Optional

try:
    import torch
    import torch.nn as _nn
    from torch import Tensor
except ImportError as _exc:  # pragma: no cover - exercised by tests/test_torch_autograd.py in a subprocess
    raise ImportError("fastloss.torch needs PyTorch: pip install 'fastloss[torch]' (or torch>=2.4)") from _exc

import numpy as np

import fastloss as _fl
from ._losses import LOSSES, LossInfo
from ._validate import DetachedTensorWarning

__all__ = ["DetachedTensorWarning", "EXCLUDED_PARAMS", "OPS", "UNSUPPORTED"]

# Parameters of the NumPy functions that the torch functions leave out: ``out`` (the result is a new
# tensor; autograd needs its own output), ``return_grad`` (autograd computes it) and ``grad_out``
# (a preallocated gradient buffer: the op owns its outputs).  Any other parameter whose annotation has no
# torch schema type lands in EXCLUDED_PARAMS too (and keeps its NumPy default); the tests check that only
# these three do.
_LEFT_OUT = ("out", "return_grad", "grad_out")
EXCLUDED_PARAMS: dict[str, tuple[str, ...]] = {}

# annotation (as written in the NumPy wrappers) -> (schema type, is an array argument)
_TYPES: dict[str, tuple[Any, bool]] = {
    "ArrayLike": (Tensor, True),
    "ArrayLike | None": (Optional[Tensor], True),
    "float": (float, False), "float | None": (Optional[float], False),
    "int": (int, False), "int | None": (Optional[int], False),
    "bool": (bool, False), "bool | None": (Optional[bool], False),
    "str": (str, False), "str | None": (Optional[str], False),
}

# Items whose loss depends on more than its own row of the differentiated arguments, besides in-batch
# losses: ArcFace's class centres are shared by every row; a Dice-family item is one (sample, class)
# whose softmax involves the other classes.
_NOT_SEPARABLE_ITEMS = ("sample_class", "pair_rows")
_NOT_SEPARABLE = ("arcface_loss",)

_HALF = (torch.float16, torch.bfloat16)


def _numpy(t: Tensor) -> np.ndarray:
    """A zero-copy NumPy view of a CPU tensor (half precision: a float32 copy, as SPEC §3 computes)."""
    t = t.detach().resolve_neg()              # (a lazily negated view: numpy() refuses it)
    if t.dtype in _HALF:
        t = t.float()
    return t.numpy()


def _tensor(a: Any, dtype: torch.dtype) -> Tensor:
    """A result array (or NumPy scalar) as a tensor of ``dtype``: zero-copy when the dtypes agree."""
    t = torch.from_numpy(np.asarray(a))
    return t if t.dtype == dtype else t.to(dtype)


class _Spec:
    """How one loss maps onto its op: its parameters, which are arrays, which are differentiated."""

    def __init__(self, info: LossInfo):
        self.info = info
        self.name = info.name
        sig = inspect.signature(info.function)
        self.params: list[inspect.Parameter] = []      # the torch signature, in NumPy order
        self.schema: list[tuple[str, Any]] = []        # (name, schema type)
        self.arrays: list[str] = []
        excluded = []
        for p in sig.parameters.values():
            ann = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
            if p.name in _LEFT_OUT or ann not in _TYPES:
                if p.default is inspect.Parameter.empty:
                    raise TypeError(f"fastloss.torch: {self.name}: required parameter {p.name!r} has no "
                                    f"torch type ({ann!r})")
                excluded.append(p.name)
                continue
            typ, is_array = _TYPES[ann]
            self.params.append(p)
            self.schema.append((p.name, typ))
            if is_array:
                self.arrays.append(p.name)
        EXCLUDED_PARAMS[self.name] = tuple(excluded)
        self.names = [p.name for p in self.params]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.grad_idx = [self.index[g] for g in info.grad_args]
        self.array_idx = [self.index[a] for a in self.arrays]
        self.defaults = {p.name: p.default for p in self.params if p.default is not inspect.Parameter.empty}
        # the data: the required array arguments (predictions, targets, labels), all positional
        self.data_idx = [self.index[n] for n in self.arrays if n not in self.defaults]
        self.separable = not (info.in_batch or info.items in _NOT_SEPARABLE_ITEMS or self.name in _NOT_SEPARABLE)


def _loss_shape(spec: _Spec, args: tuple) -> tuple:
    """The shape of the reduction="none" loss of a call (the fake kernel's; the tests compare it with the
    real one for every loss)."""
    items = spec.info.items
    x = args[0]
    if items == "elementwise":       # the broadcast shape of the data (the required arrays), as torch's
        return tuple(torch.broadcast_shapes(*(args[i].shape for i in spec.data_idx)))
    if items == "rows":
        return tuple(x.shape[:-1])
    if items == "pair_rows":
        return (2 * x.shape[0],)
    if items == "class":
        return () if x.dim() <= 1 else (x.shape[0], *x.shape[2:])
    if items == "sample_class":
        return tuple(x.shape[:2])
    if items == "boxes":
        return tuple(torch.broadcast_shapes(x.shape[:-1], args[1].shape[:-1]))
    raise AssertionError(items)


def _double_backward_error(*grads):
    """Outputs of a backward that raise if differentiated again (what ``once_differentiable`` does)."""
    msg = "fastloss.torch does not support double backward (second derivatives of a fastloss loss)"
    live = [g for g in grads if g is not None]
    if not live:
        return grads
    # (a node that raises when run; the gradients become its outputs even when nothing upstream requires
    # grad, so that differentiating them says why instead of "does not require grad")
    live = [g if g.requires_grad else g.detach().requires_grad_(True) for g in live]
    wrapped = torch._C._functions.DelayedError(msg, len(live))(*live)
    wrapped = iter((wrapped,) if isinstance(wrapped, Tensor) else wrapped)
    out = tuple(next(wrapped) if g is not None else None for g in grads)
    return out


def _make_op(spec: _Spec):
    """Register ``fastloss::<name>`` (custom op + fake kernel + autograd) for one loss."""
    fn = spec.info.function
    names = spec.names
    grad_idx = spec.grad_idx
    n_out = 1 + len(grad_idx)
    single = len(grad_idx) == 1

    def numpy_kwargs(args):
        return {n: _numpy(a) if isinstance(a, Tensor) else a for n, a in zip(names, args)}

    def loss_only(*args):                # nothing to differentiate (no_grad, inference, eval): no gradient
        return _tensor(fn(**numpy_kwargs(args)), args[grad_idx[0]].dtype)

    def body(*args):
        res = fn(**numpy_kwargs(args), return_grad=True)
        loss, grads = res[0], ((res[1],) if single else res[1])
        dtype = args[grad_idx[0]].dtype
        return (_tensor(loss, dtype), *(_shaped(_tensor(g, args[i].dtype), args[i].shape)
                                        for g, i in zip(grads, grad_idx)))

    def fake(*args):
        red = args[spec.index["reduction"]]
        x = args[grad_idx[0]]
        shape = _loss_shape(spec, args) if red == "none" else ()
        return (x.new_empty(shape), *(args[i].new_empty(args[i].shape) for i in grad_idx))

    # a plain function with the schema's annotations: custom_op infers the schema from them
    params = ", ".join(f"{n}: _T{k}" for k, n in enumerate(names))
    src = (f"def {spec.name}({params}) -> _Ret:\n"
           f"    return _body({', '.join(names)})\n")
    ns: dict[str, Any] = {f"_T{k}": t for k, (_, t) in enumerate(spec.schema)}
    ns["_Ret"] = typing.Tuple[(Tensor,) * n_out]
    ns["_body"] = body
    exec(src, ns)
    op = torch.library.custom_op(f"fastloss::{spec.name}", mutates_args=())(ns[spec.name])
    op.register_fake(fake)

    red_i = spec.index["reduction"]
    items = spec.info.items

    def keep(ctx, inputs, loss, grads):
        """What backward needs: the gradients (or, where reduction="none" cannot use them, the inputs)."""
        ctx.reduction = inputs[red_i]
        fallback = False
        if ctx.reduction == "none":
            fallback = not spec.separable or \
                not all(_aligned(items, loss.shape, inputs[i].shape) for i in grad_idx)
        ctx.fallback = fallback
        if fallback:     # recompute in torch ops at backward: keep the inputs, not the gradients
            ctx.inputs = inputs
        else:
            ctx.save_for_backward(*grads)

    def setup_context(ctx, inputs, output):
        ctx.shift = 0                      # needs_input_grad's index of the first input (1 in eager mode)
        ctx.mark_non_differentiable(*output[1:])
        ctx.set_materialize_grads(False)   # no zero N x C grad_outputs for the (unused) gradient outputs
        keep(ctx, inputs, output[0], output[1:])

    def backward(ctx, grad_loss, *unused):
        if grad_loss is None:
            return (None,) * len(names)
        needs = ctx.needs_input_grad[ctx.shift:]
        if ctx.fallback:
            grads = _reference_backward(spec, ctx.inputs, grad_loss, needs)
        else:
            saved = ctx.saved_tensors
            grads = [None] * len(names)
            one = ctx.reduction != "none" and _is_one(grad_loss)
            for g, i in zip(saved, grad_idx):
                if not needs[i]:
                    continue
                if one:      # loss.backward(): the saved gradient is the answer, no N x C pass
                    grads[i] = g
                elif ctx.reduction == "none":
                    grads[i] = g * _expand(items, grad_loss, g.shape)
                else:
                    grads[i] = g * grad_loss
        if torch.is_grad_enabled():           # create_graph=True: refuse a second derivative, clearly
            grads = _double_backward_error(*grads)
        return tuple(grads)

    op.register_autograd(backward, setup_context=setup_context)
    return op, _Parts(body, keep, backward, loss_only)


class _Parts(typing.NamedTuple):
    body: Callable
    keep: Callable
    backward: Callable
    loss_only: Callable


class _Eager(torch.autograd.Function):  # type: ignore[misc]
    """The same forward / backward as the custom op, without the dispatcher's Python round trips
    (~0.4 ms a call): what an eager call runs.  torch.compile traces the custom op instead."""

    @staticmethod
    def forward(ctx, parts: _Parts, *args):
        loss, *grads = parts.body(*args)
        parts.keep(ctx, args, loss, grads)  # (saved, not outputs: one output is cheaper, and released
        ctx.shift, ctx.parts = 1, parts     # after backward, so autograd can adopt them as .grad)
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        return (None, *ctx.parts.backward(ctx, grad_loss))


def _shaped(t: Tensor, shape) -> Tensor:
    return t if t.shape == shape else t.reshape(shape)


def _is_one(go: Tensor) -> bool:
    """``grad_output`` is exactly 1 (``loss.backward()``), in eager mode.  Then backward returns the
    saved gradient itself: no multiply, and autograd's AccumulateGrad adopts it as ``.grad`` when the graph
    is not retained (the saved tensor is released first); a retained graph keeps it, so AccumulateGrad
    copies it and it stays intact for the next backward.  Traced (torch.compile) backward multiplies."""
    return (type(go) is Tensor and go.numel() == 1 and not torch.compiler.is_compiling()
            and go.item() == 1.0)


def _aligned(items: str, loss_shape, arg_shape) -> bool:
    """Whether an argument's per-item gradient is its sum-gradient scaled by ``grad_output`` broadcast
    along the argument's extra axes (the item's own element / row / class column / box)."""
    loss_shape, arg_shape = tuple(loss_shape), tuple(arg_shape)
    if items == "elementwise":
        return arg_shape == loss_shape
    if items in ("rows", "boxes"):
        return arg_shape[:-1] == loss_shape
    if items == "class":
        return (len(arg_shape) <= 1 and loss_shape == ()) or \
            (len(arg_shape) >= 2 and (arg_shape[0], *arg_shape[2:]) == loss_shape)
    return False


def _expand(items: str, go: Tensor, shape) -> Tensor:
    """``grad_output`` of reduction="none", shaped to broadcast over a gradient of ``shape``."""
    if items in ("rows", "boxes"):
        return go.unsqueeze(-1)
    if items == "class" and len(shape) >= 2:
        return go.unsqueeze(1)
    return go


def _reference_backward(spec: _Spec, inputs, grad_loss, needs):
    """reduction="none" backward of a loss whose items share arguments: torch autograd of the float64
    reference formula (fastloss._reference), in the inputs' dtype."""
    from ._reference import REFERENCES
    ref = REFERENCES[spec.name].torch_ref
    args = list(inputs)
    leaves = []
    for i in spec.grad_idx:
        args[i] = args[i].detach().requires_grad_(True)
        leaves.append(args[i])
    # the reference takes the data positionally and the options by name (None: the option is off)
    n_pos = len(spec.data_idx)
    kwargs = {n: a for n, a in zip(spec.names[n_pos:], args[n_pos:]) if n != "num_threads" and a is not None}
    try:
        with torch.enable_grad():
            loss = ref(*args[:n_pos], **kwargs)
            got = torch.autograd.grad(loss, leaves, grad_loss, allow_unused=True)
    except TypeError as exc:
        raise NotImplementedError(
            f"fastloss.torch.{spec.name}: backward of reduction='none' with these arguments needs the torch "
            f"formula, which does not take them ({exc}); use reduction='sum' with the weights folded in, "
            f"or arguments of the loss's shape") from None
    grads: list = [None] * len(spec.names)
    for g, i in zip(got, spec.grad_idx):
        if needs[i]:
            grads[i] = torch.zeros_like(inputs[i]) if g is None else g.to(inputs[i].dtype)
    return grads


OPS: dict[str, Any] = {}
_PARTS: dict[str, _Parts] = {}
_SPECS: dict[str, _Spec] = {}


def _check(spec: _Spec, args: list) -> None:
    """torch-style errors before any kernel runs: CPU tensors, one device, targets not requiring grad."""
    for n, a in zip(spec.names, args):
        if not isinstance(a, Tensor):
            continue
        if a.device.type != "cpu":
            raise RuntimeError(f"fastloss.torch.{spec.name}: {n} is on {a.device}; fastloss computes on the "
                               f"CPU: move the tensors with .cpu() (or use torch's own loss on {a.device.type})")
        if a.requires_grad and n not in spec.info.grad_args:
            raise RuntimeError(f"fastloss.torch.{spec.name}: the derivative for '{n}' is not implemented "
                               f"(fastloss differentiates {', '.join(spec.info.grad_args)}); pass "
                               f"{n}.detach()")


def _apply(spec: _Spec, args: list) -> Tensor:
    for i in spec.array_idx:
        a = args[i]
        if a is not None and not isinstance(a, Tensor):
            args[i] = torch.as_tensor(np.asarray(a))
    _check(spec, args)
    if torch.compiler.is_compiling() or any(type(a) not in _EAGER_TYPES for a in args if isinstance(a, Tensor)):
        return OPS[spec.name](*args)[0]          # traced (fake / functional tensors): the custom op
    parts = _PARTS[spec.name]
    if not torch.is_grad_enabled() or not any(isinstance(args[i], Tensor) and args[i].requires_grad
                                              for i in spec.grad_idx):
        return parts.loss_only(*args)
    return _Eager.apply(parts, *args)


_EAGER_TYPES = (Tensor, _nn.Parameter)


def _make_function(spec: _Spec) -> Callable[..., Tensor]:
    """The public function: the NumPy signature (less the left-out parameters), a plain Python function
    (generated, so that torch.compile traces it without a graph break)."""
    sig = inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in spec.params])
    ns: dict[str, Any] = {"_apply": _apply, "_spec": spec}
    parts, kw_started = [], False
    for k, p in enumerate(sig.parameters.values()):
        if p.kind is p.KEYWORD_ONLY and not kw_started:
            parts.append("*")
            kw_started = True
        if p.default is inspect.Parameter.empty:
            parts.append(p.name)
        else:
            ns[f"_d{k}"] = p.default
            parts.append(f"{p.name}=_d{k}")
    src = (f"def {spec.name}({', '.join(parts)}):\n"
           f"    return _apply(_spec, [{', '.join(spec.names)}])\n")
    exec(src, ns)
    f = ns[spec.name]
    f.__module__ = __name__
    f.__qualname__ = spec.name
    f.__doc__ = (f"``fastloss.{spec.name}`` on torch tensors, differentiable with respect to "
                 f"{', '.join(spec.info.grad_args)} (see :mod:`fastloss.torch`).\n\n"
                 f"Same arguments as :func:`fastloss.{spec.name}` less "
                 f"{', '.join(EXCLUDED_PARAMS[spec.name]) or 'none'}; returns a tensor (a 0-d tensor "
                 f"for a reduction) in the prediction's dtype.")
    return f


# Losses whose signature has a required parameter without a torch type (none today; the tests check):
# no torch function rather than a failed import.
UNSUPPORTED: dict[str, str] = {}
for _name, _info in LOSSES.items():
    try:
        _spec = _Spec(_info)
    except TypeError as _exc:
        UNSUPPORTED[_name] = str(_exc)
        continue
    _SPECS[_name] = _spec
    OPS[_name], _PARTS[_name] = _make_op(_spec)
    globals()[_name] = _make_function(_spec)
    __all__.append(_name)
del _name, _info


# ------------------------------------------------------------------------------- nn.Module losses
# The torch.nn losses: subclasses of torch's own modules (same constructor, attributes, state_dict,
# legacy size_average / reduce mapping, isinstance), whose forward calls the fastloss function.
def _torch_module(base: type, loss: str, forward_args: tuple[str, ...], options: tuple[str, ...]) -> type:
    fn = globals()[loss]

    def __init__(self, *args, num_threads: Optional[int] = None, **kwargs):
        base.__init__(self, *args, **kwargs)  # type: ignore[misc]
        self.num_threads = num_threads

    def forward(self, *inputs):
        kw = {o: getattr(self, o) for o in options}
        return fn(*inputs, **kw, num_threads=self.num_threads)

    cls = type(base.__name__, (base,), {
        "__init__": __init__, "forward": forward, "__module__": __name__,
        "__doc__": f"``torch.nn.{base.__name__}`` computed by :func:`fastloss.torch.{loss}` (same "
                   f"constructor arguments, plus ``num_threads``); forward({', '.join(forward_args)})."})
    return cls


_MIRRORED = {
    "CrossEntropyLoss": ("cross_entropy", ("input", "target"), ("weight", "ignore_index", "reduction", "label_smoothing")),
    "NLLLoss": ("nll_loss", ("input", "target"), ("weight", "ignore_index", "reduction")),
    "BCEWithLogitsLoss": ("binary_cross_entropy_with_logits", ("input", "target"), ("weight", "reduction", "pos_weight")),
    "BCELoss": ("binary_cross_entropy", ("input", "target"), ("weight", "reduction")),
    "KLDivLoss": ("kl_div", ("input", "target"), ("reduction", "log_target")),
    "MSELoss": ("mse_loss", ("input", "target"), ("reduction",)),
    "L1Loss": ("l1_loss", ("input", "target"), ("reduction",)),
    "HuberLoss": ("huber_loss", ("input", "target"), ("reduction", "delta")),
    "SmoothL1Loss": ("smooth_l1_loss", ("input", "target"), ("reduction", "beta")),
    "PoissonNLLLoss": ("poisson_nll_loss", ("log_input", "target"), ("log_input", "full", "eps", "reduction")),
    "GaussianNLLLoss": ("gaussian_nll_loss", ("input", "target", "var"), ("full", "eps", "reduction")),
    "TripletMarginLoss": ("triplet_margin_loss", ("anchor", "positive", "negative"), ("margin", "p", "eps", "swap", "reduction")),
    "MarginRankingLoss": ("margin_ranking_loss", ("input1", "input2", "target"), ("margin", "reduction")),
    "CosineEmbeddingLoss": ("cosine_embedding_loss", ("input1", "input2", "target"), ("margin", "reduction")),
    "HingeEmbeddingLoss": ("hinge_embedding_loss", ("input", "target"), ("margin", "reduction")),
    "MultiMarginLoss": ("multi_margin_loss", ("input", "target"), ("p", "margin", "weight", "reduction")),
}
for _cls, (_loss, _fwd, _opts) in _MIRRORED.items():
    if _loss in _SPECS:
        globals()[_cls] = _torch_module(getattr(_nn, _cls), _loss, _fwd, _opts)
        __all__.append(_cls)
del _cls, _loss, _fwd, _opts


# The losses torch lacks: a module per loss, generated from its function: the required array arguments
# are forward's, every other parameter is the constructor's (keyword-only, the function's defaults).
class _FastlossLoss(_nn.Module):  # type: ignore[misc]
    _loss: str = ""
    _forward_args: tuple[str, ...] = ()
    _options: dict[str, Any] = {}

    def __init__(self, **kwargs: Any):
        super().__init__()
        unknown = set(kwargs) - set(self._options)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword argument(s) "
                            f"{', '.join(sorted(unknown))}; it takes {', '.join(self._options)}")
        for k, default in self._options.items():
            setattr(self, k, kwargs.get(k, default))

    def forward(self, *inputs: Tensor) -> Tensor:
        if len(inputs) != len(self._forward_args):
            raise TypeError(f"{type(self).__name__}.forward takes {len(self._forward_args)} tensors "
                            f"({', '.join(self._forward_args)}), got {len(inputs)}")
        return globals()[self._loss](*inputs, **{k: getattr(self, k) for k in self._options})

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k, d in self._options.items()
                         if getattr(self, k) is not d and getattr(self, k) != d)


def _generic_module(clsname: str, loss: str, skip: tuple[str, ...] = ()) -> type:
    spec = _SPECS[loss]
    fwd = tuple(p.name for p in spec.params if p.default is inspect.Parameter.empty)
    opts = {p.name: p.default for p in spec.params if p.default is not inspect.Parameter.empty
            and p.name not in skip}
    init_sig = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] +
                                 [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=d)
                                  for k, d in opts.items()])
    cls = type(clsname, (_FastlossLoss,), {
        "_loss": loss, "_forward_args": fwd, "_options": opts, "__module__": __name__,
        "__doc__": f"Module form of :func:`fastloss.torch.{loss}`: constructor keywords "
                   f"{', '.join(opts)}; forward({', '.join(fwd)})."})
    cls.__init__ = _with_signature(cls.__init__, init_sig)  # type: ignore[misc]
    return cls


def _with_signature(f, sig):
    def __init__(self, **kwargs):
        f(self, **kwargs)
    __init__.__signature__ = sig
    return __init__


_GENERIC = {
    "FocalLoss": "softmax_focal_loss", "SigmoidFocalLoss": "sigmoid_focal_loss",
    "DistillationLoss": "distillation_loss",
    "LogCoshLoss": "log_cosh_loss", "QuantileLoss": "quantile_loss", "MAPELoss": "mape_loss",
    "SMAPELoss": "smape_loss", "MSLELoss": "msle_loss", "GaussianKLLoss": "gaussian_kl_loss",
    "IoULoss": "iou_loss", "GIoULoss": "generalized_box_iou_loss", "DIoULoss": "distance_box_iou_loss",
    "CIoULoss": "complete_box_iou_loss", "ContrastiveLoss": "contrastive_loss",
    "BatchHardTripletLoss": "batch_hard_triplet_loss", "BatchAllTripletLoss": "batch_all_triplet_loss",
    "InfoNCELoss": "info_nce_loss", "NTXentLoss": "nt_xent_loss", "HingeLoss": "hinge_loss",
    "DiceLoss": "dice_loss", "JaccardLoss": "jaccard_loss", "TverskyLoss": "tversky_loss",
    "FocalTverskyLoss": "focal_tversky_loss", "DiceBCELoss": "dice_bce_loss",
}
for _cls, _loss in _GENERIC.items():
    if _loss in _SPECS:
        globals()[_cls] = _generic_module(_cls, _loss)
        __all__.append(_cls)
del _cls, _loss


class ArcFaceLoss(_nn.Module):  # type: ignore[misc]
    """ArcFace (additive angular margin) loss with its class centres as a parameter:
    ``ArcFaceLoss(embedding_dim, num_classes, scale=64.0, margin=0.5, ...)``; forward(embeddings, labels).

    ``self.weight`` (num_classes, embedding_dim) is an ``nn.Parameter`` (Xavier-uniform initialised, like
    insightface's); its gradient flows through :func:`fastloss.torch.arcface_loss`."""

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 64.0, margin: float = 0.5,
                 reduction: str = "mean", *, easy_margin: bool = False, plain_margin: bool = False,
                 num_threads: Optional[int] = None, device=None, dtype=None):
        super().__init__()
        self.embedding_dim, self.num_classes = embedding_dim, num_classes
        self.scale, self.margin, self.reduction = scale, margin, reduction
        self.easy_margin, self.plain_margin, self.num_threads = easy_margin, plain_margin, num_threads
        self.weight = _nn.Parameter(torch.empty((num_classes, embedding_dim), device=device, dtype=dtype))
        _nn.init.xavier_uniform_(self.weight)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        loss = globals()["arcface_loss"]        # (generated above)
        return loss(embeddings, labels, self.weight, scale=self.scale, margin=self.margin,
                    reduction=self.reduction, easy_margin=self.easy_margin, plain_margin=self.plain_margin,
                    num_threads=self.num_threads)

    def extra_repr(self) -> str:
        return (f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}, scale={self.scale}, "
                f"margin={self.margin}, reduction={self.reduction!r}")


__all__.append("ArcFaceLoss")


def __getattr__(name: str):  # a clearer message than the module's default for the NumPy-only names
    if hasattr(_fl, name):
        raise AttributeError(f"fastloss.torch has no {name!r}: it is fastloss.{name} (NumPy)")
    raise AttributeError(f"module 'fastloss.torch' has no attribute {name!r}")

