"""Image, video and webcam readers and writers.

Everything returns frames as BGR uint8 (H, W, 3) arrays, the layout of the whole pipeline, and
raises the exceptions of :mod:`emoar.io.errors` with the file name in the message.
"""

from emoar.io.errors import ImageReadError, ImageTooLargeError, MediaError, VideoOpenError, VideoWriteError
from emoar.io.image import IMAGE_EXTENSIONS, decode_image, downscale_for, iter_images, read_image
from emoar.io.video import VideoSink, VideoSource

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "ImageTooLargeError",
    "MediaError",
    "VideoOpenError",
    "VideoSink",
    "VideoSource",
    "VideoWriteError",
    "decode_image",
    "downscale_for",
    "iter_images",
    "read_image",
]
