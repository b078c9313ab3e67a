"""Sphinx configuration of the fastloss documentation (numpydoc + the PyData theme).

Build from the repository root (warnings are errors)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

fastloss must be importable with its compiled kernels: either installed (``pip install ".[docs]"``)
or built in place (``python setup.py build_ext --inplace``), in which case this checkout is used.
"""
import glob
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
# An in-place build (kernels next to the sources) documents this checkout; otherwise the installed
# fastloss is imported (an unbuilt source tree on sys.path would shadow it and fail to import).
if glob.glob(os.path.join(ROOT, "fastloss", "_kernels", "_runtime*.so")) or \
        glob.glob(os.path.join(ROOT, "fastloss", "_kernels", "_runtime*.pyd")):
    sys.path.insert(0, ROOT)
elif sys.path and os.path.abspath(sys.path[0] or os.getcwd()) == ROOT:
    sys.path.pop(0)        # `python -m sphinx` run from an unbuilt checkout: use the installed package

import fastloss  # noqa: E402

project = "fastloss"
author = "the fastloss developers"
copyright = "the fastloss developers"
version = release = fastloss.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

# -- autodoc / autosummary / numpydoc ------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"               # the numpydoc Parameters sections carry the types
numpydoc_show_class_members = False      # class members are listed on the class pages explicitly
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

default_role = "autolink"
templates_path = ["_templates"]
exclude_patterns = ["_build"]
nitpicky = False

# -- HTML: the PyData theme ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastloss {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"index": []}
html_show_sourcelink = False
