"""OpenCV's Viola-Jones Haar cascade (``haarcascade_frontalface_default.xml``): the last resort.

No landmarks and no calibrated confidence (every box scores 1.0; ``min_score`` is unused).
Frontal faces only; it misses faces under ~24 px of the downscaled image.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from emoar.detect.base import BaseDetector, DetectorOptions, RawDetections

__all__ = ["HaarDetector"]

logger = logging.getLogger(__name__)

CASCADE_FILE = "haarcascade_frontalface_default.xml"
#: detectMultiScale settings: 1.2 is ~1.7x faster but found 9/11 instead of 10/11 stage faces.
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5


class HaarDetector(BaseDetector):
    """Haar-cascade frontal face detector (OpenCV's bundled cascade).

    Attributes:
        name: ``"haar"``.
        options: resolved options.
    """

    name = "haar"

    def __init__(self, options: DetectorOptions) -> None:
        """Load the cascade from ``cv2.data.haarcascades``.

        Args:
            options: resolved options.

        Raises:
            ImportError: this OpenCV build ships no cascades (``opencv-python`` 5.x); install
                ``opencv-python-headless<5``.
        """
        super().__init__(options)
        data = getattr(cv2, "data", None)
        path = Path(getattr(data, "haarcascades", "")) / CASCADE_FILE
        cascade = cv2.CascadeClassifier(str(path)) if path.is_file() and hasattr(cv2, "CascadeClassifier") else None
        if cascade is None or cascade.empty():
            raise ImportError(
                f"OpenCV {cv2.__version__} ships no {CASCADE_FILE}; install opencv-python-headless<5"
            )
        self._cascade: Any = cascade

    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
        min_side = max(1, math.floor(self.options.min_face_px * scale))
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(min_side, min_side)
        )
        if len(found) == 0:
            return RawDetections.empty()
        boxes = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        return RawDetections(boxes, np.ones(len(boxes)), None)

    def _release(self) -> None:
        self._cascade = None
