"""Image, video and webcam readers and writers.

Everything returns frames as BGR uint8 (H, W, 3) arrays, the layout of the whole pipeline, and
raises the exceptions of :mod:`emoar.io.errors` with the file name in the message.
"""

from emoar.io.errors import (
    ImageMemoryError,
    ImageReadError,
    ImageTooLargeError,
    MediaError,
    UnsupportedImageError,
    VideoOpenError,
    VideoWriteError,
)
from emoar.io.formats import DECODABLE_IMAGE_FORMATS, ImageHeader, probe_image, sniff
from emoar.io.image import IMAGE_EXTENSIONS, decode_image, downscale_for, iter_images, read_image
from emoar.io.video import ThreadedSink, VideoSink, VideoSource, prefetch

__all__ = [
    "DECODABLE_IMAGE_FORMATS",
    "IMAGE_EXTENSIONS",
    "ImageHeader",
    "ImageMemoryError",
    "ImageReadError",
    "ImageTooLargeError",
    "MediaError",
    "UnsupportedImageError",
    "ThreadedSink",
    "VideoOpenError",
    "VideoSink",
    "VideoSource",
    "VideoWriteError",
    "prefetch",
    "decode_image",
    "downscale_for",
    "iter_images",
    "probe_image",
    "read_image",
    "sniff",
]
