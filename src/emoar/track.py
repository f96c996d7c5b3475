"""Stable face ids across video frames (IoU matching with a centroid fallback).

A small, dependency-free tracker in the spirit of SORT / ByteTrack (as packaged by
``supervision``): boxes are matched to tracks greedily by IoU, with a constant-velocity
prediction for each track, a two-stage association by detector score, and a centroid-distance
fallback for fast motion or small boxes where the IoU of consecutive boxes is zero.

Example:
    >>> tracker = IouTracker(TrackerOptions(max_age=15))
    >>> for frame in frames:
    ...     dets = detector.detect(frame)
    ...     boxes = np.array([d.box_xyxy for d in dets], dtype=np.float64).reshape(-1, 4)
    ...     ids = tracker.update(boxes, [d.score for d in dets])  # aligned with dets

Call :meth:`IouTracker.update` once per processed frame, also when no face was found (with an
empty array), so lost tracks age correctly. Each stream (file, webcam, web session) owns its
own tracker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["IouTracker", "TrackerOptions", "UNTRACKED", "box_iou_xyxy"]

logger = logging.getLogger(__name__)

#: Track id returned for a detection that has no confirmed track (yet).
UNTRACKED = -1

# A lost track's box is extrapolated with its velocity for at most this many frames; beyond
# that the prediction is more likely wrong (faces stop) than right.
_MAX_EXTRAPOLATION_FRAMES = 5
# Weight of the newest displacement in the per-track velocity estimate (damps detector jitter).
_VELOCITY_GAIN = 0.5


@dataclass(frozen=True)
class TrackerOptions:
    """Options for :class:`IouTracker`, validated at creation.

    Attributes:
        iou_threshold: minimum IoU (0-1) between a track's predicted box and a detection for
            them to be matched in the IoU stage.
        max_age: number of consecutive frames (``update()`` calls) a confirmed track is kept
            without a matching detection; after ``max_age`` missed frames it is dropped and the
            face gets a new id when it reappears.
        min_hits: number of matched frames before a track is confirmed and gets an id. Until
            then its detections are reported as :data:`UNTRACKED` (-1). Unconfirmed tracks
            are dropped on their first miss. 1 = every detection gets an id immediately.
        max_center_distance: centroid fallback for detections left unmatched by IoU: the
            largest distance between box centres, in units of the track's box size
            (sqrt of its area in pixels^2), for a match. 0 disables the fallback.
        max_scale_change: largest ratio (>= 1) between the sizes (sqrt of area) of the track's
            box and a detection for a centroid-fallback match.
        high_score_threshold: detections with a score at or above this are associated first;
            the others (ByteTrack's "low" detections) only with tracks left over.
        new_track_min_score: minimum score for an unmatched detection to start a new track;
            below it the detection is reported as :data:`UNTRACKED`.
    """

    iou_threshold: float = 0.3
    max_age: int = 30
    min_hits: int = 1
    max_center_distance: float = 1.0
    max_scale_change: float = 2.0
    high_score_threshold: float = 0.5
    new_track_min_score: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_age < 0:
            raise ValueError(f"max_age must be >= 0 frames, got {self.max_age}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if self.max_center_distance < 0:
            raise ValueError(f"max_center_distance must be >= 0 box sizes, got {self.max_center_distance}")
        if self.max_scale_change < 1.0:
            raise ValueError(f"max_scale_change must be >= 1, got {self.max_scale_change}")


def box_iou_xyxy(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pairwise intersection-over-union of two sets of boxes.

    Args:
        a: (N, 4) boxes (x1, y1, x2, y2) in pixels.
        b: (M, 4) boxes (x1, y1, x2, y2) in pixels.

    Returns:
        (N, M) IoU values in [0, 1]; degenerate (zero-area) boxes have IoU 0.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


@dataclass
class _Track:
    box: npt.NDArray[np.float64]  # last matched box, xyxy pixels
    track_id: int = UNTRACKED  # public id, assigned on confirmation
    velocity: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(4))  # px / frame
    hits: int = 1
    misses: int = 0  # consecutive frames without a match

    def predicted(self) -> npt.NDArray[np.float64]:
        steps = min(self.misses + 1, _MAX_EXTRAPOLATION_FRAMES)
        return self.box + self.velocity * steps


def _greedy_pairs(
    score: npt.NDArray[np.float64], accept: npt.NDArray[np.bool_], descending: bool
) -> list[tuple[int, int]]:
    """Greedy one-to-one assignment over the accepted cells of ``score``, best first."""
    rows, cols = np.nonzero(accept)
    if rows.size == 0:
        return []
    values = score[rows, cols]
    order = np.argsort(-values if descending else values, kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    pairs = []
    for k in order:
        r, c = int(rows[k]), int(cols[k])
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class IouTracker:
    """Assigns stable integer ids to face boxes across the frames of one stream.

    Ids start at 1, increase, and are never reused within a stream (until :meth:`reset`).
    Stateful: one instance per stream or web session.
    """

    def __init__(self, options: TrackerOptions | None = None) -> None:
        """Create a tracker.

        Args:
            options: tracker options; defaults to ``TrackerOptions()``.
        """
        self.options = options or TrackerOptions()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._frame_index = -1

    @property
    def active_ids(self) -> list[int]:
        """Ids of confirmed tracks currently kept (matched or lost for at most ``max_age``)."""
        return [t.track_id for t in self._tracks if t.track_id != UNTRACKED]

    @property
    def frame_index(self) -> int:
        """Number of ``update()`` calls since creation or the last reset, minus one."""
        return self._frame_index

    def reset(self) -> None:
        """Forget all tracks and restart ids at 1 (start of a new stream)."""
        self._tracks = []
        self._next_id = 1
        self._frame_index = -1

    def update(self, boxes_xyxy: npt.ArrayLike, scores: npt.ArrayLike | None = None) -> npt.NDArray[np.int64]:
        """Match this frame's detections to tracks.

        Args:
            boxes_xyxy: (N, 4) boxes (x1, y1, x2, y2) in pixels of the frame; N may be 0
                (an empty list or a (0, 4) array).
            scores: (N,) detector confidences in [0, 1]; ``None`` means all 1.

        Returns:
            (N,) int64 track ids aligned with the input order; :data:`UNTRACKED` (-1) for
            detections whose track is not confirmed yet (``min_hits`` > 1) or whose score is
            below ``new_track_min_score``.

        Raises:
            ValueError: if the boxes are not (N, 4) or the scores do not have N entries.
        """
        opts = self.options
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes_xyxy must have shape (N, 4), got {boxes.shape}")
        n = boxes.shape[0]
        if scores is None:
            score_arr = np.ones(n)
        else:
            score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
            if score_arr.shape[0] != n:
                raise ValueError(f"got {n} boxes but {score_arr.shape[0]} scores")
        if not np.all(np.isfinite(boxes)):
            raise ValueError("boxes_xyxy contains NaN or infinite values")
        self._frame_index += 1

        det_track: dict[int, int] = {}  # detection index -> track index
        free_tracks = list(range(len(self._tracks)))
        high = [i for i in range(n) if score_arr[i] >= opts.high_score_threshold]
        low = [i for i in range(n) if score_arr[i] < opts.high_score_threshold]
        for stage in (high, low):
            if not stage or not free_tracks:
                continue
            for ti, di in self._associate(free_tracks, stage, boxes):
                det_track[di] = ti
            matched = set(det_track.values())
            free_tracks = [t for t in free_tracks if t not in matched]

        ids = np.full(n, UNTRACKED, dtype=np.int64)
        for di, ti in det_track.items():
            track = self._tracks[ti]
            steps = track.misses + 1
            displacement = (boxes[di] - track.box) / steps
            track.velocity = (
                displacement
                if track.hits == 1
                else (1 - _VELOCITY_GAIN) * track.velocity + _VELOCITY_GAIN * displacement
            )
            track.box = boxes[di].copy()
            track.hits += 1
            track.misses = 0
            if track.track_id == UNTRACKED and track.hits >= opts.min_hits:
                track.track_id = self._new_id()
            ids[di] = track.track_id

        # Age unmatched tracks; unconfirmed ones die on their first miss (as in SORT).
        matched_tracks = set(det_track.values())
        kept: list[_Track] = []
        for ti, track in enumerate(self._tracks):
            if ti not in matched_tracks:
                track.misses += 1
                if track.track_id == UNTRACKED or track.misses > opts.max_age:
                    if track.track_id != UNTRACKED:
                        logger.debug("track %d dropped after %d missed frames", track.track_id, track.misses)
                    continue
            kept.append(track)

        for di in range(n):
            if di in det_track or score_arr[di] < opts.new_track_min_score:
                continue
            track = _Track(box=boxes[di].copy())
            if opts.min_hits <= 1:
                track.track_id = self._new_id()
                ids[di] = track.track_id
            kept.append(track)
        self._tracks = kept
        return ids

    def _new_id(self) -> int:
        track_id = self._next_id
        self._next_id += 1
        return track_id

    def _associate(
        self, track_idx: list[int], det_idx: list[int], boxes: npt.NDArray[np.float64]
    ) -> list[tuple[int, int]]:
        """Greedy IoU matching, then the centroid fallback; returns (track, detection) pairs."""
        opts = self.options
        pred = np.stack([self._tracks[t].predicted() for t in track_idx])
        dets = boxes[det_idx]
        iou = box_iou_xyxy(pred, dets)
        pairs = _greedy_pairs(iou, iou >= opts.iou_threshold, descending=True)
        if opts.max_center_distance > 0:
            used_r = {r for r, _ in pairs}
            used_c = {c for _, c in pairs}
            rest_r = [r for r in range(len(track_idx)) if r not in used_r]
            rest_c = [c for c in range(len(det_idx)) if c not in used_c]
            if rest_r and rest_c:
                p, d = pred[rest_r], dets[rest_c]
                size_p = np.sqrt(
                    np.clip(p[:, 2] - p[:, 0], 1e-6, None) * np.clip(p[:, 3] - p[:, 1], 1e-6, None)
                )
                size_d = np.sqrt(
                    np.clip(d[:, 2] - d[:, 0], 1e-6, None) * np.clip(d[:, 3] - d[:, 1], 1e-6, None)
                )
                cp = (p[:, :2] + p[:, 2:]) / 2
                cd = (d[:, :2] + d[:, 2:]) / 2
                dist = np.linalg.norm(cp[:, None, :] - cd[None, :, :], axis=2) / size_p[:, None]
                ratio = np.maximum(size_p[:, None] / size_d[None, :], size_d[None, :] / size_p[:, None])
                accept = (dist <= opts.max_center_distance) & (ratio <= opts.max_scale_change)
                for r, c in _greedy_pairs(dist, accept, descending=False):
                    pairs.append((rest_r[r], rest_c[c]))
        return [(track_idx[r], det_idx[c]) for r, c in pairs]
