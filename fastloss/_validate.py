"""One place for input conversion, the checks of SPEC §3/§5, and their error messages."""
import contextvars
import numbers

import numpy as np

REDUCTIONS = ("none", "mean", "sum")
_FLOAT_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))
_F32, _F64 = _FLOAT_NATIVE
_I32, _I64 = np.dtype(np.int32), np.dtype(np.int64)
_NDARRAY = np.ndarray
_C_ALIGNED = 0x0001 | 0x0100    # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, read from flags.num in one go


# Fast paths: the common call passes C-contiguous ndarrays of the dtype the kernel wants; they are
# recognised with a few attribute reads (dtypes by identity: NumPy's builtin dtypes are singletons, and
# a dtype that is equal but not identical just takes the general path) and returned as they are.  The
# general path below costs 1-3 us per argument, which is most of the call on inputs of <= 1000 items.
# (Written out in each function rather than called: a helper's call is ~0.1 us of a ~3 us call.)
def plain_pair(x, y):
    """Whether prediction ``x`` and target ``y`` are C-contiguous ndarrays of one float32/float64 dtype and
    one shape: what ``prediction`` and ``float_array(..., dtype=x.dtype)`` return as they are, with
    nothing to broadcast (the usual call of an elementwise loss, recognised with a few attribute reads)."""
    if type(x) is _NDARRAY and type(y) is _NDARRAY:
        dt = x.dtype
        return (dt is _F32 or dt is _F64) and y.dtype is dt and \
            x.flags.num & y.flags.num & _C_ALIGNED == _C_ALIGNED and x.shape == y.shape
    return False


def _aligned(a):
    """``a`` itself, or an aligned copy: a C-contiguous view of a file (np.load(mmap_mode=...) of an
    ``.npz`` member, a buffer at an odd offset) can be misaligned, which the kernels refuse."""
    return a if a.flags.aligned else a.copy()


class DetachedTensorWarning(UserWarning):
    """A ``fastloss.*`` loss got a tensor that requires grad: its NumPy result is detached from autograd
    (``fastloss.torch`` has the differentiable losses).  Warned once per process."""


_warned_detached = False


def _warn_detached(name):
    global _warned_detached
    if not _warned_detached:
        _warned_detached = True
        import os
        import sys
        import warnings
        here, level, f = os.path.dirname(__file__), 2, sys._getframe(1)
        while f is not None and f.f_code.co_filename.startswith(here):  # point at the caller of fastloss
            f, level = f.f_back, level + 1
        warnings.warn(f"{name} requires grad, but fastloss's NumPy losses return detached NumPy results "
                      f"(no autograd); for training use fastloss.torch (import fastloss.torch as flt; "
                      f"flt.cross_entropy(...), flt.CrossEntropyLoss(), ...). This warning is shown once.",
                      DetachedTensorWarning, stacklevel=level)


def _to_numpy(x, name):
    """Any array-like -> ndarray without copying when possible (torch tensors, __array__, dlpack, buffers).

    ``None`` is a TypeError naming the argument (SPEC §5): a required array argument must never reach a
    kernel as an object array (or a NULL buffer)."""
    if isinstance(x, np.ndarray):
        return x
    if x is None:
        raise TypeError(f"{name} is None; expected an array (a NumPy array, a torch tensor or a nested list "
                        f"of numbers)")
    mod = type(x).__module__
    if mod.startswith("torch"):
        if x.requires_grad:
            _warn_detached(name)
        t = x.detach()
        if t.device.type != "cpu":
            raise TypeError(f"{name}: fastloss computes on the CPU; got a tensor on {t.device}")
        if t.dtype.is_complex:
            raise TypeError(f"{name}: complex tensors are not supported")
        import torch
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()  # SPEC §3: half precision computes in float32
        return t.numpy()
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}")
    if _is_list_column(x, mod):
        a = _list_column(x, name, mod)
        if a is not None:
            return a
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return np.asarray(x)
    if hasattr(x, "__dlpack__"):
        try:
            return np.from_dlpack(x)
        except Exception:
            pass
    try:
        return np.asarray(x)
    except Exception as exc:  # ragged lists and other non-arrays
        raise TypeError(f"{name} must be array-like: {exc}") from None


