"""emoar: real-time facial expression recognition with AR overlays.

Importing this package does no work: no model loads, no torch, no onnxruntime.
"""

from emoar.labels import FER2013_LABELS, Expression
from emoar.types import Detection, FaceResult, FrameResult

__version__ = "0.1.0"

__all__ = ["Detection", "Expression", "FER2013_LABELS", "FaceResult", "FrameResult", "__version__"]
