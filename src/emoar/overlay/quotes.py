"""Quotes about expressions, shown in a speech bubble, and the per-track picker that keeps them stable.

The bundled list lives in ``assets/quotes.json`` (short public-domain quotations, each with its
author and source). It is read on first use, never at import.
"""

from __future__ import annotations

import json
import logging
import random
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

__all__ = ["Quote", "QuotePicker", "load_quotes"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quote:
    """One attributed quotation.

    Attributes:
        text: the quotation, one paragraph (wrapped by the renderer).
        author: who said or wrote it.
        source: the work it comes from (may be empty).
    """

    text: str
    author: str
    source: str = ""

    @property
    def attribution(self) -> str:
        """The byline shown under the quote, e.g. ``"— Horace"``."""
        return f"\u2014 {self.author}"


def _parse(data: object, origin: str) -> dict[str, tuple[Quote, ...]]:
    quotes = data.get("quotes") if isinstance(data, dict) else None
    if not isinstance(quotes, dict):
        raise ValueError(f"{origin}: expected an object with a 'quotes' mapping of label -> list")
    out: dict[str, tuple[Quote, ...]] = {}
    for label, items in quotes.items():
        if not isinstance(items, list) or not items:
            raise ValueError(f"{origin}: quotes[{label!r}] must be a non-empty list")
        parsed = []
        for i, item in enumerate(items):
            text = item.get("text", "").strip() if isinstance(item, dict) else ""
            author = item.get("author", "").strip() if isinstance(item, dict) else ""
            if not text or not author:
                raise ValueError(f"{origin}: quotes[{label!r}][{i}] needs non-empty 'text' and 'author'")
            parsed.append(Quote(text=text, author=author, source=str(item.get("source", "")).strip()))
        out[str(label)] = tuple(parsed)
    return out


@lru_cache(maxsize=1)
def _bundled() -> dict[str, tuple[Quote, ...]]:
    ref = resources.files("emoar.overlay").joinpath("assets", "quotes.json")
    return _parse(json.loads(ref.read_text(encoding="utf-8")), "emoar/overlay/assets/quotes.json")


def load_quotes(path: str | Path | None = None) -> dict[str, tuple[Quote, ...]]:
    """Load a quote list.

    Args:
        path: a JSON file shaped like ``assets/quotes.json``
            (``{"quotes": {"happy": [{"text": ..., "author": ..., "source": ...}]}}``);
            ``None`` for the bundled list.

    Returns:
        label -> quotes. The bundled list has every FER2013 label plus ``"uncertain"``.

    Raises:
        ValueError: the file is not in the expected shape (the message names the entry).
    """
    if path is None:
        return dict(_bundled())
    p = Path(path)
    return _parse(json.loads(p.read_text(encoding="utf-8")), str(p))


class QuotePicker:
    """Chooses one quote per track and keeps it while the track's expression stays the same.

    Stateful like a tracker: create one per video stream or web session, call :meth:`pick`
    every frame, :meth:`reset` between streams. A new quote is drawn (at random, reproducibly
    for a given ``seed`` and sequence of calls) only when a track is new or its expression
    changes.

    Faces without a track id (single images) share one state per expression, so the same
    expression gets the same quote across calls.

    Args:
        quotes: label -> quotes; ``None`` loads the bundled list on first use.
        seed: seed of the random draws.
        max_tracks: how many tracks to remember (least recently used are forgotten).
    """

    def __init__(
        self,
        quotes: Mapping[str, Sequence[Quote]] | None = None,
        seed: int = 0,
        max_tracks: int = 1024,
    ) -> None:
        if max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {max_tracks}")
        self._quotes = {k: tuple(v) for k, v in quotes.items()} if quotes is not None else None
        self._seed = seed
        self._max_tracks = max_tracks
        self._rng = random.Random(seed)
        self._state: OrderedDict[object, tuple[str, int]] = OrderedDict()

    @property
    def quotes(self) -> dict[str, tuple[Quote, ...]]:
        """label -> quotes this picker draws from."""
        if self._quotes is None:
            self._quotes = load_quotes()
        return self._quotes

    def pick(self, track_id: int | None, expression: str) -> Quote | None:
        """The quote to show for a track in this frame.

        Args:
            track_id: the face's track id; ``None`` for untracked faces.
            expression: the label shown for the face (``"uncertain"`` for uncertain faces).

        Returns:
            The quote, or ``None`` when the list has none for ``expression``.
        """
        choices = self.quotes.get(expression)
        if not choices:
            return None
        key: object = ("untracked", expression) if track_id is None else track_id
        prev = self._state.get(key)
        if prev is not None and prev[0] == expression and prev[1] < len(choices):
            self._state.move_to_end(key)
            return choices[prev[1]]
        index = self._rng.randrange(len(choices))
        self._state[key] = (expression, index)
        self._state.move_to_end(key)
        while len(self._state) > self._max_tracks:
            self._state.popitem(last=False)
        return choices[index]

    def reset(self) -> None:
        """Forget every track and restart the random sequence from the seed."""
        self._state.clear()
        self._rng = random.Random(self._seed)
