"""Load test of ``POST /v1/analyze``: requests/s and p50/p95 latency with 1 and 2 uvicorn workers.

Starts ``uvicorn --factory emoar.web.app:create_app`` on a free loopback port for each worker
count, sends a bounded number of requests (a 640x480 JPEG with one face) from a few client
threads, stops the server and prints a table. Loopback only; stops by itself.

Usage:
    python benchmarks/web_load.py [--workers 1 2] [--requests 200] [--concurrency 4] [--model NAME|PATH]
    python benchmarks/web_load.py --breakdown   # where one request's time goes, in-process

``--breakdown`` times the steps of the route's handler in this process, one thread, median of
200 calls each: multipart parsing, JPEG decode, detection (and its parts), alignment +
classification, and the JSON body.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import cv2
import httpx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import percentiles, run_threads  # noqa: E402


def test_jpeg(path: Path | None) -> bytes:
    """A 640x480 JPEG: the image letterboxed (default: the package's astronaut photo, one face)."""
    if path is None:
        data = resources.files("emoar.assets").joinpath("astronaut.jpg").read_bytes()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    else:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read the test image {path}")
    h, w = img.shape[:2]
    s = min(640 / w, 480 / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    frame = np.zeros((480, 640, 3), np.uint8)
    y0, x0 = (480 - nh) // 2, (640 - nw) // 2
    frame[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(workers: int, model: str, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "EMOAR_MODEL": model,
        "EMOAR_RATE_LIMIT_PER_MINUTE": "0",
        "EMOAR_NUM_THREADS": str(threads),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "emoar.web.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"uvicorn exited ({proc.returncode}):\n{err[-2000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("uvicorn did not start within 90 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_load(url: str, jpeg: bytes, n_requests: int, concurrency: int, warmup: int) -> dict[str, float]:
    """Send ``n_requests`` (after ``warmup``) from ``concurrency`` threads; latency in ms."""
    files = {"file": ("frame.jpg", jpeg, "image/jpeg")}
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(warmup):
            c.post("/v1/analyze", files=files).raise_for_status()
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(n_requests))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, timeout=60) as c:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                t0 = time.perf_counter()
                r = c.post("/v1/analyze", files=files)
                dt = (time.perf_counter() - t0) * 1000
                with lock:
                    if r.status_code == 200:
                        latencies.append(dt)
                    else:
                        errors += 1

    wall = run_threads(worker, concurrency)
    p50, p95 = percentiles(latencies)
    return {
        "ok": len(latencies),
        "errors": errors,
        "wall_s": wall,
        "rps": len(latencies) / wall,
        "p50": p50,
        "p95": p95,
    }


def breakdown(jpeg: bytes, model: str, n: int = 200) -> None:
    """Median ms of each step of ``POST /v1/analyze``'s work, in this process, one thread."""
    from starlette.responses import JSONResponse

    from emoar.web.engine import Engine
    from emoar.web.settings import Settings
    from emoar.web.uploads import decode_image_bytes, parse_multipart

    def med(fn: object) -> float:
        for _ in range(5):
            fn()  # type: ignore[operator]
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            ts.append((time.perf_counter() - t0) * 1000)
        return float(np.median(ts))

    b = "emoarbench"
    body = (
        (
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="f.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + jpeg
        + f"\r\n--{b}--\r\n".encode()
    )
    ctype = f"multipart/form-data; boundary={b}"
    settings = Settings(model=model)
    engine = Engine.load(settings)
    up = parse_multipart(body, ctype)["file"]
    frame = decode_image_bytes(up.data, "f.jpg", settings)
    with engine.pipeline(None) as pipe:
        det = pipe.detector
        onet = getattr(det, "_onet", None)
        rows = [
            ("multipart parse", med(lambda: parse_multipart(body, ctype))),
            ("JPEG decode", med(lambda: decode_image_bytes(up.data, "f.jpg", settings))),
            (f"detection ({det.name}, with O-net landmarks)", med(lambda: det.detect(frame))),
        ]
        if onet is not None:
            boxes = np.array([f.box_xyxy for f in det.detect(frame)], np.float64).reshape(-1, 4)
            rows.append(("  of which O-net", med(lambda: onet(frame, boxes))))
    result, _ = engine.analyze(frame)
    rows.append(("whole analysis (detect, align, classify, OOD)", med(lambda: engine.analyze(frame))))
    rows.append(("result JSON", med(lambda: JSONResponse(result.to_dict()).body)))
    print(
        f"\nPOST /v1/analyze steps, 640x480 JPEG ({len(jpeg) / 1024:.0f} KB, {len(result.faces)} face), "
        f"median of {n} calls, 1 thread, in-process\n"
    )
    print("| step | ms |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker counts to compare")
    ap.add_argument("--requests", type=int, default=200, help="timed requests per run")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--model", default="default", help="model name or .onnx path (EMOAR_MODEL)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per pipeline (EMOAR_NUM_THREADS)")
    ap.add_argument(
        "--image", type=Path, default=None, help="image to letterbox to 640x480 (default: astronaut)"
    )
    ap.add_argument("--breakdown", action="store_true", help="time the handler's steps in-process instead")
    a = ap.parse_args()
    jpeg = test_jpeg(a.image)
    if a.breakdown:
        breakdown(jpeg, a.model)
        return
    rows = []
    for workers in a.workers:
        proc, url = start_server(workers, a.model, a.threads)
        try:
            faces = len(
                httpx.post(
                    f"{url}/v1/analyze", files={"file": ("f.jpg", jpeg, "image/jpeg")}, timeout=60
                ).json()["faces"]
            )
            res = run_load(url, jpeg, a.requests, a.concurrency, a.warmup)
        finally:
            stop_server(proc)
        rows.append((workers, res, faces))
    print(
        f"\nPOST /v1/analyze, 640x480 JPEG ({len(jpeg) / 1024:.0f} KB, {rows[0][2]} face), "
        f"{a.requests} requests, {a.concurrency} client threads, {os.cpu_count()} CPUs, loopback"
    )
    print(f"{'workers':>7} | {'req/s':>7} | {'p50 ms':>7} | {'p95 ms':>7} | {'ok':>5} | {'errors':>6}")
    print("-" * 55)
    for workers, r, _ in rows:
        print(
            f"{workers:>7} | {r['rps']:>7.1f} | {r['p50']:>7.1f} | {r['p95']:>7.1f} | {r['ok']:>5} | {r['errors']:>6}"
        )


if __name__ == "__main__":
    main()
