"""Overlay stage: colour emoji, label, probability bars and quote bubbles drawn per face.

Importing this package does no work; sprites, fonts and quotes load on first use.

Example::

    from emoar.overlay import OverlayOptions, OverlayRenderer, QuotePicker

    renderer = OverlayRenderer(OverlayOptions(style="full", show_bars=True))
    annotated = renderer.render(frame_bgr, faces, quotes=QuotePicker(seed=0))
"""

from emoar.overlay.layout import PlacementMemory
from emoar.overlay.options import OverlayOptions, OverlayStyle
from emoar.overlay.palette import EXPRESSION_COLORS_BGR, UNCERTAIN_COLOR_BGR
from emoar.overlay.quotes import Quote, QuotePicker, load_quotes
from emoar.overlay.renderer import OverlayRenderer
from emoar.overlay.sprites import SPRITE_NAMES, UNCERTAIN_SPRITE, load_sprite

__all__ = [
    "EXPRESSION_COLORS_BGR",
    "OverlayOptions",
    "OverlayRenderer",
    "OverlayStyle",
    "PlacementMemory",
    "Quote",
    "QuotePicker",
    "SPRITE_NAMES",
    "UNCERTAIN_COLOR_BGR",
    "UNCERTAIN_SPRITE",
    "load_quotes",
    "load_sprite",
]
