"""The x86-64 vector levels setup.py compiles the kernel families for: the one place they are named and
ranked.  Pure Python without imports: setup.py reads this file by path before anything is built, and
``fastloss._kernels`` chooses among the levels built when it is imported.
"""

# The vector levels, narrowest first, each with the x86-64 psABI micro-architecture level N it needs:
# setup.py compiles it with -march=x86-64-vN (nothing for 0), and it runs on a CPU whose level
# (_runtime.cpu_x86_64_level(), 0 off x86-64) is at least N.  FASTLOSS_NATIVE=1 builds the one level
# "native" (-march=native) instead, which runs where it was built.
LEVELS = {"baseline": 0, "avx2": 3, "avx512": 4}
NATIVE = "native"


def psabi_level(level):
    """The x86-64 psABI level a built vector level needs (0 for baseline and native)."""
    return LEVELS.get(level, 0)


def runnable(built, cpu_psabi_level):
    """The levels of ``built`` that run on a CPU of psABI level ``cpu_psabi_level``, narrowest first."""
    return sorted((lvl for lvl in built if psabi_level(lvl) <= cpu_psabi_level), key=psabi_level)
