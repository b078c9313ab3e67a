"""fastloss: fast, exact, deterministic machine-learning losses on the CPU.

Drop-in for ``torch.nn.functional`` / ``torchvision.ops`` losses on NumPy arrays or CPU tensors::

    import fastloss as fl
    fl.cross_entropy(logits, labels)
"""
from ._version import __version__

from ._threads import get_num_threads, set_num_threads, openmp_enabled
from ._config import show_config, config
from . import classification, regression, boxes, metric, binary
from . import segmentation
from .classification import *  # noqa: F401,F403
from .regression import *  # noqa: F401,F403
from .boxes import *  # noqa: F401,F403
from .metric import *  # noqa: F401,F403
from .binary import *  # noqa: F401,F403
from .segmentation import *  # noqa: F401,F403
from .state import LossState, partial  # noqa: F401  (mergeable states: chunked / distributed scoring)
from .scoring import score_parquet, score_file, ScoreResult  # noqa: F401  (pyarrow imported on use)

__all__ = ["get_num_threads", "set_num_threads", "openmp_enabled", "show_config", "config",
           *classification.__all__, *regression.__all__, *boxes.__all__, *metric.__all__,
           *binary.__all__, *segmentation.__all__, "LossState", "partial",
           "score_parquet", "score_file", "ScoreResult"]
