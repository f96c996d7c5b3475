"""YuNet (libfacedetection) through the ``yuface`` wheel: the default backend.

``yuface.detect`` takes a BGR uint8 image and returns, per face, an integer confidence in
percent, an int16 ``XYWH`` box and 10 int16 landmark coordinates ``x0 y0 ... x4 y4`` in the
order image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth
corner (checked on real photos) — the same order as :data:`emoar.detect.base.LANDMARK_NAMES`.
Boxes and landmarks are whole pixels of the image it was given, so precision is limited to one
pixel of the downscaled image. YuNet's landmarks hardly follow head roll, so by default they are
replaced by MTCNN O-net landmarks computed on each YuNet box (see :mod:`emoar.detect.onet`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import warnings

import numpy as np
import numpy.typing as npt

from emoar.detect.base import BaseDetector, DetectorOptions, RawDetections
from emoar.detect.onet import ONetLandmarks
from emoar.types import Detection

__all__ = ["YuNetDetector"]

logger = logging.getLogger(__name__)


class YuNetDetector(BaseDetector):
    """YuNet face detector (libfacedetection, BSD-3; weights compiled into ``yuface``).

    Attributes:
        name: ``"yunet"``.
        options: resolved options.
    """

    name = "yunet"

    def __init__(self, options: DetectorOptions) -> None:
        """Import ``yuface`` (setting ``OMP_NUM_THREADS`` first when the user has not).

        Args:
            options: resolved options (``min_score`` and ``detect_max_side`` set).

        Raises:
            ImportError: ``yuface`` is not installed or has no build for this platform.
        """
        super().__init__(options)
        # libgomp reads OMP_NUM_THREADS once, when yuface loads it. Its default (all cores)
        # makes latency collapse when another process is busy (measured 110-450 ms on 2 cores).
        if "yuface" not in sys.modules and "OMP_NUM_THREADS" not in os.environ:
            os.environ["OMP_NUM_THREADS"] = str(options.num_threads)
        elif os.environ.get("OMP_NUM_THREADS") != str(options.num_threads):
            logger.info(
                "YuNet runs with OMP_NUM_THREADS=%s (set by the user, or fixed when yuface was first "
                "imported); num_threads=%d ignored",
                os.environ.get("OMP_NUM_THREADS", "<unset: all cores>"),
                options.num_threads,
            )
        import yuface

        self._yuface = yuface
        self._onet: ONetLandmarks | None = None
        if options.refine_landmarks:
            try:
                self._onet = ONetLandmarks()
            except ImportError as exc:
                logger.warning(
                    "YuNet landmarks are not refined (%s); tilted faces will align less upright", exc
                )

    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        with warnings.catch_warnings():
            # yuface warns above 960 px; the user chose detect_max_side knowingly.
            warnings.simplefilter("ignore", UserWarning)
            confs, boxes, landmarks = self._yuface.detect(image_bgr, conf=0.0)
        if len(confs) == 0:
            return RawDetections.empty()
        xywh = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
        return RawDetections(xyxy, np.asarray(confs, dtype=np.float64) / 100.0, lm)

    def _refine(self, image_bgr: npt.NDArray[np.uint8], detections: list[Detection]) -> list[Detection]:
        if self._onet is None:
            return detections
        landmarks, _ = self._onet(image_bgr, [d.box_xyxy for d in detections])
        return [
            dataclasses.replace(d, landmarks_xy=lm.astype(np.float32))
            for d, lm in zip(detections, landmarks, strict=True)
        ]

    def _release(self) -> None:
        self._yuface = None
        self._onet = None
