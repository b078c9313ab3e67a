"""Build fastloss's Cython kernels.

Design of the build (read this before touching flags):

* Every kernel *family* lives in one Cython source, ``fastloss/_kernels/<family>.pyx``.  It is compiled
  once per x86-64 vector level -- ``baseline`` (SSE2), ``avx2`` (x86-64-v3: AVX2+FMA) and ``avx512``
  (x86-64-v4, 512-bit vectors preferred) -- as modules ``fastloss._kernels._<family>_<level>``.  Each of
  those is a two-line stub, generated at build time under the build directory, that ``include``\\ s the
  family source, so the code exists once.  The levels are named and ranked in
  ``fastloss/_kernels/_levels.py`` (read here by path).  ``fastloss._kernels`` imports the widest level
  the running CPU supports (``FASTLOSS_ISA=baseline|avx2|avx512`` overrides it).  Only ``_runtime``
  (run-time facts, the thread setting) and ``_state`` (the per-chunk path of loss states) are compiled once; the test-only math probe is compiled into one
  family (``_mathprobe.pxi``, included by ``segmentation.pyx``), not as a module of its own.  Other
  targets (aarch64, macOS arm64, 32-bit x86, MSVC) build ``baseline`` only: the x86 flags are applied to
  x86-64 targets only.
* ``-O3 -fno-trapping-math -fno-math-errno``: no result changes, but without them GCC keeps the
  branch-free selects and ``sqrt`` scalar.  No ``-ffast-math`` (it assumes no inf/nan, which breaks
  masked logits) and no ``-march=native`` unless ``FASTLOSS_NATIVE=1`` (then one ``native`` level).
* Release builds carry no debug information (``-g0``; on ELF targets the linker also strips debug
  sections): a wheel is ~2.5 MB instead of ~9 MB.  ``FASTLOSS_DEBUG_INFO=1`` (or ``build_ext --debug``)
  keeps ``-g``; the sanitizer build keeps it too.
* OpenMP: probed with the compiler (GCC's libgomp, or Clang with libomp; on macOS
  ``-Xpreprocessor -fopenmp -lomp``); without it the kernels build serially and a warning is printed
  (``fastloss.openmp_enabled()`` tells at run time).
* Nothing is written into the source tree (unless you ask for ``build_ext --inplace``): the ISA stubs,
  the Cython-generated C files and the ``_built_levels.py`` record go to the build directory.
* ``FASTLOSS_ISA_LEVELS=avx2`` (comma list) restricts the levels built -- a developer shortcut.
* ``FASTLOSS_FAMILIES=regression`` (comma list) builds only those kernel families (not ``_runtime``, ``_state``):
  for rebuilding one module in a tree that is already built (``scripts/mutants.py``).
* Parallelism: ``FASTLOSS_CYTHON_JOBS`` Cython processes and ``build_ext -j N`` (default
  ``FASTLOSS_BUILD_JOBS``, else all cores) compiler processes.

The flag logic is the pure function ``build_options`` (tests/test_build_options.py checks it on faked
platforms); ``setup()`` runs only when this file is executed, never on import.
"""
import os
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
KERNELS = "fastloss/_kernels"       # relative to HERE: setuptools wants paths relative to setup.py


