"""The documentation's promises, checked: every Examples section of the public API runs as a doctest,
and every public function's numpydoc ``Parameters`` section names exactly its signature's parameters.

The doctests compare fastloss with NumPy formulas written in the examples themselves (never with
printed fastloss output alone); they are small and seeded, so the whole file runs in a few seconds.
Under ``python -OO`` docstrings are stripped: the tests are skipped then.
"""
import doctest
import importlib
import inspect
import os
import re

import numpy as np
import pytest

import fastloss

PUBLIC_MODULES = ["fastloss", "fastloss._classification", "fastloss._binary", "fastloss._regression",
                  "fastloss._boxes", "fastloss._metric", "fastloss._segmentation", "fastloss._linear", "fastloss.state",
                  "fastloss.scoring", "fastloss._threads", "fastloss._config", "fastloss.dask"]

needs_docstrings = pytest.mark.skipif(fastloss.cross_entropy.__doc__ is None,
                                      reason="docstrings stripped (python -OO)")


def _module(name):
    if name == "fastloss.dask":
        pytest.importorskip("dask")
    if name == "fastloss.scoring":
        pytest.importorskip("pyarrow")
    return importlib.import_module(name)


@needs_docstrings
@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_doctests(name, tmp_path, monkeypatch):
    module = _module(name)
    monkeypatch.chdir(tmp_path)                 # examples that write files write them here
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples
             # the objects fastloss/__init__ re-exports are tested in their own modules
             and (name != "fastloss" or t.name == "fastloss")]
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    report = []
    saved = np.get_printoptions()
    requested = fastloss._threads._runtime.requested_num_threads()
    np.set_printoptions(precision=8, suppress=False, legacy=False)
    try:
        for test in tests:
            runner.run(test, out=report.append)
    finally:
        np.set_printoptions(**saved)
        fastloss.set_num_threads(requested)     # an example may change the default thread count
    result = runner.summarize(verbose=False)
    assert result.attempted > 0 or name == "fastloss", f"no doctest examples found in {name}"
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} doctest examples failed in {name}:\n"
                    + "".join(report), pytrace=False)


DOCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "docs")
GUIDE_PAGES = sorted(f for f in os.listdir(os.path.join(DOCS, "user_guide")) if f.endswith(".rst")) \
    if os.path.isdir(os.path.join(DOCS, "user_guide")) else []


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_user_guide_examples(page, tmp_path, monkeypatch):
    """The ``>>>`` examples of the user guide (docs/user_guide/*.rst) run as doctests too."""
    path = os.path.join(DOCS, "user_guide", page)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    if "import dask" in text:
        pytest.importorskip("dask")
    if "import pyarrow" in text:
        pytest.importorskip("pyarrow")
    monkeypatch.chdir(tmp_path)
    requested = fastloss._threads._runtime.requested_num_threads()
    try:
        result = doctest.testfile(path, module_relative=False, globs={}, report=False, verbose=False,
                                  optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    finally:
        fastloss.set_num_threads(requested)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {page} (run " \
                               f"python -m doctest -o NORMALIZE_WHITESPACE -o ELLIPSIS {path})"


def _public_functions():
    out = []
    for name in fastloss.__all__:
        obj = getattr(fastloss, name)
        if inspect.isfunction(obj) or inspect.isbuiltin(obj):
            out.append((f"fastloss.{name}", obj))
    try:
        import fastloss.dask as fld
    except ImportError:
        fld = None
    if fld is not None:
        out += [(f"fastloss.dask.{n}", getattr(fld, n)) for n in fld.__all__]
    out += [("fastloss.LossState.merge_all", fastloss.LossState.merge_all),
            ("fastloss.LossState.finalize", fastloss.LossState.finalize)]
    return out


_SECTION = re.compile(r"^(\w[\w ]*)\n-+\n", re.M)


def documented_parameters(doc):
    """Names in the numpydoc ``Parameters`` section of ``doc`` ("a, b : type" counts both)."""
    doc = inspect.cleandoc(doc)
    sections = {m.group(1): m.end() for m in _SECTION.finditer(doc)}
    if "Parameters" not in sections:
        return []
    start = sections["Parameters"]
    ends = [pos for pos in (m.start() for m in _SECTION.finditer(doc)) if pos > start]
    body = doc[start:min(ends) if ends else len(doc)]
    names = []
    for line in body.splitlines():
        if line and not line[0].isspace():
            head = line.split(" : ")[0]
            names += [n.strip().lstrip("*") for n in head.split(",")]
    return names


@needs_docstrings
@pytest.mark.parametrize("qualname,fn", _public_functions(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_parameter_is_documented(qualname, fn):
    params = [p for p in inspect.signature(fn).parameters if p not in ("self", "cls")]
    documented = documented_parameters(fn.__doc__ or "")
    assert documented == params, (f"{qualname}: Parameters section lists {documented}, "
                                  f"the signature has {params}")
    if any(p in params for p in ("num_threads", "out", "return_grad")):
        assert "Returns\n-------" in inspect.cleandoc(fn.__doc__)


def test_parameter_parser():
    doc = """Summary.

    Parameters
    ----------
    a, b : int
        Two.
    c : float, optional
        One, with a continuation
        line.
    **kwargs
        More.

    Returns
    -------
    x : int
        Not a parameter.
    """
    assert documented_parameters(doc) == ["a", "b", "c", "kwargs"]
