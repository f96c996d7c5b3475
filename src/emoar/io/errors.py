"""Exceptions raised by :mod:`emoar.io`; each message names the file and says what went wrong."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ImageMemoryError",
    "ImageReadError",
    "ImageTooLargeError",
    "UnsupportedImageError",
    "MediaError",
    "VideoOpenError",
    "VideoWriteError",
]


class MediaError(Exception):
    """Base class for image and video input/output errors."""


class ImageReadError(MediaError):
    """An image file or upload could not be read or decoded.

    Attributes:
        path: the file path or upload name, as given.
        reason: what went wrong, in words (without the path).
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"Cannot read image '{self.path}': {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # keep picklable with 2 arguments
        return (type(self), (self.path, self.reason))


class ImageTooLargeError(ImageReadError):
    """An image has more pixels than allowed (``max_pixels``); maps to HTTP 413.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        max_pixels: the limit, in pixels (width * height).
    """

    def __init__(self, path: object, width: int, height: int, max_pixels: int) -> None:
        self.width = int(width)
        self.height = int(height)
        self.max_pixels = int(max_pixels)
        reason = (
            f"{self.width}x{self.height} = {self.width * self.height / 1e6:.1f} megapixels is over the "
            f"limit of {self.max_pixels / 1e6:.1f} megapixels; downscale it and try again"
        )
        super().__init__(path, reason)

    def __reduce__(self) -> tuple[type, tuple[str, int, int, int]]:  # type: ignore[override]
        return (type(self), (self.path, self.width, self.height, self.max_pixels))


class ImageMemoryError(ImageReadError):
    """Decoding an image would need more memory than allowed (``max_decode_bytes``); maps to
    HTTP 413. Raised from the header, before any pixel is decoded.

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        needed_bytes: peak memory the decode would need, in bytes.
        max_decode_bytes: the limit, in bytes.
    """

    def __init__(self, path: object, header: Any, max_decode_bytes: int) -> None:
        self.width = int(header.width)
        self.height = int(header.height)
        self.needed_bytes = int(header.peak_bytes())
        self.max_decode_bytes = int(max_decode_bytes)
        depth = f"{8 * header.bytes_per_sample}-bit, {header.channels} channel(s)"
        reason = (
            f"decoding this {self.width}x{self.height} {header.format} ({depth}) would need "
            f"{self.needed_bytes / 1e6:.0f} MB of memory; the limit is {self.max_decode_bytes / 1e6:.0f} MB. "
            "Send it as an 8-bit JPEG or PNG, or downscale it"
        )
        super().__init__(path, reason)

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:  # type: ignore[override]
        return (ImageReadError, (self.path, self.reason))


class UnsupportedImageError(ImageReadError):
    """A recognised format that is not decoded (e.g. Radiance HDR, OpenEXR, PDF); maps to HTTP 415.

    Attributes:
        format: the format found (sniffed from the content).
        accepted: the formats that are decoded.
    """

    def __init__(self, path: object, format: str, accepted: tuple[str, ...]) -> None:  # noqa: A002
        self.format = format
        self.accepted = tuple(accepted)
        super().__init__(
            path, f"{format} is not a supported image format (supported: {', '.join(self.accepted)})"
        )

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:  # type: ignore[override]
        return (type(self), (self.path, self.format, self.accepted))


class VideoOpenError(MediaError):
    """A video file or camera could not be opened, or it yields no frames."""


class VideoWriteError(MediaError):
    """A video file could not be written (or did not read back)."""
