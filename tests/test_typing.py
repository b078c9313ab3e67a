"""The public API's static types.

* mypy (``--strict``, configured in pyproject.toml ``[tool.mypy]``) passes on the package and on
  ``tests/typing/``, whose ``assert_type`` calls pin the ``return_grad`` overloads of every loss;
* the same calls, run, return what their asserted types say;
* every loss's three ``return_grad`` overloads take exactly its parameters, with its annotations,
  and promise as many gradients as its reference entry says it differentiates;
* every public function and method is annotated, and ``py.typed`` ships with the package.
"""
import ast
import inspect
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import fastloss as fl
from fastloss._reference import REFERENCES

ROOT = Path(__file__).resolve().parents[1]
LOSS_MODULES = ("classification", "regression", "boxes", "metric", "binary", "segmentation", "linear")
GRAD_TYPES = {1: "LossGrad", 2: "LossGrads2", 3: "LossGrads3"}


def test_mypy_strict_passes():
    pytest.importorskip("mypy")
    pytest.importorskip("typing_extensions")
    # No paths: [tool.mypy] files = the package and tests/typing.  No cache: nothing written to the tree.
    cmd = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", os.devnull]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0 and res.stdout.startswith("Success"), res.stdout + res.stderr


def test_type_assertions_hold_at_run_time():
    """The calls whose static types tests/typing/check_api.py asserts return values of those types."""
    pytest.importorskip("typing_extensions")
    ns = runpy.run_path(str(ROOT / "tests" / "typing" / "check_api.py"), run_name="check_api")
    for flag in (False, True):
        ns["check_return_grad_overloads"](flag)
    ns["check_losses"]()
    ns["check_others"]()


def _loss_defs():
    """(name, implementation, [overloads]) of every public function with return_grad, from the source."""
    for mod in LOSS_MODULES:
        path = ROOT / "fastloss" / f"_{mod}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        overloads = {}
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            if any(isinstance(d, ast.Name) and d.id == "overload" for d in node.decorator_list):
                overloads.setdefault(node.name, []).append(node)
            elif any(a.arg == "return_grad" for a in node.args.kwonlyargs):
                yield node.name, node, overloads.pop(node.name, [])


def _params(fn):
    """[(kind, name, annotation source, has default)] of an ast function definition."""
    a = fn.args
    pos = a.posonlyargs + a.args
    defaults = [False] * (len(pos) - len(a.defaults)) + [True] * len(a.defaults)
    out = [("pos", p.arg, ast.unparse(p.annotation), d) for p, d in zip(pos, defaults)]
    out += [("kw", p.arg, ast.unparse(p.annotation), d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    assert a.vararg is None and a.kwarg is None
    return out


LOSS_DEFS = list(_loss_defs())


def test_every_loss_with_return_grad_is_checked():
    names = {n for n, *_ in LOSS_DEFS}
    public = {n for n in fl.__all__ if "return_grad" in inspect.signature(getattr(fl, n)).parameters}
    assert names == public


@pytest.mark.parametrize("name, impl, overloads", LOSS_DEFS, ids=[n for n, *_ in LOSS_DEFS])
def test_return_grad_overloads_match_the_function(name, impl, overloads):
    grad = GRAD_TYPES[len(REFERENCES[name].grad_argnums)]
    assert ast.unparse(impl.returns) == f"Loss | {grad}"
    expected = [("Literal[False]", True, "Loss"), ("Literal[True]", False, grad), ("bool", True, f"Loss | {grad}")]
    assert len(overloads) == len(expected), f"{name}: {len(overloads)} overloads"
    params = [p for p in _params(impl) if p[1] != "return_grad"]
    for ov, (flag_type, flag_default, returns) in zip(overloads, expected):
        assert [p for p in _params(ov) if p[1] != "return_grad"] == params, \
            f"{name}: an overload's parameters differ from the function's"
        assert ("kw", "return_grad", flag_type, flag_default) in _params(ov)
        assert ast.unparse(ov.returns) == returns
        assert all(isinstance(d, ast.Constant) and d.value is Ellipsis
                   for d in ov.args.defaults + [d for d in ov.args.kw_defaults if d is not None])


def _public_callables():
    items = [(n, getattr(fl, n)) for n in fl.__all__]
    try:
        import fastloss.dask as fld
    except ImportError:
        pass
    else:
        items += [(f"dask.{n}", getattr(fld, n)) for n in fld.__all__]
    out = []
    for name, obj in items:
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                fn = fn.fget if isinstance(fn, property) else fn
                if inspect.isfunction(fn) and (not attr.startswith("_") or attr in ("__init__", "__add__")):
                    out.append((f"{name}.{attr}", fn))
        else:
            out.append((name, obj))
    return out


@pytest.mark.parametrize("name, fn", _public_callables(), ids=lambda v: v if isinstance(v, str) else "")
def test_public_callable_is_annotated(name, fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values()
               if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")]
    assert not missing, f"{name}: parameters without annotation: {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"


def test_py_typed_ships_with_the_package():
    assert (Path(fl.__file__).parent / "py.typed").is_file()
