"""The pipeline: detect -> align -> classify (+OOD) -> track -> smooth -> overlay.

Pure stages (detect, align, classify) depend only on the frame; the stateful ones (tracker,
smoother, quote choice) live in a :class:`StreamState`, one per video/webcam/web session.

Example:
    >>> from emoar import Pipeline, PipelineOptions                  # doctest: +SKIP
    >>> with Pipeline.from_options(PipelineOptions()) as pipe:         # doctest: +SKIP
    ...     result = pipe.process(frame_bgr)                           # one image
    ...     stream = pipe.new_stream()                                 # a video
    ...     for i, t, frame in source:
    ...         r = pipe.process(frame, stream=stream, frame_index=i, timestamp_ms=t)
    ...         annotated = pipe.render(frame, r, stream=stream)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from emoar.types import Detection, FaceResult, FrameResult

__all__ = ["Pipeline", "PipelineOptions", "StreamState"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOptions:
    """Options for every stage (CLI flags use the same names).

    Attributes:
        model: shipped model name (``emoar models``), ``"default"``, or a path to an .onnx file.
        detector: face detector backend name (``yunet``, ``mtcnn``, ``haar``).
        num_threads: CPU threads for the detector and the classifier.
        max_faces: at most this many faces (largest first) are classified per frame.
        ood_threshold: override the model's OOD threshold (score in [0, 1]).
        tta: test-time augmentation, ``"none"``, ``"flip"`` (or ``True``: average each face
            with its mirror image, about +0.7 points of accuracy on FER2013 for twice the
            classifier time, see the README's accuracy table) or ``"crops"`` (ten views, 10x).
        detector_options: extra keyword options for :class:`emoar.detect.DetectorOptions`.
        tracker_options: keyword options for :class:`emoar.track.TrackerOptions`.
        smoother_options: keyword options for :class:`emoar.smooth.SmootherOptions`.
        overlay_options: keyword options for :class:`emoar.overlay.OverlayOptions`.
    """

    model: str = "default"
    detector: str = "yunet"
    num_threads: int = 1
    max_faces: int = 64
    ood_threshold: float | None = None
    tta: bool | str = False
    detector_options: dict[str, Any] = field(default_factory=dict)
    tracker_options: dict[str, Any] = field(default_factory=dict)
    smoother_options: dict[str, Any] = field(default_factory=dict)
    overlay_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {self.max_faces}")
        if self.ood_threshold is not None and not 0.0 <= self.ood_threshold <= 1.0:
            raise ValueError(f"ood_threshold must be in [0, 1], got {self.ood_threshold}")


class StreamState:
    """Per-stream state: track ids, smoothed probabilities, chosen quotes and where each track's
    overlay elements were placed. Everything that remembers a stream lives here, never on the
    (shared) :class:`Pipeline`, so two streams served by one pipeline cannot see each other."""

    def __init__(self, tracker: Any, smoother: Any, quotes: Any, placement: Any | None = None) -> None:
        from emoar.overlay import PlacementMemory

        self.tracker = tracker
        self.smoother = smoother
        self.quotes = quotes
        self.placement = placement if placement is not None else PlacementMemory()

    def reset(self) -> None:
        """Forget all tracks (e.g. on a scene cut or a new video)."""
        self.tracker.reset()
        self.smoother.reset()
        self.quotes.reset()
        self.placement.reset()


class Pipeline:
    """Face -> expression pipeline. Create with :meth:`from_options`; close or use ``with``."""

    def __init__(self, options: PipelineOptions, detector: Any, classifier: Any, renderer: Any) -> None:
        self.options = options
        self.detector = detector
        self.classifier = classifier
        self.renderer = renderer

    @classmethod
    def from_options(cls, options: PipelineOptions | None = None) -> Pipeline:
        """Load the detector and classifier (the only place models are loaded).

        Raises:
            emoar.models.UnknownModelError: unknown model name or missing file.
            emoar.classify.ModelMetadataError: not an emoar ONNX model.
            ValueError: unknown detector or invalid options.
        """
        from emoar.classify import ExpressionClassifier
        from emoar.detect import DetectorOptions, create_detector
        from emoar.models import resolve_model
        from emoar.overlay import OverlayOptions, OverlayRenderer

        opts = options or PipelineOptions()
        classifier = ExpressionClassifier(
            resolve_model(opts.model),
            num_threads=opts.num_threads,
            ood_threshold=opts.ood_threshold,
            tta=opts.tta,
        )
        det_kw = {"num_threads": opts.num_threads, **opts.detector_options}
        detector = create_detector(DetectorOptions(name=opts.detector, **det_kw))
        renderer = OverlayRenderer(OverlayOptions(**opts.overlay_options))
        return cls(opts, detector, classifier, renderer)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the detector's resources."""
        close = getattr(self.detector, "close", None)
        if callable(close):
            close()

    @property
    def labels(self) -> tuple[str, ...]:
        """The classifier's labels, in probability order."""
        labels: tuple[str, ...] = self.classifier.labels
        return labels

    def new_stream(self) -> StreamState:
        """Fresh tracker + smoother + quote state for one video/webcam/session."""
        from emoar.overlay import QuotePicker
        from emoar.smooth import ProbabilitySmoother, SmootherOptions
        from emoar.track import IouTracker, TrackerOptions

        return StreamState(
            IouTracker(TrackerOptions(**self.options.tracker_options)),
            ProbabilitySmoother(SmootherOptions(**self.options.smoother_options)),
            QuotePicker(),
        )

    def detect(self, frame: npt.NDArray[np.uint8]) -> list[Detection]:
        """Faces in ``frame`` (largest ``max_faces``), boxes in original-frame pixels."""
        dets: list[Detection] = list(self.detector.detect(frame))
        if len(dets) > self.options.max_faces:
            dets = sorted(dets, key=lambda d: d.width * d.height, reverse=True)[: self.options.max_faces]
        return dets

    def process(
        self,
        frame: npt.NDArray[np.generic],
        *,
        stream: StreamState | None = None,
        frame_index: int = 0,
        timestamp_ms: float = 0.0,
        image: str | None = None,
    ) -> FrameResult:
        """Run every stage on one BGR frame.

        Args:
            frame: HxWx3 BGR uint8 (grayscale, BGRA and 16-bit are converted).
            stream: state for videos/webcams; ``None`` for independent images (no track ids).
            frame_index: index of the frame in its stream.
            timestamp_ms: time of the frame in milliseconds from the stream start.
            image: a name for the frame (file name), echoed in the result.

        Raises:
            ValueError: empty frame.
        """
        from emoar.align import align_faces

        frame = _as_bgr(frame)
        h, w = frame.shape[:2]
        t0 = time.perf_counter()
        dets = self.detect(frame)
        t1 = time.perf_counter()
        ih, iw = self.classifier.input_size
        crops = (
            align_faces(frame, dets, size=ih, detector=self.detector.name)
            if dets
            else np.zeros((0, ih, iw), np.uint8)
        )
        t2 = time.perf_counter()
        out = self.classifier.classify(crops)
        t3 = time.perf_counter()
        probs = out.probs
        ids: list[int | None] = [None] * len(dets)
        labels = self.labels
        top = [labels[int(i)] for i in probs.argmax(1)] if len(dets) else []
        if stream is not None and dets:
            boxes = np.array([d.box_xyxy for d in dets], dtype=np.float32)
            scores = np.array([d.score for d in dets], dtype=np.float32)
            tids = np.asarray(stream.tracker.update(boxes, scores))
            ids = [int(t) if t >= 0 else None for t in tids]
            probs = stream.smoother.update(tids, probs, timestamp_ms=timestamp_ms)
            top = [labels[int(k)] for k in stream.smoother.last_labels]
        elif stream is not None:
            stream.tracker.update(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
            stream.smoother.update(
                np.zeros(0, np.int64), np.zeros((0, len(labels)), np.float32), timestamp_ms=timestamp_ms
            )
        t4 = time.perf_counter()
        faces = tuple(
            FaceResult(
                box_xyxy=tuple(float(v) for v in d.box_xyxy),  # type: ignore[arg-type]
                score=float(d.score),
                expression=top[i],
                probs={n: float(p) for n, p in zip(labels, probs[i], strict=True)},
                ood_score=float(out.ood_score[i]),
                uncertain=bool(out.uncertain[i]),
                track_id=ids[i],
                landmarks_xy=d.landmarks_xy,
            )
            for i, d in enumerate(dets)
        )
        speed = {
            "detect": (t1 - t0) * 1e3,
            "align": (t2 - t1) * 1e3,
            "classify": (t3 - t2) * 1e3,
            "track": (t4 - t3) * 1e3,
        }
        return FrameResult(faces, w, h, frame_index, float(timestamp_ms), image, speed)

    def render(
        self, frame: npt.NDArray[np.generic], result: FrameResult, *, stream: StreamState | None = None
    ) -> npt.NDArray[np.uint8]:
        """Draw the overlays for ``result`` on a copy of ``frame``."""
        from emoar.overlay import PlacementMemory

        t0 = time.perf_counter()
        if stream is not None:
            img = self.renderer.render(
                _as_bgr(frame), result.faces, quotes=stream.quotes, placement=stream.placement
            )
        else:  # a single image: no memory of earlier frames
            img = self.renderer.render(_as_bgr(frame), result.faces, placement=PlacementMemory())
        result.speed_ms["render"] = (time.perf_counter() - t0) * 1e3
        out: npt.NDArray[np.uint8] = img
        return out


def _as_bgr(frame: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    from emoar.detect import as_bgr_uint8

    out: npt.NDArray[np.uint8] = as_bgr_uint8(frame)
    return out
