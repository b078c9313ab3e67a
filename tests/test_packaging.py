"""Packaging: every package the tests import is declared in the ``test`` extra, so that
``pip install ".[test]"`` on a fresh machine is enough to run the suite (a package installed by hand on
a developer's machine must not hide a missing extra)."""
import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# names the tests import that are not third-party distributions
LOCAL = {"fastloss", "fl_testing", "conftest"}


def _imported_top_level_modules(path):
    """Top-level module names imported by a test file: import statements (at any depth),
    pytest.importorskip("name"), and imports inside code strings run by child interpreters."""
    src = path.read_text()
    names = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "importorskip"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(node.args[0].value.split(".")[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for line in node.value.splitlines():   # code run in a child: "import numpy as np, fastloss"
                m = re.match(r"\s*(?:from\s+([\w.]+)\s+import\b|import\s+([\w., ]+?)(?:\s+as\s+\w+)?\s*$)", line)
                if m and m.group(1):
                    names.add(m.group(1).split(".")[0])
                elif m:
                    names.update(part.split()[0].split(".")[0] for part in m.group(2).split(",") if part.strip())
    return {n for n in names if n and n.isidentifier()}


def _declared():
    """Distribution names of the test extra and of fastloss's own dependencies."""
    tomllib = pytest.importorskip("tomllib")
    path = ROOT / "pyproject.toml"
    if not path.exists():
        pytest.skip("no pyproject.toml next to the tests")
    project = tomllib.loads(path.read_text())["project"]
    reqs = project["optional-dependencies"]["test"] + project["dependencies"]
    return {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-") for req in reqs}


def test_every_imported_package_is_in_the_test_extra():
    declared = _declared()
    dists = packages_distributions()
    imported = set()
    for path in sorted((ROOT / "tests").rglob("*.py")):
        imported |= _imported_top_level_modules(path)
    third_party = sorted(m for m in imported - LOCAL if m not in sys.stdlib_module_names)
    missing = {}
    for module in third_party:
        # the distributions that provide the module; where it is not installed, assume its own name
        names = {d.lower().replace("_", "-") for d in dists.get(module, [])} or {module.lower()}
        if not names & declared:
            missing[module] = f"from {sorted(names)}, not in the test extra"
    assert not missing, missing
