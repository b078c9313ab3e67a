"""Type aliases of the public signatures.

The loss modules use ``from __future__ import annotations``, so these only name types for type
checkers and ``typing.get_type_hints``; nothing here runs in a loss call.

Inputs are :data:`numpy.typing.ArrayLike` (NumPy arrays, CPU tensors, nested sequences, scalars).
A loss returns a NumPy float scalar for ``reduction="mean"`` / ``"sum"`` and a float array for
``"none"``: :data:`Loss` is their union, since one ``reduction: str`` parameter cannot tell them apart.
With ``return_grad=True`` the result is ``(loss, grad)``, ``grad`` being one array, or a tuple of
arrays for losses differentiated with respect to several arguments (:data:`LossGrads2`,
:data:`LossGrads3`).
"""
import os
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "FloatArray", "GradOut2", "GradOut3", "Loss", "LossGrad", "LossGrads2", "LossGrads3",
           "NDArray", "StrPath"]

FloatArray = NDArray[np.floating[Any]]              # per-item losses, gradients, out=
Loss = Union[FloatArray, np.floating[Any]]          # "none": an array; "mean" / "sum": a NumPy scalar
LossGrad = tuple[Loss, FloatArray]                  # return_grad=True, one differentiated argument
LossGrads2 = tuple[Loss, tuple[FloatArray, FloatArray]]
LossGrads3 = tuple[Loss, tuple[FloatArray, FloatArray, FloatArray]]
# grad_out= of a loss with several gradients: a buffer (or None: a fresh one) per gradient, in order
GradOut2 = tuple[Union[FloatArray, None], Union[FloatArray, None]]
GradOut3 = tuple[Union[FloatArray, None], Union[FloatArray, None], Union[FloatArray, None]]

StrPath = Union[str, "os.PathLike[str]"]            # a file name
