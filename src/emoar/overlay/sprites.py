"""Emoji sprites shipped as package data (see ``assets/ATTRIBUTION.md`` for source and licence).

Sprites are read through :mod:`importlib.resources` on first use, never at import, and the
scaled/rotated variants are cached per (name, size, angle), so a steady video re-uses them.
"""

from __future__ import annotations

import logging
from functools import cache, lru_cache
from importlib import resources

import cv2
import numpy as np
import numpy.typing as npt

from emoar.labels import FERPLUS_LABELS
from emoar.overlay import compose
from emoar.overlay.compose import Patch

__all__ = ["SPRITE_NAMES", "UNCERTAIN_SPRITE", "load_sprite", "sprite_name_for", "sprite_patch"]

logger = logging.getLogger(__name__)

#: The sprite for faces reported ``uncertain``: a grey badge with a question mark.
UNCERTAIN_SPRITE = "uncertain"

#: Every sprite in ``assets/``: one per FER+ expression (the seven FER2013 ones and
#: ``contempt``) plus the uncertain badge.
SPRITE_NAMES: tuple[str, ...] = FERPLUS_LABELS + (UNCERTAIN_SPRITE,)

_ASSETS = "assets"


def sprite_name_for(expression: str, uncertain: bool = False) -> str:
    """The sprite to show for a face: the badge when uncertain, else the expression's emoji.

    Labels without a sprite (a custom model's extra classes) fall back to ``neutral``.
    """
    if uncertain:
        return UNCERTAIN_SPRITE
    if expression in SPRITE_NAMES:
        return expression
    logger.debug("no sprite for expression %r; using 'neutral'", expression)
    return "neutral"


@cache
def load_sprite(name: str) -> npt.NDArray[np.uint8]:
    """Load one sprite as straight-alpha BGRA.

    Args:
        name: one of :data:`SPRITE_NAMES`.

    Returns:
        (128, 128, 4) uint8 BGRA, read-only (cached and shared).

    Raises:
        ValueError: unknown sprite name.
        FileNotFoundError: the package was installed without its assets.
    """
    if name not in SPRITE_NAMES:
        raise ValueError(f"Unknown sprite {name!r}; available: {', '.join(SPRITE_NAMES)}")
    ref = resources.files("emoar.overlay").joinpath(_ASSETS, f"{name}.png")
    try:
        data = ref.read_bytes()
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"Sprite {name}.png is missing from emoar/overlay/assets; reinstall emoar "
            "or regenerate it with scripts/vendor_emoji.py"
        ) from exc
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.ndim != 3 or decoded.shape[2] != 4:
        raise ValueError(f"Sprite {name}.png is not an RGBA PNG; regenerate it with scripts/vendor_emoji.py")
    img = np.asarray(decoded, np.uint8)
    img.setflags(write=False)
    return img


@cache
def _base_patch(name: str) -> Patch:
    p = compose.from_bgra_uint8(load_sprite(name))
    p.setflags(write=False)
    return p


@lru_cache(maxsize=512)
def sprite_patch(name: str, size_px: int, angle_deg: int = 0, shadow: bool = True) -> Patch:
    """A sprite scaled to ``size_px`` x ``size_px``, rotated and with a soft drop shadow.

    Args:
        name: one of :data:`SPRITE_NAMES`.
        size_px: side of the (square) sprite canvas in pixels.
        angle_deg: clockwise rotation on screen in whole degrees (callers quantise it so the
            cache hits).
        shadow: add a drop shadow (skipped below 24 px, where it only muddies the sprite).

    Returns:
        A read-only patch centred on the sprite's centre (the canvas may be larger than
        ``size_px`` to hold the rotation and shadow; shadow padding is symmetric).
    """
    p = compose.resize(_base_patch(name), size_px, size_px)
    p = compose.rotate(p, float(angle_deg))
    if shadow and size_px >= 24:
        p = compose.with_shadow(p, offset_px=max(1, size_px // 40), blur_px=size_px / 40.0, opacity=0.35)
    p.setflags(write=False)
    return p
