"""Registry entries of the boxes family (see fastloss/registry/__init__.py)."""
