"""Argument fuzzing of the whole public surface (issue 13).

Every callable of ``fastloss.__all__`` -- the losses, the pairwise box functions, ``box_area``,
``class_balanced_weights``, ``partial``, the ``LossState`` constructor and methods, ``score_file`` /
``score_parquet`` and the thread settings -- is called from a valid call with each parameter in turn
(defaults included) replaced by every value of a menu of hostile values (``hostile_values``): None,
0-d, empty, a zero-size axis at every position, object and string arrays, complex, bool, float16,
big-endian, negative strides, nested lists, a torch tensor that requires grad, a non-contiguous
torch tensor.

The allowed outcomes of a call (``judge``):

* a result, equal (SPEC §4 tolerance, same shape) to the shared float64 reference on the same
  values where there is one and it accepts the call; otherwise a finite-or-nan float ndarray / NumPy
  scalar for a loss (any value for the other callables) -- and the NumPy inputs unmodified;
* a ``ValueError`` / ``TypeError`` / ``IndexError`` whose message names the replaced parameter (and is
  not a kernel's internal boundary check: a wrapper must catch every bad argument first).

Anything else fails: another exception type, an unnamed message, a wrong value or shape, a modified
input, and above all a crash.  The calls run in a child interpreter (this file run as a script), which
reports each call before making it; if the child dies, the parent names the call that killed it and
starts a new child after it.  One child normally runs every case (a few seconds of calls plus the
imports); the per-function tests below then check their function's records.
"""

import inspect
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

import fastloss as fl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
SPEC5 = (ValueError, TypeError, IndexError)
FASTLOSS_ONLY = ("num_threads", "out", "return_grad")  # parameters no reference takes
N_ELEMENTS = 24


# ------------------------------------------------------------------------------ the menu of values
def hostile_values(original):
    """(label, value) pairs replacing an argument whose valid value is ``original``."""
    import torch

    template = original if isinstance(original, np.ndarray) and original.ndim else np.array([0.5, 1.5, 2.5])
    yield "None", None
    yield "0-d", np.array(template.reshape(-1)[0] if template.size else 0.5, dtype=template.dtype)
    yield "empty", np.array([], dtype=template.dtype)
    for axis in range(template.ndim):
        shape = list(template.shape)
        shape[axis] = 0
        yield f"zero axis {axis} {tuple(shape)}", np.zeros(shape, dtype=template.dtype)
    if template.ndim == 1:
        yield "zero axis 1 of 2", np.zeros((template.shape[0], 0), dtype=template.dtype)
    yield "object", np.array([None] * template.size, dtype=object).reshape(template.shape)
    yield "string", np.full(template.shape, "a")
    yield "complex", template.astype(np.complex128)
    yield "bool", (template != 0)
    yield "float16", template.astype(np.float16)
    yield "big-endian", template.astype(template.dtype.newbyteorder(">"))
    yield "negative strides", template[::-1]
    yield "nested list", template.tolist()
    if template.dtype.kind == "f":
        yield "torch requires_grad", torch.tensor(template, dtype=torch.float64, requires_grad=True)
    yield "torch non-contiguous", torch.from_numpy(np.repeat(template, 2, axis=-1))[..., ::2]


