"""Per-track summaries of a stream's results: who was seen, for how long, and how they looked.

A clip's per-frame results are long (one row per face per frame); what a reader wants first is
one line per person. :func:`summarize_tracks` folds a stream's :class:`~emoar.types.FrameResult`
list into one :class:`TrackSummary` per track id (faces without a track id, i.e. single images,
are summarised as one track each). Used by the upload page and ``POST /v1/analyze/video``
(``tracks``), and by ``emoar batch``'s per-file table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emoar.types import FrameResult

__all__ = ["TrackSummary", "summarize_tracks"]


@dataclass(frozen=True)
class TrackSummary:
    """One track over a stream.

    Attributes:
        track_id: the stream's track id (None for a face of a single image).
        frames: analysed frames in which the track was seen.
        first_ms: timestamp of the first of them, in milliseconds.
        last_ms: timestamp of the last.
        dominant: the expression with the highest mean probability over the track's frames.
        mean_probs: label -> mean probability over the track's frames, in the model's label order.
        shares: label -> fraction of the track's frames on which it was the top expression.
        uncertain_frames: frames on which the face was flagged out-of-distribution.
    """

    track_id: int | None
    frames: int
    first_ms: float
    last_ms: float
    dominant: str
    mean_probs: dict[str, float]
    shares: dict[str, float]
    uncertain_frames: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``tracks[]`` in docs/contracts.md); probabilities rounded to 4 places."""
        return {
            "track_id": self.track_id,
            "frames": self.frames,
            "first_ms": round(self.first_ms, 1),
            "last_ms": round(self.last_ms, 1),
            "dominant": self.dominant,
            "mean_probs": {k: round(v, 4) for k, v in self.mean_probs.items()},
            "shares": {k: round(v, 4) for k, v in self.shares.items()},
            "uncertain_frames": self.uncertain_frames,
        }


def summarize_tracks(results: Iterable[FrameResult]) -> list[TrackSummary]:
    """One summary per track, in order of first appearance.

    Args:
        results: a stream's frame results (any order; each face's ``track_id`` groups them).

    Returns:
        The summaries; empty when no frame had a face.
    """
    acc: dict[Any, dict[str, Any]] = {}
    for r in results:
        for i, f in enumerate(r.faces):
            key: Any = f.track_id if f.track_id is not None else ("untracked", r.frame_index, i)
            a = acc.get(key)
            if a is None:
                a = acc[key] = {
                    "id": f.track_id,
                    "n": 0,
                    "first": r.timestamp_ms,
                    "last": r.timestamp_ms,
                    "sum": dict.fromkeys(f.probs, 0.0),
                    "top": dict.fromkeys(f.probs, 0),
                    "unc": 0,
                }
            a["n"] += 1
            a["first"] = min(a["first"], r.timestamp_ms)
            a["last"] = max(a["last"], r.timestamp_ms)
            for k, p in f.probs.items():
                a["sum"][k] = a["sum"].get(k, 0.0) + float(p)
            a["top"][f.expression] = a["top"].get(f.expression, 0) + 1
            a["unc"] += int(f.uncertain)
    out = []
    for a in sorted(acc.values(), key=lambda a: (a["first"], -1 if a["id"] is None else a["id"])):
        n = a["n"]
        mean = {k: v / n for k, v in a["sum"].items()}
        out.append(
            TrackSummary(
                track_id=a["id"],
                frames=n,
                first_ms=float(a["first"]),
                last_ms=float(a["last"]),
                dominant=max(mean, key=lambda k: mean[k]),
                mean_probs=mean,
                shares={k: c / n for k, c in a["top"].items()},
                uncertain_frames=a["unc"],
            )
        )
    return out
