"""Registry entries of the regression family (see fastloss/registry/__init__.py)."""
