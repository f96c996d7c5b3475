"""OpenCV's Viola-Jones Haar cascade (``haarcascade_frontalface_default.xml``): the last resort.

No landmarks and no calibrated confidence (every box scores 1.0; ``min_score`` is unused).
Frontal faces only; it misses faces under ~24 px of the downscaled image (0 of the 8 office
faces). Boxes are square and tighter than YuNet's: align them with ``detector="haar"``.
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
        cascade = (
            cv2.CascadeClassifier(str(path)) if path.is_file() and hasattr(cv2, "CascadeClassifier") else None
        )
        if cascade is None or cascade.empty():
            raise ImportError(
                f"OpenCV {cv2.__version__} ships no {CASCADE_FILE}; install opencv-python-headless<5"
            )
        self._cascade: Any = cascade

    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        gray = cv2.equalizeHist(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY))
        min_side = max(1, math.floor(self.options.min_face_px * scale))
        found, neighbours = self._cascade.detectMultiScale2(
            gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(min_side, min_side)
        )
        if len(found) == 0:
            return RawDetections.empty()
        boxes = np.asarray(found, dtype=np.float64).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        keep = _suppress_nested(boxes, np.asarray(neighbours, dtype=np.float64).reshape(-1))
        return RawDetections(boxes[keep], np.ones(len(keep)), None)

    def _release(self) -> None:
        self._cascade = None


def _suppress_nested(boxes: npt.NDArray[np.float64], votes: npt.NDArray[np.float64]) -> list[int]:
    """Indices of boxes to keep: the cascade's grouping leaves a second box on some faces
    (measured on the stage photo: two boxes overlapping by 67% of the smaller one), so drop a
    box covered more than half by a box with more neighbour votes."""
    order = np.argsort(-votes, kind="stable")
    keep: list[int] = []
    for i in order:
        x1, y1, x2, y2 = boxes[i]
        nested = False
        for j in keep:
            ix = max(0.0, min(x2, boxes[j, 2]) - max(x1, boxes[j, 0]))
            iy = max(0.0, min(y2, boxes[j, 3]) - max(y1, boxes[j, 1]))
            smaller = min((x2 - x1) * (y2 - y1), (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1]))
            if ix * iy > 0.5 * smaller:
                nested = True
                break
        if not nested:
            keep.append(int(i))
    return keep
