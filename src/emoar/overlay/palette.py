"""Colours of the overlay: one per expression, plus the neutral grey for uncertain faces."""

from __future__ import annotations

__all__ = ["EXPRESSION_COLORS_BGR", "UNCERTAIN_COLOR_BGR", "color_for", "ink_for"]

#: Expression -> (B, G, R). Hues follow the emoji (red anger, green disgust, ...), chosen to stay
#: distinguishable in bars next to each other.
EXPRESSION_COLORS_BGR: dict[str, tuple[int, int, int]] = {
    "angry": (60, 57, 229),  # red
    "disgust": (80, 175, 76),  # green
    "fear": (176, 68, 142),  # purple
    "happy": (7, 193, 255),  # amber
    "sad": (229, 136, 30),  # blue
    "surprise": (0, 132, 255),  # orange
    "neutral": (160, 150, 120),  # blue-grey
    "contempt": (128, 96, 160),  # mauve (FER+ models)
}

#: Slate grey used for faces reported ``uncertain`` and for unknown labels.
UNCERTAIN_COLOR_BGR: tuple[int, int, int] = (125, 117, 110)

_INK_DARK = (34, 30, 28)
_INK_LIGHT = (255, 255, 255)


def color_for(label: str, uncertain: bool = False) -> tuple[int, int, int]:
    """The (B, G, R) colour of an expression; grey for uncertain faces and unknown labels."""
    if uncertain:
        return UNCERTAIN_COLOR_BGR
    return EXPRESSION_COLORS_BGR.get(label, UNCERTAIN_COLOR_BGR)


def ink_for(bgr: tuple[int, int, int]) -> tuple[int, int, int]:
    """Text colour (B, G, R) readable on a background of colour ``bgr`` (WCAG-style luminance)."""
    b, g, r = (c / 255.0 for c in bgr)
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return _INK_DARK if lum > 0.55 else _INK_LIGHT