def _load_levels():
    """fastloss/_kernels/_levels.py, by path (the package itself cannot be imported before the build)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fastloss_levels", HERE / KERNELS / "_levels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LEVELS = _load_levels()
# The compile flags of each x86-64 level: its psABI level as -march (_levels.py), 512-bit vectors for avx512.
X86_64_LEVELS = {
    level: ([f"-march=x86-64-v{v}", "-mtune=generic"] if v else [])
    + (["-mprefer-vector-width=512"] if level == "avx512" else [])
    for level, v in LEVELS.LEVELS.items()
}
COMMON_FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-fopenmp-simd", "-Wno-unused-function"]
# Per family, after the common flags (not MSVC).  elementwise: every elementwise loss in one translation
# unit, ~36 copies of one loop that each vectorise only if the loss's point function and the exp/log it
# calls are all inlined; GCC's unit-wide inlining budget (inline-unit-growth, 40% by default) ran out
# before the last of them (a call to exp or log left in a hot loop: 3-10x slower).  At avx2, 120: the
# unweighted sums with a gradient (sum_grad_items_bits, an AVX2 path) grew the unit, and at 100 the MSE and
# L1 means' sum_items_bits were called out of line (10% slower); at 120 every function of the unit is
# inlined as before (at the baseline level 120 left Poisson's sum out of line, 20% slower).  Inlining
# keeps every elementwise loss's bits.  Clang ignores it.
# -fschedule-insns -fsched-pressure: the transcendental kinds' segments run as two interleaved halves
# (elementwise.pyx, ``store_items``), and only the pre-RA scheduler (off by default on x86;
# -fsched-pressure keeps it from spilling) mixes the two halves' dependency chains -- without it they
# run one after the other, no faster (with f_exp_nonpos: W6 float32 mean 3.3 -> 2.1-2.5 ns/item on Zen 2).
# Scheduling reorders instructions only: no result changes.  Each flag is kept only where the compiler
# accepts it (_accepted_flags: clang rejects -fsched-pressure).
# Keys "<family>" (every level), then "<family>_<level>" (that level; a --param given twice: the last wins).
FAMILY_FLAGS = {"elementwise": ["--param=inline-unit-growth=100", "-fschedule-insns", "-fsched-pressure"],
                "elementwise_avx2": ["--param=inline-unit-growth=120"]}

# ---- sanitizer build (opt-in; scripts/sanitize.sh runs the whole suite with it) -------------------
# FASTLOSS_SANITIZE=1: AddressSanitizer + UndefinedBehaviorSanitizer (every report fatal), -O1 -g,
# one vector level (baseline unless FASTLOSS_ISA_LEVELS names one).  -ftree-vectorize keeps the
# `omp simd` loops vectorised as in the shipped builds: the same code (and the same float32 partial
# sums) is checked, not a scalar variant of it.  The interpreter is not instrumented, so libasan must be
# preloaded: LD_PRELOAD=$(gcc -print-file-name=libasan.so).  (scripts/sanitize.sh hashes the lines of
# this file that start with "SANITIZE" to decide when to rebuild.)
SANITIZE_FLAGS = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer"]
SANITIZE_OPT = ["-O1", "-g", "-ftree-vectorize"]

CYTHON_DIRECTIVES = dict(language_level=3, boundscheck=False, wraparound=False, initializedcheck=False,
                         cdivision=True, nonecheck=False, embedsignature=True)


def _target_arch(platform_tag: str) -> str:
    """The CPU architecture of a ``sysconfig.get_platform()`` tag: ``linux-x86_64`` -> ``x86_64``,
    ``macosx-11.0-arm64`` -> ``arm64``, ``win-amd64`` -> ``amd64``, ``macosx-10.9-universal2`` ->
    ``universal2`` (several architectures: no single-ISA flags)."""
    return platform_tag.rsplit("-", 1)[-1].lower()


def build_options(platform_tag: str, env, compiler_type: str = "unix") -> dict:
    """The vector levels and compiler/linker flags for a target, as a pure function of its inputs.

    ``platform_tag``: ``sysconfig.get_platform()`` of the target (it follows ``_PYTHON_HOST_PLATFORM``
    when cross-compiling); ``env``: the environment (a mapping); ``compiler_type``: distutils' name
    (``"unix"``, ``"msvc"``, ...).  Returns a dict with ``levels`` ({level: extra compile flags}),
    ``compile_args`` / ``link_args`` (every extension), ``family_args`` ({family: extra compile flags}),
    ``openmp_compile`` / ``openmp_link`` (added when
    the OpenMP probe succeeds) and ``release`` (debug information dropped).
    """
    msvc = compiler_type == "msvc"
    darwin = platform_tag.startswith("macosx")
    elf = not darwin and not msvc and not platform_tag.startswith(("win", "mingw", "cygwin"))
    x86_64 = _target_arch(platform_tag) in ("x86_64", "amd64")
    sanitize = env.get("FASTLOSS_SANITIZE") == "1" and not msvc
    debug = env.get("FASTLOSS_DEBUG_INFO") == "1"

    if env.get("FASTLOSS_NATIVE") == "1" and not msvc:
        levels = {LEVELS.NATIVE: ["-march=native"]}
    elif x86_64 and not msvc:
        levels = {k: list(v) for k, v in X86_64_LEVELS.items()}
    else:
        levels = {"baseline": []}
    only = [s.strip() for s in env.get("FASTLOSS_ISA_LEVELS", "").split(",") if s.strip()]
    if only:
        levels = {k: v for k, v in levels.items() if k in only or k == "baseline"}

    compile_args = [] if msvc else list(COMMON_FLAGS)
    link_args = []
    release = not (sanitize or debug or msvc)
    if sanitize:
        compile_args = [f for f in compile_args if f != "-O3"] + SANITIZE_OPT + SANITIZE_FLAGS
        link_args = list(SANITIZE_FLAGS)
        if not only:
            levels = {"baseline": levels["baseline"]} if "baseline" in levels else levels
        elif len(levels) > 1:
            levels.pop("baseline", None)   # one level: the one asked for
    elif release:
        compile_args.append("-g0")        # after Python's own CFLAGS (which carry -g): no debug info
        if elf:
            link_args.append("-Wl,--strip-debug")

    if msvc:
        openmp_compile, openmp_link = ["/openmp"], []
    elif darwin:   # Apple clang has no -fopenmp driver flag; libomp comes from Homebrew (see pyproject)
        openmp_compile, openmp_link = ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
    else:
        openmp_compile, openmp_link = ["-fopenmp"], ["-fopenmp"]
    family_args = {} if msvc else {k: list(v) for k, v in FAMILY_FLAGS.items()}
    return dict(levels=levels, compile_args=compile_args, link_args=link_args, family_args=family_args,
                openmp_compile=openmp_compile, openmp_link=openmp_link, release=release)


def families(kernels_dir=KERNELS):
    """A kernel family is every ``fastloss/_kernels/<name>.pyx`` whose name does not start with "_"."""
    return sorted(p.stem for p in (HERE / kernels_dir).glob("*.pyx") if not p.stem.startswith("_"))


def _compiler_has_openmp(compiler, compile_flags, link_flags) -> bool:
    import tempfile
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as fh:
            fh.write(src)
        try:
            objs = compiler.compile([path], output_dir=tmp, extra_postargs=compile_flags)
            compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=link_flags)
        except Exception:  # any compile/link failure means "no OpenMP"
            return False
    return True


def _accepted_flags(compiler, flags) -> list:
    """The flags of ``flags`` that ``compiler`` accepts, each tried alone on an empty translation unit.
    FAMILY_FLAGS holds GCC tuning flags that other compilers reject (clang: "unknown argument:
    '-fsched-pressure'"); they only tune code generation, so a compiler without them builds the same
    results."""
    import tempfile
    kept = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "flag_probe.c")
        with open(path, "w") as fh:
            fh.write("int fastloss_flag_probe(void) { return 0; }\n")
        saved = os.dup(2)                # the rejected flag's "error: unknown argument" is not a build error
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                for flag in flags:
                    try:
                        compiler.compile([path], output_dir=tmp, extra_postargs=[flag])
                    except Exception:  # the compiler rejected the flag
                        continue
                    kept.append(flag)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return kept


def _built_levels_source(levels) -> str:
    return ('"""Generated by setup.py at build time: the vector levels this build compiled."""\n'
            f"BUILT_LEVELS = {tuple(levels)!r}\n")


def main():
    import warnings

    from setuptools import Extension, setup
    from setuptools.command.build_ext import build_ext

    os.chdir(HERE)  # every path below is relative to the project root
    opts = build_options(sysconfig.get_platform(), os.environ, "msvc" if sys.platform == "win32" else "unix")
    levels = list(opts["levels"])

    # One Extension per (family, level); its source is the family's .pyx (what an sdist must carry).
    # BuildExt swaps it for a generated stub so that each level is its own module.
    only = [f for f in os.environ.get("FASTLOSS_FAMILIES", "").split(",") if f]
    unknown = sorted(set(only) - set(families()))
    if unknown:
        raise SystemExit(f"FASTLOSS_FAMILIES: unknown kernel families {unknown} (known: {families()})")
    extensions = [] if only else [Extension(f"fastloss._kernels.{m}", [f"{KERNELS}/{m}.pyx"])
                                  for m in ("_runtime", "_state")]
    # The C headers and shared Cython includes every family inlines: an in-place rebuild recompiles
    # when one of them changes (the compiler step compares these timestamps with the built module).
    shared = sorted(str(p.relative_to(HERE)) for p in [*(HERE / "src_c").glob("*.h"),
                                                       *(HERE / KERNELS).glob("_*.p[xy][di]")])
    for family in (only or families()):
        for level in levels:
            extensions.append(Extension(f"fastloss._kernels._{family}_{level}", [f"{KERNELS}/{family}.pyx"],
                                        depends=shared))

    class BuildExt(build_ext):
        def finalize_options(self):
            super().finalize_options()
            if self.parallel is None:
                self.parallel = int(os.environ.get("FASTLOSS_BUILD_JOBS", os.cpu_count() or 1))

        def _stub(self, ext):
            """The per-level stub that includes the family source, under the build directory."""
            family_pyx = Path(ext.sources[0])
            module = ext.name.rsplit(".", 1)[1]
            if module == family_pyx.stem:                     # _runtime, _state: compiled as is
                return ext.sources[0]
            level = module[len(family_pyx.stem) + 2:]
            stub = Path(self.build_temp) / "isa_stubs" / f"{module}.pyx"
            stub.parent.mkdir(parents=True, exist_ok=True)
            text = (f"# Generated by setup.py: {family_pyx.name} compiled for the '{level}' vector level.\n"
                    f"include \"{(HERE / family_pyx).as_posix()}\"\n")
            if not stub.exists() or stub.read_text() != text:
                stub.write_text(text)
            return stub.as_posix()

        def build_extensions(self):
            import numpy as np
            from Cython.Build import cythonize

            o = build_options(sysconfig.get_platform(), os.environ, self.compiler.compiler_type)
            release = o["release"] and not self.debug
            openmp = _compiler_has_openmp(self.compiler, o["openmp_compile"], o["openmp_link"])
            family_args = {k: _accepted_flags(self.compiler, v) for k, v in o["family_args"].items()}
            if not openmp:
                warnings.warn("fastloss: the compiler has no OpenMP; building serial kernels "
                              "(fastloss.openmp_enabled() will be False).", stacklevel=1)
            for ext in self.extensions:
                ext.sources = [self._stub(ext)]
            # .pyx -> .c under the build directory (with Cython's public header of _runtime), in
            # parallel; setuptools keeps its own Extension objects, with the C sources swapped in.
            generated = cythonize(
                self.extensions, compiler_directives=CYTHON_DIRECTIVES,
                include_path=[".", KERNELS], build_dir=os.path.join(self.build_temp, "cython"),
                nthreads=int(os.environ.get("FASTLOSS_CYTHON_JOBS", os.cpu_count() or 1)),
                force=self.force, quiet=not self.verbose)
            c_sources = {e.name: e.sources for e in generated}
            for ext in self.extensions:
                ext.sources = c_sources[ext.name]
            for ext in self.extensions:
                level = next((lvl for lvl in o["levels"] if ext.name.endswith("_" + lvl)), "baseline")
                family = ext.name.rsplit(".", 1)[1][1:-len(level) - 1]      # _<family>_<level>
                ext.include_dirs = [np.get_include(), "src_c", KERNELS]
                ext.define_macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                                     ("FASTLOSS_OPENMP", "1" if openmp else "0")]
                ext.extra_compile_args = (o["compile_args"] + o["levels"].get(level, [])
                                          + family_args.get(family, [])
                                          + family_args.get(f"{family}_{level}", [])
                                          + (o["openmp_compile"] if openmp else []))
                ext.extra_link_args = o["link_args"] + (o["openmp_link"] if openmp else [])
                if not release:
                    ext.extra_compile_args = [f for f in ext.extra_compile_args if f != "-g0"]
                    ext.extra_link_args = [f for f in ext.extra_link_args if f != "-Wl,--strip-debug"]
            super().build_extensions()

        def run(self):
            super().run()
            # The record of the levels built goes next to the extensions: into build_lib (what a wheel
            # or an install copies) and, for --inplace / editable builds, into the source package.
            text = _built_levels_source(levels)
            targets = [Path(self.build_lib) / KERNELS]
            if self.inplace:
                targets.append(Path(self.get_finalized_command("build_py").get_package_dir("fastloss._kernels")))
            for d in targets:
                d.mkdir(parents=True, exist_ok=True)
                path = d / "_built_levels.py"
                if not path.exists() or path.read_text() != text:
                    path.write_text(text)

        def get_outputs(self):
            return [*super().get_outputs(), os.path.join(self.build_lib, KERNELS, "_built_levels.py")]

    setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})


if __name__ == "__main__":
    main()
