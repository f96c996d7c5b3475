"""Placement of overlay elements: pick the candidate spot that stays in frame and covers least.

Every element (emoji, label chip, bars panel, quote bubble) offers a few candidate rectangles
in order of preference, e.g. "above the face, else below, else to the side". Each candidate is
scored by how much of it falls outside the frame and how much it covers faces and elements
already placed; the best is then shifted fully inside the frame. Near an edge this flips a
bubble from above to below, or the bars from the right to the left, instead of cutting them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PlacementMemory", "Placer", "Rect", "clamp_into", "overlap"]

Rect = tuple[int, int, int, int]
"""(x1, y1, x2, y2) in pixels of the frame, x2/y2 exclusive."""


def overlap(a: Rect, b: Rect) -> int:
    """Intersection area of two rectangles in square pixels."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def clamp_into(rect: Rect, width: int, height: int, margin: int = 2) -> Rect:
    """Shift ``rect`` (without resizing) so it lies inside a width x height frame.

    When the rectangle is larger than the frame, its top-left corner is kept inside instead.
    """
    x1, y1, x2, y2 = rect
    w, h = x2 - x1, y2 - y1
    x1 = min(max(x1, margin), width - margin - w)
    y1 = min(max(y1, margin), height - margin - h)
    x1, y1 = max(x1, 0), max(y1, 0)
    return (x1, y1, x1 + w, y1 + h)


class PlacementMemory:
    """Which candidate each track's overlay elements took last frame, for one stream.

    The renderer prefers the remembered spot (hysteresis), so bubbles and bars do not hop
    between sides from frame to frame. Like a tracker it belongs to one stream (one video, one
    webcam, one websocket client): :class:`emoar.pipeline.StreamState` holds one.

    Args:
        max_keys: most (track, element) pairs remembered; past that the memory starts afresh.
    """

    def __init__(self, max_keys: int = 4096) -> None:
        self.max_keys = int(max_keys)
        self.choices: dict[tuple[int, str], int] = {}

    def get(self, track_id: int | None, element: str) -> int | None:
        """The candidate index that ``element`` of track ``track_id`` took last (None: none)."""
        return None if track_id is None else self.choices.get((track_id, element))

    def remember(self, track_id: int | None, element: str, choice: int) -> None:
        """Record where ``element`` of track ``track_id`` went this frame."""
        if track_id is not None:
            self.choices[(track_id, element)] = choice

    def trim(self) -> None:
        """Start afresh when more than ``max_keys`` pairs are remembered (bounded memory)."""
        if len(self.choices) > self.max_keys:
            self.choices.clear()

    def reset(self) -> None:
        """Forget every track."""
        self.choices.clear()

    def __len__(self) -> int:
        return len(self.choices)


@dataclass
class Placer:
    """Places rectangles one after another in one frame, avoiding faces and earlier ones.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        faces: face boxes (all faces of the frame) as integer rects.
        placed: rectangles placed so far (grows with :meth:`place`).
        memory: the stream's placement memory the caller consults for preferences (or None).
    """

    width: int
    height: int
    faces: Sequence[Rect]
    placed: list[Rect]
    memory: PlacementMemory | None = None

    def score(
        self, candidate: Rect, own_face: int | None, own_weight: float, rank: int
    ) -> tuple[float, Rect]:
        """Cost of a candidate (lower is better) and the in-frame rectangle it turns into.

        The candidate is first shifted into the frame; the cost then adds how far it moved
        (relative to its size), the parts of faces and earlier elements it hides (as a fraction
        of the smaller of the two, so covering a small emoji or face counts fully) and a small
        penalty per preference rank.
        """
        rect = clamp_into(candidate, self.width, self.height)
        w, h = rect[2] - rect[0], rect[3] - rect[1]
        area = max(1, w * h)
        shift = abs(rect[0] - candidate[0]) + abs(rect[1] - candidate[1])
        cost = 2.0 * shift / max(1, w, h)
        for i, face in enumerate(self.faces):
            weight = own_weight if i == own_face else 3.0
            face_area = max(1, (face[2] - face[0]) * (face[3] - face[1]))
            cost += weight * overlap(rect, face) / min(area, face_area)
        for other in self.placed:
            other_area = max(1, (other[2] - other[0]) * (other[3] - other[1]))
            cost += 4.0 * overlap(rect, other) / min(area, other_area)
        return cost + 0.05 * rank, rect

    def place(
        self,
        candidates: Sequence[Rect],
        own_face: int | None = None,
        own_weight: float = 3.0,
        preferred: int | None = None,
        max_cost: float | None = None,
    ) -> tuple[int, Rect] | None:
        """Choose the best candidate, shift it into the frame and remember it.

        Args:
            candidates: rectangles in order of preference.
            own_face: index in ``faces`` of the face this element belongs to.
            own_weight: penalty weight for covering its own face (small for the emoji, which
                may overlap the head's corner; large for text panels).
            preferred: the candidate chosen for the same element last frame; it gets a bonus
                so placement does not flip back and forth (hysteresis).
            max_cost: for optional elements: when even the best spot costs more than this
                (it would hide faces or other elements), place nothing and return ``None``.

        Returns:
            (index of the chosen candidate, the in-frame rectangle), or ``None``.
        """
        best, best_cost, best_rect = 0, float("inf"), candidates[0]
        for rank, candidate in enumerate(candidates):
            cost, rect = self.score(candidate, own_face, own_weight, rank)
            if rank == preferred:
                cost -= 0.3
            if cost < best_cost:
                best, best_cost, best_rect = rank, cost, rect
        if max_cost is not None and best_cost > max_cost:
            return None
        self.placed.append(best_rect)
        return best, best_rect
