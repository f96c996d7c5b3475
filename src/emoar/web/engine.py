"""The models the server holds: one pool of pipelines per model, loaded once at startup.

Pipelines are CPU-bound and blocking; routes call the ``Engine`` methods from a worker thread
(``run_in_threadpool``) so the event loop keeps serving. Each model has a small pool of
:class:`emoar.pipeline.Pipeline` objects (``Settings.pipelines_per_model``); a call borrows one
for its duration, so a pipeline (and its detector) is never used by two threads at once.

Clips run on pipelines of their own (``Settings.video_workers`` per model, created on the first
clip), so a long clip never holds the pipeline an image request or a live stream is waiting
for; the app admits at most ``video_workers + video_queue`` clips at once (an
:class:`AdmissionGate`), the rest are refused (:class:`VideoBusyError`, HTTP 503) instead of
queueing without bound.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import logging
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emoar.modelmeta import ModelMeta
from emoar.pipeline import Pipeline, PipelineOptions, StreamState
from emoar.types import FrameResult
from emoar.web.settings import Settings

__all__ = [
    "AdmissionGate",
    "ClipTooLongError",
    "Engine",
    "FrameTooLargeError",
    "ServedModel",
    "UndecodableVideoError",
    "VideoBusyError",
]

logger = logging.getLogger(__name__)


class UndecodableVideoError(ValueError):
    """The uploaded bytes are not a video OpenCV/FFmpeg can decode."""


class ClipTooLongError(ValueError):
    """The clip is longer than the configured limit (frames or seconds)."""


class FrameTooLargeError(ValueError):
    """The clip's frames have more pixels than ``max_video_pixels``."""


class VideoBusyError(RuntimeError):
    """Every video worker is busy and the queue is full (``video_workers + video_queue`` clips
    in progress); retry later."""


@dataclass(frozen=True)
class ServedModel:
    """A model the server can run, with what the browser needs to run it too.

    Attributes:
        name: the name clients pass as ``model``.
        path: the .onnx file.
        shipped: True for a model of the package registry, False for a file given by path.
        description: one line for humans.
        metrics: measured figures from the registry (or the file's own metadata).
        sha256: checksum from the registry (None for files given by path).
        meta: the file's own metadata (labels, input size, mean/std, OOD calibration): what a
            browser needs to run the model itself.
    """

    name: str
    path: Path
    shipped: bool
    description: str
    metrics: dict[str, Any]
    sha256: str | None
    meta: ModelMeta

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.meta.labels

    def to_dict(self, *, default: bool = False) -> dict[str, Any]:
        """JSON entry of ``GET /v1/models``."""
        return {
            "name": self.name,
            "default": default,
            "shipped": self.shipped,
            "description": self.description,
            "metrics": self.metrics,
            "sha256": self.sha256,
            "size_bytes": self.path.stat().st_size if self.path.is_file() else None,
            "labels": list(self.meta.labels),
            "input_size": list(self.meta.input_size),
            "mean": float(self.meta.mean),
            "std": float(self.meta.std),
            "ood_output": self.meta.ood_output,
            "ood_quantiles": list(self.meta.ood_quantiles),
            "ood_threshold": float(self.meta.ood_threshold),
            "temperature": float(self.meta.temperature),
            "builtin_tta": self.meta.builtin_tta,
            "onnx_url": f"/v1/models/{self.name}/onnx",
        }


class AdmissionGate:
    """At most ``capacity`` holders at once; one more is refused at once instead of waiting.

    >>> gate = AdmissionGate(1)
    >>> with gate.admit():
    ...     gate.admit().__enter__()
    Traceback (most recent call last):
    ...
    emoar.web.engine.VideoBusyError: 1 clips are being analysed or waiting (the limit is 1); retry in a few seconds
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._lock = threading.Lock()
        self._held = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place for the ``with`` block.

        Raises:
            VideoBusyError: all ``capacity`` places are held.
        """
        with self._lock:
            if self._held >= self.capacity:
                raise VideoBusyError(
                    f"{self._held} clips are being analysed or waiting (the limit is {self.capacity}); "
                    "retry in a few seconds"
                )
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1


