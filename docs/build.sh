#!/usr/bin/env bash
# Build the HTML documentation with warnings as errors, from the repository root:
#   pip install ".[docs]"        (or build the kernels in place: python setup.py build_ext --inplace)
#   docs/build.sh                -> docs/_build/html/index.html
# Extra arguments go to sphinx-build (e.g. -E to rebuild everything, -j auto).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf docs/api/generated           # autosummary stubs are regenerated from the docstrings
exec python -m sphinx -W --keep-going -b html "$@" docs docs/_build/html
