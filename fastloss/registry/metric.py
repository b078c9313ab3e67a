"""Registry entries of the metric family (see fastloss/registry/__init__.py)."""
