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

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from emoar.classify import ClassifierOptions, TtaMode
from emoar.detect.base import DetectorOptions
from emoar.overlay.options import OverlayOptions
from emoar.preprocess import resolve_tta
from emoar.smooth import SmootherOptions
from emoar.track import TrackerOptions
from emoar.types import Detection, FaceResult, FrameResult

__all__ = [
    "ClassifierOptions",
    "DetectorOptions",
    "OverlayOptions",
    "Pipeline",
    "PipelineOptions",
    "STAGE_OPTIONS",
    "SmootherOptions",
    "StreamState",
    "TrackerOptions",
]

logger = logging.getLogger(__name__)


#: The stages' option classes, by the name of their PipelineOptions field.
STAGE_OPTIONS: dict[str, type] = {
    "classifier": ClassifierOptions,
    "detector": DetectorOptions,
    "tracker": TrackerOptions,
    "smoother": SmootherOptions,
    "overlay": OverlayOptions,
}


@dataclass(frozen=True)
class PipelineOptions:
    """Options of every stage, each the stage's own frozen options (one definition per value:
    the CLI flags and the server settings are derived from these fields).

    Build it from the stages' options, or with :meth:`create` from the handful of values most
    callers set::

        PipelineOptions(classifier=ClassifierOptions(model="emoar-vgg-ferplus", tta="flip"),
                        detector=DetectorOptions(name="mtcnn"))
        PipelineOptions.create(model="emoar-vgg-ferplus", tta="flip", detector="mtcnn")

    Attributes:
        classifier: model, threads, test-time augmentation, OOD threshold
            (:class:`emoar.classify.ClassifierOptions`).
        detector: backend and its settings (:class:`emoar.detect.DetectorOptions`).
        tracker: track-id association (:class:`emoar.track.TrackerOptions`).
        smoother: temporal smoothing of probabilities (:class:`emoar.smooth.SmootherOptions`).
        overlay: what is drawn (:class:`emoar.overlay.OverlayOptions`).
        max_faces: at most this many faces (largest first) are classified per frame.
    """

    classifier: ClassifierOptions = field(default_factory=ClassifierOptions)
    detector: DetectorOptions = field(default_factory=DetectorOptions)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    smoother: SmootherOptions = field(default_factory=SmootherOptions)
    overlay: OverlayOptions = field(default_factory=OverlayOptions)
    max_faces: int = 64

    def __post_init__(self) -> None:
        for name, kind in STAGE_OPTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise TypeError(
                    f"PipelineOptions.{name} must be a {kind.__name__}, got {type(getattr(self, name)).__name__}; "
                    "use PipelineOptions.create(model=..., detector=...) for plain values"
                )
        if isinstance(self.max_faces, bool) or int(self.max_faces) != self.max_faces or self.max_faces < 1:
            raise ValueError(f"max_faces must be an integer >= 1, got {self.max_faces!r}")

    @classmethod
    def create(
        cls,
        *,
        model: str = "default",
        detector: str = "yunet",
        num_threads: int = 1,
        tta: bool | str = "none",
        ood_threshold: float | None = None,
        max_faces: int = 64,
        **overlay: Any,
    ) -> PipelineOptions:
        """Options from plain values: ``num_threads`` sets both the detector's and the
        classifier's threads; other keywords are :class:`emoar.overlay.OverlayOptions` fields
        (``style="minimal"``, ``show_quote=False``, ...).

        Raises:
            ValueError: an invalid value (the message names it).
            TypeError: an unknown keyword.
        """
        return cls(
            classifier=ClassifierOptions(
                model=model,
                num_threads=num_threads,
                tta=cast(TtaMode, resolve_tta(tta)),
                ood_threshold=ood_threshold,
            ),
            detector=DetectorOptions(name=detector, num_threads=num_threads),
            overlay=OverlayOptions(**overlay),
            max_faces=max_faces,
        )

    def replace(self, **changes: Any) -> PipelineOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


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
        self.faces: list[Detection] = []  # the last frame's faces, followed into the next
        self.missed: list[int] = []  # per face: full detections in a row that missed it
        self.since_detect = 0  # frames since the last full detection
        self.full_detections = 0  # how many frames were detected in full (the rest followed)

    def reset(self) -> None:
        """Forget all tracks (e.g. on a scene cut or a new video)."""
        self.faces, self.missed, self.since_detect = [], [], 0
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
        self._follower: Any = None  # created on the first followed frame

    @classmethod
    def from_options(cls, options: PipelineOptions | None = None) -> Pipeline:
        """Load the detector and classifier (the only place models are loaded).

        Raises:
            emoar.models.UnknownModelError: unknown model name or missing file.
            emoar.classify.ModelMetadataError: not an emoar ONNX model.
            ValueError: unknown detector or invalid options.
        """
        from emoar.classify import ExpressionClassifier
        from emoar.detect import create_detector
        from emoar.models import resolve_model
        from emoar.overlay import OverlayRenderer

        opts = options or PipelineOptions()
        c = opts.classifier
        classifier = ExpressionClassifier(
            resolve_model(c.model), num_threads=c.num_threads, ood_threshold=c.ood_threshold, tta=c.tta
        )
        detector = create_detector(opts.detector)
        try:
            renderer = OverlayRenderer(opts.overlay)
        except BaseException:
            detector.close()
            raise
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
        from emoar.smooth import ProbabilitySmoother
        from emoar.track import IouTracker

        return StreamState(
            IouTracker(self.options.tracker),
            ProbabilitySmoother(self.options.smoother),
            QuotePicker(),
        )

    def detect(self, frame: npt.NDArray[np.uint8]) -> list[Detection]:
        """Faces in ``frame`` (largest ``max_faces``), boxes in original-frame pixels."""
        dets: list[Detection] = list(self.detector.detect(frame))
        if len(dets) > self.options.max_faces:
            dets = [dets[i] for i in _largest(dets, self.options.max_faces)]
        return dets

    def _stream_faces(self, frame: npt.NDArray[np.uint8], stream: StreamState) -> list[Detection]:
        """Detect in full, or follow the stream's faces from the previous frame.

        A full detection keeps the followed faces it missed for one detection
        (:func:`emoar.detect.follow.keep_missed`), so a detector's occasional miss does not
        drop a face for a frame.
        """
        from emoar.detect.follow import dedupe_indices, keep_missed

        every = self.options.detector.detect_every
        if len(stream.missed) != len(stream.faces):
            stream.missed = [0] * len(stream.faces)
        carry: list[tuple[Detection, int]] = []
        if every > 1 and stream.faces:
            follower = self._get_follower()
            if follower is not None:
                each = follower.follow_each(frame, stream.faces)
                alive = [i for i, d in enumerate(each) if d is not None]
                if stream.since_detect < every - 1 and len(alive) == len(each):
                    faces = [d for d in each if d is not None]
                    keep = dedupe_indices(faces)
                    stream.faces = [faces[i] for i in keep]
                    stream.missed = [stream.missed[i] for i in keep]
                    stream.since_detect += 1
                    return stream.faces
                carry = [
                    (d, stream.missed[i])
                    for i in alive
                    if (d := each[i]) is not None and stream.missed[i] < 1
                ]
        dets = self.detect(frame)
        merged, kept = keep_missed(dets, [d for d, _ in carry])
        missed = [0] * len(dets) + [carry[i][1] + 1 for i in kept]
        if len(merged) > self.options.max_faces:
            order = sorted(_largest(merged, self.options.max_faces))
            merged, missed = [merged[i] for i in order], [missed[i] for i in order]
        stream.since_detect = 0
        stream.full_detections += 1
        stream.faces, stream.missed = merged, missed
        return merged

    def _get_follower(self) -> Any:
        if self._follower is None:
            from emoar.detect.follow import FaceFollower

            try:
                onet = getattr(self.detector, "_onet", None)  # YuNet's refiner, when it has one
                self._follower = FaceFollower(onet, min_face_prob=self.options.detector.follow_min_prob)
            except ImportError as e:
                logger.warning("faces are detected on every frame (%s)", e)
                self._follower = False
        return self._follower or None

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
        dets = self.detect(frame) if stream is None else self._stream_faces(frame, stream)
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


def _largest(dets: list[Detection], n: int) -> list[int]:
    """Indices of the ``n`` largest boxes (by area), largest first."""
    return sorted(range(len(dets)), key=lambda i: dets[i].width * dets[i].height, reverse=True)[:n]


def _as_bgr(frame: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    from emoar.detect import as_bgr_uint8

    out: npt.NDArray[np.uint8] = as_bgr_uint8(frame)
    return out
