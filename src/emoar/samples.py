"""Bundled sample media: a public-domain face photo and a generated demo video.

The photo (``assets/astronaut.jpg``, NASA, public domain; see ``assets/README.md``) ships inside
the package and is found through :mod:`importlib.resources`, so demos and tests work offline.
:func:`make_demo_video` composes face photos into a short clip in which each face drifts and
zooms slowly (a Ken Burns effect), side by side, and returns where every face is in every
frame, so the detector and tracker can be checked against ground truth.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from emoar.io import VideoSink, decode_image
from emoar.io.pixels import to_bgr

__all__ = [
    "SAMPLE_IMAGES",
    "DemoVideo",
    "astronaut",
    "demo_frames",
    "make_demo_video",
    "sample_face_box",
    "sample_image",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`sample_image`.
SAMPLE_IMAGES: tuple[str, ...] = ("astronaut",)

_FILES = {"astronaut": "astronaut.jpg"}
# Face boxes (x1, y1, x2, y2) in pixels of the bundled file, measured with yuface (YuNet).
_FACE_BOXES = {"astronaut": (178.0, 62.0, 267.0, 174.0)}

# Ken Burns motion, relative to each face's slot of the frame.
_ZOOM = 0.15  # total zoom change over the clip (fraction)
_DRIFT_X = 0.06  # horizontal drift amplitude (fraction of slot width)
_PAN_Y = 0.03  # vertical pan amplitude (fraction of frame height)
_FILL = 0.94  # the photo, at its largest, fills at most this fraction of its slot
_BACKGROUND_TOP = (62, 52, 46)  # BGR
_BACKGROUND_BOTTOM = (30, 26, 22)


def _check_name(name: str) -> str:
    if name not in _FILES:
        raise ValueError(f"Unknown sample image {name!r}; available: {', '.join(SAMPLE_IMAGES)}")
    return name


def sample_image(name: str = "astronaut") -> npt.NDArray[np.uint8]:
    """Load a bundled sample image.

    Args:
        name: one of :data:`SAMPLE_IMAGES`.

    Returns:
        (H, W, 3) uint8 BGR image (the astronaut is 512x512).

    Raises:
        ValueError: for an unknown name.
    """
    filename = _FILES[_check_name(name)]
    data = resources.files("emoar").joinpath("assets", filename).read_bytes()
    return decode_image(data, f"emoar/assets/{filename}")


def sample_face_box(name: str = "astronaut") -> tuple[float, float, float, float]:
    """The face box of a bundled sample image.

    Args:
        name: one of :data:`SAMPLE_IMAGES`.

    Returns:
        (x1, y1, x2, y2) in pixels of :func:`sample_image` ``(name)``.
    """
    return _FACE_BOXES[_check_name(name)]


def astronaut() -> npt.NDArray[np.uint8]:
    """The bundled NASA astronaut photo (Eileen Collins, public domain), 512x512 BGR uint8."""
    return sample_image("astronaut")


@dataclass(frozen=True)
class DemoVideo:
    """A generated demo clip and its ground truth.

    Attributes:
        path: the MP4 file.
        fps: frames per second.
        frame_count: number of frames written.
        resolution_wh: (width, height) in pixels.
        image_boxes_xyxy: (frame_count, n_images, 4) where each photo lies in each frame,
            (x1, y1, x2, y2) in pixels.
        face_boxes_xyxy: (frame_count, n_images, 4) the face boxes given for the photos
            (or the bundled ones for the default images), mapped into each frame, in pixels;
            NaN rows for photos without a known face box.
    """

    path: Path
    fps: float
    frame_count: int
    resolution_wh: tuple[int, int]
    image_boxes_xyxy: npt.NDArray[np.float64]
    face_boxes_xyxy: npt.NDArray[np.float64]

    @property
    def timestamps_ms(self) -> npt.NDArray[np.float64]:
        """(frame_count,) timestamp of each frame in milliseconds (``index * 1000 / fps``)."""
        return np.arange(self.frame_count, dtype=np.float64) * np.float64(1000.0 / self.fps)


def _as_bgr(image: npt.NDArray[np.generic], index: int) -> npt.NDArray[np.uint8]:
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.size == 0:
        raise ValueError(f"images[{index}] must be a non-empty uint8 BGR array, got {img.dtype} {img.shape}")
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4)):
        return to_bgr(img, "drop")
    raise ValueError(f"images[{index}] must be (H, W, 3) BGR, got shape {img.shape}")


def _default_images() -> tuple[list[npt.NDArray[np.uint8]], list[tuple[float, float, float, float]]]:
    img = astronaut()
    w = img.shape[1]
    x1, y1, x2, y2 = sample_face_box("astronaut")
    mirrored = np.ascontiguousarray(img[:, ::-1])
    return [img, mirrored], [(x1, y1, x2, y2), (w - x2, y1, w - x1, y2)]


def demo_frames(
    images: Sequence[npt.NDArray[np.uint8]],
    seconds: float = 4.0,
    fps: float = 15.0,
    size: tuple[int, int] = (640, 480),
    *,
    face_boxes: Sequence[tuple[float, float, float, float] | None] | None = None,
) -> Iterator[tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Render the demo clip frame by frame (no file I/O); see :func:`make_demo_video`.

    Args:
        images: one or more BGR uint8 photos, each shown in its own vertical slot.
        seconds: clip length in seconds.
        fps: frames per second.
        size: (width, height) of the frames in pixels.
        face_boxes: optional face box (x1, y1, x2, y2) per photo, in pixels of that photo.

    Yields:
        ``(frame_bgr, image_boxes_xyxy, face_boxes_xyxy)`` per frame: the (H, W, 3) uint8 frame,
        and (n_images, 4) boxes in frame pixels (face rows NaN where no face box was given).
    """
    width, height = int(size[0]), int(size[1])
    if width < 16 or height < 16:
        raise ValueError(f"size must be at least 16x16 pixels, got {size}")
    if not images:
        raise ValueError("images must hold at least one photo")
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be > 0, got seconds={seconds}, fps={fps}")
    photos = [_as_bgr(img, i) for i, img in enumerate(images)]
    faces: list[tuple[float, float, float, float] | None] = (
        list(face_boxes) if face_boxes else [None] * len(photos)
    )
    if len(faces) != len(photos):
        raise ValueError(f"got {len(photos)} images but {len(faces)} face boxes")

    n = len(photos)
    slot_w = width / n
    amp_x = _DRIFT_X * slot_w
    amp_y = _PAN_Y * height
    z_max = 1.0 + _ZOOM
    frame_count = max(1, round(seconds * fps))

    gradient = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top = np.array(_BACKGROUND_TOP, np.float32)
    bottom = np.array(_BACKGROUND_BOTTOM, np.float32)
    background = np.broadcast_to((1 - gradient) * top + gradient * bottom, (height, width, 3)).astype(
        np.uint8
    )

    # Pre-shrink each photo to its largest on-screen size with area averaging (no aliasing);
    # per frame, warpAffine only scales it by 1/z_max..1.
    bases, pres = [], []
    for img in photos:
        ih, iw = img.shape[:2]
        s0 = min((_FILL * slot_w - 2 * amp_x) / (iw * z_max), (_FILL * height - 2 * amp_y) / (ih * z_max))
        if s0 <= 0:
            raise ValueError(f"size {size} is too small for {n} photos")
        pw, ph = max(1, round(iw * s0 * z_max)), max(1, round(ih * s0 * z_max))
        interp = cv2.INTER_AREA if s0 * z_max < 1 else cv2.INTER_LINEAR
        bases.append(s0)
        pres.append(cv2.resize(img, (pw, ph), interpolation=interp))

    for k in range(frame_count):
        u = k / (frame_count - 1) if frame_count > 1 else 0.0
        ease = 0.5 - 0.5 * math.cos(math.pi * u)  # smooth start and stop
        frame = background.copy()
        image_boxes = np.zeros((n, 4))
        face_out = np.full((n, 4), np.nan)
        for i, (img, pre, s0) in enumerate(zip(photos, pres, bases, strict=True)):
            ih, iw = img.shape[:2]
            zoom = 1.0 + _ZOOM * ease if i % 2 == 0 else z_max - _ZOOM * ease
            cx = (i + 0.5) * slot_w + amp_x * math.sin(2 * math.pi * u + i * math.pi / 2)
            cy = height / 2 + amp_y * (ease - 0.5) * (1 if i % 2 == 0 else -1)
            s = s0 * zoom  # source-photo pixels -> frame pixels
            tx, ty = cx - s * iw / 2, cy - s * ih / 2
            sx, sy = s * iw / pre.shape[1], s * ih / pre.shape[0]
            # Pixel centres: frame x = sx * (pre x + 0.5) - 0.5 + tx, so that edges map to edges.
            m = np.array([[sx, 0.0, tx + 0.5 * sx - 0.5], [0.0, sy, ty + 0.5 * sy - 0.5]])
            cv2.warpAffine(
                pre, m, (width, height), dst=frame, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
            )
            image_boxes[i] = (tx, ty, tx + s * iw, ty + s * ih)
            fb = faces[i]
            if fb is not None:
                face_out[i] = (s * fb[0] + tx, s * fb[1] + ty, s * fb[2] + tx, s * fb[3] + ty)
        yield frame, image_boxes, face_out


