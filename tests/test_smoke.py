"""Smoke: the package imports, dispatched to a real ISA level, and its config is complete."""
import fastloss as fl


def test_config_names_isa_and_openmp():
    cfg = fl.config()
    assert cfg["isa"] in cfg["isa_levels_built"]
    assert isinstance(cfg["openmp"], bool)
    assert cfg["num_threads"] >= 1
