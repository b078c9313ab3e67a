"""Choose, once per process, the compiled vector level of every kernel family.

Each family (``classification``, ``regression``, ...) is built once per x86-64 level by setup.py
(``_levels.py`` names and ranks the levels); this module imports the widest one the CPU supports.
``FASTLOSS_ISA=baseline|avx2|avx512`` forces a level (tests use it to check that every level gives the
same numbers).
"""
import importlib
import importlib.util
import os

from . import _levels


def _not_built_error():
    """The ImportError for a source checkout whose kernels were never compiled (instead of Python's
    "cannot import name '_runtime' ... (most likely due to a circular import)")."""
    here = os.path.dirname(os.path.abspath(__file__))
    return ImportError(
        f"fastloss's compiled kernels are not built in {here} (an unbuilt source checkout?). "
        "Install fastloss with `pip install .` (and import it from outside the source directory), "
        "or build the kernels in place with `python setup.py build_ext --inplace`.")


try:
    from . import _runtime
    from ._built_levels import BUILT_LEVELS
except ImportError:
    # Only a module that is absent is "not built"; a compiled module that fails to load (a wrong
    # Python or NumPy ABI, a missing libgomp) keeps its own error.
    if any(importlib.util.find_spec(f"{__name__}.{m}") is None for m in ("_runtime", "_built_levels")):
        raise _not_built_error() from None
    raise

def usable_levels():
    """The levels of this build that this CPU runs, narrowest first."""
    return _levels.runnable(BUILT_LEVELS, _runtime.cpu_x86_64_level())


def _choose_level() -> str:
    forced = os.environ.get("FASTLOSS_ISA")
    if forced:
        if forced not in BUILT_LEVELS:
            raise ImportError(f"FASTLOSS_ISA={forced!r}: this build has only {BUILT_LEVELS}")
        if forced not in usable_levels():
            raise ImportError(f"FASTLOSS_ISA={forced!r}: this CPU does not support it")
        return forced
    if _levels.NATIVE in BUILT_LEVELS:
        return _levels.NATIVE
    return usable_levels()[-1]


ISA_LEVEL = _choose_level()


def load(family: str):
    """The compiled module of a kernel family at the chosen vector level."""
    return load_level(family, ISA_LEVEL)


def load_level(family: str, level: str):
    """The compiled module of a kernel family at a given built level (tests compare the levels)."""
    return importlib.import_module(f"fastloss._kernels._{family}_{level}")