def _is_list_column(x, mod):
    """A column of equal-length lists from a dataframe library, recognised without importing it: a
    pandas Series of object cells or of an ArrowDtype list type, a Polars ``List`` / ``Array`` Series,
    a pyarrow list array."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        return type(x).__module__.startswith("pyarrow") and "list" in str(getattr(x, "type", ""))
    if mod.startswith("pandas"):
        arrow_type = getattr(dt, "pyarrow_dtype", None)          # pandas.ArrowDtype
        return (isinstance(dt, np.dtype) and dt.kind == "O") or "list" in str(arrow_type or "")
    return type(dt).__name__ in ("List", "Array") and hasattr(x, "__arrow_c_stream__")    # Polars


def _list_column(x, name, mod):
    """A list column as an (n, k) array through Arrow (one conversion of the whole column, no Python
    loop per row; a view of the list values where Arrow allows), with scoring's rules: one list length,
    no nulls.  None when the column turns out not to hold lists."""
    import pyarrow as pa

    from .scoring import check_column_type, column_array, null_rows
    try:
        arr = pa.chunked_array(x) if hasattr(x, "__arrow_c_stream__") and not mod.startswith("pandas") \
            else pa.array(x)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TypeError(f"{name} holds values that are not numbers or sequences of numbers: {exc}") from None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_list(arr.type) and not pa.types.is_large_list(arr.type) and \
            not pa.types.is_fixed_size_list(arr.type):
        return None          # not lists after all (object cells of numbers, strings): NumPy's rules apply
    try:
        check_column_type(name, arr.type, "the input")
    except TypeError:
        raise TypeError(f"{name} must hold numbers or lists of numbers, got Arrow type {arr.type}") from None
    bad = null_rows(arr)
    if bad is not None:
        raise ValueError(f"{name} has {int(bad.sum())} row(s) holding a missing value (None/null); remove or "
                         f"fill them first")
    return column_array(arr, name)


def describe(a, x=None):
    """What an array that is not of the expected kind holds, for an error message: its dtype, and for the
    usual mistakes (a pandas Categorical, strings, None, complex numbers) what to do instead."""
    what = f"dtype {a.dtype}"
    if x is not None and str(getattr(x, "dtype", "")) == "category":
        return (f"a pandas Categorical ({what}); convert it to numbers first: its integer codes "
                f"(.cat.codes) for class labels, or .astype(float) for numeric categories")
    if a.dtype.kind == "O":
        kinds = sorted({type(v).__name__ for v in a.reshape(-1)[:64]})
        held = f" holding {'/'.join(kinds)}" if kinds else ""
        hint = ("; missing values (None) must be removed or filled first" if "NoneType" in kinds else
                "; convert it to a numeric array first (np.asarray(x, dtype=np.float32), or integer codes "
                "for class labels)")
        return f"an object array{held} ({what}){hint}"
    if a.dtype.kind in "US":
        return f"strings ({what}); convert them to numbers first"
    if a.dtype.kind == "c":
        return f"complex numbers ({what}); pass the real part (x.real) or the magnitude (abs(x))"
    return what


def float_array(x, name, dtype=None):
    """The prediction (or another float argument) as a C-contiguous float32/float64 array.

    ``dtype=None`` keeps float32/float64 and promotes half precision (and integers, for targets) to
    float32; ``dtype`` set converts to it (mixed dtypes compute in the prediction's dtype).  At most
    one copy, and none for C-contiguous input of the right dtype.
    """
    if type(x) is _NDARRAY:                  # (the fast path: C-contiguous float32/float64 of dtype)
        dt = x.dtype
        if (dt is _F32 or dt is _F64) and (dtype is None or dtype is dt) and \
                x.flags.num & _C_ALIGNED == _C_ALIGNED:
            return x
    a = _to_numpy(x, name)
    kind = a.dtype.kind
    if kind not in "fiub":
        raise TypeError(f"{name} must be a float array, got {describe(a, x)}")
    if dtype is None:
        # byte order aside (a big-endian float64 is float64: SPEC §3 keeps the prediction's precision)
        native = a.dtype.newbyteorder("=")
        dtype = native if kind == "f" and native in _FLOAT_NATIVE else np.float32
    return _aligned(np.ascontiguousarray(a, dtype=dtype).reshape(a.shape))   # (ascontiguousarray: 0-d -> 1-d)


def prediction(x, name="input"):
    """Like float_array, but the prediction must already be floating point (as in torch)."""
    if type(x) is _NDARRAY:                  # (the fast path)
        dt = x.dtype
        if (dt is _F32 or dt is _F64) and x.flags.num & _C_ALIGNED == _C_ALIGNED:
            return x
    a = _to_numpy(x, name)
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array (float16/32/64), got {describe(a, x)}")
    return float_array(a, name)


def labels_array(x, name="target", source=None):
    """Integer class labels: int32/int64 without a copy (when C-contiguous), other integers converted.
    ``source``: the argument as the caller received it, when ``x`` is already its array (for messages)."""
    if type(x) is _NDARRAY and (x.dtype is _I64 or x.dtype is _I32) and \
            x.flags.num & _C_ALIGNED == _C_ALIGNED:
        return x
    a = _to_numpy(x, name)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of class indices, got "
                        f"{label_hint(a, x if source is None else source)}")
    if a.dtype not in (np.dtype(np.int32), np.dtype(np.int64)):
        if a.dtype == np.uint64 and a.size and a.max() > INT64_MAX:   # would wrap to a negative index
            i = int(np.argmax(a.reshape(-1) > INT64_MAX))
            pos = tuple(int(k) for k in np.unravel_index(i, a.shape)) if a.ndim > 1 else i
            raise IndexError(f"{name} has class index {int(a.reshape(-1)[i])} at position {pos}, outside "
                             f"the range of class indices (int64)")
        a = a.astype(np.int64)
    return _aligned(np.ascontiguousarray(a).reshape(a.shape))  # ascontiguousarray makes 0-d arrays 1-d


def label_hint(a, x=None):
    """``describe`` for class labels: float labels say how to convert them, and NaN among them that they
    are missing labels (a pandas ``Int64`` column with NA converts to float64 with NaN)."""
    if a.dtype.kind != "f":
        return describe(a, x)
    if a.size and np.isnan(a).any():
        return (f"dtype {a.dtype} holding NaN: missing labels (e.g. a pandas Int64 column with NA); drop "
                f"those rows, or fill them with ignore_index and convert to integers (.astype(np.int64))")
    return f"dtype {a.dtype}; convert the labels with .astype(np.int64)"


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def check_int(value, name, hint=""):
    """A Python/NumPy integer parameter (``ignore_index``, ...), as an int within int64 (the kernels' type: a
    larger Python int would otherwise fail there as an OverflowError naming nothing); ``hint`` says what it
    is for."""
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer{hint}, got {short_repr(value)}")
        value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{name} must be an integer within int64{hint}, got {value}")
    return value


def short_repr(value, limit=80):
    """repr(value) cut to ``limit`` characters, for error messages (an array argument can be huge)."""
    r = repr(value)
    return r if len(r) <= limit else r[:limit - 3] + "..."


def check_choice(value, name, allowed):
    """A string parameter (``reduction``, ``box_format``, ``mode``, ...) that must be one of ``allowed``."""
    # (str first: `in` compares arrays elementwise; a str subclass, e.g. numpy.str_, is a str)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {short_repr(value)}")
    return value


def check_bool(value, name):
    """A flag (``return_grad``, ``swap``, ``full``, ...): True or False (NumPy's bool, and the integers 0
    and 1, as torch's ``if flag:`` takes them); anything else -- an array above all, whose truth value is
    ambiguous -- is a TypeError naming the flag."""
    if value is True or value is False:
        return value
    if isinstance(value, (np.bool_, numbers.Integral)) and value in (0, 1):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {short_repr(value)}")


def check_reduction(reduction, allowed=REDUCTIONS, out=None, return_grad=False, grad_out=None):
    """``reduction`` is one of ``allowed``; ``out=`` (SPEC §2) only goes with ``reduction="none"``; the
    ``return_grad`` flag is a bool; ``grad_out=`` only goes with ``return_grad=True``.  (Every loss calls
    this first.)"""
    if type(reduction) is not str or reduction not in allowed:     # (check_choice, inlined: every call)
        check_choice(reduction, "reduction", allowed)
    if return_grad is not False and return_grad is not True:
        check_bool(return_grad, "return_grad")
    if out is not None and reduction != "none":
        raise ValueError(f"out= is only used with reduction='none' (a {reduction!r} reduction returns a "
                         f"scalar); drop out= or pass reduction='none'")
    if grad_out is not None and not return_grad:
        raise ValueError("grad_out= is only used with return_grad=True; drop grad_out= or pass "
                         "return_grad=True")


def check_same_shape(a, b, name_a, name_b):
    if a.shape != b.shape:
        raise ValueError(f"{name_b} shape {b.shape} must match {name_a} shape {a.shape}")


def _bounds_text(low, high, low_open, high_open):
    """' >= low and <= high' (the parts given) for check_real's messages."""
    parts = [f"{'>' if low_open else '>='} {low}" if low is not None else "",
             f"{'<' if high_open else '<='} {high}" if high is not None else ""]
    return " " + " and ".join(p for p in parts if p)


def check_real(value, name, *, low=None, high=None, low_open=False, high_open=False):
    """A Python/NumPy real scalar within bounds (for parameters like delta, q, beta)."""
    if type(value) is float:        # (the usual call: no ABC check, no conversion)
        v = value
    elif type(value) is not int and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    else:
        v = float(value)
    if low is None and high is None:
        return v
    if v != v:      # nan passes every comparison below
        raise ValueError(f"{name} must be a number{_bounds_text(low, high, low_open, high_open)}, got nan")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value!r}")
    return v


def broadcast_weight(w, shape, dtype, name):
    """A weight broadcast to ``shape``: None, a scalar (returned as float), or a C-contiguous array.

    A weight of exactly ``shape`` is used in place; one that only broadcasts is materialised once
    (one copy of the input's size, documented).
    """
    if w is None:
        return None
    a = float_array(w, name, dtype=dtype)
    if a.size == 1 and a.ndim <= len(shape):
        return float(a.reshape(()))
    try:
        np.broadcast_shapes(a.shape, shape)
    except ValueError:
        raise ValueError(f"{name} shape {a.shape} does not broadcast to input shape {shape}") from None
    if np.broadcast_shapes(a.shape, shape) != tuple(shape):
        raise ValueError(f"{name} shape {a.shape} would broadcast the input shape {shape} to a larger shape")
    if a.shape == tuple(shape):
        return a
    return np.ascontiguousarray(np.broadcast_to(a, shape))


def broadcast_together(arrays, names):
    """Arrays broadcast to their common shape as torch broadcasts operands (ValueError naming them all
    if they do not); returns (the arrays, each materialised once unless it has that shape, the shape)."""
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        seen = ", ".join(f"{n} {a.shape}" for a, n in zip(arrays, names))
        raise ValueError(f"shapes do not broadcast: {seen}") from None
    return [a if a.shape == shape else np.ascontiguousarray(np.broadcast_to(a, shape)) for a in arrays], shape


def unbroadcast(g, shape):
    """A gradient of a broadcast result summed (in float64) over the broadcast axes, to an operand's own
    ``shape`` (what autograd gives a broadcast operand)."""
    if g is None or g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, dtype=np.float64).reshape(shape).astype(g.dtype)


