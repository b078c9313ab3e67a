"""``fastloss.show_config()``: what this build and this machine offer."""
import os
import platform
import sys
from typing import Any

import numpy as np

from ._kernels import ISA_LEVEL, _runtime
from ._kernels._built_levels import BUILT_LEVELS


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _installed_version(name):
    """A package's version without importing it: importing torch sets the shared libgomp's default
    thread count, which fastloss follows (tests/test_threads.py::test_config_does_not_change_the_thread_default)."""
    module = sys.modules.get(name)
    if module is not None and hasattr(module, "__version__"):
        return str(module.__version__)
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version(name)
    except (ImportError, PackageNotFoundError):
        return None


def config() -> dict[str, Any]:
    """Build and run-time facts as a dict (also written into benchmark JSON files).

    Returns
    -------
    dict
        ``fastloss`` (version), ``isa`` (the vector instruction-set level the kernels dispatched
        to), ``isa_levels_built``, ``cpu``, ``cores``, ``openmp``, ``num_threads`` (the default
        thread count), ``python``, ``numpy``, ``torch`` (its installed version, or None; torch is
        not imported) and ``platform``.

    See Also
    --------
    show_config : the same, printed.

    Examples
    --------
    >>> import fastloss as fl
    >>> info = fl.config()
    >>> info["fastloss"] == fl.__version__, info["isa"] in info["isa_levels_built"]
    (True, True)
    """
    from . import __version__
    torch_version = _installed_version("torch")
    return {
        "fastloss": __version__,
        "isa": ISA_LEVEL,
        "isa_levels_built": list(BUILT_LEVELS),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "openmp": _runtime.openmp_enabled(),
        "num_threads": _runtime.get_num_threads(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch_version,
        "platform": platform.platform(),
    }


def show_config() -> None:
    """Print the vector ISA the kernels dispatched to, OpenMP, threads and versions.

    The same facts as :func:`config`, one per line; ``fastloss config`` prints them from the shell.
    """
    for key, value in config().items():
        print(f"{key:>18}: {value}")
