"""Batch throughput: a sequential loop over ``Pipeline.process`` vs ``emoar batch`` on the local
engine (1 and 2 workers) and the Ray engine (1 and 2 actors), on the same clips and photos.

Each configuration runs in a fresh subprocess; peak memory is the largest sum of RSS over that
process and all its descendants (pool workers, Ray's raylet/GCS/actors), sampled every 50 ms.
Prints a markdown table, the engine overhead (wall time / sequential wall time at one worker),
and a paper estimate of what a 1,000-hour archive costs on N cores from the measured per-core
rate.

    .venv/bin/python benchmarks/batch.py                       # 4 clips x 20 s at 10 fps + 4 photos
    .venv/bin/python benchmarks/batch.py --seconds 5 --configs seq,local:1,ray:1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import SHARED_DATA, machine, photo_clip, table  # noqa: E402

PHOTOS = ["portrait.jpg", "portrait_2.jpg", "office_group.jpg", "stage_group.jpg"]


def _tree_rss_mb(root: int) -> float:
    """Sum of VmRSS (MiB) over ``root`` and its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _one(config: str, media: list[str], out_dir: str) -> dict[str, float]:
    """Run one configuration in this process; returns frames, faces and seconds."""
    t0 = time.perf_counter()
    if config == "seq":
        from emoar.io import VideoSource, read_image
        from emoar.pipeline import Pipeline, PipelineOptions

        frames = faces = 0
        with Pipeline.from_options(PipelineOptions()) as pipe:
            for path in media:
                if path.endswith(".mp4"):
                    with VideoSource(path) as src:
                        stream = pipe.new_stream()
                        for idx, ts, frame in src:
                            res = pipe.process(frame, stream=stream, frame_index=idx, timestamp_ms=ts)
                            frames += 1
                            faces += len(res.faces)
                else:
                    res = pipe.process(read_image(path))
                    frames += 1
                    faces += len(res.faces)
        dt = time.perf_counter() - t0
        return {"frames": frames, "faces": faces, "seconds": dt, "busy": dt}
    from emoar.batch.job import BatchConfig, run_batch
    from emoar.pipeline import PipelineOptions

    engine, _, n = config.partition(":")
    cfg = BatchConfig(
        files=sorted(media),
        out=os.path.join(out_dir, f"{engine}{n}.parquet"),
        options=PipelineOptions(),
        chunk_seconds=5.0,
        engine=engine,
        workers=int(n or 1),
    )
    rep = run_batch(cfg)
    return {
        "frames": rep.frames,
        "faces": rep.faces,
        "seconds": time.perf_counter() - t0,
        "busy": rep.task_seconds,
    }


def _measure(config: str, media: list[str], out_dir: str) -> dict[str, float]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}
    cmd = [sys.executable, __file__, "--one", config, "--media", json.dumps(media), "--out-dir", out_dir]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{config} failed (exit {proc.returncode})")
    res: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    res["peak_mb"] = peak[0]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each clip (s)")
    ap.add_argument("--fps", type=float, default=10.0, help="frame rate of the clips")
    ap.add_argument("--configs", default="seq,local:1,local:2,ray:1,ray:2")
    ap.add_argument("--archive-hours", type=float, default=1000.0)
    ap.add_argument("--archive-fps", type=float, default=25.0, help="frame rate of the archive's videos")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--media", help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, json.loads(args.media), args.out_dir)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        clips = [photo_clip(tmp, p, args.seconds, args.fps) for p in PHOTOS]
        media = clips + [os.path.join(SHARED_DATA, "photos", p) for p in PHOTOS]
        results = {c: _measure(c, media, tmp) for c in args.configs.split(",")}
    base = results.get("seq")
    rows = []
    for c, r in results.items():
        workers = 1 if c == "seq" else int(c.partition(":")[2] or 1)
        label = {"seq": "sequential Pipeline.process loop"}.get(c, f"--engine {c.split(':')[0]} ({workers})")
        rows.append(
            [
                label,
                int(r["frames"]),
                int(r["faces"]),
                f"{r['seconds']:.1f}",
                f"{r['frames'] / r['seconds']:.1f}",
                f"{r['faces'] / r['seconds']:.1f}",
                f"{r['peak_mb']:.0f}",
                f"{r['seconds'] / base['seconds']:.2f}" if base else "-",
            ]
        )
    print(f"Machine: {machine()}")
    print(
        f"Input: {len(clips)} clips x {args.seconds:g} s at {args.fps:g} fps (640x480, made from the shared photos) "
        f"+ {len(PHOTOS)} photos; engines with --chunk-seconds 5; wall time includes start-up and model loads.\n"
    )
    hdr = [
        "configuration",
        "frames",
        "faces",
        "wall s",
        "frames/s",
        "faces/s",
        "peak RSS MiB",
        "time / sequential",
    ]
    print(table(hdr, rows))

    one = results.get("local:1") or base
    if one:
        # steady state: a 1,000-hour job amortises start-up, so use analysis time per worker
        rate = one["frames"] / one["busy"]
        print(
            f"\nOn paper, from the measured {rate:.1f} frames/s per core (analysis time of the local engine's "
            "1 worker, 640x480; start-up amortised; assumes linear scaling over cores):"
        )
        est = []
        for label, fps in [(f"every frame ({args.archive_fps:g} fps)", args.archive_fps), ("--fps 1", 1.0)]:
            frames = args.archive_hours * 3600 * fps
            core_h = frames / rate / 3600
            est.append(
                [f"{args.archive_hours:g} h, {label}", f"{frames / 1e6:.1f} M", f"{core_h:,.0f}"]
                + [f"{core_h / n:,.1f}" for n in (16, 64, 256)]
            )
        print(table(["archive", "frames", "core-hours", "hours on 16 cores", "64 cores", "256 cores"], est))


if __name__ == "__main__":
    main()
