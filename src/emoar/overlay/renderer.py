"""The overlay renderer: per face an emoji, a label, probability bars and a quote bubble.

Everything is anchored to the face box (and rotated with the eye line when landmarks are
present), scaled with the face, and placed so it stays inside the frame. Only the small
regions around each face are touched: sprites and text are cached as premultiplied patches
and alpha-blended into a copy of the frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from emoar.overlay import compose
from emoar.overlay.compose import Patch
from emoar.overlay.layout import PlacementMemory, Placer, Rect
from emoar.overlay.options import OverlayOptions
from emoar.overlay.palette import color_for, ink_for
from emoar.overlay.quotes import QuotePicker
from emoar.overlay.sprites import sprite_name_for, sprite_patch
from emoar.overlay.text import line_height, text_patch, text_width, wrap
from emoar.types import FaceResult

__all__ = ["OverlayRenderer"]

logger = logging.getLogger(__name__)

_Tier = Literal["compact", "standard", "detail", "sticker"]

_PANEL_BGR = (38, 32, 28)
_PANEL_TEXT = (236, 236, 236)
_PANEL_TEXT_DIM = (178, 178, 178)
_BUBBLE_BGR = (252, 252, 252)
_BUBBLE_INK = (40, 36, 33)
_BUBBLE_BYLINE = (120, 112, 105)
_MAX_TILT_DEG = 40.0
_MAX_HYSTERESIS_KEYS = 4096
#: Bars/quote are skipped when their best spot would cost more than this (see ``Placer.score``):
#: e.g. hiding ~15 % of their own face, a third of another face or a quarter of an element.
_OPTIONAL_MAX_COST = 1.0


@dataclass(frozen=True)
class _Face:
    """One face's geometry in integer frame pixels plus what to show."""

    index: int
    box: Rect
    cx: float
    cy: float
    w: float
    h: float
    size: float  # longer box side, pixels
    angle_deg: float  # eye-line tilt, clockwise on screen
    tier: _Tier
    result: FaceResult

    def rotated(self, ox: float, oy: float) -> tuple[float, float]:
        """Face-frame offset (ox, oy) from the box centre -> frame point, turned with the head."""
        a = math.radians(self.angle_deg)
        c, s = math.cos(a), math.sin(a)
        return self.cx + c * ox - s * oy, self.cy + s * ox + c * oy


def _eye_line_angle(landmarks: npt.NDArray[np.float32] | None) -> float:
    """Tilt of the eye line in degrees (clockwise on screen), 0 without usable landmarks."""
    if landmarks is None:
        return 0.0
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.all(np.isfinite(lm)):
        return 0.0
    dx, dy = lm[1] - lm[0]  # image-left eye -> image-right eye
    if dx * dx + dy * dy < 1.0:
        return 0.0
    return float(np.clip(math.degrees(math.atan2(dy, dx)), -_MAX_TILT_DEG, _MAX_TILT_DEG))


def _rect_at_center(cx: float, cy: float, w: int, h: int) -> Rect:
    x1, y1 = round(cx - w / 2.0), round(cy - h / 2.0)
    return (x1, y1, x1 + w, y1 + h)


def _rect_at(x: float, y: float, w: int, h: int) -> Rect:
    x1, y1 = round(x), round(y)
    return (x1, y1, x1 + w, y1 + h)


