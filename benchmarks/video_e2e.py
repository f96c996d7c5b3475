"""Whole-process speed of `emoar video` (startup included), side by side with `fer`'s pipeline.

Usage:
    python benchmarks/video_e2e.py [--configs yunet:1,yunet:5,blazeface:5] [--frames 300] [--peers]

Makes two 640x480 clips with `emoar.samples.make_demo_video` (the photos drift and zoom a
little, eased): one real face (``../shared/data/photos/portrait.jpg``) and a group
(``stage_group.jpg``, 11 faces), then times the real CLI, ``python -m emoar.cli video CLIP --out
OUT.mp4`` with one thread (``OMP_NUM_THREADS=1``), from launch to exit, for each
``detector:detect_every`` configuration: fps = frames / wall time, peak RSS of the process (``wait4``), the
tracks it reports and the share of frames detected in full. With ``--peers`` the same clips go
through `fer`'s own pipeline (``FER(mtcnn=False)`` = Haar cascade + its mini-Xception,
``FER(mtcnn=True)`` = facenet-pytorch's MTCNN) reading and writing the video with OpenCV, in the
separate venv that ``benchmarks/peers/setup_fer.sh`` creates (TensorFlow is no dependency of
emoar); each row prints its ratio to emoar's default. ``--floor`` adds two rows that bound
what any analysis can reach on this machine: the same interpreter starting and importing
``emoar.cli`` then exiting, and that plus decoding the clip and encoding every frame with the
reader and writer ``emoar video`` uses (``VideoSource`` + ``prefetch``, ``ThreadedSink`` over
``VideoSink``), with no detection, classification or drawing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REPO, machine, parse_configs, photo_clip, table  # noqa: E402

PEER_PY = os.path.join(REPO, "benchmarks", ".venv-fer", "bin", "python")
PEER_SCRIPT = os.path.join(REPO, "benchmarks", "peers", "fer_video.py")


def make_clips(tmp: str, frames: int) -> dict[str, str]:
    return {
        name: photo_clip(tmp, photo, frames / 30, 30)
        for name, photo in (("one face", "portrait.jpg"), ("group (11 faces)", "stage_group.jpg"))
    }


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS MB and stderr of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0, err


def emoar_row(clip: str, frames: int, detector: str, every: int, tmp: str) -> dict[str, float | str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = os.path.join(tmp, "out.mp4")
    cmd = [
        sys.executable,
        "-m",
        "emoar.cli",
        "-q",
        "video",
        clip,
        "--out",
        out,
        "--detector",
        detector,
        "--detect-every",
        str(every),
    ]
    wall, rss, err = timed(cmd, env)
    m = re.search(r"(\d+) frames, (\d+) track", err)
    full = re.search(r"detected in full on (\d+) of", err)
    return {
        "fps": frames / wall,
        "wall": wall,
        "rss": rss,
        "tracks": m.group(2) if m else "?",
        "full": f"{int(full.group(1)) / frames:.0%}" if full else "100%",
    }


FLOOR_IO = """
import sys
import emoar.cli  # noqa: F401  (the same imports as `emoar video`)
from emoar.io.video import ThreadedSink, VideoSink, VideoSource, prefetch
src = VideoSource(sys.argv[1])
with ThreadedSink(VideoSink(sys.argv[2], fps=src.fps, resolution_wh=src.resolution_wh)) as sink:
    for _, _, frame in prefetch(src):
        sink.write(frame)
"""


def floor_rows(clip: str, frames: int, tmp: str) -> list[list[str]]:
    """Start-up alone, and start-up + decode + encode with no analysis (1 thread)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    rows = []
    for what, cmd, has_frames in (
        ("floor: start, import emoar.cli, exit", [sys.executable, "-c", "import emoar.cli"], False),
        (
            "floor: start + decode + encode, no analysis",
            [sys.executable, "-c", FLOOR_IO, clip, os.path.join(tmp, "floor.mp4")],
            True,
        ),
    ):
        wall, rss, _ = timed(cmd, env)
        fps = f"{frames / wall:.1f}" if has_frames else "-"
        rows.append([what, fps, f"{wall:.2f}", "-", "-", f"{rss:.0f}", "-"])
    return rows


def peer_row(clip: str, frames: int, mtcnn: bool, tmp: str) -> dict[str, float | str] | None:
    if not os.path.exists(PEER_PY):
        return None
    out = os.path.join(tmp, "fer_out.mp4")
    cmd = [PEER_PY, PEER_SCRIPT, clip, out] + (["--mtcnn"] if mtcnn else [])
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        TF_NUM_INTEROP_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
    )
    try:
        wall, rss, err = timed(cmd, env)
    except SystemExit as e:
        print(f"# fer (mtcnn={mtcnn}) did not run: {str(e)[-300:]}", file=sys.stderr)
        return None
    info = json.loads(err.strip().splitlines()[-1])
    return {
        "fps": frames / wall,
        "wall": wall,
        "rss": rss,
        "tracks": "-",
        "full": "100%",
        "faces": info["faces"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument(
        "--configs", default="yunet:1,yunet:5,blazeface:5", help="detector:detect_every, comma-separated"
    )
    ap.add_argument("--peers", action="store_true", help="add fer's pipeline (benchmarks/peers/setup_fer.sh)")
    ap.add_argument("--floor", action="store_true", help="add start-up and video I/O rows with no analysis")
    a = ap.parse_args()
    configs = parse_configs(a.configs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = make_clips(tmp, a.frames)
        for name, clip in clips.items():
            for det, every in configs:
                r = emoar_row(clip, a.frames, det, every, tmp)
                rows.append(
                    [
                        name,
                        f"emoar video --detector {det} --detect-every {every}",
                        f"{r['fps']:.1f}",
                        f"{r['wall']:.2f}",
                        r["full"],
                        r["tracks"],
                        f"{r['rss']:.0f}",
                        "-",
                    ]
                )
            if a.floor:
                rows.extend([name, *r] for r in floor_rows(clip, a.frames, tmp))
            if a.peers:
                for mtcnn in (False, True):
                    p = peer_row(clip, a.frames, mtcnn, tmp)
                    if p is None:
                        continue
                    best = max(float(x[2]) for x in rows if x[0] == name and x[1].startswith("emoar"))
                    rows.append(
                        [
                            name,
                            f"fer 25.10.3 FER(mtcnn={mtcnn})",
                            f"{p['fps']:.1f}",
                            f"{p['wall']:.2f}",
                            "100%",
                            "-",
                            f"{p['rss']:.0f}",
                            f"{best / float(p['fps']):.1f}x",
                        ]
                    )
    print(f"\n{machine()}; {a.frames}-frame 640x480 clips at 30 fps; whole process, 1 thread\n")
    print(
        table(
            [
                "clip",
                "pipeline",
                "fps",
                "wall s",
                "frames detected in full",
                "tracks",
                "peak RSS MB",
                "emoar's best fps / this",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
