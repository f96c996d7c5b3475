"""Text rendering for overlays: Pillow glyphs turned into cached premultiplied patches.

The font is Pillow's built-in scalable default (``ImageFont.load_default(size=...)``, Aileron
Regular, CC0, embedded in Pillow >= 10.1), so nothing is vendored or downloaded. Each string is
rasterised once per (text, size, colour, weight) into a coverage mask; a video whose labels
repeat frame after frame pays for Pillow only on the first frame.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from emoar.overlay.compose import Patch, solid

__all__ = ["font", "line_height", "text_mask", "text_patch", "text_width", "wrap"]

logger = logging.getLogger(__name__)

_FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=64)
def font(size_px: int) -> _FontT:
    """Pillow's default font at ``size_px`` pixels (falls back to the bitmap font without FreeType)."""
    f = ImageFont.load_default(size=size_px)
    if not isinstance(f, ImageFont.FreeTypeFont):
        logger.warning("Pillow was built without FreeType; overlay text will not scale")
    return f


def line_height(size_px: int) -> int:
    """Height in pixels of one text line (ascent + descent) at ``size_px``."""
    f = font(size_px)
    if isinstance(f, ImageFont.FreeTypeFont):
        ascent, descent = f.getmetrics()
        return int(ascent + descent)
    return size_px


@lru_cache(maxsize=4096)
def text_width(text: str, size_px: int, bold: bool = False) -> int:
    """Advance width of ``text`` in pixels (+1 for synthetic bold)."""
    return int(np.ceil(font(size_px).getlength(text))) + int(bold)


@lru_cache(maxsize=1024)
def text_mask(text: str, size_px: int, bold: bool = False) -> npt.NDArray[np.float32]:
    """Coverage mask of one line of text.

    Args:
        text: the string (one line).
        size_px: font size in pixels.
        bold: synthetic bold (the glyph coverage OR-ed with itself shifted by 1 px).

    Returns:
        (line_height, width) float32 coverage in [0, 1]; read-only (it is cached and shared).
    """
    w, h = max(1, text_width(text, size_px, bold)), line_height(size_px)
    img = Image.new("L", (w, h), 0)
    ImageDraw.Draw(img).text((0, 0), text, fill=255, font=font(size_px))
    m = np.asarray(img, np.float32) * (1.0 / 255.0)
    if bold:
        m = m.copy()
        np.maximum(m[:, 1:], m[:, :-1], out=m[:, 1:])
    m.setflags(write=False)
    return m


@lru_cache(maxsize=1024)
def text_patch(text: str, size_px: int, bgr: tuple[int, int, int], bold: bool = False) -> Patch:
    """A cached, read-only patch of ``text`` in colour ``bgr`` on a transparent background."""
    p = solid(text_mask(text, size_px, bold), bgr)
    p.setflags(write=False)
    return p


@lru_cache(maxsize=512)
def wrap(text: str, size_px: int, max_width_px: int) -> tuple[str, ...]:
    """Greedy word wrap of ``text`` into lines no wider than ``max_width_px`` where possible.

    A single word longer than the limit gets a line of its own (it is not hyphenated).
    """
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        if current and text_width(trial, size_px) > max_width_px:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return tuple(lines)
