"""emoar: real-time facial expression recognition with AR overlays.

Importing this package does no work: no model loads, no torch, no onnxruntime. It only sets two
process defaults that must be in place before those libraries load (a user's own value wins):

* ``ORT_DISABLE_TELEMETRY=1``: onnxruntime 1.32's pip build otherwise starts Microsoft's 1DS
  telemetry when it is imported — a device id and an event database under
  ``~/.cache/Microsoft/DeveloperTools``, a ``.ses`` file in the temp folder, and HTTPS uploads
  where a network is reachable. emoar promises to work offline and to store nothing.
* ``OPENCV_IO_MAX_IMAGE_PIXELS``: OpenCV's own cap on decoded image size (2^28 pixels instead
  of 2^30), a second guard behind emoar's header checks (:mod:`emoar.io.formats`).
"""

import os as _os

_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
_os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))

from typing import TYPE_CHECKING, Any

from emoar.labels import FER2013_LABELS, FERPLUS_LABELS, Expression
from emoar.types import Detection, FaceResult, FrameResult

if TYPE_CHECKING:
    from emoar.pipeline import Pipeline, PipelineOptions, StreamState

__version__ = "0.1.0"

__all__ = [
    "Detection",
    "Expression",
    "FER2013_LABELS",
    "FERPLUS_LABELS",
    "FaceResult",
    "FrameResult",
    "Pipeline",
    "PipelineOptions",
    "StreamState",
    "__version__",
]

# The pipeline is exported lazily, so ``import emoar`` stays free of work (PEP 562).
_LAZY = {"Pipeline": "emoar.pipeline", "PipelineOptions": "emoar.pipeline", "StreamState": "emoar.pipeline"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'emoar' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
