"""The independent references of the public losses (private): read by the tests and ``fastloss bench``.

Each entry (``Reference``) names a public function, how to sample valid arguments for it, and the
independent implementations it must match:

* ``torch_ref``: torch (``torch.nn.functional``, or the usual formula -- torchvision's, SPEC §6 -- in
  torch ops).  NumPy arguments are converted to float64 tensors; tensors are used as given (the tests
  pass float64 ones, autograd-able; ``fastloss bench`` passes ``torch.from_numpy`` views of its float32
  or float64 inputs and times the call).
* ``numpy_ref``: a NumPy formula evaluated in the dtype of its inputs, with the stable forms a careful
  NumPy user writes (log-sum-exp shifted by the row max, softplus through ``log1p(exp(-|x|))``).  The
  tests pass float64 arrays (the float64 reference); ``fastloss bench`` times it as the NumPy competitor.

Each loss has at most one of each.  Adding a loss to the library means adding one entry in the family's
file here; the shared invariant tests and ``fastloss bench`` pick it up.
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

REFERENCES = {}


@dataclass(frozen=True)
class Reference:
    name: str                                   # public name: fastloss.<name>
    family: str                                 # kernel family
    sample: Callable                            # sample(rng, n, dtype) -> (args, kwargs): a valid call of ~n elements
    torch_ref: Optional[Callable] = None        # torch_ref(*args, **kwargs) -> tensor (see the module docstring)
    numpy_ref: Optional[Callable] = None        # numpy_ref(*args, **kwargs) -> array/scalar in the inputs' dtype
    # a loss's differentiated arguments and default reduction come from its LossInfo (fastloss/_losses.py);
    # only the non-losses (box matrices, class_balanced_weights) state them here
    grad_argnums: Optional[tuple] = None        # which positional args return_grad differentiates
    default_reduction: Optional[str] = None
    notes: str = field(default="", compare=False)

    def __post_init__(self):
        from fastloss._losses import LOSSES
        info = LOSSES.get(self.name)
        if info is None:
            if self.grad_argnums is None or self.default_reduction is None:
                raise ValueError(f"reference {self.name!r}: not a loss, so grad_argnums and "
                                 "default_reduction must be given")
            return
        if self.grad_argnums is not None or self.default_reduction is not None:
            raise ValueError(f"reference {self.name!r}: its gradients and default reduction are the "
                             "LossInfo's (fastloss/_losses.py); do not repeat them here")
        if self.family != info.family:
            raise ValueError(f"reference {self.name!r}: family {self.family!r}, LossInfo says {info.family!r}")
        object.__setattr__(self, "grad_argnums", tuple(info.grad_argnums))
        object.__setattr__(self, "default_reduction", info.default_reduction)


def register(ref: Reference) -> Reference:
    if ref.name in REFERENCES:
        raise ValueError(f"loss {ref.name!r} registered twice")
    REFERENCES[ref.name] = ref
    return ref


from . import classification, regression, boxes, metric, binary  # noqa: E402,F401  (each file registers its losses)
from . import segmentation  # noqa: E402,F401
from . import linear  # noqa: E402,F401
