"""The build and the installed package: setup.py's flag logic on faked platforms, the ISA level chosen
at run time, ``python -OO``, the version, and the message of an unbuilt source checkout."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fastloss as fl

ROOT = Path(__file__).resolve().parent.parent          # the source tree (setup.py, pyproject.toml)
INSTALLED = Path(fl.__file__).resolve().parent.parent   # where the built fastloss is imported from


def _child_env():
    """Children import the same (built) fastloss as this process, from its directory."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(INSTALLED), os.environ.get("PYTHONPATH"))
                                                       if p))


# ---------------------------------------------------------------------------- setup.py's flag logic

@pytest.fixture(scope="module")
def setup_module():
    path = ROOT / "setup.py"
    if not path.exists():
        pytest.skip("no setup.py next to the tests (not a source tree or sdist)")
    cwd = os.getcwd()
    spec = importlib.util.spec_from_file_location("fastloss_setup_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)   # must not run setup(), build anything or change directory
    assert os.getcwd() == cwd
    return mod


def _all_flags(o):
    return [f for flags in (o["compile_args"], o["link_args"], *o["levels"].values(), *o["family_args"].values())
            for f in flags]


def test_x86_64_builds_three_levels_with_their_flags(setup_module):
    o = setup_module.build_options("linux-x86_64", {})
    assert list(o["levels"]) == ["baseline", "avx2", "avx512"]
    assert o["levels"]["baseline"] == []
    assert "-march=x86-64-v3" in o["levels"]["avx2"] and "-march=x86-64-v4" in o["levels"]["avx512"]
    assert "-O3" in o["compile_args"] and "-fno-math-errno" in o["compile_args"]
    assert not any("fast-math" in f or f == "-march=native" for f in _all_flags(o))
    assert o["openmp_compile"] == ["-fopenmp"] and o["openmp_link"] == ["-fopenmp"]


@pytest.mark.parametrize("tag", ["linux-aarch64", "linux-ppc64le", "macosx-14.0-arm64", "linux-i686",
                                 "macosx-10.9-universal2", "linux-armv7l"])
def test_other_architectures_build_baseline_without_x86_flags(setup_module, tag):
    o = setup_module.build_options(tag, {})
    assert o["levels"] == {"baseline": []}
    assert not any(f.startswith(("-march", "-mtune", "-mprefer-vector-width")) for f in _all_flags(o))
    # a developer's level shortcut cannot bring x86 flags to another architecture
    o = setup_module.build_options(tag, {"FASTLOSS_ISA_LEVELS": "avx2,avx512"})
    assert o["levels"] == {"baseline": []}


def test_windows_amd64_with_msvc_gets_no_gcc_flags(setup_module):
    o = setup_module.build_options("win-amd64", {}, "msvc")
    assert o["levels"] == {"baseline": []}
    assert not any(f.startswith("-") for f in _all_flags(o))
    assert o["openmp_compile"] == ["/openmp"]


def test_macos_openmp_goes_through_the_preprocessor_and_libomp(setup_module):
    o = setup_module.build_options("macosx-14.0-arm64", {})
    assert o["openmp_compile"] == ["-Xpreprocessor", "-fopenmp"] and o["openmp_link"] == ["-lomp"]
    assert "-Wl,--strip-debug" not in o["link_args"]           # GNU ld option: not for Apple's linker


def test_release_builds_drop_debug_info_and_debug_builds_keep_it(setup_module):
    o = setup_module.build_options("linux-x86_64", {})
    assert o["release"] and "-g0" in o["compile_args"] and "-Wl,--strip-debug" in o["link_args"]
    o = setup_module.build_options("linux-x86_64", {"FASTLOSS_DEBUG_INFO": "1"})
    assert not o["release"] and "-g0" not in o["compile_args"] and o["link_args"] == []


def test_developer_level_selection_native_and_sanitizer(setup_module):
    b = setup_module.build_options
    assert list(b("linux-x86_64", {"FASTLOSS_ISA_LEVELS": "avx2"})["levels"]) == ["baseline", "avx2"]
    assert b("linux-x86_64", {"FASTLOSS_NATIVE": "1"})["levels"] == {"native": ["-march=native"]}
    s = b("linux-x86_64", {"FASTLOSS_SANITIZE": "1"})
    assert list(s["levels"]) == ["baseline"] and "-O3" not in s["compile_args"]
    assert "-g" in s["compile_args"] and "-g0" not in s["compile_args"]
    assert any(f.startswith("-fsanitize=") for f in s["link_args"])
    s = b("linux-x86_64", {"FASTLOSS_SANITIZE": "1", "FASTLOSS_ISA_LEVELS": "avx2"})
    assert list(s["levels"]) == ["avx2"]


def test_build_requirements_and_single_version_source():
    tomllib = pytest.importorskip("tomllib")
    path = ROOT / "pyproject.toml"
    if not path.exists():
        pytest.skip("no pyproject.toml next to the tests")
    meta = tomllib.loads(path.read_text())
    requires = meta["build-system"]["requires"]
    assert "Cython>=3.1" in requires          # prange(use_threads_if=...) is new in Cython 3.1
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fastloss._version.__version__"}
    assert fl.__version__ == re.search(r'__version__ = "([^"]+)"',
                                       (ROOT / "fastloss" / "_version.py").read_text()).group(1)
    for name in ("README.md", "setup.py", "docs/conf.py", "MANIFEST.in", ".ci/run"):
        path = ROOT / name
        assert not path.exists() or fl.__version__ not in path.read_text(), \
            f"{name} writes the version {fl.__version__}: fastloss/_version.py is its one place"


def test_levels_named_once_and_no_test_only_module(setup_module):
    """setup.py takes the levels from fastloss/_kernels/_levels.py (the one place they are named and
    ranked); the math probe of tests/test_math.py is part of a family, not a module of its own."""
    from fastloss._kernels import _levels
    assert list(setup_module.X86_64_LEVELS) == list(_levels.LEVELS)
    assert [f for f in setup_module.families() if f.startswith("math")] == []
    kernels = Path(fl.__file__).resolve().parent / "_kernels"
    assert not list(kernels.glob("_mathfuncs*"))


def test_installed_metadata_version_matches():
    from importlib.metadata import PackageNotFoundError, version
    try:
        dist_version = version("fastloss")
    except PackageNotFoundError:
        pytest.skip("fastloss is built in place, not installed")
    assert dist_version == fl.__version__


# ---------------------------------------------------------------------------- run-time dispatch

# x86-64 micro-architecture levels (the psABI's list), from /proc/cpuinfo's flag names.
_V3_FLAGS = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}
_V4_FLAGS = _V3_FLAGS | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def _cpuinfo_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_dispatch_picks_the_widest_built_level_this_cpu_runs():
    """The level in use, against the CPU's flags read independently of fastloss's own detection."""
    cfg = fl.config()
    flags = _cpuinfo_flags()
    if flags is None or "native" in cfg["isa_levels_built"] or os.environ.get("FASTLOSS_ISA"):
        pytest.skip("needs Linux /proc/cpuinfo, a portable build and no FASTLOSS_ISA override")
    if "sse2" not in flags:
        assert cfg["isa_levels_built"] == ["baseline"] and cfg["isa"] == "baseline"
        return
    runs = ["baseline"] + (["avx2"] if _V3_FLAGS <= flags else []) + (["avx512"] if _V4_FLAGS <= flags else [])
    expected = [lvl for lvl in runs if lvl in cfg["isa_levels_built"]][-1]
    assert cfg["isa"] == expected, (cfg, sorted(flags & _V4_FLAGS))