# ------------------------------------------------------------------------------ the valid calls
def _valid_calls(tmpdir):
    """(name, callable, args, kwargs, reference or None, is_loss) for each public callable."""
    from fastloss._reference import REFERENCES

    rng = np.random.default_rng(2024)
    calls = []
    for name in sorted(REFERENCES):
        spec = REFERENCES[name]
        args, kwargs = spec.sample(rng, N_ELEMENTS, np.float64)
        ref = spec.torch_ref or spec.numpy_ref
        calls.append((name, getattr(fl, name), args, kwargs, ref, True))
    b = rng.uniform(0, 5, (6, 4))
    b[:, 2:] += b[:, :2]
    calls.append(
        (
            "box_area",
            fl.box_area,
            (b,),
            {},
            lambda x, **kw: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1]),
            True,
        )
    )
    x, y = rng.standard_normal(12), rng.standard_normal(12)
    calls.append(("partial", fl.partial, ("mse_loss", x, y), {}, None, False))
    state = fl.partial("mse_loss", x, y)
    calls.append(("LossState", fl.LossState, ("mse_loss", 1.5, 0.0, 3.0, 3), {}, None, False))
    calls.append(("LossState.empty", fl.LossState.empty, ("mse_loss",), {}, None, False))
    calls.append(("LossState.merge", state.merge, (state,), {}, None, False))
    calls.append(
        ("LossState.merge_all", fl.LossState.merge_all, ([state, state],), {"loss": "mse_loss"}, None, False)
    )
    calls.append(("LossState.finalize", state.finalize, ("mean",), {}, None, False))
    calls.append(("LossState.from_dict", fl.LossState.from_dict, (state.to_dict(),), {}, None, False))
    calls.append(("LossState.to_dict", state.to_dict, (), {}, None, False))
    npz = os.path.join(tmpdir, "scores.npz")
    np.savez(npz, x=x, y=y, w=np.abs(y))
    calls.append(("score_file", fl.score_file, (npz, "mse_loss", "x", "y"), {"weight": "w"}, None, False))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pqf = os.path.join(tmpdir, "scores.parquet")
        pq.write_table(pa.table({"x": x, "y": y}), pqf)
        calls.append(("score_parquet", fl.score_parquet, (pqf, "mse_loss", "x", "y"), {}, None, False))
        calls.append(("score_table", fl.score_table, (pa.table({"x": x, "y": y, "g": np.arange(len(x)) % 2}),
                                                      "mse_loss", "x", "y"), {"by": "g"}, None, False))
    except ImportError:  # pragma: no cover - pyarrow is a test dependency
        pass
    calls.append(("ScoreResult", fl.ScoreResult, (0.5, "mean", 3, 0, 3.0, 0.1, state), {}, None, False))
    calls.append(("set_num_threads", fl.set_num_threads, (1,), {}, None, False))
    for name in ("get_num_threads", "openmp_enabled", "config"):
        calls.append((name, getattr(fl, name), (), {}, None, False))
    return calls


def _fuzzable(fn, args, kwargs):
    """The bound arguments of a valid call, defaults applied: (name -> value, names passed positionally)."""
    sig = inspect.signature(fn)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    params = sig.parameters
    values = {}
    for name, value in bound.arguments.items():
        kind = params[name].kind
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        values[name] = value
    return values, list(bound.arguments)[: len(args)]


def cases(tmpdir):
    """Every (function, parameter, hostile value) case, in a fixed order."""
    out = []
    for name, fn, args, kwargs, ref, is_loss in _valid_calls(tmpdir):
        values, positional = _fuzzable(fn, args, kwargs)
        out.append((name, fn, values, positional, kwargs, ref, is_loss, None, "valid", None))
        for param, original in values.items():
            if name == "show_config" or (name == "ScoreResult" and param != "loss"):
                continue
            for label, value in hostile_values(original):
                out.append((name, fn, values, positional, kwargs, ref, is_loss, param, label, value))
    return out


# ------------------------------------------------------------------------------ judging one call
def _for_reference(v, original):
    """A hostile value as the reference sees it: the same numbers as a native, contiguous ndarray, in
    float64 where the valid call had a float array (fastloss converts such an argument to float; the
    reference must not compute in float16 or bool)."""
    import torch

    if isinstance(v, torch.Tensor):
        v = v.detach().contiguous().numpy()
    if isinstance(v, list):
        v = np.asarray(v)
    if isinstance(v, np.ndarray):
        v = np.ascontiguousarray(v).astype(v.dtype.newbyteorder("="))
        if isinstance(original, np.ndarray) and original.dtype.kind == "f" and v.dtype.kind in "biuf":
            v = v.astype(np.float64)
    return v


def _tolerance(dtype, reduced):
    """SPEC §4: float64 1e-12 relative; float32 elements 1e-5 relative + 1e-6 absolute, reductions 1e-6."""
    if dtype == np.float64:
        return 1e-12, 1e-14
    return (1e-6, 1e-7) if reduced else (1e-5, 1e-6)


def _copies(values):
    return {k: v.copy() for k, v in values.items() if isinstance(v, np.ndarray) and k != "out"}


