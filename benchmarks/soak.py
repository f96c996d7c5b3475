"""Soak test of ``emoar serve``: thousands of ``POST /v1/analyze`` requests, then a long websocket
stream at 30 fps, with the server's resident memory sampled throughout.

Starts ``emoar serve`` (the real CLI, default settings except the rate limit, which is off) on a
free loopback port, warms it up, then

1. sends ``--requests`` analyze requests (a 640x480 JPEG with one real face) from
   ``--concurrency`` client threads, reading the server's RSS every 1,000 requests;
2. opens ``WS /v1/stream`` and sends a frame every 1/30 s for ``--ws-seconds`` (the server drops
   frames it cannot keep up with and says so in each result), reading RSS every minute.

Prints one table per phase: requests, errors, p50/p95 latency, RSS at start / each checkpoint /
end, and the growth after warm-up (the goal: under 5 % and zero errors). Loopback only; every
loop is bounded in count and time and the server is stopped at the end.

Usage:
    python benchmarks/soak.py [--requests 3000] [--concurrency 2] [--ws-seconds 600] [--image PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import SHARED_DATA, machine, percentiles, run_threads, start_emoar_serve, table  # noqa: E402
from web_load import free_port, stop_server, test_jpeg  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (from /proc)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def start(port: int) -> subprocess.Popen[bytes]:
    proc: subprocess.Popen[bytes] = start_emoar_serve(port)
    return proc


def rest_phase(url: str, pid: int, jpeg: bytes, n: int, concurrency: int) -> dict:
    files = {"file": ("frame.jpg", jpeg, "image/jpeg")}
    lock = threading.Lock()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = finished = 0
    samples: list[tuple[int, float]] = [(0, rss_mb(pid))]
    deadline = time.monotonic() + max(600.0, n * 2.0)

    def worker() -> None:
        nonlocal issued, finished
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.monotonic() < deadline:
                with lock:
                    if issued >= n:
                        return
                    issued += 1
                t0 = time.perf_counter()
                try:
                    r = c.post("/v1/analyze", files=files)
                    key = (
                        None
                        if r.status_code == 200 and len(r.json()["faces"]) == 1
                        else f"HTTP {r.status_code}"
                    )
                except httpx.HTTPError as e:
                    key = type(e).__name__
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    finished += 1
                    if key is None:
                        latencies.append(dt)
                    else:
                        errors[key] = errors.get(key, 0) + 1
                    if finished % 1000 == 0:
                        samples.append((finished, rss_mb(pid)))

    wall = run_threads(worker, concurrency)
    if samples[-1][0] != finished:
        samples.append((finished, rss_mb(pid)))
    p50, p95 = percentiles(latencies)
    return {
        "ok": len(latencies),
        "errors": errors,
        "wall": wall,
        "p50": p50,
        "p95": p95,
        "samples": samples,
    }


def ws_phase(ws_url: str, pid: int, jpeg: bytes, seconds: float, fps: float) -> dict:
    from websockets.sync.client import connect

    results, errors, dropped_last = 0, 0, 0
    latencies: list[float] = []
    sent_at: dict[int, float] = {}
    samples: list[tuple[float, float]] = [(0.0, rss_mb(pid))]
    stop = threading.Event()
    with connect(f"{ws_url}/v1/stream", open_timeout=30, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "hello"

        def reader() -> None:
            nonlocal results, errors, dropped_last
            while not stop.is_set():
                try:
                    msg = json.loads(ws.recv(timeout=1))
                except TimeoutError:
                    continue
                except Exception:
                    return
                if msg.get("type") == "result":
                    results += 1
                    dropped_last = int(msg.get("dropped", 0))
                    t = sent_at.pop(int(msg["seq"]), None)
                    if t is not None:
                        latencies.append((time.perf_counter() - t) * 1000)
                elif msg.get("type") == "error":
                    errors += 1

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        t0 = time.perf_counter()
        seq = 0
        next_sample = 60.0
        while (now := time.perf_counter() - t0) < seconds:
            sent_at[seq] = time.perf_counter()
            ws.send(jpeg)
            seq += 1
            if len(sent_at) > 1000:  # frames the server dropped never get a result
                for k in sorted(sent_at)[:-100]:
                    sent_at.pop(k, None)
            if now >= next_sample:
                samples.append((round(now), rss_mb(pid)))
                next_sample += 60.0
            time.sleep(max(0.0, seq / fps - (time.perf_counter() - t0)))
        time.sleep(1.0)
        stop.set()
        th.join(timeout=5)
        wall = time.perf_counter() - t0
    samples.append((round(wall), rss_mb(pid)))
    p50, p95 = percentiles(latencies)
    return {
        "sent": seq,
        "results": results,
        "errors": errors,
        "dropped": dropped_last,
        "wall": wall,
        "p50": p50,
        "p95": p95,
        "samples": samples,
    }


def growth(samples: list, warm_index: int = 1) -> float:
    """RSS growth after warm-up, in percent: from the first checkpoint to the last."""
    base = samples[min(warm_index, len(samples) - 1)][1]
    return 100.0 * (samples[-1][1] - base) / base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--ws-seconds", type=float, default=600.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--image", type=Path, default=Path(SHARED_DATA) / "photos" / "portrait.jpg")
    a = ap.parse_args()
    jpeg = test_jpeg(a.image)
    port = free_port()
    proc = start(port)
    url, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            for _ in range(a.warmup):
                c.post("/v1/analyze", files={"file": ("f.jpg", jpeg, "image/jpeg")}).raise_for_status()
        idle = rss_mb(proc.pid)
        rest = rest_phase(url, proc.pid, jpeg, a.requests, a.concurrency) if a.requests else None
        ws = ws_phase(ws_url, proc.pid, jpeg, a.ws_seconds, a.fps) if a.ws_seconds > 0 else None
    finally:
        stop_server(proc)
    print(
        f"\n{machine()}; emoar serve, default settings (rate limit off), loopback; "
        f"640x480 JPEG of {a.image.name} ({len(jpeg) / 1024:.0f} KB); RSS after {a.warmup} warm-up requests: {idle:.0f} MB"
    )
    if rest is not None:
        errs = sum(rest["errors"].values())
        rss = " / ".join(f"{mb:.0f}" for _, mb in rest["samples"])
        print(
            f"\nPOST /v1/analyze x {rest['ok'] + errs}, {a.concurrency} client threads "
            f"(RSS at 0 / every 1,000 / end)\n"
        )
        print(
            table(
                ["requests", "errors", "req/s", "p50 ms", "p95 ms", "RSS MB", "growth after 1,000"],
                [
                    [
                        rest["ok"] + errs,
                        f"{errs} {rest['errors'] or ''}".strip(),
                        f"{rest['ok'] / rest['wall']:.1f}",
                        f"{rest['p50']:.1f}",
                        f"{rest['p95']:.1f}",
                        rss,
                        f"{growth(rest['samples']):+.1f}%",
                    ]
                ],
            )
        )
    if ws is not None:
        rss = " / ".join(f"{mb:.0f}" for _, mb in ws["samples"])
        print(
            f"\nWS /v1/stream, one client sending {a.fps:g} fps for {ws['wall']:.0f} s "
            f"(RSS at 0 / every minute / end)\n"
        )
        print(
            table(
                [
                    "frames sent",
                    "results",
                    "dropped by server",
                    "errors",
                    "results/s",
                    "p50 ms",
                    "p95 ms",
                    "RSS MB",
                    "growth after 1 min",
                ],
                [
                    [
                        ws["sent"],
                        ws["results"],
                        ws["dropped"],
                        ws["errors"],
                        f"{ws['results'] / ws['wall']:.1f}",
                        f"{ws['p50']:.1f}",
                        f"{ws['p95']:.1f}",
                        rss,
                        f"{growth(ws['samples']):+.1f}%",
                    ]
                ],
            )
        )


if __name__ == "__main__":
    main()