# ---------------------------------------------------------------------------- python -OO

def test_python_OO_imports_and_runs():
    """Docstrings stripped: the package imports, a loss runs, and every command's --help works."""
    code = ("import numpy as np, fastloss as fl\n"
            "from fastloss.__main__ import main\n"
            "x = np.array([[1.0, 2.0, 0.5]]); y = np.array([1])\n"
            "print(repr(float(fl.cross_entropy(x, y))))\n"
            "for argv in (['--help'], ['score', '--help'], ['bench', '--help'], ['config', '--help']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit as e:\n"
            "        assert e.code == 0, (argv, e.code)\n")
    res = subprocess.run([sys.executable, "-OO", "-c", code], env=_child_env(), cwd=INSTALLED,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # log-softmax of [1, 2, 0.5] at index 1, in float64
    import math
    ref = -(2.0 - math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5)))
    assert float(res.stdout.splitlines()[0]) == pytest.approx(ref, rel=1e-12)
    for command in ("bench", "score", "config"):
        assert command in res.stdout


# ---------------------------------------------------------------------------- unbuilt source checkout

def test_unbuilt_source_checkout_says_how_to_build(tmp_path):
    """The Python sources without the compiled kernels (a fresh clone): a clear ImportError, not
    Python's "cannot import name ... (most likely due to a circular import)"."""
    pkg = Path(fl.__file__).resolve().parent
    shutil.copytree(pkg, tmp_path / "fastloss",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.dylib", "_built_levels.py", "__pycache__"))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    res = subprocess.run([sys.executable, "-c", "import fastloss"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError:"), res.stderr
    assert "pip install ." in last and "build_ext --inplace" in last
    assert "circular" not in res.stderr
