"""Shared helpers for the benchmark scripts (tables, machine description)."""

from __future__ import annotations

import os
import platform
import resource
import sys
from collections.abc import Callable, Sequence
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("EMOAR_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
FER_CSV = os.path.join(SHARED_DATA, "fer2013", "fer2013.csv.gz")


def machine() -> str:
    """One line describing the CPU the figures were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-markdown table."""

    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def run_threads(worker: Callable[[], None], n: int) -> float:
    """Run ``worker`` in ``n`` threads at once; wall time in seconds until all have finished."""
    import threading
    import time

    threads = [threading.Thread(target=worker) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) of ``values`` (NaN when there are fewer than two)."""
    import statistics

    if len(values) < 2:
        return float("nan"), float("nan")
    q = statistics.quantiles(values, n=100)
    return q[49], q[94]


def start_emoar_serve(port: int, env: dict[str, str] | None = None) -> Any:
    """``emoar serve`` (the real CLI) on a loopback port, with the rate limit off; returns the
    process once ``/v1/models`` answers (SystemExit when it does not start within 120 s)."""
    import subprocess
    import time

    import httpx

    full = {**os.environ, "EMOAR_RATE_LIMIT_PER_MINUTE": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "emoar.cli", "serve", "--port", str(port)],
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise SystemExit(f"emoar serve exited: {err}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("emoar serve did not start within 120 s")


def photo_clip(tmp: str, photo: str, seconds: float, fps: float) -> str:
    """A 640x480 demo clip (``emoar.samples.make_demo_video``: slow drift and zoom) of one of the
    shared photos, written in ``tmp``; SystemExit when the photo is missing."""
    import cv2

    from emoar.samples import make_demo_video

    img = cv2.imread(os.path.join(SHARED_DATA, "photos", photo))
    if img is None:
        raise SystemExit(f"missing {photo} in {SHARED_DATA}/photos")
    path = os.path.join(tmp, os.path.splitext(photo)[0] + ".mp4")
    make_demo_video(path, images=[img], seconds=seconds, fps=fps)
    return path


def parse_configs(text: str) -> list[tuple[str, int]]:
    """``"yunet:1,blazeface:5"`` -> ``[("yunet", 1), ("blazeface", 5)]`` (detector:detect_every)."""
    out = []
    for item in text.split(","):
        name, _, every = item.partition(":")
        out.append((name.strip(), int(every)))
    return out
