"""Choose, once per process, the compiled vector level of every kernel family.

Each family (``classification``, ``regression``, ...) is built once per x86-64 level by setup.py; this
module imports the widest one the CPU supports.  ``FASTLOSS_ISA=baseline|avx2|avx512`` forces a level
(tests use it to check that every level gives the same numbers).
"""
import importlib
import os

from . import _runtime
from ._built_levels import BUILT_LEVELS

_LEVEL_RANK = {"baseline": 0, "avx2": 1, "avx512": 2, "native": 0}


def _choose_level() -> str:
    forced = os.environ.get("FASTLOSS_ISA")
    if forced:
        if forced not in BUILT_LEVELS:
            raise ImportError(f"FASTLOSS_ISA={forced!r}: this build has only {BUILT_LEVELS}")
        if _LEVEL_RANK[forced] > _runtime.cpu_vector_level():
            raise ImportError(f"FASTLOSS_ISA={forced!r}: this CPU does not support it")
        return forced
    if "native" in BUILT_LEVELS:
        return "native"
    cpu = _runtime.cpu_vector_level()
    usable = [lvl for lvl in BUILT_LEVELS if _LEVEL_RANK[lvl] <= cpu]
    return max(usable, key=_LEVEL_RANK.__getitem__)


ISA_LEVEL = _choose_level()


def load(family: str):
    """The compiled module of a kernel family at the chosen vector level."""
    return importlib.import_module(f"fastloss._kernels._{family}_{ISA_LEVEL}")