def judge(case):
    """(status, detail) of one case; status "ok" or "raised" pass, anything else fails."""
    import torch

    name, fn, values, positional, kwargs, ref, is_loss, param, label, value = case
    call = dict(values)
    if param is not None:
        call[param] = value
    before = _copies(call)
    pos = [call.pop(p) for p in positional]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = fn(*pos, **call)
    except SPEC5 as exc:
        msg = str(exc)
        if param is None:
            return "valid-call-failed", f"{type(exc).__name__}: {msg}"
        if msg.startswith("fastloss kernel"):
            return "reached-kernel", msg
        if param not in msg:
            return "unnamed", f"{type(exc).__name__}: {msg}"
        return "raised", f"{type(exc).__name__}: {msg[:100]}"
    except Exception as exc:  # noqa: BLE001 - any other exception type is a failure to report
        return "bad-exception", f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        for p, v in zip(positional, pos):
            call[p] = v
    for k, v in before.items():
        if v.dtype.kind != "O" and not np.array_equal(call[k], v, equal_nan=v.dtype.kind in "fc"):
            return "modified-input", k
    if name == "set_num_threads":
        fl.set_num_threads(0)
    if not is_loss:
        return "ok", type(result).__name__
    if not isinstance(result, (np.ndarray, np.generic)) or result.dtype.kind not in "fiu":
        return "bad-result", f"{type(result).__name__} {getattr(result, 'dtype', '')}"
    if ref is None:
        return "ok", "no reference"
    rcall = {k: _for_reference(v, values.get(k)) for k, v in call.items() if k not in FASTLOSS_ONLY}
    rpos = [rcall.pop(p) for p in positional]
    rkw = {
        k: v
        for k, v in rcall.items()
        if k in kwargs or (k == param and (value is not None or values[k] is not None))
    }
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = ref(*rpos, **rkw)
        if isinstance(expected, torch.Tensor):
            expected = expected.detach().numpy()
        expected = np.asarray(expected, dtype=np.float64)
    except Exception:  # noqa: BLE001 - the reference refuses this call: fastloss's result is an extension
        if result.dtype in (np.float32, np.float64) or name == "box_area":  # (integer boxes: integer areas)
            return "ok", "reference refused; result of a float dtype"
        return "bad-result", f"dtype {result.dtype}"
    if np.shape(result) != expected.shape:
        return "mismatch", f"shape {np.shape(result)}, reference {expected.shape}"
    rtol, atol = _tolerance(result.dtype, expected.ndim == 0)
    try:
        np.testing.assert_allclose(
            np.asarray(result, dtype=np.float64), expected, rtol=rtol, atol=atol, equal_nan=True
        )
    except AssertionError as exc:
        return "mismatch", str(exc)[:400]
    return "ok", "equals the reference"


# ------------------------------------------------------------------------------ child and parent
def _describe(case):
    name, param, label = case[0], case[7], case[8]
    return f"{name}({param}={label})" if param else f"{name}(valid call)"


def child_main(start):
    """Run cases from index ``start``, one JSON line per case; "BEGIN i" first, so a crash is located."""
    import torch

    torch.set_num_threads(1)
    fl.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        all_cases = cases(tmp)
        print(json.dumps({"total": len(all_cases)}), flush=True)
        for i in range(start, len(all_cases)):
            case = all_cases[i]
            print(json.dumps({"begin": i, "fn": case[0], "call": _describe(case)}), flush=True)
            status, detail = judge(case)
            print(
                json.dumps(
                    {"end": i, "fn": case[0], "call": _describe(case), "status": status, "detail": detail}
                ),
                flush=True,
            )


def run_all_cases(timeout=600):
    """All records, by function: {fn: [(call, status, detail)]}; children restarted after a crash."""
    env = dict(
        os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1"
    )
    records, start, total = {}, 0, None
    while total is None or start < total:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", str(start)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        begun = None
        for line in proc.stdout.splitlines():
            rec = json.loads(line)
            if "total" in rec:
                total = rec["total"]
            elif "begin" in rec:
                begun = rec
            else:
                records.setdefault(rec["fn"], []).append((rec["call"], rec["status"], rec["detail"]))
                begun = None
                start = rec["end"] + 1
        if proc.returncode != 0 or begun is not None:
            if begun is None:  # died before its first case (an import error): report it once
                raise RuntimeError(f"fuzz child failed to start: {proc.stderr[-2000:]}")
            records.setdefault(begun["fn"], []).append(
                (begun["call"], "crash", f"exit status {proc.returncode}: {proc.stderr[-500:]}")
            )
            start = begun["begin"] + 1
    return records


PASS = ("ok", "raised")
FUNCTIONS = sorted(n for n in fl.__all__ if n != "show_config")


@pytest.fixture(scope="module")
def records():
    return run_all_cases()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_callable_survives_hostile_arguments(records, name):
    recs = [r for fn, rs in records.items() if fn == name or fn.startswith(name + ".") for r in rs]
    assert recs, f"no fuzz case ran for {name}"
    bad = [f"{call}: {status}: {detail}" for call, status, detail in recs if status not in PASS]
    assert not bad, f"{len(bad)} of {len(recs)} calls failed:\n" + "\n".join(bad[:40])


def test_every_public_callable_is_fuzzed(records):
    """The case table covers all of fastloss.__all__ (a new public name must get a valid call here)."""
    covered = {fn.split(".")[0] for fn in records}
    assert set(FUNCTIONS) <= covered, sorted(set(FUNCTIONS) - covered)


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "--child":
    child_main(int(sys.argv[2]))
