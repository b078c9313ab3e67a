"""The one registry of public losses, read by the tests and the benchmarks.

Each entry (``LossSpec``) names a public function, how to sample valid arguments for it, and the
independent reference it must match (torch, or a float64 NumPy formula from SPEC §6).  Adding a loss
to the library means adding one entry in the family's file here; the shared invariant tests
(``tests/test_registry.py``) and ``fastloss bench`` pick it up.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

REGISTRY = {}


@dataclass(frozen=True)
class LossSpec:
    name: str                                   # public name: fastloss.<name>
    family: str                                 # kernel family
    sample: Callable                            # sample(rng, n, dtype) -> (args, kwargs): a valid call of ~n elements
    torch_ref: Optional[Callable] = None        # torch_ref(*args, **kwargs) on float64 torch tensors -> tensor
    numpy_ref: Optional[Callable] = None        # numpy_ref(*args, **kwargs) on float64 arrays -> array/scalar
    grad_argnums: tuple = (0,)                  # which positional args return_grad differentiates
    default_reduction: str = "mean"
    notes: str = field(default="", compare=False)


def register(spec: LossSpec) -> LossSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"loss {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


from . import classification, regression, boxes, metric, binary  # noqa: E402,F401  (each file registers its losses)
from . import segmentation  # noqa: E402,F401