class PipelinePool:
    """A fixed set of pipelines for one model; :meth:`borrow` lends one to the calling thread."""

    def __init__(self, pipelines: list[Pipeline]) -> None:
        if not pipelines:
            raise ValueError("a PipelinePool needs at least one pipeline")
        self._all = list(pipelines)
        self._free: queue.Queue[Pipeline] = queue.Queue()
        for p in pipelines:
            self._free.put(p)

    @property
    def size(self) -> int:
        """Number of pipelines."""
        return len(self._all)

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Pipeline]:
        """Hold one pipeline for the ``with`` block (blocks while all are busy)."""
        pipe = self._free.get()
        try:
            yield pipe
        finally:
            self._free.put(pipe)

    def new_stream(self) -> StreamState:
        """A fresh stream state from the pool's options (no pipeline is borrowed)."""
        return self._all[0].new_stream()

    def close(self) -> None:
        """Close every pipeline."""
        for p in self._all:
            with contextlib.suppress(Exception):
                p.close()


@dataclass
class Engine:
    """Every model the server serves, by name.

    Attributes:
        models: name -> model description, default first.
        default_model: the name used when a request names no model.
        settings: the settings the engine was loaded with.
    """

    models: dict[str, ServedModel]
    default_model: str
    settings: Settings
    _pools: dict[str, PipelinePool] = field(default_factory=dict, repr=False)
    _video_pools: dict[str, PipelinePool] = field(default_factory=dict, repr=False)
    _video_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, settings: Settings) -> Engine:
        """Load the default model and the shipped ones (``settings.models`` picks a subset).

        Raises:
            emoar.models.UnknownModelError: the default model is unknown or its file is missing.
            emoar.classify.ModelMetadataError: the default model is not an emoar ONNX file.
            ValueError: unknown detector.
        """
        from emoar.models import default_model_name

        shipped = {m.name: m for m in _shipped_models()}
        default_req = settings.model
        if default_req == "default":
            if not shipped:
                from emoar.models import UnknownModelError

                raise UnknownModelError(
                    "No shipped model is registered (src/emoar/models/registry.json is missing); "
                    "start the server with --model PATH.onnx or EMOAR_MODEL=PATH.onnx"
                )
            default_req = default_model_name()
        from emoar.models import canonical_model_name

        default_req = canonical_model_name(default_req)
        asked = [canonical_model_name(n) for n in settings.models] if settings.models else list(shipped)
        wanted = [default_req] + [n for n in dict.fromkeys(asked) if n != default_req]
        engine = cls({}, "", settings)
        for i, req in enumerate(wanted):
            try:
                engine._add(req, shipped.get(req))
            except Exception as e:
                if i == 0:
                    engine.close()
                    raise
                logger.warning("Skipping model %r: %s", req, e)
        engine.default_model = next(iter(engine.models))
        logger.info("Serving models %s (default %s)", ", ".join(engine.models), engine.default_model)
        return engine

    def _add(self, req: str, shipped: Any | None) -> None:
        from emoar.models import resolve_model

        path = shipped.path if shipped is not None else resolve_model(req)
        if shipped is not None:
            resolve_model(shipped.name)  # checks the file and its sha256
        opts = self._options(shipped.name if shipped is not None else str(path))
        pipes = [Pipeline.from_options(opts) for _ in range(self.settings.pipelines_per_model)]
        info = pipes[0].classifier.info
        name = shipped.name if shipped is not None else (info.name or Path(path).stem)
        if name in self.models:
            name = f"{name}-{Path(path).stem}"
        self.models[name] = ServedModel(
            name=name,
            path=Path(path),
            shipped=shipped is not None,
            description=(shipped.description if shipped is not None else f"model file {Path(path).name}"),
            metrics=dict(shipped.metrics) if shipped is not None and shipped.metrics else dict(info.metrics),
            sha256=shipped.sha256 if shipped is not None else None,
            meta=info.meta,
        )
        self._pools[name] = PipelinePool(pipes)

    def _options(self, model: str) -> PipelineOptions:
        """The server's pipeline options (validated with the settings) for one model."""
        base = self.settings.pipeline
        return base.replace(classifier=dataclasses.replace(base.classifier, model=model))

    def close(self) -> None:
        """Release every pipeline."""
        for pool in (*self._pools.values(), *self._video_pools.values()):
            pool.close()
        self._pools.clear()
        self._video_pools.clear()

    def _video_pool(self, name: str) -> PipelinePool:
        """The video pipelines of model ``name``, created on first use."""
        with self._video_lock:
            pool = self._video_pools.get(name)
        if pool is not None:
            return pool
        model = self.models[name]
        opts = self._options(model.name if model.shipped else str(model.path))
        created = PipelinePool([Pipeline.from_options(opts) for _ in range(self.settings.video_workers)])
        with self._video_lock:
            pool = self._video_pools.setdefault(name, created)
        if pool is not created:
            created.close()
        return pool

    # ------------------------------------------------------------------ lookup
    def model(self, name: str | None) -> ServedModel:
        """The model called ``name`` (the default when None or ``"default"``).

        Raises:
            emoar.models.UnknownModelError: no such model here; the message lists the names.
        """
        if name in (None, "", "default"):
            return self.models[self.default_model]
        assert name is not None
        if name not in self.models:
            from emoar.models import canonical_model_name

            name = canonical_model_name(name)
        if name not in self.models:
            from emoar.models import UnknownModelError

            raise UnknownModelError.unknown(name, list(self.models))
        return self.models[name]

    @contextlib.contextmanager
    def pipeline(self, name: str | None) -> Iterator[Pipeline]:
        """Borrow a pipeline of model ``name`` (blocks while all of its pipelines are busy)."""
        with self._pools[self.model(name).name].borrow() as pipe:
            yield pipe

    def new_stream(self, name: str | None) -> StreamState:
        """Fresh tracker + smoother state for one live stream of model ``name``.

        Does not wait for a free pipeline (``Pipeline.new_stream`` only reads its options), so it
        is safe to call from the event loop.
        """
        return self._pools[self.model(name).name].new_stream()

    # ------------------------------------------------------------------ work (call from a thread)
    def analyze(
        self,
        frame: npt.NDArray[np.uint8],
        *,
        model: str | None = None,
        image: str | None = None,
        annotate: bool = False,
    ) -> tuple[FrameResult, str | None]:
        """Analyse one image.

        Args:
            frame: (H, W, 3) BGR uint8.
            model: model name (default when None).
            image: the upload's name, echoed in the result.
            annotate: also render the overlays.

        Returns:
            ``(result, annotated_png_base64)``; the second is None unless ``annotate``.
        """
        with self.pipeline(model) as pipe:
            result = pipe.process(frame, image=image)
            png = _png_base64(pipe.render(frame, result)) if annotate else None
        return result, png

    def process_stream_frame(
        self,
        frame: npt.NDArray[np.uint8],
        stream: StreamState,
        *,
        model: str | None,
        frame_index: int,
        timestamp_ms: float,
    ) -> FrameResult:
        """Analyse one frame of a live stream (track ids and smoothing from ``stream``)."""
        with self.pipeline(model) as pipe:
            return pipe.process(frame, stream=stream, frame_index=frame_index, timestamp_ms=timestamp_ms)

    def analyze_video(
        self,
        data: bytes,
        *,
        model: str | None = None,
        stride: int = 1,
        max_frames: int | None = None,
        max_seconds: float | None = None,
        max_pixels: int | None = None,
        annotate: bool = False,
    ) -> VideoAnalysis:
        """Analyse a short clip held in memory (decoded by FFmpeg from a byte stream, no file).

        Args:
            data: the encoded clip (MP4, MOV, WebM, AVI).
            model: model name (default when None).
            stride: analyse every ``stride``-th frame.
            max_frames: most analysed frames; a longer clip raises :class:`ClipTooLongError`.
            max_seconds: longest clip in seconds; a longer clip raises :class:`ClipTooLongError`.
            max_pixels: largest frame in pixels (default ``settings.max_video_pixels``).
            annotate: also render the overlays on every analysed frame into a VP8 WebM (plays
                in browsers), encoded in memory.

        Returns:
            One result per analysed frame, with ``frame_index`` (index in the clip),
            ``timestamp_ms`` (from the container's frame rate) and per-track smoothing; the
            clip's frame rate; the annotated WebM's bytes when ``annotate``.

        Raises:
            UndecodableVideoError: not a decodable video, or no frames.
            ClipTooLongError: over ``max_frames`` or ``max_seconds``.
            FrameTooLargeError: frames of more than ``max_pixels`` (checked from the
                container before the first frame is decoded, and on every frame).
        """
        import cv2

        max_frames = max_frames or self.settings.max_video_frames
        max_seconds = max_seconds or self.settings.max_video_seconds
        # OpenCV keeps no reference to the stream object: hold it for the capture's lifetime,
        # or FFmpeg reads freed memory (segfault).
        stream_buf = io.BytesIO(data)
        cap = cv2.VideoCapture(stream_buf, cv2.CAP_FFMPEG, [])  # type: ignore[call-overload]
        try:
            if not cap.isOpened():
                raise UndecodableVideoError(
                    "FFmpeg could not open the clip (corrupt, truncated, or not a video)"
                )
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if not math.isfinite(fps) or fps <= 0 or fps > 1000:
                fps = 30.0
            max_px = max_pixels or self.settings.max_video_pixels
            _check_frame(
                int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), max_px
            )
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if count > 0:
                _check_clip(count, fps, stride, max_frames, max_seconds)
            results: list[FrameResult] = []
            sink = None
            if annotate:
                from emoar.io.video import MemoryWebMSink

                sink = MemoryWebMSink(fps / stride)  # in memory: no frame touches the disk
            with self._video_pool(self.model(model).name).borrow() as pipe:
                stream = pipe.new_stream()
                index = 0
                while True:
                    ok, frame = cap.read()
                    if not ok or frame is None:
                        break
                    _check_frame(frame.shape[1], frame.shape[0], max_px)
                    if index % stride == 0:
                        _check_clip(index + 1, fps, stride, max_frames, max_seconds)
                        r = pipe.process(
                            frame, stream=stream, frame_index=index, timestamp_ms=index * 1000.0 / fps
                        )
                        results.append(r)
                        if sink is not None:
                            sink.write(pipe.render(frame, r, stream=stream))
                    index += 1
                if index == 0:
                    raise UndecodableVideoError("the clip contains no decodable frames")
                webm = sink.close() if sink is not None else None
            return VideoAnalysis(results, fps, webm)
        finally:
            cap.release()
            stream_buf.close()


