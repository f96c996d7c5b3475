"""Pixel conversion: the one place where any image array becomes 8-bit BGR or 8-bit gray.

Every stage that accepts "an image of any common layout" (the decoders in :mod:`emoar.io.image`,
the detectors, the pipeline, the classifier's grayscale, the sample media) converts through
these functions, so their rules cannot drift apart:

* **depth**: uint8 as is; uint16 scaled by 255/65535 with rounding (65535 -> 255, 32896 -> 128);
  float in [0, 1] scaled by 255 with rounding (NaN -> 0, out-of-range clipped); bool -> 0/255;
  int8 shifted by +128; other integers clipped to [0, 255].
* **layout**: ``HxW`` and ``HxWx1`` gray, ``HxWx2`` gray + alpha, ``HxWx3`` BGR, ``HxWx4`` BGRA.
* **alpha**: an explicit choice, ``"composite"`` (blend onto white: what an image *file* with
  transparency looks like) or ``"drop"`` (ignore it: live frames, whose alpha channel is often
  meaningless, e.g. all zero). Decoders composite; arrays handed to the pipeline drop.
* **gray**: ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), as OpenCV computes it.
"""

from __future__ import annotations

from typing import Literal, cast

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["AlphaMode", "check_layout", "to_bgr", "to_gray", "to_uint8"]

AlphaMode = Literal["composite", "drop"]

# Rows per strip when compositing alpha in float32 (bounds the temporary memory).
_STRIP_ROWS = 256


def check_layout(image: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """The array itself, once it is known to be a non-empty image of a supported layout.

    Raises:
        ValueError: an unsupported shape or an empty image (the message says which).
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(
            f"Unsupported image shape {img.shape}; expected HxW (gray), HxWx1, HxWx2 (gray + alpha), "
            "HxWx3 (BGR) or HxWx4 (BGRA)"
        )
    if img.size == 0:
        raise ValueError(f"Empty image (shape {img.shape}); expected an image with width and height > 0")
    return img


def to_uint8(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Convert the samples of an image to uint8 (the depth rules of the module docstring).

    Returns:
        A uint8 array of the same shape (``image`` itself when it already is uint8).

    Raises:
        ValueError: an unsupported dtype (complex, object, ...).
    """
    img = np.asarray(image)
    if img.dtype == np.uint8:
        return cast(npt.NDArray[np.uint8], img)
    if img.dtype == np.uint16:
        scaled = cv2.convertScaleAbs(np.ascontiguousarray(img), alpha=255.0 / 65535.0)
        return np.asarray(scaled, np.uint8).reshape(img.shape)
    if img.dtype == np.bool_:
        return img.astype(np.uint8) * np.uint8(255)
    if img.dtype.kind == "f":
        finite = np.nan_to_num(img.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(finite * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.dtype == np.int8:
        return (img.astype(np.int16) + 128).astype(np.uint8)
    if img.dtype.kind in "iu":
        return np.clip(img, 0, 255).astype(np.uint8)
    raise ValueError(
        f"Unsupported image dtype {img.dtype}; expected uint8, uint16, other integers, bool or float"
    )


def to_bgr(image: npt.NDArray[np.generic], alpha: AlphaMode = "drop") -> npt.NDArray[np.uint8]:
    """Convert an image of any supported layout and depth to contiguous ``HxWx3`` BGR uint8.

    Args:
        image: gray, gray + alpha, BGR or BGRA array (see the module docstring for depths).
        alpha: ``"composite"`` blends onto white by the alpha channel; ``"drop"`` ignores it.

    Returns:
        ``HxWx3`` uint8 BGR (``image`` itself when it already is contiguous BGR uint8).

    Raises:
        ValueError: empty image, unsupported shape or dtype, or unknown ``alpha`` mode.
    """
    if alpha not in ("composite", "drop"):
        raise ValueError(f"Unknown alpha mode {alpha!r}; available: 'composite', 'drop'")
    img = to_uint8(check_layout(image))
    if img.ndim == 2 or img.shape[2] == 1:
        return np.asarray(
            cv2.cvtColor(np.ascontiguousarray(img.reshape(img.shape[:2])), cv2.COLOR_GRAY2BGR), np.uint8
        )
    channels = img.shape[2]
    if channels == 3:
        return np.ascontiguousarray(img)
    if channels == 2:
        out = np.asarray(cv2.cvtColor(np.ascontiguousarray(img[:, :, 0]), cv2.COLOR_GRAY2BGR), np.uint8)
    else:
        out = np.ascontiguousarray(img[:, :, :3])
    if alpha == "drop":
        return out
    a = img[:, :, -1]
    # Composite on white, strip by strip, so the float32 temporaries stay a few MB.
    for y in range(0, out.shape[0], _STRIP_ROWS):
        w = a[y : y + _STRIP_ROWS].astype(np.float32)[:, :, None] * np.float32(1.0 / 255.0)
        c = out[y : y + _STRIP_ROWS].astype(np.float32)
        out[y : y + _STRIP_ROWS] = np.clip(c * w + 255.0 * (1.0 - w) + 0.5, 0, 255).astype(np.uint8)
    return out


def to_gray(image: npt.NDArray[np.generic], alpha: AlphaMode = "drop") -> npt.NDArray[np.uint8]:
    """Convert an image of any supported layout and depth to ``HxW`` uint8 grayscale.

    Args:
        image: gray, gray + alpha, BGR or BGRA array.
        alpha: as in :func:`to_bgr`.

    Raises:
        ValueError: empty image, unsupported shape or dtype.
    """
    img = to_uint8(check_layout(image))
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return np.ascontiguousarray(img[:, :, 0])
    if img.shape[2] == 2 and alpha == "drop":
        return np.ascontiguousarray(img[:, :, 0])
    bgr = to_bgr(img, alpha) if img.shape[2] != 3 else img
    b = bgr[:, :, 0].astype(np.float32)
    g = bgr[:, :, 1].astype(np.float32)
    r = bgr[:, :, 2].astype(np.float32)
    return np.clip(0.114 * b + 0.587 * g + 0.299 * r + 0.5, 0, 255).astype(np.uint8)
