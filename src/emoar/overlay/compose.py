"""Premultiplied-alpha patches: build, transform and blend small RGBA regions.

A *patch* is a float32 array of shape (H, W, 4): channels 0-2 are **premultiplied** B, G, R in
[0, 255], channel 3 is alpha in [0, 1]. Premultiplied storage makes resizing and rotating
free of dark fringes, and compositing one patch over another (or over a frame) a single
multiply-add: ``out = src + dst * (1 - src_alpha)``.

Everything here is pure and works on small regions, so an overlay never converts a whole
frame to float or to PIL.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "Patch",
    "blend_onto",
    "from_bgra_uint8",
    "over",
    "polygon_mask",
    "resize",
    "rotate",
    "rounded_rect_mask",
    "solid",
    "with_shadow",
]

Patch = npt.NDArray[np.float32]
"""(H, W, 4) float32: premultiplied BGR in [0, 255] and alpha in [0, 1]."""


def from_bgra_uint8(bgra: npt.NDArray[np.uint8]) -> Patch:
    """Convert a straight-alpha BGRA uint8 image (e.g. ``cv2.IMREAD_UNCHANGED``) to a patch.

    Args:
        bgra: (H, W, 4) uint8, straight (not premultiplied) alpha.

    Returns:
        The premultiplied float32 patch.
    """
    out = bgra.astype(np.float32)
    out[..., 3] *= 1.0 / 255.0
    out[..., :3] *= out[..., 3:4]
    return out


def solid(alpha: npt.NDArray[np.float32], bgr: tuple[int, int, int], opacity: float = 1.0) -> Patch:
    """A single-colour patch from a coverage mask.

    Args:
        alpha: (H, W) coverage in [0, 1].
        bgr: colour as (B, G, R) in [0, 255].
        opacity: extra global opacity in [0, 1].

    Returns:
        The premultiplied patch.
    """
    a = alpha.astype(np.float32, copy=False) * np.float32(opacity)
    out = np.empty(a.shape + (4,), np.float32)
    out[..., 0] = a * bgr[0]
    out[..., 1] = a * bgr[1]
    out[..., 2] = a * bgr[2]
    out[..., 3] = a
    return out


def over(dst: Patch, src: Patch, x: int, y: int) -> None:
    """Composite ``src`` over ``dst`` in place with its top-left corner at (x, y) pixels of ``dst``.

    Parts of ``src`` outside ``dst`` are clipped.
    """
    h, w = dst.shape[:2]
    sh, sw = src.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h)
    if x0 >= x1 or y0 >= y1:
        return
    s = src[y0 - y : y1 - y, x0 - x : x1 - x]
    d = dst[y0:y1, x0:x1]
    d *= 1.0 - s[..., 3:4]
    d += s


def blend_onto(frame: npt.NDArray[np.uint8], src: Patch, x: int, y: int) -> None:
    """Alpha-blend a patch onto a BGR uint8 frame in place, top-left at (x, y) pixels.

    Only the clipped overlap region is converted to float, so the cost is proportional to the
    patch area, not the frame area. Patches partly or wholly outside the frame are fine.

    Args:
        frame: (H, W, 3) uint8 BGR, modified in place.
        src: the patch.
        x: left edge in frame pixels (may be negative).
        y: top edge in frame pixels (may be negative).
    """
    h, w = frame.shape[:2]
    sh, sw = src.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h)
    if x0 >= x1 or y0 >= y1:
        return
    s = src[y0 - y : y1 - y, x0 - x : x1 - x]
    # OpenCV's planar ops on contiguous planes: numpy's broadcasts over the strided channel views
    # of the (h, w, 4) patch cost about twice as much, for the same float32 results
    b, g, r, a = cv2.split(s)
    inv = 1.0 - a
    kept = cv2.multiply(frame[y0:y1, x0:x1].astype(np.float32), cv2.merge((inv, inv, inv)))
    out = np.asarray(cv2.add(kept, cv2.merge((b, g, r))), np.float32)  # no copy: already float32
    out += 0.5  # round to nearest; premultiplied maths keeps values <= 255.5, so no clip needed
    frame[y0:y1, x0:x1] = out.astype(np.uint8)


def resize(patch: Patch, width: int, height: int) -> Patch:
    """Resize a patch to (width, height) pixels (area filter down, bilinear up)."""
    h, w = patch.shape[:2]
    if (w, h) == (width, height):
        return patch.copy()
    interp = cv2.INTER_AREA if width < w or height < h else cv2.INTER_LINEAR
    out = cv2.resize(patch, (max(1, width), max(1, height)), interpolation=interp)
    return np.asarray(out, np.float32)


def rotate(patch: Patch, angle_deg: float) -> Patch:
    """Rotate a patch about its centre onto a canvas large enough to hold it.

    Args:
        patch: the patch.
        angle_deg: rotation in degrees, positive = clockwise on screen (image y points down),
            the same sense as the eye-line angle ``atan2(dy, dx)`` of a head tilted that way.

    Returns:
        The rotated patch (its centre is the input's centre).
    """
    if abs(angle_deg) < 1e-3:
        return patch
    h, w = patch.shape[:2]
    rad = math.radians(angle_deg)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    nw, nh = int(math.ceil(w * c + h * s)), int(math.ceil(w * s + h * c))
    # OpenCV's positive angle is counter-clockwise on screen, hence the minus sign.
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), -angle_deg, 1.0)
    m[0, 2] += (nw - w) / 2.0
    m[1, 2] += (nh - h) / 2.0
    out = cv2.warpAffine(
        patch, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return np.asarray(out, np.float32)


def rounded_rect_mask(width: int, height: int, radius: float) -> npt.NDArray[np.float32]:
    """Anti-aliased coverage of a rounded rectangle filling a (height, width) grid.

    Uses the exact signed distance to the shape with a one-pixel ramp, so edges and corners
    are smooth without supersampling.

    Args:
        width: width in pixels.
        height: height in pixels.
        radius: corner radius in pixels (clamped to half the shorter side).

    Returns:
        (height, width) float32 coverage in [0, 1].
    """
    r = float(min(radius, width / 2.0, height / 2.0))
    xs = np.abs(np.arange(width, dtype=np.float32) + 0.5 - width / 2.0) - (width / 2.0 - r)
    ys = np.abs(np.arange(height, dtype=np.float32) + 0.5 - height / 2.0) - (height / 2.0 - r)
    qx, qy = np.maximum(xs, 0)[None, :], np.maximum(ys, 0)[:, None]
    outside = np.sqrt(qx * qx + qy * qy)
    inside = np.minimum(np.maximum(xs[None, :], ys[:, None]), 0)
    dist = outside + inside - r
    return np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32)


def polygon_mask(width: int, height: int, points: list[tuple[float, float]]) -> npt.NDArray[np.float32]:
    """Anti-aliased coverage of a polygon (4x supersampled), points in pixels of the grid."""
    ss = 4
    canvas = np.zeros((height * ss, width * ss), np.uint8)
    pts = np.round(np.asarray(points, np.float64) * ss).astype(np.int32)
    cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_8)
    small = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) * (1.0 / 255.0)


def with_shadow(patch: Patch, offset_px: int, blur_px: float, opacity: float) -> Patch:
    """Return ``patch`` drawn over a soft drop shadow of itself (down-right by ``offset_px``).

    The canvas grows by the shadow's reach; the caller must shift placement by
    ``pad = offset_px + ceil(2 * blur_px)`` pixels up-left to keep the content in place.

    Args:
        patch: the patch.
        offset_px: shadow offset in pixels (down and right).
        blur_px: Gaussian sigma in pixels.
        opacity: shadow darkness in [0, 1].
    """
    pad = offset_px + int(math.ceil(2 * blur_px))
    h, w = patch.shape[:2]
    a = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    a[pad + offset_px : pad + offset_px + h, pad + offset_px : pad + offset_px + w] = patch[..., 3]
    if blur_px > 0:
        a = cv2.GaussianBlur(a, (0, 0), blur_px)
    out = solid(a, (0, 0, 0), opacity)
    over(out, patch, pad, pad)
    return out