@dataclass(frozen=True)
class VideoAnalysis:
    """What :meth:`Engine.analyze_video` returns.

    Attributes:
        results: one result per analysed frame.
        fps: the clip's frame rate (frames per second).
        annotated_webm: the clip with the overlays as VP8 WebM bytes (None unless asked for).
    """

    results: list[FrameResult]
    fps: float
    annotated_webm: bytes | None = None


def _check_frame(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise FrameTooLargeError(
            f"its frames are {width}x{height} = {width * height / 1e6:.1f} megapixels; the limit is "
            f"{max_pixels / 1e6:.1f} megapixels. Downscale the clip (e.g. to 1920x1080) and try again"
        )


def _check_clip(frames: int, fps: float, stride: int, max_frames: int, max_seconds: float) -> None:
    seconds = frames / fps
    analysed = -(-frames // stride)
    if seconds > max_seconds + 1e-6:
        raise ClipTooLongError(
            f"the clip is at least {seconds:.1f} s long; the limit is {max_seconds:g} s. "
            "Trim it and try again"
        )
    if analysed > max_frames:
        raise ClipTooLongError(
            f"the clip has at least {analysed} frames to analyse; the limit is {max_frames}. "
            "Trim it or pass a larger ?stride=N"
        )


def _png_base64(img: npt.NDArray[np.uint8]) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover - encoding a uint8 BGR image does not fail
        raise RuntimeError("PNG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _shipped_models() -> list[Any]:
    """Registry entries, or [] when the package has no registry yet."""
    from emoar.models import list_models

    try:
        return list(list_models())
    except (FileNotFoundError, KeyError, ValueError) as e:
        logger.warning("No shipped model registry (%s)", e)
        return []
