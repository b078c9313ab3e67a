"""fastloss: fast, exact, deterministic machine-learning losses on the CPU.

Drop-in for ``torch.nn.functional`` / ``torchvision.ops`` losses on NumPy arrays or CPU tensors::

    import fastloss as fl
    fl.cross_entropy(logits, labels)
"""
from ._version import __version__

from ._threads import get_num_threads, set_num_threads, openmp_enabled
from ._config import show_config, config
from . import _classification, _regression, _boxes, _metric, _binary, _segmentation, _linear
from ._classification import *  # noqa: F401,F403
from ._regression import *  # noqa: F401,F403
from ._boxes import *  # noqa: F401,F403
from ._metric import *  # noqa: F401,F403
from ._binary import *  # noqa: F401,F403
from ._segmentation import *  # noqa: F401,F403
from ._linear import *  # noqa: F401,F403
from .state import LossState, partial  # noqa: F401  (mergeable states: chunked / distributed scoring)
from .scoring import score_parquet, score_file, score_table, ScoreResult  # noqa: F401  (pyarrow imported on use)

__all__ = ["get_num_threads", "set_num_threads", "openmp_enabled", "show_config", "config",
           *_classification.__all__, *_regression.__all__, *_boxes.__all__, *_metric.__all__,
           *_binary.__all__, *_segmentation.__all__, *_linear.__all__, "LossState", "partial",
           "score_parquet", "score_file", "score_table", "ScoreResult"]
