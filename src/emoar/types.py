"""Typed, frozen results. Units are in the names: ``box_xyxy`` is in pixels of the original
frame, ``probs`` sums to 1, ``timestamp_ms`` is milliseconds from the start of a stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["CSV_COLUMNS", "Detection", "FaceResult", "FrameResult", "csv_header"]

#: Per-face CSV columns (``emoar video --csv``), followed by one ``p_<label>`` per model label.
CSV_COLUMNS = (
    "frame",
    "timestamp_ms",
    "track_id",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    "expression",
    "uncertain",
)


def csv_header(labels: tuple[str, ...] | list[str]) -> list[str]:
    """The CSV header row for a model with ``labels``."""
    return [*CSV_COLUMNS, *(f"p_{n}" for n in labels)]


@dataclass(frozen=True)
class Detection:
    """One detected face.

    Attributes:
        box_xyxy: (x1, y1, x2, y2) in pixels of the original frame (float).
        score: detector confidence in [0, 1].
        landmarks_xy: optional (5, 2) array in pixels of the original frame, ordered
            right eye, left eye (from the viewer: image-left eye first), nose tip,
            mouth right corner, mouth left corner — i.e. image-left to image-right per pair.
    """

    box_xyxy: tuple[float, float, float, float]
    score: float
    landmarks_xy: npt.NDArray[np.float32] | None = None

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return self.box_xyxy[2] - self.box_xyxy[0]

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return self.box_xyxy[3] - self.box_xyxy[1]


@dataclass(frozen=True)
class FaceResult:
    """One face's expression result (the JSON ``faces[]`` entry of docs/contracts.md).

    Attributes:
        box_xyxy: (x1, y1, x2, y2) in pixels of the original frame.
        score: detector confidence in [0, 1].
        expression: the top label (after smoothing, for streams).
        probs: label -> probability, in the model's label order; sums to 1.
        ood_score: out-of-distribution score in [0, 1]; higher = less like training faces.
        uncertain: True when ``ood_score`` is above the model's threshold.
        track_id: stable id across frames in streams; None for single images.
        landmarks_xy: optional (5, 2) landmarks in pixels (not part of the JSON contract).
    """

    box_xyxy: tuple[float, float, float, float]
    score: float
    expression: str
    probs: dict[str, float]
    ood_score: float = 0.0
    uncertain: bool = False
    track_id: int | None = None
    landmarks_xy: npt.NDArray[np.float32] | None = field(default=None, compare=False, repr=False)

    def to_dict(self, *, landmarks: bool = False) -> dict[str, Any]:
        """JSON-ready dict in the docs/contracts.md shape (boxes rounded to 0.1 px).

        Args:
            landmarks: add ``"landmarks_xy"`` (five ``[x, y]`` points rounded to 0.1 px, or
                None), as the live stream sends for anchoring overlays.
        """
        out: dict[str, Any] = {
            "box_xyxy": [round(float(v), 1) for v in self.box_xyxy],
            "score": round(float(self.score), 4),
            "expression": self.expression,
            "probs": {k: round(float(v), 4) for k, v in self.probs.items()},
            "ood_score": round(float(self.ood_score), 4),
            "uncertain": bool(self.uncertain),
            "track_id": self.track_id,
        }
        if landmarks:
            lm = self.landmarks_xy
            out["landmarks_xy"] = (
                None if lm is None else [[round(float(x), 1), round(float(y), 1)] for x, y in lm]
            )
        return out


@dataclass(frozen=True)
class FrameResult:
    """All faces in one image or video frame.

    Attributes:
        faces: one entry per detected face, in detection order.
        width: frame width in pixels.
        height: frame height in pixels.
        frame_index: index in the stream (0 for single images).
        timestamp_ms: milliseconds since the start of the stream (0 for single images).
        image: source name (file name) when known.
        speed_ms: per-stage wall time in milliseconds (detect, align, classify, ...).
    """

    faces: tuple[FaceResult, ...]
    width: int
    height: int
    frame_index: int = 0
    timestamp_ms: float = 0.0
    image: str | None = None
    speed_ms: dict[str, float] = field(default_factory=dict, compare=False)

    def csv_rows(self, labels: tuple[str, ...] | list[str]) -> list[list[Any]]:
        """One :func:`csv_header`-shaped row per face (probabilities in ``labels`` order)."""
        return [
            [
                self.frame_index,
                round(self.timestamp_ms, 1),
                f.track_id,
                *(round(float(v), 1) for v in f.box_xyxy),
                round(f.score, 4),
                f.expression,
                int(f.uncertain),
                *(round(f.probs[n], 4) for n in labels),
            ]
            for f in self.faces
        ]

    def to_dict(self, *, landmarks: bool = False) -> dict[str, Any]:
        """The ``emoar analyze --json`` object of docs/contracts.md (``landmarks``: see
        :meth:`FaceResult.to_dict`)."""
        return {
            "image": self.image,
            "width": int(self.width),
            "height": int(self.height),
            "faces": [f.to_dict(landmarks=landmarks) for f in self.faces],
        }

    def frame_dict(self) -> dict[str, Any]:
        """One frame of a clip: a line of ``emoar video --json`` and an entry of
        ``POST /v1/analyze/video``'s ``frames`` (``frame``, ``timestamp_ms``, ``width``,
        ``height``, ``faces``)."""
        return {
            "frame": int(self.frame_index),
            "timestamp_ms": round(float(self.timestamp_ms), 1),
            "width": int(self.width),
            "height": int(self.height),
            "faces": [f.to_dict() for f in self.faces],
        }