def output_array(out, shape, dtype, name="out"):
    """The ``out=`` array for reduction='none' (validated), or a fresh one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != dtype:
        raise ValueError(f"{name} must have shape {tuple(shape)} and dtype {np.dtype(dtype)}, "
                         f"got {out.shape} {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writable C-contiguous array")
    return out


def grad_outs(grad_out, n):
    """``grad_out=`` as a tuple of ``n`` entries (each None or a buffer, checked later by ``grad_buffer``):
    one gradient takes an array, several a tuple (or list) of as many arrays or None, in the order of the
    gradients."""
    if grad_out is None:
        return (None,) * n
    if n == 1:
        return (grad_out,)
    if type(grad_out) not in (tuple, list) or len(grad_out) != n:
        raise TypeError(f"grad_out must be a tuple of {n} arrays (or None for a fresh one), one per "
                        f"gradient, got {short_repr(grad_out)}")
    return tuple(grad_out)


_TOO_HARD = getattr(getattr(np, "exceptions", np), "TooHardError", Exception)


def _overlaps(a, arrays):
    """``a`` shares memory with one of ``arrays`` (non-arrays skipped; a case too hard to decide counts)."""
    for b in arrays:
        if isinstance(b, np.ndarray) and (b is a or np.may_share_memory(a, b)):
            try:
                if np.shares_memory(a, b, max_work=1 << 16):
                    return True
            except _TOO_HARD:       # undecided within max_work: refuse rather than risk writing an input
                return True
    return False


def grad_buffer(grad_out, shape, dtype, inputs=(), zero=False, name="grad_out"):
    """The array a kernel writes a gradient of ``shape`` and ``dtype`` into: a fresh one (zeroed with
    ``zero``), or the user's ``grad_out=`` buffer, checked as ``out=`` is (shape, dtype, C-contiguous,
    writable, aligned) and refused when it shares memory with one of ``inputs`` (the arguments the call
    reads, or the other outputs)."""
    if grad_out is None:
        return np.zeros(shape, dtype=dtype) if zero else np.empty(shape, dtype=dtype)
    g = output_array(grad_out, shape, dtype, name)
    if not g.flags.aligned:
        raise ValueError(f"{name} must be an aligned array")
    if _overlaps(g, inputs):
        raise ValueError(f"{name} shares memory with an input or another output of the call; pass a "
                         f"separate buffer")
    if zero:
        g.fill(0)
    return g


def grad_buffers(grad_out, shapes, dtype, inputs=()):
    """``grad_buffer`` for each gradient of a loss with several (``shapes``, in order): a list."""
    entries = grad_outs(grad_out, len(shapes))
    bufs = []
    for i, (g, shape) in enumerate(zip(entries, shapes)):
        name = "grad_out" if len(shapes) == 1 else f"grad_out[{i}]"
        bufs.append(grad_buffer(g, shape, dtype, (*inputs, *bufs), name=name))
    return bufs


def deliver_grad(grad_out, grad, inputs=(), name="grad_out"):
    """A gradient computed into an array of its own (a broadcast or float64 intermediate) delivered into
    the user's ``grad_out`` buffer (checked by ``grad_buffer``), which is returned; without one, ``grad``."""
    if grad_out is None or grad is grad_out:
        return grad
    buf = grad_buffer(grad_out, grad.shape, grad.dtype, inputs, name=name)
    np.copyto(buf, grad)
    return buf


