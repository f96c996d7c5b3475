"""YuNet (libfacedetection) from the ``yuface`` wheel's own ``libfacedetection.so``: the default
backend.

``yuface`` 2023.5.1 ships libfacedetection compiled as a shared library (weights inside it) plus
a Python wrapper, ``yuface.detect``. That wrapper leaks: it allocates a fresh result buffer on
every call and never frees it (measured: +37 MB per 1,000 calls on a 320x240 frame, so a 30 fps
stream grows by ~4 GB an hour). The library itself is clean, and its C API is made for the
caller to own the buffer::

    int* facedetect_cnn(unsigned char* result_buffer,   // DETECT_BUFFER_SIZE (0x9000) bytes
                        unsigned char* bgr_image, int width, int height, int step);

so this module calls it through :mod:`ctypes` with one buffer per detector, allocated once (the
same pixels in, the same faces out as ``yuface.detect``; resident memory stays flat, see
``tests/test_soak.py``). ``ctypes`` releases the GIL during the call. The wrapper module is
never imported.

The result buffer holds an ``int32`` face count, then per face 16 ``int16``: confidence in
percent, an ``XYWH`` box and 10 landmark coordinates ``x0 y0 ... x4 y4`` in the order
image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner
(checked on real photos) — the same order as :data:`emoar.detect.base.LANDMARK_NAMES` — and one
unused value. Boxes and landmarks are whole pixels of the image it was given, so precision is
limited to one pixel of the downscaled image. YuNet's landmarks hardly follow head roll, so by
default they are replaced by MTCNN O-net landmarks computed on each YuNet box (see
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
from typing import Any

import numpy as np
import numpy.typing as npt

from emoar.detect.base import BaseDetector, DetectorOptions, RawDetections

__all__ = ["YuNetDetector", "find_libfacedetection"]

logger = logging.getLogger(__name__)

#: Size of the caller-owned result buffer (libfacedetection's ``DETECT_BUFFER_SIZE``).
RESULT_BUFFER_BYTES = 0x9000
_FACE_SHORTS = 16
#: Most faces the buffer can report (libfacedetection caps its output at 1024).
_MAX_FACES = (RESULT_BUFFER_BYTES - 4) // (2 * _FACE_SHORTS)
# ``facedetect_cnn(unsigned char*, unsigned char*, int, int, int)``, C++-mangled (the library
# exports no extern "C" name).
_SYMBOL = "_Z14facedetect_cnnPhS_iii"

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


class YuNetDetector(BaseDetector):
    """YuNet face detector (libfacedetection, BSD-3; weights compiled into ``yuface``'s library).

    Each detector owns one result buffer, so detectors are independent; like every backend, a
    detector is for one thread at a time.

    Attributes:
        name: ``"yunet"``.
        options: resolved options.
    """

    name = "yunet"

    def __init__(self, options: DetectorOptions) -> None:
        """Load ``libfacedetection`` (setting ``OMP_NUM_THREADS`` first when the user has not).

        Args:
            options: resolved options (``min_score`` and ``detect_max_side`` set).

        Raises:
            ImportError: ``yuface`` is not installed or its library cannot be loaded.
        """
        super().__init__(options)
        self._fn = _load(options.num_threads)
        self._buffer: npt.NDArray[np.uint8] | None = np.zeros(RESULT_BUFFER_BYTES, np.uint8)
        self._load_onet()

    def _call(self, image_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
        """Run ``facedetect_cnn`` on a contiguous BGR image; ``(N, 16)`` int16 rows."""
        global _warm
        buf = self._buffer
        assert buf is not None
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

    def _detect_raw(self, image_bgr: npt.NDArray[np.uint8], scale: float) -> RawDetections:
        rows = self._call(image_bgr)
        if len(rows) == 0:
            return RawDetections.empty()
        xywh = rows[:, 1:5].astype(np.float64)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        lm = rows[:, 5:15].astype(np.float64).reshape(-1, 5, 2)
        return RawDetections(xyxy, rows[:, 0].astype(np.float64) / 100.0, lm)

    def _release(self) -> None:
        self._buffer = None
