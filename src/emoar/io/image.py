"""Reading still images into the one layout the pipeline uses: BGR, uint8, HxWx3.

Every reader goes through :func:`decode_image`, so files on disk and web uploads behave the
same: pixels are converted by :mod:`emoar.io.pixels` (grayscale expanded to BGR, alpha
composited on white or dropped, 16-bit and float scaled to 8 bits), and the EXIF orientation
tag is applied for every format
(as ``cv2.imread(path, cv2.IMREAD_COLOR)`` does), so a phone photo is upright.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from emoar.io.errors import ImageMemoryError, ImageReadError, ImageTooLargeError, UnsupportedImageError
from emoar.io.formats import DECODABLE_IMAGE_FORMATS, HeaderError, ImageHeader, probe_image, sniff
from emoar.io.pixels import AlphaMode, to_bgr

__all__ = [
    "IMAGE_EXTENSIONS",
    "decode_image",
    "downscale_for",
    "iter_images",
    "read_image",
]

logger = logging.getLogger(__name__)

#: File extensions (lower case) that :func:`iter_images` picks up inside a folder.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pnm"}
)


def _undecodable_reason(buf: bytes) -> str:
    """Explain, in words, why bytes that no decoder accepted are not an image."""
    fmt = sniff(buf)
    if fmt is not None:
        return f"corrupt or truncated {fmt} data ({len(buf)} bytes)"
    head = buf[:64]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.strip() and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        snippet = text.strip().splitlines()[0][:40]
        return f"not an image: the content looks like text ({snippet!r})"
    return f"not a supported image format (first bytes: {buf[:8].hex(' ')})"


# EXIF orientation -> how to make the stored pixels upright (as PIL's ImageOps.exif_transpose).
def _apply_orientation(img: npt.NDArray[np.generic], orientation: int) -> npt.NDArray[np.generic]:
    if orientation == 2:
        img = img[:, ::-1]
    elif orientation == 3:
        img = img[::-1, ::-1]
    elif orientation == 4:
        img = img[::-1]
    elif orientation == 5:
        img = np.swapaxes(img, 0, 1)
    elif orientation == 6:
        img = np.swapaxes(img, 0, 1)[:, ::-1]
    elif orientation == 7:
        img = np.swapaxes(img, 0, 1)[::-1, ::-1]
    elif orientation == 8:
        img = np.swapaxes(img, 0, 1)[::-1]
    return np.ascontiguousarray(img)


# Formats whose files may carry an EXIF orientation tag.
_EXIF_FORMATS = frozenset({"JPEG", "PNG", "WebP", "TIFF"})


def _exif_orientation(buf: bytes, fmt: str) -> int:
    """The EXIF orientation tag (1-8; 1 when absent or unreadable), read by Pillow from the
    header only. Called after the size checks, so Pillow never meets a decompression bomb."""
    if fmt not in _EXIF_FORMATS:
        return 1
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: our own limits apply
            with Image.open(io.BytesIO(buf), formats=[fmt.upper()]) as im:
                orientation = int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # malformed EXIF must not make a readable image unreadable
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _decode_with_pillow(buf: bytes) -> npt.NDArray[np.uint8] | None:
    """Fallback decoder for formats OpenCV lacks (e.g. some GIF/WebP variants)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(buf)) as im:
                im.seek(0)
                has_alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
                rgb = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    except Exception:
        return None
    code = cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR
    return np.asarray(cv2.cvtColor(rgb, code), dtype=np.uint8)