def deliver_grads(grad_out, grads, inputs=()):
    """``deliver_grad`` for the tuple of gradients of a loss with several."""
    if grad_out is None:
        return grads
    entries = grad_outs(grad_out, len(grads))
    done = []
    for i, (g, buf) in enumerate(zip(grads, entries)):
        name = "grad_out" if len(grads) == 1 else f"grad_out[{i}]"
        done.append(deliver_grad(buf, g, (*inputs, *done), name=name))
    return tuple(done)


# Every reduced result passes through ``reduced``.  While a sink (a list) is set here, it also receives
# the float64 (total, count) the result is made of: ``fastloss.partial`` builds a mergeable state from
# the same single kernel pass (fastloss/state.py).
REDUCTION_SINK = contextvars.ContextVar("fastloss_reduction_sink", default=None)


# NumPy >= 2 (NEP 50): 1.0f times a Python float is that float rounded to float32 -- the value, and the
# overflow warning, of float32(v) -- in ~0.1 us, where float32's constructor takes ~0.3 us (its array
# path).  NumPy 1.x promotes that product to float64: there the constructor is used.
_ONE_F32 = np.float32(1.0) if type(np.float32(1.0) * 0.5) is np.float32 else None


def reduced(total, count, reduction, dtype, empty_mean=None):
    """Finish a reduction: a NumPy scalar of the prediction's dtype (mean over 0 items is nan, or
    ``empty_mean`` when given: torchvision's box losses give 0)."""
    sink = REDUCTION_SINK.get()
    if sink is not None:
        sink.append((float(total), float(count)))
    if reduction == "sum":
        v = float(total)
    elif count:   # Python float division: the same IEEE result as NumPy's, without np.errstate's ~2 us
        v = float(total) / float(count)
    elif empty_mean is not None:
        v = float(empty_mean)
    else:
        v = None
    if v is not None:
        return _ONE_F32 * v if dtype is _F32 and _ONE_F32 is not None else dtype.type(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        return dtype.type(np.float64(total) / np.float64(count))
