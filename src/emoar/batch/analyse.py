"""The chunk analyser: one :class:`~emoar.batch.plan.Task` -> rows, over a loaded
:class:`~emoar.pipeline.Pipeline`. Plain functions (no engine imports), shared by the local and
the Ray engine. Rows are the ``emoar video --csv`` contract (built by the same
:meth:`emoar.types.FrameResult.csv_rows`) plus ``source``, ``media``, ``chunk`` and
``frame_pts_ms``.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emoar.batch.plan import Task

__all__ = ["BATCH_PREFIX", "Sampling", "TaskResult", "analyse_task", "batch_columns", "selected"]

logger = logging.getLogger(__name__)

BATCH_PREFIX = ("source", "media", "chunk")
"""Columns before the ``emoar video --csv`` ones; ``frame_pts_ms`` follows ``timestamp_ms``."""


def batch_columns(labels: tuple[str, ...] | list[str]) -> list[str]:
    """Column names of the batch results table for a model with ``labels``."""
    from emoar.types import csv_header

    head = csv_header(labels)
    i = head.index("timestamp_ms") + 1
    return [*BATCH_PREFIX, *head[:i], "frame_pts_ms", *head[i:]]


@dataclass(frozen=True)
class Sampling:
    """Which video frames are analysed (images: always their one frame).

    Attributes:
        every_n_frames: analyse frames whose index is a multiple of this (1 = every frame).
        fps: analyse about this many frames per second of video instead (None: use
            every_n_frames); frame ``i`` is taken when ``floor(i * fps / video_fps)`` steps.
    """

    every_n_frames: int = 1
    fps: float | None = None

    def __post_init__(self) -> None:
        if self.every_n_frames < 1:
            raise ValueError(f"--every-n-frames must be >= 1, got {self.every_n_frames}")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"--fps must be > 0, got {self.fps}")


def selected(index: int, video_fps: float, sampling: Sampling) -> bool:
    """Whether frame ``index`` is analysed. Depends on the global index only, so splitting a
    file into chunks never changes which frames are analysed."""
    if sampling.fps is None or sampling.fps >= video_fps:
        return index % sampling.every_n_frames == 0
    r = sampling.fps / video_fps
    return index == 0 or int(index * r) != int((index - 1) * r)


@dataclass
class TaskResult:
    """What analysing one task produced.

    Attributes:
        key, source, media, chunk: from the task.
        rows: one list per face, in :func:`batch_columns` order.
        frames: frames analysed.
        seconds: wall time of the analysis in seconds.
        error: ``"Type: message"`` when the task failed (rows then hold what was analysed
            before the failure).
        labels: the model's labels (the probability columns' order).
    """

    key: str
    source: str
    media: str
    chunk: int
    rows: list[list[Any]] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    labels: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (floats round-trip exactly)."""
        d = dict(self.__dict__)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "labels": tuple(d.get("labels", ()))})


def _video_frames(task: Task) -> Iterator[tuple[int, float, float, npt.NDArray[np.uint8]]]:
    """``(frame_index, timestamp_ms, pts_ms, frame)`` for the task's range, one frame at a time
    (never the whole video in memory); a range that starts past the last frame is empty."""
    from emoar.io import VideoOpenError, VideoSource

    try:
        src = VideoSource(task.source, start_frame=task.start_frame)
    except VideoOpenError:
        if task.start_frame > 0:  # the container's frame count overstated its frames
            return
        raise
    with src:
        fps = task.fps or src.fps
        for index, _, frame in src:
            if task.end_frame >= 0 and index >= task.end_frame:
                break
            yield index, index * 1000.0 / fps, src.pts_ms, frame


def _annotated_name(task: Task, suffix: str) -> str:
    tag = hashlib.sha1(task.source.encode()).hexdigest()[:6]
    chunk = f"_c{task.chunk}" if task.media == "video" else ""
    return f"{Path(task.source).stem}_{tag}{chunk}_emoar{suffix}"


def analyse_task(
    pipe: Any, task: Task, sampling: Sampling = Sampling(), *, save_annotated: str | None = None
) -> TaskResult:
    """Analyse one task with a loaded pipeline; never raises for a bad file.

    Args:
        pipe: a :class:`emoar.pipeline.Pipeline` (loaded once per worker by the engines).
        task: the image or video range.
        sampling: which video frames to analyse.
        save_annotated: a folder for annotated copies (``<stem>_<hash>_emoar.jpg`` per image,
            ``<stem>_<hash>_c<chunk>_emoar.mp4`` per video range); None stores no frames.

    Returns:
        The rows (images: ``track_id`` empty, ``frame`` 0; videos: track ids restart in
        every chunk) and, for an unreadable or corrupt file, ``error``.
    """
    import cv2

    labels = tuple(pipe.labels)
    res = TaskResult(task.key, task.source, task.media, task.chunk, labels=labels)
    t0 = time.perf_counter()
    prefix = [task.source, task.media, task.chunk]
    if task.error:
        res.error = task.error
        return res
    try:
        if task.media == "image":
            from emoar.io import read_image

            frame = read_image(task.source)
            fr = pipe.process(frame, image=Path(task.source).name)
            res.frames = 1
            res.rows = [[*prefix, r[0], r[1], 0.0, *r[2:]] for r in fr.csv_rows(labels)]
            if save_annotated:
                out = Path(save_annotated) / _annotated_name(task, ".jpg")
                cv2.imwrite(str(out), pipe.render(frame, fr), [cv2.IMWRITE_JPEG_QUALITY, 92])
        else:
            stream = pipe.new_stream()
            sink = None
            try:
                for idx, ts, pts, frame in _video_frames(task):
                    if not selected(idx, task.fps or 30.0, sampling):
                        continue
                    fr = pipe.process(frame, stream=stream, frame_index=idx, timestamp_ms=ts)
                    res.frames += 1
                    pts_r = round(pts, 1)
                    res.rows.extend([*prefix, r[0], r[1], pts_r, *r[2:]] for r in fr.csv_rows(labels))
                    if save_annotated:
                        if sink is None:
                            from emoar.io import VideoSink

                            h, w = frame.shape[:2]
                            out_fps = min(task.fps or 30.0, sampling.fps or 1e9) / (
                                1 if sampling.fps else sampling.every_n_frames
                            )
                            sink = VideoSink(
                                Path(save_annotated) / _annotated_name(task, ".mp4"),
                                fps=max(out_fps, 1.0),
                                resolution_wh=(w, h),
                            )
                        sink.write(pipe.render(frame, fr, stream=stream))
            finally:
                if sink is not None:
                    sink.close()
            if res.frames == 0 and task.start_frame == 0:
                raise ValueError("no frame could be decoded")
    except Exception as e:  # noqa: BLE001 - a bad file becomes an error row, never a crash
        logger.info("%s (chunk %d) failed: %s", task.source, task.chunk, e)
        res.error = f"{type(e).__name__}: {e}"
    res.seconds = time.perf_counter() - t0
    return res
