"""Exceptions raised by :mod:`emoar.io`; each message names the file and says what went wrong."""

from __future__ import annotations

__all__ = [
    "ImageReadError",
    "ImageTooLargeError",
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


class VideoOpenError(MediaError):
    """A video file or camera could not be opened, or it yields no frames."""


class VideoWriteError(MediaError):
    """A video file could not be written (or did not read back)."""