def _clamp(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


@lru_cache(maxsize=512)
def _chip_patch(text: str, size_px: int, bgr: tuple[int, int, int], opacity: float) -> Patch:
    """A pill-shaped label chip (expression colour, readable ink)."""
    lh = line_height(size_px)
    pad_y = max(1, round(size_px * 0.18))
    pad_x = max(3, round(size_px * 0.5))
    w, h = text_width(text, size_px, True) + 2 * pad_x, lh + 2 * pad_y
    chip = compose.solid(compose.rounded_rect_mask(w, h, h / 2.0), bgr, opacity)
    compose.over(chip, text_patch(text, size_px, ink_for(bgr), True), pad_x, pad_y)
    if size_px >= 14:
        chip = compose.with_shadow(chip, offset_px=1, blur_px=1.5, opacity=0.3)
    chip.setflags(write=False)
    return chip


def _chip_shadow_pad(size_px: int) -> int:
    return 1 + math.ceil(2 * 1.5) if size_px >= 14 else 0


@lru_cache(maxsize=64)
def _panel_background(w: int, h: int, radius: float, opacity: float) -> Patch:
    p = compose.solid(compose.rounded_rect_mask(w, h, radius), _PANEL_BGR, opacity)
    p.setflags(write=False)
    return p


@lru_cache(maxsize=1024)
def _bar(w: int, h: int, bgr: tuple[int, int, int], opacity: float) -> Patch:
    p = compose.solid(compose.rounded_rect_mask(w, h, h / 2.0), bgr, opacity)
    p.setflags(write=False)
    return p


@dataclass(frozen=True)
class _BubbleSpec:
    lines: tuple[str, ...]
    author: str
    text_px: int
    byline_px: int
    pad: int
    width: int
    height: int


def _dash_w(byline_px: int) -> int:
    """Width of the em dash (drawn as a bar: the default font has no U+2014) plus its gap."""
    return round(byline_px * 0.8) + max(3, round(byline_px * 0.35))


def _bubble_spec(text: str, author: str, text_px: int, max_text_w: int) -> _BubbleSpec:
    lines = wrap(text, text_px, max_text_w)
    byline_px = max(10, round(text_px * 0.82))
    pad = max(6, round(text_px * 0.7))
    byline_w = _dash_w(byline_px) + text_width(author, byline_px)
    text_w = max([text_width(ln, text_px) for ln in lines] + [byline_w])
    lh = line_height(text_px)
    h = 2 * pad + len(lines) * lh + round(0.3 * lh) + line_height(byline_px)
    return _BubbleSpec(lines, author, text_px, byline_px, pad, text_w + 2 * pad, h)


@dataclass(frozen=True)
class _BarsGeometry:
    """Layout of a probability-bars panel (all sizes in pixels)."""

    labels: tuple[str, ...]
    font_px: int
    label_w: int
    bar_w: int
    bar_h: int
    pad: int
    gap: int
    row_h: int
    line_h: int
    w: int
    h: int


@lru_cache(maxsize=256)
def _bars_base(g: _BarsGeometry, top: int, opacity: float) -> Patch:
    """The parts of a bars panel that do not depend on the probabilities: background, labels
    (the top one emphasised) and empty tracks; drawn once per layout instead of every frame."""
    panel = _panel_background(g.w, g.h, g.pad * 0.9, opacity).copy()
    track = _bar(g.bar_w, g.bar_h, (255, 255, 255), 0.16)
    for i, lbl in enumerate(g.labels):
        y = g.pad + i * g.row_h
        is_top = i == top
        compose.over(
            panel, text_patch(lbl, g.font_px, _PANEL_TEXT if is_top else _PANEL_TEXT_DIM, is_top), g.pad, y
        )
        compose.over(panel, track, g.pad + g.label_w + g.gap, y + (g.line_h - g.bar_h) // 2 + 1)
    panel.setflags(write=False)
    return panel


@lru_cache(maxsize=128)
def _bubble_body(spec: _BubbleSpec) -> Patch:
    """The speech bubble without its tail: white rounded card, quote lines and byline."""
    body = compose.solid(compose.rounded_rect_mask(spec.width, spec.height, spec.pad * 1.1), _BUBBLE_BGR)
    lh = line_height(spec.text_px)
    y = spec.pad
    for ln in spec.lines:
        compose.over(body, text_patch(ln, spec.text_px, _BUBBLE_INK), spec.pad, y)
        y += lh
    y += round(0.3 * lh)
    bx = spec.width - spec.pad - text_width(spec.author, spec.byline_px)
    compose.over(body, text_patch(spec.author, spec.byline_px, _BUBBLE_BYLINE), bx, y)
    dash_w, dash_h = round(spec.byline_px * 0.8), max(1, round(spec.byline_px / 12))
    dash = compose.solid(compose.rounded_rect_mask(dash_w, dash_h, 0), _BUBBLE_BYLINE)
    dash_y = y + round(line_height(spec.byline_px) * 0.52) - dash_h // 2
    compose.over(body, dash, bx - _dash_w(spec.byline_px), dash_y)
    out = compose.with_shadow(body, offset_px=2, blur_px=3.0, opacity=0.35)
    out.setflags(write=False)
    return out


_BUBBLE_SHADOW_PAD = 2 + math.ceil(2 * 3.0)


class OverlayRenderer:
    """Draws expression overlays onto frames.

    One renderer can serve many streams: where each track's elements went last frame (so
    bubbles and bars do not jump between sides) lives in a :class:`PlacementMemory` per stream,
    passed to :meth:`render` (``StreamState.placement`` in the pipeline). Without one the
    renderer uses its own, which suits a single stream. Sprites and text are rendered once and
    cached, so steady video costs a few milliseconds per frame.

    Example::

        renderer = OverlayRenderer(OverlayOptions(style="full"))
        quotes = QuotePicker(seed=0)
        annotated = renderer.render(frame_bgr, frame_result.faces, quotes)

    Args:
        options: what to draw; defaults to ``OverlayOptions()``.
    """

    def __init__(self, options: OverlayOptions | None = None) -> None:
        self.options = options if options is not None else OverlayOptions()
        self._memory = PlacementMemory(_MAX_HYSTERESIS_KEYS)

    @property
    def _choices(self) -> dict[tuple[int, str], int]:
        """The renderer's own placement choices (used when ``render`` gets no memory)."""
        return self._memory.choices

    def reset(self) -> None:
        """Forget the renderer's own per-track placement state (call between streams)."""
        self._memory.reset()

    # ------------------------------------------------------------------ public
    def render(
        self,
        frame_bgr: npt.NDArray[np.uint8],
        faces: Sequence[FaceResult],
        quotes: QuotePicker | None = None,
        placement: PlacementMemory | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Return a copy of ``frame_bgr`` with one overlay per face; the input is not modified.

        Args:
            frame_bgr: (H, W, 3) uint8 BGR frame.
            faces: faces of this frame, boxes and landmarks in pixels of ``frame_bgr``.
            quotes: picker for the quote bubbles; ``None`` draws no quotes.
            placement: the stream's placement memory; ``None`` uses the renderer's own.

        Returns:
            A new (H, W, 3) uint8 BGR frame.

        Raises:
            ValueError: the frame is not an (H, W, 3) uint8 array.
        """
        if not isinstance(frame_bgr, np.ndarray) or frame_bgr.dtype != np.uint8:
            raise ValueError("frame_bgr must be a uint8 numpy array (BGR, as from cv2.imread)")
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
            raise ValueError(
                f"frame_bgr must have shape (H, W, 3), got {frame_bgr.shape}; "
                "convert gray or BGRA frames with cv2.cvtColor first"
            )
        out = np.ascontiguousarray(frame_bgr).copy()
        geoms = [g for i, f in enumerate(faces) if (g := self._face(i, f)) is not None]
        if not geoms:
            return out
        height, width = out.shape[:2]
        memory = placement if placement is not None else self._memory
        placer = Placer(width, height, faces=[g.box for g in geoms], placed=[], memory=memory)
        opts = self.options
        if opts.show_box and opts.style != "emoji":
            for g in geoms:
                self._draw_box(out, g)
        # Big faces first: they get the preferred spots, small neighbours work around them.
        for k in sorted(range(len(geoms)), key=lambda k: -geoms[k].size):
            g = geoms[k]
            if g.tier == "sticker":
                if opts.show_emoji:
                    self._draw_sticker(out, g)
                continue
            if opts.show_emoji:
                self._draw_emoji(out, g, k, placer)
            if opts.show_label:
                self._draw_label(out, g, k, placer)
            if g.tier == "detail" and opts.show_bars and g.result.probs:
                self._draw_bars(out, g, k, placer)
            if g.tier == "detail" and opts.show_quote and quotes is not None:
                self._draw_quote(out, g, k, placer, quotes)
        memory.trim()
        return out

    # ------------------------------------------------------------------ geometry
    def _face(self, index: int, face: FaceResult) -> _Face | None:
        x1, y1, x2, y2 = (float(v) for v in face.box_xyxy)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 - x1 < 2 or y2 - y1 < 2:
            logger.debug("skipping face %d with unusable box %s", index, face.box_xyxy)
            return None
        w, h = x2 - x1, y2 - y1
        size = max(w, h)
        opts = self.options
        tier: _Tier
        if opts.style == "emoji":
            tier = "sticker"
        elif size < opts.small_face_px:
            tier = "compact"
        elif opts.style == "full" and size >= opts.detail_face_px:
            tier = "detail"
        else:
            tier = "standard"
        angle = _eye_line_angle(face.landmarks_xy) if opts.tilt_with_landmarks else 0.0
        box = (round(x1), round(y1), round(x2), round(y2))
        return _Face(index, box, (x1 + x2) / 2, (y1 + y2) / 2, w, h, size, angle, tier, face)

    def _place(
        self,
        placer: Placer,
        g: _Face,
        k: int,
        element: str,
        cands: list[Rect],
        own: float,
        optional: bool = False,
    ) -> tuple[int, Rect] | None:
        """Place one element of face ``g``; remembers the choice per track for hysteresis.

        Optional elements (bars, quote) are dropped rather than drawn over faces or other
        elements when the frame has no room for them.
        """
        tid = g.result.track_id
        preferred = placer.memory.get(tid, element) if placer.memory is not None else None
        placed = placer.place(
            cands,
            own_face=k,
            own_weight=own,
            preferred=preferred,
            max_cost=_OPTIONAL_MAX_COST if optional else None,
        )
        if placed is not None and placer.memory is not None:
            placer.memory.remember(tid, element, placed[0])
        return placed

    def _place_required(
        self, placer: Placer, g: _Face, k: int, element: str, cands: list[Rect], own: float
    ) -> Rect:
        placed = self._place(placer, g, k, element, cands, own)
        if placed is None:  # unreachable: without max_cost the placer always places
            raise RuntimeError(f"could not place {element}")
        return placed[1]

    def _color(self, g: _Face) -> tuple[int, int, int]:
        return color_for(g.result.expression, g.result.uncertain)

    # ------------------------------------------------------------------ elements
    def _draw_box(self, out: npt.NDArray[np.uint8], g: _Face) -> None:
        x1, y1, x2, y2 = g.box
        color = self._color(g)
        t = 1 if g.tier == "compact" else int(_clamp(round(g.size / 90), 2, 4))
        length = max(4, round(0.22 * min(g.w, g.h)))
        for (cx, cy), (dx, dy) in (
            ((x1, y1), (1, 1)),
            ((x2, y1), (-1, 1)),
            ((x1, y2), (1, -1)),
            ((x2, y2), (-1, -1)),
        ):
            cv2.line(out, (cx, cy), (cx + dx * length, cy), color, t, cv2.LINE_AA)
            cv2.line(out, (cx, cy), (cx, cy + dy * length), color, t, cv2.LINE_AA)

    def _sprite_name(self, g: _Face) -> str:
        return sprite_name_for(g.result.expression, g.result.uncertain)

    def _draw_sticker(self, out: npt.NDArray[np.uint8], g: _Face) -> None:
        size = int(_clamp(round(1.15 * g.size * self.options.emoji_scale), 8, 1024))
        patch = sprite_patch(self._sprite_name(g), size, 2 * round(g.angle_deg / 2))
        ph, pw = patch.shape[:2]
        compose.blend_onto(out, patch, round(g.cx - pw / 2), round(g.cy - ph / 2))

    def _draw_emoji(self, out: npt.NDArray[np.uint8], g: _Face, k: int, placer: Placer) -> None:
        es = self.options.emoji_scale
        if g.tier == "compact":
            e = int(_clamp(round(0.66 * g.size * es), 12, 256))
            gap = max(1, e // 10)
            cands = [
                _rect_at_center(g.cx, g.box[1] - e / 2 - gap, e, e),
                _rect_at_center(g.box[2] + e / 2 + gap, g.cy, e, e),
                _rect_at_center(g.box[0] - e / 2 - gap, g.cy, e, e),
                _rect_at_center(g.box[2], g.box[1], e, e),
            ]
            own = 3.0
        else:
            e = int(_clamp(round(0.42 * g.size * es), 16, 512))
            hw, hh = g.w / 2, g.h / 2
            cands = [
                _rect_at_center(*g.rotated(0.92 * hw, -0.92 * hh), e, e),
                _rect_at_center(*g.rotated(-0.92 * hw, -0.92 * hh), e, e),
                _rect_at_center(*g.rotated(hw + 0.55 * e, 0), e, e),
                _rect_at_center(*g.rotated(-hw - 0.55 * e, 0), e, e),
                _rect_at_center(*g.rotated(0, -hh - 0.55 * e), e, e),
            ]
            own = 0.1  # hovering over the head's corner is the intended look
        rect = self._place_required(placer, g, k, "emoji", cands, own)
        patch = sprite_patch(self._sprite_name(g), e, 2 * round(g.angle_deg / 2))
        ph, pw = patch.shape[:2]
        cx, cy = (rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2
        compose.blend_onto(out, patch, round(cx - pw / 2), round(cy - ph / 2))

    def _label_text(self, g: _Face) -> str:
        r = g.result
        if r.uncertain:
            return self.options.uncertain_label
        if g.tier == "compact":
            return r.expression
        text = r.expression.capitalize()
        if self.options.show_confidence and r.probs:
            conf = r.probs.get(r.expression, max(r.probs.values()))
            text = f"{text} {round(100 * float(conf))}%"
        return text

    def _text_px(self, g: _Face) -> int:
        ts = self.options.text_scale
        if g.tier == "compact":
            return int(_clamp(round(0.25 * g.size * ts), 10, 13))
        if g.tier == "standard":
            return int(_clamp(round(0.14 * g.size * ts), 12, 20))
        return int(_clamp(round(0.075 * g.size * ts), 14, 26))

    def _draw_label(self, out: npt.NDArray[np.uint8], g: _Face, k: int, placer: Placer) -> None:
        fs = self._text_px(g)
        chip = _chip_patch(self._label_text(g), fs, self._color(g), 0.92)
        pad = _chip_shadow_pad(fs)
        w, h = chip.shape[1] - 2 * pad, chip.shape[0] - 2 * pad
        x1, y1, x2, y2 = g.box
        gap = 2 if g.tier == "compact" else max(3, round(g.size * 0.02))
        below_c = _rect_at(g.cx - w / 2, y2 + gap, w, h)
        above_c = _rect_at(g.cx - w / 2, y1 - gap - h, w, h)
        if g.tier == "compact":
            cands = [
                below_c,
                above_c,
                _rect_at(x2 + gap, g.cy - h / 2, w, h),
                _rect_at(x1 - gap - w, g.cy - h / 2, w, h),
            ]
            own = 3.0
        else:
            cands = [
                _rect_at(x1, y1 - gap - h, w, h),
                _rect_at(x1, y2 + gap, w, h),
                above_c,
                below_c,
                _rect_at(x1 + gap, y1 + gap, w, h),
            ]
            own = 2.0
        rect = self._place_required(placer, g, k, "label", cands, own)
        compose.blend_onto(out, chip, rect[0] - pad, rect[1] - pad)

    def _draw_bars(self, out: npt.NDArray[np.uint8], g: _Face, k: int, placer: Placer) -> None:
        r = g.result
        fb = max(11, round(self._text_px(g) * 0.72))
        labels = list(r.probs)
        values = [float(r.probs[lbl]) for lbl in labels]
        top = int(np.argmax(values))
        lh = line_height(fb)
        row_h = lh + max(2, fb // 4)
        pad = max(6, round(fb * 0.7))
        gap = max(4, round(fb * 0.5))
        lab_w = max(text_width(lbl, fb) for lbl in labels)
        pct_w = text_width("100%", fb)
        bar_w = int(_clamp(round(0.32 * g.size), 48, 150))
        bar_h = max(4, round(lh * 0.5))
        w = pad + lab_w + gap + bar_w + gap + pct_w + pad
        h = 2 * pad + len(labels) * row_h - (row_h - lh)
        x1, y1, x2, y2 = g.box
        m = max(6, round(g.size * 0.04))
        cands = [
            _rect_at(x2 + m, y1, w, h),
            _rect_at(x1 - m - w, y1, w, h),
            _rect_at(x2 + m, y2 - h, w, h),
            _rect_at(x1 - m - w, y2 - h, w, h),
            _rect_at(g.cx - w / 2, y2 + m, w, h),
            _rect_at(g.cx - w / 2, y1 - m - h, w, h),
        ]
        placed = self._place(placer, g, k, "bars", cands, 6.0, optional=True)
        if placed is None:
            return
        rect = placed[1]
        geometry = _BarsGeometry(tuple(labels), fb, lab_w, bar_w, bar_h, pad, gap, row_h, lh, w, h)
        panel = _bars_base(geometry, top, self.options.panel_opacity).copy()
        for i, (lbl, p) in enumerate(zip(labels, values, strict=True)):
            y = pad + i * row_h
            is_top = i == top
            ink = _PANEL_TEXT if is_top else _PANEL_TEXT_DIM
            bx, by = pad + lab_w + gap, y + (lh - bar_h) // 2 + 1
            fill_w = round(_clamp(p, 0.0, 1.0) * bar_w)
            if fill_w >= 2:
                color = _PANEL_TEXT_DIM if r.uncertain else color_for(lbl)
                compose.over(panel, _bar(max(fill_w, bar_h), bar_h, color, 1.0), bx, by)
            pct = f"{round(100 * p)}%"
            compose.over(panel, text_patch(pct, fb, ink, is_top), w - pad - text_width(pct, fb, is_top), y)
        compose.blend_onto(out, panel, rect[0], rect[1])

    def _draw_quote(
        self, out: npt.NDArray[np.uint8], g: _Face, k: int, placer: Placer, quotes: QuotePicker
    ) -> None:
        r = g.result
        quote = quotes.pick(r.track_id, "uncertain" if r.uncertain else r.expression)
        if quote is None:
            return
        height, width = out.shape[:2]
        fq = max(12, round(self._text_px(g) * 0.85))
        max_w = int(
            min(
                self.options.max_quote_width_px * self.options.text_scale, max(1.5 * g.size, 160), width * 0.8
            )
        )
        spec = _bubble_spec(quote.text, quote.author, fq, max(60, max_w))
        w, h = spec.width, spec.height
        t = max(8, round(fq * 0.9))  # tail length
        x1, y1, x2, y2 = g.box
        sides = ["up", "up", "down", "left", "right", "down"]
        cands = [
            _rect_at(g.cx - w / 2, y1 - t - h, w, h),
            _rect_at(x1 - w * 0.6, y1 - t - h, w, h),
            _rect_at(g.cx - w / 2, y2 + t, w, h),
            _rect_at(x1 - t - w, g.cy - h / 2, w, h),
            _rect_at(x2 + t, g.cy - h / 2, w, h),
            _rect_at(x1 - w * 0.6, y2 + t, w, h),
        ]
        # The tail is part of the footprint: reserve it by growing the rect towards the face.
        grown = [_grow(c, s, t) for c, s in zip(cands, sides, strict=True)]
        placed = self._place(placer, g, k, "quote", grown, 6.0, optional=True)
        if placed is None:
            return
        idx, rect = placed
        side = sides[idx]
        body = _shrink(rect, side, t)
        pad = _BUBBLE_SHADOW_PAD
        compose.blend_onto(out, _bubble_body(spec), body[0] - pad, body[1] - pad)
        self._draw_tail(out, g, body, side, t, spec.pad)

    def _draw_tail(
        self, out: npt.NDArray[np.uint8], g: _Face, body: Rect, side: str, t: int, radius: int
    ) -> None:
        bx1, by1, bx2, by2 = body
        half = max(4, round(t * 0.6))
        inset = 2  # tail base overlaps the body so the seam is invisible
        pts: list[tuple[float, float]]
        if side in ("up", "down"):
            lo, hi = bx1 + radius + half, bx2 - radius - half
            base_x = _clamp(g.cx, lo, max(lo, hi))
            tip_x = base_x + _clamp(g.cx - base_x, -t, t)
            if side == "up":  # bubble above the face: tail hangs from its bottom edge
                pts = [(base_x - half, by2 - inset), (base_x + half, by2 - inset), (tip_x, by2 + t)]
            else:
                pts = [(base_x - half, by1 + inset), (base_x + half, by1 + inset), (tip_x, by1 - t)]
        else:
            lo, hi = by1 + radius + half, by2 - radius - half
            base_y = _clamp(g.cy, lo, max(lo, hi))
            tip_y = base_y + _clamp(g.cy - base_y, -t, t)
            if side == "left":  # bubble left of the face: tail from its right edge
                pts = [(bx2 - inset, base_y - half), (bx2 - inset, base_y + half), (bx2 + t, tip_y)]
            else:
                pts = [(bx1 + inset, base_y - half), (bx1 + inset, base_y + half), (bx1 - t, tip_y)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ox, oy = math.floor(min(xs)) - 1, math.floor(min(ys)) - 1
        pw, ph = math.ceil(max(xs)) - ox + 2, math.ceil(max(ys)) - oy + 2
        mask = compose.polygon_mask(pw, ph, [(x - ox, y - oy) for x, y in pts])
        compose.blend_onto(out, compose.solid(mask, _BUBBLE_BGR), ox, oy)


def _grow(rect: Rect, side: str, t: int) -> Rect:
    """Extend a bubble rect by its tail length on the side facing the face."""
    x1, y1, x2, y2 = rect
    return {
        "up": (x1, y1, x2, y2 + t),
        "down": (x1, y1 - t, x2, y2),
        "left": (x1, y1, x2 + t, y2),
        "right": (x1 - t, y1, x2, y2),
    }[side]


def _shrink(rect: Rect, side: str, t: int) -> Rect:
    """Inverse of :func:`_grow`: the bubble body inside a placed footprint."""
    x1, y1, x2, y2 = rect
    return {
        "up": (x1, y1, x2, y2 - t),
        "down": (x1, y1 + t, x2, y2),
        "left": (x1, y1, x2 - t, y2),
        "right": (x1 + t, y1, x2, y2),
    }[side]