def make_demo_video(
    path: str | os.PathLike[str],
    images: list[npt.NDArray[np.uint8]] | None = None,
    seconds: float = 4.0,
    fps: float = 15.0,
    size: tuple[int, int] = (640, 480),
    *,
    face_boxes: Sequence[tuple[float, float, float, float] | None] | None = None,
) -> DemoVideo:
    """Write a demo MP4 in which real face photos drift and zoom slowly, side by side.

    Each photo gets its own vertical slot of the frame and stays inside it (faces never
    overlap or leave the frame); it zooms in or out by 15 % over the clip, drifts
    horizontally by +/-6 % of the slot width and pans vertically a little, with eased,
    sub-pixel motion. A detector plus tracker should therefore report exactly one track per
    photo for the whole clip.

    Args:
        path: output ``.mp4`` file (written atomically via :class:`emoar.io.VideoSink`).
        images: BGR uint8 photos with one face each; default: the bundled astronaut and its
            horizontal mirror image (so two faces).
        seconds: clip length in seconds.
        fps: frames per second; the clip has ``round(seconds * fps)`` frames.
        size: (width, height) of the video in pixels.
        face_boxes: optional face box (x1, y1, x2, y2) per photo in pixels of that photo, to
            get ground-truth face boxes per frame; known automatically for the default images.

    Returns:
        A :class:`DemoVideo` with the path and the per-frame photo and face boxes.
    """
    if images is None:
        images, default_faces = _default_images()
        if face_boxes is None:
            face_boxes = default_faces
    image_boxes, face_out = [], []
    with VideoSink(path, fps=fps, resolution_wh=(int(size[0]), int(size[1]))) as sink:
        for frame, boxes, faces in demo_frames(images, seconds, fps, size, face_boxes=face_boxes):
            sink.write(frame)
            image_boxes.append(boxes)
            face_out.append(faces)
    logger.info("wrote demo video %s (%d frames, %s fps)", path, len(image_boxes), fps)
    return DemoVideo(
        path=Path(path),
        fps=float(fps),
        frame_count=len(image_boxes),
        resolution_wh=(int(size[0]), int(size[1])),
        image_boxes_xyxy=np.stack(image_boxes),
        face_boxes_xyxy=np.stack(face_out),
    )


def write_samples(out_dir: str | Path) -> list[Path]:
    """Write the bundled sample media into ``out_dir``: the sample photo(s) as
    ``sample_<name>.jpg`` and a 4 s demo clip ``demo_clip.mp4`` made from them.

    Returns:
        The written paths.
    """
    import cv2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLE_IMAGES:
        p = out / f"sample_{name}.jpg"
        cv2.imwrite(str(p), sample_image(name), [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(p)
    paths.append(make_demo_video(out / "demo_clip.mp4").path)
    return paths


if __name__ == "__main__":  # python -m emoar.samples OUT_DIR
    import sys

    for written in write_samples(sys.argv[1] if len(sys.argv) > 1 else "emoar-demo"):
        print(written, file=sys.stderr)