def _check_header(buf: bytes, name: str, max_pixels: int | None, max_decode_bytes: int | None) -> ImageHeader:
    """Refuse what must not be decoded: unknown or unsupported formats, malformed headers,
    too many pixels, too much memory."""
    fmt = sniff(buf)
    if fmt not in DECODABLE_IMAGE_FORMATS:
        if fmt is None:
            raise ImageReadError(name, _undecodable_reason(buf))
        raise UnsupportedImageError(name, fmt, DECODABLE_IMAGE_FORMATS)
    try:
        header = probe_image(buf)
    except HeaderError as exc:
        raise ImageReadError(name, f"corrupt or truncated {fmt} data ({exc}; {len(buf)} bytes)") from exc
    if max_pixels is not None and header.pixels > max_pixels:
        raise ImageTooLargeError(name, header.width, header.height, max_pixels)
    if max_decode_bytes is not None and header.peak_bytes() > max_decode_bytes:
        raise ImageMemoryError(name, header, max_decode_bytes)
    return header


def decode_image(
    data: bytes | bytearray | memoryview,
    name: str = "<bytes>",
    *,
    max_pixels: int | None = None,
    max_decode_bytes: int | None = None,
    alpha: AlphaMode = "composite",
) -> npt.NDArray[np.uint8]:
    """Decode an encoded image (file contents or an upload) to BGR uint8, in memory.

    Nothing is decoded before the header has been read (:mod:`emoar.io.formats`): the format
    must be one of :data:`emoar.io.formats.DECODABLE_IMAGE_FORMATS` (decoded from memory,
    never through a temporary file), and the size the header states must be within the limits.

    Args:
        data: the encoded bytes (JPEG, PNG, WebP, BMP, GIF's first frame, TIFF's first page,
            PNM).
        name: file or upload name, used in error messages.
        max_pixels: optional limit on width * height in pixels.
        max_decode_bytes: optional limit on the memory that decoding and conversion to 8-bit
            BGR need at their peak (:meth:`emoar.io.formats.ImageHeader.peak_bytes`: e.g. 3
            bytes per pixel for an 8-bit RGB JPEG, 8 + 4 + 3 for a 16-bit RGBA PNG).
        alpha: ``"composite"`` blends transparent pixels onto white; ``"drop"`` discards alpha.

    Returns:
        (H, W, 3) uint8 array in BGR order, upright according to the EXIF orientation tag.

    Raises:
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
        ImageMemoryError: decoding it would need more than ``max_decode_bytes``.
        UnsupportedImageError: a recognised format that is not decoded (HDR, EXR, PDF, ...).
        ImageReadError: empty, corrupt, non-image or otherwise undecodable data.
    """
    if alpha not in ("composite", "drop"):
        raise ValueError(f"Unknown alpha mode {alpha!r}; available: 'composite', 'drop'")
    buf = bytes(data)
    if not buf:
        raise ImageReadError(name, "the data is empty (0 bytes)")
    header = _check_header(buf, name, max_pixels, max_decode_bytes)
    orientation = _exif_orientation(buf, header.format)

    arr = np.frombuffer(buf, dtype=np.uint8)
    img: npt.NDArray[np.generic] | None
    try:
        # IMREAD_UNCHANGED keeps alpha and bit depth, but (unlike IMREAD_COLOR) ignores EXIF
        # orientation, which is applied below from the header for every format.
        img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        logger.debug("cv2.imdecode failed for %s: %s", name, exc)
        img = None
    if img is None:
        img = _decode_with_pillow(buf)  # pixels as stored, so the orientation still applies
        if img is not None:
            logger.debug("decoded %s with Pillow (OpenCV could not)", name)
    if img is None:
        raise ImageReadError(name, _undecodable_reason(buf))
    if img.size == 0 or img.shape[0] == 0 or img.shape[1] == 0:
        raise ImageReadError(name, f"decoded to an empty image (shape {img.shape})")
    if max_pixels is not None and img.shape[0] * img.shape[1] > max_pixels:
        raise ImageTooLargeError(name, img.shape[1], img.shape[0], max_pixels)
    bgr = to_bgr(img, alpha)
    del img
    return np.asarray(_apply_orientation(bgr, orientation), dtype=np.uint8)


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int | None = None,
    alpha: AlphaMode = "composite",
) -> npt.NDArray[np.uint8]:
    """Read an image file as BGR uint8.

    Args:
        path: image file path.
        max_pixels: optional limit on width * height in pixels (see :func:`decode_image`).
        alpha: ``"composite"`` blends transparent pixels onto white; ``"drop"`` discards alpha.

    Returns:
        (H, W, 3) uint8 array in BGR order, upright according to the EXIF orientation tag
        (the same pixels as ``cv2.imread(path, cv2.IMREAD_COLOR)`` for 8-bit colour JPEGs).

    Raises:
        ImageReadError: missing path, a directory, an empty (0-byte) or unreadable file,
            non-image or corrupt content, or an image that decodes to nothing.
        ImageTooLargeError: the image has more than ``max_pixels`` pixels.
    """
    p = Path(path)
    if not p.exists():
        hint = ""
        if p.parent.is_dir():
            near = sorted(q.name for q in p.parent.glob(f"{p.stem}.*") if q.is_file())[:3]
            if near:
                hint = f"; did you mean {', '.join(near)}?"
        raise ImageReadError(path, f"no such file{hint}")
    if p.is_dir():
        raise ImageReadError(path, "is a directory, not an image file (pass the image files inside it)")
    try:
        buf = p.read_bytes()
    except PermissionError:
        raise ImageReadError(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(path, f"the file could not be read ({exc.strerror or exc})") from exc
    if not buf:
        raise ImageReadError(path, "the file is empty (0 bytes)")
    return decode_image(buf, str(path), max_pixels=max_pixels, alpha=alpha)


def iter_images(
    paths: Iterable[str | os.PathLike[str]],
    *,
    skip_errors: bool = False,
    max_pixels: int | None = None,
) -> Iterator[tuple[Path, npt.NDArray[np.uint8]]]:
    """Read images one at a time (lazily), expanding folders to the images inside them.

    Args:
        paths: image files and/or folders; a folder yields its files with an
            :data:`IMAGE_EXTENSIONS` extension, sorted by name (not recursive).
        skip_errors: log a warning and go on when an image cannot be read, instead of raising.
        max_pixels: optional per-image pixel limit (see :func:`decode_image`).

    Yields:
        ``(path, image_bgr)`` pairs, image as (H, W, 3) uint8 BGR.

    Raises:
        ImageReadError: when an image cannot be read and ``skip_errors`` is False.
    """
    for raw in paths:
        p = Path(raw)
        files = (
            sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
            if p.is_dir()
            else [p]
        )
        if p.is_dir() and not files:
            logger.warning("no images (%s) in folder %s", ", ".join(sorted(IMAGE_EXTENSIONS)), p)
        for f in files:
            try:
                image = read_image(f, max_pixels=max_pixels)
            except ImageReadError as exc:
                if not skip_errors:
                    raise
                logger.warning("skipping: %s", exc)
                continue
            yield f, image


def downscale_for(frame: npt.NDArray[np.uint8], max_side: int) -> tuple[npt.NDArray[np.uint8], float]:
    """Shrink a frame so that its longer side is at most ``max_side`` pixels.

    Args:
        frame: (H, W) or (H, W, C) image.
        max_side: largest allowed width or height of the result, in pixels.

    Returns:
        ``(small, scale)`` where ``scale`` = small size / original size (<= 1). The input is
        returned as is (not copied) with scale 1.0 when it is already small enough. Map a box
        found in ``small`` back to the original frame by dividing its coordinates by ``scale``.

    Raises:
        ValueError: if ``max_side`` < 1 or the frame is empty.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1 pixel, got {max_side}")
    h, w = frame.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"cannot downscale an empty frame (shape {frame.shape})")
    longest = max(h, w)
    if longest <= max_side:
        return frame, 1.0
    scale = max_side / longest
    new_w = max(1, round(w * scale))
    new_h = max(1, round(h * scale))
    small = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_AREA)
    return np.asarray(small, dtype=frame.dtype), scale
