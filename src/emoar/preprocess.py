"""The one preprocessing shared by training and inference.

:func:`preprocess` is :func:`unit_scale` (uint8 crops -> float32 in [0, 1], channel axis added)
followed by :func:`normalize` (``(x - mean) / std`` with the mean/std the model file carries).
The runtime classifier (``emoar.classify``) and training-time prediction
(``emoar.train.loop.predict_logits``) call :func:`preprocess`; the training loop calls the same
two steps with its augmentations in between (they work on [0, 1] pixels), so the three cannot
drift apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from emoar.io.pixels import to_gray as to_gray_pixels

__all__ = [
    "TTA_MODES",
    "normalize",
    "preprocess",
    "renormalization",
    "resolve_tta",
    "to_gray",
    "tta_views",
    "unit_scale",
]

TTA_MODES = ("none", "flip", "crops")
CROP_SHIFT = 2  # pixels, at 48x48: the four shifted "crops" of the ten-crop mode


def to_gray(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Convert an image of any common layout to 8-bit grayscale (:func:`emoar.io.pixels.to_gray`:
    BT.601 luma, alpha ignored, 16-bit and float scaled to 8 bits)."""
    return to_gray_pixels(image)


def unit_scale(crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """``(N, H, W)`` (or one ``(H, W)``) uint8 grayscale crops -> ``(N, 1, H, W)`` float32 in [0, 1].

    Raises:
        ValueError: not a (stack of) 2-D grayscale crop(s).
    """
    x = np.asarray(crops)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"crops must be (N, H, W) grayscale, got shape {x.shape}")
    return (x.astype(np.float32) * np.float32(1.0 / 255.0))[:, None, :, :]


def normalize(x: Any, mean: float, std: float) -> Any:
    """``(x - mean) / std`` for [0, 1] pixels: a numpy array or a torch tensor (same dtype out)."""
    if isinstance(x, np.ndarray):
        return (x - np.float32(mean)) / np.float32(std)
    return (x - float(mean)) / float(std)


def renormalization(mean: float, std: float, to_mean: float, to_std: float) -> tuple[float, float]:
    """``(scale, shift)`` that take input normalised with ``mean``/``std`` to the normalisation
    of another network (``to_mean``/``to_std``): ``normalize(u, to_mean, to_std) ==
    normalize(u, mean, std) * scale + shift``; ``(1.0, 0.0)`` when the statistics agree."""
    # (u - m1) / s1 = ((u - m0) / s0) * s0 / s1 + (m0 - m1) / s1
    return float(std) / float(to_std), (float(mean) - float(to_mean)) / float(to_std)


def preprocess(crops: npt.NDArray[np.uint8], mean: float, std: float) -> npt.NDArray[np.float32]:
    """Turn grayscale uint8 face crops into the classifier's float input.

    Args:
        crops: ``(N, H, W)`` uint8 grayscale crops already at the model's input size.
        mean: pixel mean in [0, 1] units (from the model file).
        std: pixel standard deviation in [0, 1] units (from the model file).

    Returns:
        ``(N, 1, H, W)`` float32 array, ``(x / 255 - mean) / std``.
    """
    out: npt.NDArray[np.float32] = normalize(unit_scale(crops), mean, std)
    return out


def resolve_tta(tta: bool | str | None) -> str:
    """Normalise a test-time augmentation setting to one of :data:`TTA_MODES`.

    ``True`` means ``"flip"`` and ``False``/``None`` ``"none"``, so boolean callers keep working.

    Raises:
        ValueError: an unknown mode name.
    """
    if tta is None or tta is False:
        return "none"
    if tta is True:
        return "flip"
    mode = str(tta).lower()
    if mode not in TTA_MODES:
        raise ValueError(f"Unknown test-time augmentation {tta!r}; choose one of {', '.join(TTA_MODES)}")
    return mode


def tta_views(
    crops: npt.NDArray[np.uint8], mode: bool | str, *, builtin: str = "none"
) -> list[npt.NDArray[np.uint8]]:
    """The views of (N, H, W) crops that test-time augmentation averages over; the first is
    always the crops themselves (the OOD score is taken from it).

    ``flip``: the crops and their mirror images. ``crops`` (ten-crop): the crops and four copies
    shifted by :data:`CROP_SHIFT` pixels up/down/left/right (edges replicated, no resampling,
    so the face keeps its scale), each with its mirror image. ``builtin="flip"``: the model
    averages each input with its mirror image itself, so no mirror views are made.
    """
    x = np.asarray(crops)
    m = resolve_tta(mode)
    if m == "none" or (m == "flip" and builtin == "flip"):
        return [x]
    views = [x]
    if m == "crops":
        k = CROP_SHIFT
        h, w = x.shape[1:3]
        pad = np.pad(x, ((0, 0), (k, k), (k, k)), mode="edge")
        for dy, dx in ((-k, 0), (k, 0), (0, -k), (0, k)):
            views.append(np.ascontiguousarray(pad[:, k + dy : k + dy + h, k + dx : k + dx + w]))
    if builtin == "flip":
        return views
    return views + [np.ascontiguousarray(v[:, :, ::-1]) for v in views]
