"""Temporary alias (issue 15): fastloss/state.py and fastloss/scoring.py still read ``REGISTRY`` until the
runtime loss table (``fastloss/_losses.py``, another branch) replaces it; delete this file with them."""
from ._reference import REFERENCES as REGISTRY  # noqa: F401
