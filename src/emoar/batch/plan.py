"""The planner: command-line inputs -> files -> tasks (whole images, video time ranges), and the
resume manifest. Plain Python and OpenCV; no engine imports.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "VIDEO_EXTENSIONS",
    "InputError",
    "Manifest",
    "Task",
    "expand_inputs",
    "media_kind",
    "plan_tasks",
]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)
"""File name endings treated as videos (lower case); everything else is read as an image."""

Media = Literal["image", "video"]


class InputError(ValueError):
    """An input on the command line matches nothing (a missing path, a glob without matches)."""


def _image_extensions() -> frozenset[str]:
    from emoar.io import IMAGE_EXTENSIONS

    return frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in IMAGE_EXTENSIONS)


def media_kind(path: str | os.PathLike[str]) -> Media:
    """``"video"`` for the :data:`VIDEO_EXTENSIONS`, else ``"image"``."""
    return "video" if Path(path).suffix.lower() in VIDEO_EXTENSIONS else "image"


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Files named by ``inputs``: files as given, folders searched recursively for images and
    videos, globs (``*``, ``?``, ``[``, ``**``) expanded. Sorted, de-duplicated absolute paths.

    Raises:
        InputError: an input that does not exist or a glob/folder that matches no media file;
            the message names each one.
    """
    known = _image_extensions() | VIDEO_EXTENSIONS
    found: set[str] = set()
    problems: list[str] = []

    def from_dir(d: Path) -> list[str]:
        return [
            str(p.resolve())
            for p in d.rglob("*")
            if p.is_file() and p.suffix.lower() in known and not p.name.startswith(".")
        ]

    for item in inputs:
        p = Path(item)
        if any(c in item for c in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            files: list[str] = []
            for m in matches:
                mp = Path(m)
                files.extend(from_dir(mp) if mp.is_dir() else [str(mp.resolve())] if mp.is_file() else [])
            if not files:
                problems.append(f"'{item}': the pattern matches no files")
            found.update(files)
        elif p.is_dir():
            files = from_dir(p)
            if not files:
                problems.append(f"'{item}': the folder holds no image or video files")
            found.update(files)
        elif p.exists():
            found.add(str(p.resolve()))  # named explicitly: analysed (or reported) whatever it is
        else:
            problems.append(f"'{item}': no such file or folder")
    if problems:
        raise InputError(
            "; ".join(problems) + ". Check the paths (quote globs so the shell does not expand them)."
        )
    return sorted(found)


@dataclass(frozen=True)
class Task:
    """One unit of work: a whole image, or the frames ``[start_frame, end_frame)`` of a video.

    Attributes:
        source: absolute path of the file.
        media: ``"image"`` or ``"video"``.
        chunk: index of the time range within the file (0 for images and unsplit videos).
        start_frame: first frame index of the range (0 for images).
        end_frame: one past the last frame index, or -1 for "to the end of the file".
        fps: the container's frame rate (0 for images); timestamps are ``frame * 1000 / fps``.
        key: stable id of the task (file identity, range, sampling and options), used by the
            manifest to skip finished work on ``--resume``.
        error: set when planning already failed (the file cannot be opened); the analyser then
            reports it without opening the file again.
    """

    source: str
    media: Media
    chunk: int
    start_frame: int
    end_frame: int
    fps: float
    key: str
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON and Ray rows)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        """Inverse of :meth:`to_dict` (extra keys ignored)."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def _file_id(path: str) -> str:
    try:
        st = os.stat(path)
        return f"{path}|{st.st_size}|{st.st_mtime_ns}"
    except OSError:
        return f"{path}|missing"


def _key(*parts: Any) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:20]


def probe_video(path: str) -> tuple[float, int | None]:
    """``(fps, frame_count)`` of a video (frame_count None when the container does not say).

    Raises:
        emoar.io.VideoOpenError: the file cannot be opened or has no decodable frame.
    """
    from emoar.io import VideoSource

    with VideoSource(path) as src:
        return src.fps, src.frame_count


def plan_tasks(files: Iterable[str], *, chunk_seconds: float | None = None, settings: str = "") -> list[Task]:
    """Split ``files`` into tasks.

    Args:
        files: absolute paths (from :func:`expand_inputs`).
        chunk_seconds: split videos into ranges of this many seconds (None/0: one task per video).
            A range boundary is a frame index, so the same frames are analysed however a file is
            split (sampling by ``--every-n-frames``/``--fps`` uses the global frame index).
        settings: a string describing the analysis settings (model, sampling, ...); part of
            every key, so changed settings never reuse old results.

    Returns:
        Tasks in (source, chunk) order. Files that cannot be opened become a task with
        ``error`` set (reported as an error row later, never raised).
    """
    tasks: list[Task] = []
    for f in files:
        fid = _file_id(f)
        if media_kind(f) == "image":
            tasks.append(Task(f, "image", 0, 0, -1, 0.0, _key(fid, settings, 0)))
            continue
        try:
            fps, count = probe_video(f)
        except Exception as e:  # noqa: BLE001 - any open failure is reported per file
            tasks.append(Task(f, "video", 0, 0, -1, 0.0, _key(fid, settings, "err"), error=_msg(e)))
            continue
        step = round(chunk_seconds * fps) if chunk_seconds and chunk_seconds > 0 else 0
        if step <= 0 or count is None or count <= step:
            tasks.append(Task(f, "video", 0, 0, -1, fps, _key(fid, settings, 0, -1)))
            continue
        starts = list(range(0, count, step))
        for i, s in enumerate(starts):
            end = -1 if i == len(starts) - 1 else s + step  # the last range reads to the real end
            tasks.append(Task(f, "video", i, s, end, fps, _key(fid, settings, s, end)))
    return tasks


def _msg(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


class Manifest:
    """The record of finished tasks beside the results (``<out>.batch/manifest.jsonl``).

    One JSON line per finished task: its key, source, chunk and status (``ok`` or ``error``).
    Lines are appended after the task's rows are on disk, so a killed run loses at most the
    tasks in flight; ``--resume`` skips tasks whose key is recorded ``ok`` (failed ones are
    tried again).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def done(self) -> dict[str, dict[str, Any]]:
        """Key -> entry for tasks recorded ``ok`` (a torn last line is ignored)."""
        out: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return out
        for line in self.path.read_text().splitlines():
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            if e.get("status") == "ok":
                out[e["key"]] = e
            else:
                out.pop(e.get("key", ""), None)
        return out

    def record(self, task: Task, status: str, **extra: Any) -> None:
        """Append one entry (flushed and fsynced)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"key": task.key, "source": task.source, "chunk": task.chunk, "status": status, **extra}
        torn = False  # a run killed mid-line: start on a fresh line
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as r:
                r.seek(-1, os.SEEK_END)
                torn = r.read(1) != b"\n"
        with open(self.path, "a") as f:
            f.write(("\n" if torn else "") + json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
