"""Options of the overlay stage (frozen, validated at creation)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["OverlayOptions", "OverlayStyle"]

OverlayStyle = Literal["full", "minimal", "emoji"]
_STYLES: tuple[str, ...] = ("full", "minimal", "emoji")


@dataclass(frozen=True)
class OverlayOptions:
    """How faces are drawn.

    ``style`` picks the layout; the ``show_*`` switches then turn parts of it off (a part is
    drawn when its switch is on *and* the style and face size allow it):

    ============  =======================================================================
    style         per face
    ============  =======================================================================
    ``"full"``    box corners, emoji, label with confidence; for faces at least
                  ``detail_face_px`` tall also probability bars and a quote bubble
    ``"minimal"`` box corners, emoji, label with confidence
    ``"emoji"``   the emoji alone, covering the face like a sticker
    ============  =======================================================================

    Faces smaller than ``small_face_px`` always get the compact form (emoji + short label,
    no confidence, bars or bubble), so group photos stay readable.

    Attributes:
        style: layout preset, see the table.
        show_emoji: draw the expression emoji (the grey "?" badge for uncertain faces).
        show_label: draw the expression label chip.
        show_confidence: append the top probability (percent) to the label.
        show_bars: draw the 7 probability bars, in label order, one colour per expression.
        show_quote: draw a quote bubble (needs a ``QuotePicker`` passed to ``render``).
        show_box: draw the face box as corner brackets in the expression colour.
        emoji_scale: emoji size relative to the default (which is about 0.4 x face size).
        text_scale: text size relative to the default (which follows the face size).
        tilt_with_landmarks: rotate the emoji (and its anchor) with the eye line when the face
            has landmarks.
        small_face_px: faces whose longer box side is below this (pixels) get the compact form.
        detail_face_px: faces whose longer box side is at least this (pixels) get bars and
            quote in the ``"full"`` style.
        uncertain_label: label text for faces reported ``uncertain``.
        panel_opacity: opacity of the bars panel background in [0, 1].
        max_quote_width_px: upper bound on the quote bubble's text width in pixels.
    """

    style: OverlayStyle = "full"
    show_emoji: bool = True
    show_label: bool = True
    show_confidence: bool = True
    show_bars: bool = True
    show_quote: bool = True
    show_box: bool = True
    emoji_scale: float = 1.0
    text_scale: float = 1.0
    tilt_with_landmarks: bool = True
    small_face_px: int = 64
    detail_face_px: int = 120
    uncertain_label: str = "uncertain"
    panel_opacity: float = 0.72
    max_quote_width_px: int = 360

    def __post_init__(self) -> None:
        if self.style not in _STYLES:
            raise ValueError(f"Unknown overlay style {self.style!r}; available: {', '.join(_STYLES)}")
        for name in ("emoji_scale", "text_scale"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0.1 <= value <= 5.0):
                raise ValueError(f"{name} must be a number in [0.1, 5], got {value!r}")
        if not (isinstance(self.panel_opacity, int | float) and 0.0 <= self.panel_opacity <= 1.0):
            raise ValueError(f"panel_opacity must be in [0, 1], got {self.panel_opacity!r}")
        for name in ("small_face_px", "detail_face_px", "max_quote_width_px"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int (pixels), got {value!r}")
        if self.detail_face_px < self.small_face_px:
            raise ValueError(
                f"detail_face_px ({self.detail_face_px}) must be >= small_face_px ({self.small_face_px})"
            )
        if self.max_quote_width_px < 80:
            raise ValueError(f"max_quote_width_px must be >= 80, got {self.max_quote_width_px}")
        if not self.uncertain_label.strip():
            raise ValueError("uncertain_label must be non-empty text, e.g. 'uncertain'")
