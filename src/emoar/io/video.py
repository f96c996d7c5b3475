"""Video files and webcams in, MP4 files out (OpenCV backends).

Example:
    >>> with VideoSource("in.mp4") as src, VideoSink("out.mp4", fps=src.fps) as sink:
    ...     for frame_index, timestamp_ms, frame in src:
    ...         sink.write(frame)
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import cv2
import numpy as np
import numpy.typing as npt

from emoar.io.errors import VideoOpenError, VideoWriteError
from emoar.io.pixels import to_bgr

__all__ = [
    "FOURCC_BY_EXTENSION",
    "MemoryWebMSink",
    "ThreadedSink",
    "VideoSink",
    "VideoSource",
    "fourcc_for",
    "prefetch",
]

_T = TypeVar("_T")
_END = object()

logger = logging.getLogger(__name__)

#: Frame rate assumed when a camera or container reports none (frames per second).
DEFAULT_FPS = 30.0


def _camera_index(source: str | os.PathLike[str] | int) -> int | None:
    if isinstance(source, bool):
        raise TypeError("source must be a path, URL or camera index, not a bool")
    if isinstance(source, int):
        return source
    if isinstance(source, str) and source.strip().isdigit():
        return int(source.strip())
    return None


def _open_camera_quietly(index: int, api_preference: int) -> cv2.VideoCapture:
    """Open a camera without OpenCV's backend-by-backend warnings on stderr when none exists.

    Our own :class:`VideoOpenError` explains the failure; OpenCV's log level is restored after.
    """
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    previous = log.getLogLevel() if log is not None else None
    if log is not None and previous is not None and previous > log.LOG_LEVEL_ERROR:
        log.setLogLevel(log.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(index, api_preference)
    finally:
        if log is not None and previous is not None:
            log.setLogLevel(previous)


class VideoSource:
    """Frames from a video file, a stream URL or a webcam, with their timestamps.

    Opening happens in the constructor, so a missing file or camera fails early; the first
    frame is read there too, so a file without decodable frames fails early as well. Use as a
    context manager (or call :meth:`close`). A source is iterated once.

    Timestamps: for files, ``frame_index * 1000 / fps`` (exact and reproducible); for cameras,
    wall-clock milliseconds since the first frame.

    Attributes:
        name: the file path, URL or ``"camera N"``.
        is_camera: True for a webcam index.
        fps: frames per second (as reported by the container or driver; ``DEFAULT_FPS`` when it
            reports none).
        frame_count: number of frames reported by the container, or None (cameras, streams,
            or containers that do not say). May be approximate for some codecs.
        resolution_wh: (width, height) of the frames in pixels.
    """

    def __init__(
        self, source: str | os.PathLike[str] | int, *, api_preference: int = cv2.CAP_ANY, start_frame: int = 0
    ) -> None:
        """Open a video file, URL (``rtsp://``, ``http://``) or camera.

        Args:
            source: file path, URL, or camera index (an int, or a string of digits like "0").
            api_preference: OpenCV capture backend (``cv2.CAP_*``); ``CAP_ANY`` lets OpenCV pick.
            start_frame: files: seek to this frame first (``CAP_PROP_POS_FRAMES``; exact for
                intra-coded and mp4v files, possibly a few frames off with B-frames); frame
                indices and timestamps then count from it.

        Raises:
            VideoOpenError: the file is missing, empty or not a video OpenCV can decode, it
                has no frames, or no camera exists at the index.
        """
        index = _camera_index(source)
        self.is_camera = index is not None
        self._cap: cv2.VideoCapture | None = None
        self._iterated = False
        self._t0: float | None = None
        if index is not None:
            self.name = f"camera {index}"
            cap = _open_camera_quietly(index, api_preference)
            if not cap.isOpened():
                cap.release()
                raise VideoOpenError(
                    f"No camera at index {index} (OpenCV could not open it). Check that a webcam is "
                    "connected and not in use by another program, or choose another index with --camera N."
                )
        else:
            name = os.fspath(cast("str | os.PathLike[str]", source))
            self.name = str(name)
            if "://" not in self.name:
                p = Path(name)
                if not p.exists():
                    raise VideoOpenError(f"Cannot open video '{name}': no such file")
                if p.is_dir():
                    raise VideoOpenError(f"Cannot open video '{name}': is a directory, not a video file")
                if p.stat().st_size == 0:
                    raise VideoOpenError(f"Cannot open video '{name}': the file is empty (0 bytes)")
            cap = cv2.VideoCapture(str(name), api_preference)
            if not cap.isOpened():
                cap.release()
                raise VideoOpenError(
                    f"Cannot open video '{name}': OpenCV could not open it (not a video, a corrupt file, "
                    "or a container/codec this OpenCV build cannot decode)"
                )
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(fps) or fps <= 0 or fps > 1000:
            logger.info(
                "%s reports no usable frame rate (%r); assuming %.0f fps", self.name, fps, DEFAULT_FPS
            )
            fps = DEFAULT_FPS
        self.fps = fps
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: int | None = count if count > 0 and not self.is_camera else None
        self.start_frame = start_frame if not self.is_camera else 0
        if self.start_frame > 0:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.start_frame)

        ok, frame = cap.read()
        if not ok or frame is None or frame.size == 0:
            self.close()
            if self.is_camera:
                raise VideoOpenError(f"No camera at index {index} (it opened but returned no frame)")
            if self.start_frame > 0:
                raise VideoOpenError(
                    f"Cannot read video '{self.name}' from frame {self.start_frame}: no frame there"
                )
            raise VideoOpenError(f"Cannot open video '{self.name}': it contains no decodable frames")
        #: Presentation time (ms, from the container) of the frame last yielded by iteration.
        self.pts_ms = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        self._first: npt.NDArray[np.uint8] | None = np.asarray(frame, dtype=np.uint8)
        self.resolution_wh: tuple[int, int] = (int(frame.shape[1]), int(frame.shape[0]))

    @property
    def duration_ms(self) -> float | None:
        """Duration in milliseconds from the frame count and fps, or None when unknown."""
        return None if self.frame_count is None else self.frame_count * 1000.0 / self.fps

    def __iter__(self) -> Iterator[tuple[int, float, npt.NDArray[np.uint8]]]:
        """Yield ``(frame_index, timestamp_ms, frame_bgr)``; frame_bgr is (H, W, 3) uint8.

        Raises:
            RuntimeError: on a second iteration or after :meth:`close`.
        """
        if self._iterated or self._cap is None:
            raise RuntimeError(f"VideoSource({self.name!r}) can be iterated once; open a new one")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[tuple[int, float, npt.NDArray[np.uint8]]]:
        index = self.start_frame
        frame = self._first
        self._first = None
        pts = self.pts_ms
        while frame is not None and self._cap is not None:
            self.pts_ms = pts
            if self.is_camera:
                now = time.monotonic()
                if self._t0 is None:
                    self._t0 = now
                timestamp_ms = (now - self._t0) * 1000.0
            else:
                timestamp_ms = index * 1000.0 / self.fps
            if frame.ndim != 3 or frame.shape[2] != 3:
                frame = to_bgr(frame, "drop")
            yield index, timestamp_ms, frame
            index += 1
            ok, nxt = self._cap.read() if self._cap is not None else (False, None)
            frame = np.asarray(nxt, dtype=np.uint8) if ok and nxt is not None else None
            if frame is not None and self._cap is not None:
                pts = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        if self.frame_count is not None and index != self.frame_count and not self.start_frame:
            logger.debug("%s: read %d frames, container reported %d", self.name, index, self.frame_count)

    def close(self) -> None:
        """Release the file or camera (idempotent)."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._first = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"VideoSource({self.name!r}, fps={self.fps:.2f}, frame_count={self.frame_count}, "
            f"resolution_wh={self.resolution_wh})"
        )


class _Sink:
    """``with`` for sinks: :meth:`close` on success, :meth:`abort` when the block raises."""

    def close(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


#: The codec each output extension gets (the FFmpeg inside opencv-python has no H.264 encoder:
#: ``.webm`` / VP8 is the one browsers play).
FOURCC_BY_EXTENSION = {".webm": "VP80", ".avi": "MJPG", ".mkv": "VP80"}


def fourcc_for(path: str | os.PathLike[str]) -> str:
    """The FourCC :class:`VideoSink` uses for ``path``: VP8 for ``.webm`` / ``.mkv`` (plays in
    browsers), MJPEG for ``.avi``, MPEG-4 Part 2 (``mp4v``) otherwise."""
    return FOURCC_BY_EXTENSION.get(Path(path).suffix.lower(), "mp4v")


class VideoSink(_Sink):
    """Writes BGR frames to a video file, atomically: MP4 (MPEG-4 Part 2, FourCC ``mp4v``) by
    default, VP8 WebM for a ``.webm`` path (what a browser's ``<video>`` plays), see
    :func:`fourcc_for`.

    Frames go to a temporary file next to the target; :meth:`close` checks that the file
    reads back with OpenCV and only then renames it to ``path``. If writing fails, or the
    ``with`` block raises, the temporary file is removed and nothing appears at ``path``.
    The frame size is fixed by ``resolution_wh`` or by the first frame.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        resolution_wh: tuple[int, int] | None = None,
        *,
        fourcc: str | None = None,
    ) -> None:
        """Prepare a writer (the file is opened on the first frame).

        Args:
            path: output file; its extension picks the container (``.mp4`` recommended).
                Missing parent folders are created.
            fps: frames per second of the output.
            resolution_wh: (width, height) in pixels; None = the first frame's size.
            fourcc: four-character codec code for ``cv2.VideoWriter_fourcc``; None picks it
                from the extension (:func:`fourcc_for`).

        Raises:
            ValueError: on a non-positive fps, a bad size or a FourCC that is not 4 characters.
        """
        if not fps > 0:
            raise ValueError(f"fps must be > 0 frames per second, got {fps}")
        if fourcc is None:
            fourcc = fourcc_for(path)
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {fourcc!r}")
        if resolution_wh is not None and (resolution_wh[0] < 1 or resolution_wh[1] < 1):
            raise ValueError(f"resolution_wh must be positive (width, height) in pixels, got {resolution_wh}")
        self.path = Path(path)
        self.fps = float(fps)
        self.fourcc = fourcc
        self.resolution_wh = resolution_wh
        self.frames_written = 0
        self._writer: cv2.VideoWriter | None = None
        self._tmp: Path | None = None
        self._closed = False

    def _open(self, resolution_wh: tuple[int, int]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.path.suffix or ".mp4"
        )
        os.close(fd)
        self._tmp = Path(tmp)
        writer = cv2.VideoWriter(
            str(self._tmp), cv2.VideoWriter.fourcc(*self.fourcc), self.fps, resolution_wh
        )
        if not writer.isOpened():
            writer.release()
            self._discard()
            raise VideoWriteError(
                f"Cannot write video '{self.path}': OpenCV could not open a {self.fourcc!r} writer at "
                f"{resolution_wh[0]}x{resolution_wh[1]} (is this OpenCV built with FFmpeg?)"
            )
        self._writer = writer
        self.resolution_wh = resolution_wh

    def write(self, frame_bgr: npt.NDArray[np.uint8]) -> None:
        """Append one frame.

        Args:
            frame_bgr: (H, W, 3) uint8 BGR frame (or (H, W) grayscale) of the sink's size.

        Raises:
            VideoWriteError: after close, or when the frame's size or dtype does not fit.
        """
        if self._closed:
            raise VideoWriteError(f"Cannot write to '{self.path}': the VideoSink is closed")
        frame = np.asarray(frame_bgr)
        if frame.dtype != np.uint8:
            raise VideoWriteError(f"Cannot write to '{self.path}': frames must be uint8, got {frame.dtype}")
        if frame.ndim == 2:
            frame = to_bgr(frame)
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise VideoWriteError(
                f"Cannot write to '{self.path}': frames must be (H, W, 3) BGR, got {frame.shape}"
            )
        size = (int(frame.shape[1]), int(frame.shape[0]))
        expected = self.resolution_wh or size
        if size != expected:
            raise VideoWriteError(
                f"Cannot write to '{self.path}': frame is {size[0]}x{size[1]} but the video is "
                f"{expected[0]}x{expected[1]}"
            )
        if self._writer is None:
            self._open(expected)
        assert self._writer is not None  # set by _open
        self._writer.write(np.ascontiguousarray(frame))
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file, check that it reads back, and move it into place.

        Returns:
            The output path.

        Raises:
            VideoWriteError: no frame was written, or the written file does not read back.
        """
        if self._closed:
            return self.path
        self._closed = True
        if self._writer is None or self.frames_written == 0:
            self.abort()
            raise VideoWriteError(f"Cannot write video '{self.path}': no frames were written")
        self._writer.release()
        self._writer = None
        assert self._tmp is not None
        cap = cv2.VideoCapture(str(self._tmp))
        try:
            ok, frame = cap.read() if cap.isOpened() else (False, None)
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        finally:
            cap.release()
        if not ok or frame is None:
            self._discard()
            raise VideoWriteError(
                f"Cannot write video '{self.path}': the {self.fourcc!r} file OpenCV wrote does not read back"
            )
        if count and count != self.frames_written:
            logger.warning(
                "%s: wrote %d frames but the file reports %d", self.path, self.frames_written, count
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self._tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(self._tmp, self.path)
        self._tmp = None
        logger.debug("wrote %s (%d frames, %.2f fps)", self.path, self.frames_written, self.fps)
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the partial file; nothing is left at ``path``."""
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._discard()

    def _discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __del__(self) -> None:  # never leave a temp file behind if the sink is dropped unclosed
        if getattr(self, "_tmp", None) is not None and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.abort()


def prefetch(items: Iterable[_T], depth: int = 4) -> Iterator[_T]:
    """Iterate ``items`` (e.g. a :class:`VideoSource`) from a background thread, up to ``depth``
    ahead: decoding overlaps the analysis (OpenCV decodes without holding the GIL). An exception
    of the producer is raised here, at the item where it happened; leaving the loop early stops
    the thread.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    worker = threading.Thread(target=produce, name="emoar-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        worker.join(timeout=5)


class MemoryWebMSink:
    """Encodes BGR frames to a VP8 WebM held in memory (nothing touches the disk), with PyAV
    (``av``, in the ``web`` extra; its wheels carry FFmpeg with libvpx). What the web app sends
    back for ``annotate=true`` clips: a file every browser's ``<video>`` plays.

    Use ``write`` per frame, then ``close()`` returns the bytes. The frame size is fixed by the
    first frame (even width and height: odd sizes are cropped by one pixel for 4:2:0).
    """

    def __init__(self, fps: float, *, bitrate: int = 1_500_000) -> None:
        """Args:
            fps: frames per second of the output.
            bitrate: target bits per second.

        Raises:
            ValueError: fps is not positive.
            ImportError: PyAV is not installed.
        """
        if not fps > 0:
            raise ValueError(f"fps must be > 0 frames per second, got {fps}")
        try:
            import av
        except ImportError as e:
            raise ImportError("in-memory WebM encoding needs PyAV: pip install 'emoar[web]'") from e
        self._av = av
        self.fps = float(fps)
        self.bitrate = int(bitrate)
        self.frames_written = 0
        self._buf = io.BytesIO()
        self._out: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self._data: bytes | None = None

    def _open(self, w: int, h: int) -> None:
        from fractions import Fraction

        self._out = self._av.open(self._buf, mode="w", format="webm")
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._out.add_stream("libvpx", rate=rate)
        self._stream.width, self._stream.height, self._stream.pix_fmt = w, h, "yuv420p"
        self._stream.bit_rate = self.bitrate
        self._stream.options = {"deadline": "realtime", "cpu-used": "8"}
        self._size = (w, h)

    def write(self, frame_bgr: npt.NDArray[np.uint8]) -> None:
        """Append one ``HxWx3`` BGR uint8 frame (the first frame's size)."""
        if self._data is not None:
            raise VideoWriteError("MemoryWebMSink is closed")
        h, w = frame_bgr.shape[:2]
        w2, h2 = w - w % 2, h - h % 2
        if self._size is None:
            if w2 < 2 or h2 < 2:
                raise VideoWriteError(f"frame of {w}x{h} pixels is too small to encode")
            self._open(w2, h2)
        elif (w2, h2) != self._size:
            raise VideoWriteError(f"frame is {w}x{h}, the clip is {self._size[0]}x{self._size[1]}")
        vf = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr[:h2, :w2]), format="bgr24")
        for packet in self._stream.encode(vf):
            self._out.mux(packet)
        self.frames_written += 1

    def close(self) -> bytes:
        """Flush the encoder; the WebM bytes (idempotent).

        Raises:
            VideoWriteError: no frame was written.
        """
        if self._data is None:
            if self._out is None:
                raise VideoWriteError("no frames were written")
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._out.close()
            self._data = self._buf.getvalue()
            self._buf = io.BytesIO()
        return self._data


class ThreadedSink(_Sink):
    """A :class:`VideoSink` that encodes in a background thread (up to ``depth`` frames queued),
    so encoding overlaps the analysis of the next frames. Same methods; an encoding error is
    raised by the next :meth:`write` or by :meth:`close`.
    """

    def __init__(self, sink: VideoSink, depth: int = 4) -> None:
        self.sink = sink
        self.path = sink.path
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emoar-encode", daemon=True)
        self._thread.start()

    @property
    def frames_written(self) -> int:
        return self.sink.frames_written

    def _run(self) -> None:
        while True:
            frame = self._q.get()
            if frame is _END:
                return
            if self._error is None:
                try:
                    self.sink.write(frame)
                except BaseException as e:
                    self._error = e

    def write(self, frame_bgr: npt.NDArray[np.uint8]) -> None:
        """Queue one frame (blocks while ``depth`` frames wait).

        Raises:
            VideoWriteError: an earlier frame could not be written.
        """
        if self._error is not None:
            raise self._error
        self._q.put(frame_bgr)

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._q.put(_END)
            self._thread.join()

    def close(self) -> Path:
        """Write what is queued, then :meth:`VideoSink.close`."""
        self._finish()
        if self._error is not None:
            self.sink.abort()
            raise self._error
        return self.sink.close()

    def abort(self) -> None:
        """Drop what is queued and remove the partial file."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._q.get_nowait()
        self._finish()
        self.sink.abort()
