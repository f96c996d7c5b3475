"""Pipeline speed and per-stage times on 640x480 clips: one real face, and a group of 11.

Usage: python benchmarks/speed.py [--frames 150] [--model default] [--configs yunet:1,yunet:5,blazeface:5]
       [--update-registry]

Prints a markdown table: frames per second for the whole pipeline (detect or follow + align +
classify + track + smooth + render, no video I/O; ``benchmarks/video_e2e.py`` times the whole
``emoar video`` process) with 1 thread, per-stage median latency, the classifier's latency per
face alone and peak memory, for each ``detector:detect_every`` configuration. The one-face clip is
made from ``../shared/data/photos/portrait.jpg`` and the group clip from ``stage_group.jpg`` (11
faces of ~30 px) with :func:`emoar.samples.make_demo_video` (slow drift and zoom), so the numbers
are reproducible on any machine that has the shared photos.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, parse_configs, photo_clip, table  # noqa: E402


def run_one(
    threads: int, frames: int, model: str, clip: str, detector: str = "yunet", every: int = 5
) -> dict[str, float]:
    """Measure in a fresh process so thread settings (OpenMP) apply from the start."""
    code = f"""
import json, os, time, statistics, resource
os.environ.setdefault("OMP_NUM_THREADS", "{threads}")
import numpy as np
from emoar.io import VideoSource
from emoar.pipeline import Pipeline, PipelineOptions
import dataclasses
opts = PipelineOptions.create(model={model!r}, num_threads={threads}, detector={detector!r})
opts = opts.replace(detector=dataclasses.replace(opts.detector, detect_every={every}))
pipe = Pipeline.from_options(opts)
frames = [f for _, _, f in VideoSource({clip!r})][:{frames}]
stream = pipe.new_stream()
for f in frames[:10]:  # warm-up
    pipe.render(f, pipe.process(f, stream=stream), stream=stream)
stream = pipe.new_stream()
stages = {{"detect": [], "align": [], "classify": [], "track": [], "render": []}}
faces = 0
t0 = time.perf_counter()
for i, f in enumerate(frames):
    r = pipe.process(f, stream=stream, frame_index=i, timestamp_ms=i * 1000 / 15)
    pipe.render(f, r, stream=stream)
    faces += len(r.faces)
    for k in stages:
        stages[k].append(r.speed_ms.get(k, 0.0))
dt = time.perf_counter() - t0
crop = np.zeros((1, *pipe.classifier.input_size), np.uint8) + 128
ts = []
for _ in range(300):
    a = time.perf_counter(); pipe.classifier.classify(crop); ts.append((time.perf_counter() - a) * 1e3)
out = {{"fps": len(frames) / dt, "faces_per_frame": faces / len(frames), "classify_per_face_ms": statistics.median(ts),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
out.update({{k + "_ms": statistics.median(v) for k, v in stages.items()}})
print(json.dumps(out))
"""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--model", default="default")
    ap.add_argument(
        "--configs", default="yunet:1,yunet:5,blazeface:5", help="detector:detect_every, comma-separated"
    )
    ap.add_argument("--update-registry", action="store_true", help="store latency in models/registry.json")
    a = ap.parse_args()
    configs = parse_configs(a.configs)
    rows = []
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip_name, photo in (("one face", "portrait.jpg"), ("11 faces", "stage_group.jpg")):
            clip = photo_clip(tmp, photo, a.frames / 15 + 1, 15)
            for det, every in configs:
                r = run_one(1, a.frames, a.model, str(clip), det, every)
                if clip_name == "one face" and (det, every) == configs[-1]:
                    results[1] = r
                rows.append(
                    [
                        clip_name,
                        det,
                        every,
                        f"{r['fps']:.1f}",
                        f"{r['faces_per_frame']:.2f}",
                        f"{r['detect_ms']:.2f}",
                        f"{r['align_ms']:.2f}",
                        f"{r['classify_ms']:.2f}",
                        f"{r['track_ms']:.2f}",
                        f"{r['render_ms']:.2f}",
                        f"{r['classify_per_face_ms']:.2f}",
                        f"{r['peak_rss_mb']:.0f}",
                    ]
                )
    print(f"# emoar speed: 640x480 clips, {a.frames} frames, model {a.model}, 1 thread")
    print(f"# machine: {machine()}")
    print(
        f"# command: python benchmarks/speed.py --frames {a.frames} --model {a.model} --configs {a.configs}\n"
    )
    print(
        table(
            [
                "clip",
                "detector",
                "detect every",
                "pipeline fps",
                "faces/frame",
                "detect/follow ms",
                "align ms",
                "classify ms",
                "track+smooth ms",
                "render ms",
                "classifier ms/face",
                "peak RSS MB",
            ],
            rows,
        )
    )
    if a.update_registry:
        import importlib.resources

        from emoar.models import default_model_name

        name = default_model_name() if a.model == "default" else a.model
        reg_path = importlib.resources.files("emoar.models").joinpath("registry.json")
        reg = json.loads(reg_path.read_text())
        for m in reg["models"]:
            if m["name"] == name:
                m["metrics"]["latency_ms_1thread"] = round(results[1]["classify_per_face_ms"], 2)
                m["metrics"]["pipeline_fps_1thread"] = round(results[1]["fps"], 1)
                m["metrics"]["latency_measured_by"] = "python benchmarks/speed.py --update-registry"
        open(str(reg_path), "w").write(json.dumps(reg, indent=1) + "\n")


if __name__ == "__main__":
    main()
