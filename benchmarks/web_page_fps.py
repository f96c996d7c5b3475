"""Frames per second of the live page in headless Chromium: on-device (MediaPipe + onnxruntime-web)
and server mode (JPEG frames over the websocket), with a fake camera playing a real face photo.

Starts ``uvicorn --factory emoar.web.app:create_app`` on a free loopback port (the launcher of
``web_load.py``), launches Debian's Chromium through Playwright with the fake camera of the browser
tests (``tests/web/web_helpers.py``: portrait.jpg letterboxed to 640x480, written as a .y4m),
opens ``/``, and for each mode switches the page's controls, waits for the first face, warms up,
then counts the frames the page processed over a fixed window. Every number comes from the page
itself: a hook on ``window.__emoar.faces`` (assigned once per processed frame, in live.js) logs
the time, the frame's ``latencyMs`` and its face count. Bounded (each wait has a timeout), stops
by itself, and stops the server and the browser on exit, Ctrl-C or SIGTERM. Loopback only.

- fps: processed frames / window. The page processes frames back to back (one in flight, no
  wait for a new camera frame), so this is the page's throughput, not the camera's 30 fps.
- latency: the page's per-frame ``speed_ms.total``. On-device: detect + align + classify in the
  page (drawImage snapshot included). Server: send -> result over the websocket (decode, detect,
  align, classify, track on the server, plus loopback), not the JPEG encode before it.
- faces: share of the window's frames with exactly one face (the photo has one).
- server CPU: CPU seconds the server process used per second of the window (100% = one core).
- WebRTC mode: the camera goes to the server as a WebRTC track (the browser encodes it, VP8),
  results come back on a data channel; its latency column is the server's analysis time of a
  frame (there is no request to time: frames flow continuously and only the newest is analysed).

Headless Chromium here has no GPU (``--disable-gpu``: software WebGL via SwiftShader and wasm
only, onnxruntime-web on 1 wasm thread unless the page is cross-origin isolated), so every figure
is CPU-bound, and in server mode the browser and the server share the same CPUs. Compare runs
on one machine only, and mind other load (printed: the load average at start).

Usage:
    python benchmarks/web_page_fps.py [--modes blazeface short mesh server webrtc] [--warmup 3] [--window 10]
                                      [--model NAME|PATH] [--image PHOTO]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REPO, SHARED_DATA, machine, table  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests", "web"))
from web_helpers import CHROMIUM, chromium_args, letterbox_640x480, wait_for, y4m_bytes  # noqa: E402
from web_load import start_server, stop_server  # noqa: E402

#: mode -> (the page's #mode value, its #detector value or None, the row's label)
MODES: dict[str, tuple[str, str | None, str]] = {
    "blazeface": (
        "ondevice",
        "blazeface",
        "on-device, BlazeFace on onnxruntime-web, detected every 5 frames",
    ),
    "blazeface_full": (
        "ondevice",
        "blazeface_full",
        "on-device, BlazeFace full range every 5 frames, short range following",
    ),
    "short": ("ondevice", "short", "on-device, MediaPipe face detection (short range)"),
    "full": ("ondevice", "full", "on-device, MediaPipe face detection (full range)"),
    "mesh": ("ondevice", "mesh", "on-device, MediaPipe face mesh"),
    "server": ("server", None, "server, websocket /v1/stream"),
    "webrtc": ("webrtc", None, "server, WebRTC (aiortc), results on a data channel"),
}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


#: Logs [t_ms, latencyMs, n_faces, mode, detector] for every processed frame: live.js assigns
#: state.faces once per frame, right after state.latencyMs.
HOOK_JS = """() => {
    const s = window.__emoar;
    if (s.__benchLog) return;
    const log = [];
    let faces = s.faces;
    Object.defineProperty(s, 'faces', {
        configurable: true, enumerable: true,
        get() { return faces; },
        set(v) { faces = v; log.push([performance.now(), s.latencyMs, v.length, s.mode, s.detector]); },
    });
    Object.defineProperty(s, '__benchLog', {value: log, enumerable: false});
}"""


class Terminated(Exception):
    """SIGTERM, turned into an exception so the finally blocks stop the server and the browser."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def switch(page: Any, mode: str, timeout_s: float) -> float:
    """Select a mode on the page; seconds until it is ready and has processed a frame with a face."""
    page_mode, detector, _ = MODES[mode]
    t0 = time.monotonic()
    if page.evaluate("() => window.__emoar.mode") != page_mode:
        page.select_option("#mode", page_mode)
    if detector is not None and page.evaluate("() => window.__emoar.detector") != detector:
        page.select_option("#detector", detector)
    want = f"window.__emoar.mode === '{page_mode}'"
    if detector is not None:
        want += f" && window.__emoar.detector === '{detector}'"
    n0 = page.evaluate("() => window.__emoar.__benchLog.length")
    wait_for(
        page,
        f"() => window.__emoar.ready && {want} && window.__emoar.__benchLog.slice({n0}).some("
        f"(e) => e[2] > 0 && e[3] === '{page_mode}')",
        timeout_s=timeout_s,
        what=f"a face in {mode} mode",
    )
    return time.monotonic() - t0


def measure(page: Any, mode: str, warmup_s: float, window_s: float, server_pid: int) -> dict[str, Any]:
    """Warm up, then the page's frames over ``window_s`` (times from the page's clock) and the
    server process's CPU use over the same window."""
    page_mode, detector, _ = MODES[mode]
    time.sleep(warmup_s)
    t0 = page.evaluate("() => performance.now()")
    cpu0, w0 = _cpu_seconds(server_pid), time.monotonic()
    time.sleep(window_s)
    cpu = (_cpu_seconds(server_pid) - cpu0) / (time.monotonic() - w0)
    t1, entries, backend = page.evaluate(
        "() => [performance.now(), window.__emoar.__benchLog.slice(-5000), "
        "document.getElementById('backend').textContent]"
    )
    rows = [e for e in entries if t0 <= e[0] < t1]
    if any(e[3] != page_mode or (detector is not None and e[4] != detector) for e in rows):
        raise RuntimeError(f"the page left {mode} mode during the window")
    lat = [float(e[1]) for e in rows if e[1]]
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else [float("nan")] * 19
    return {
        "frames": len(rows),
        "fps": len(rows) / ((t1 - t0) / 1000),
        "p50": statistics.median(lat) if lat else float("nan"),
        "p95": q[18],
        "faces": sum(e[2] == 1 for e in rows) / len(rows) if rows else float("nan"),
        "server_cpu": cpu,
        "backend": backend.strip(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--modes", nargs="+", choices=list(MODES), default=["blazeface", "short", "mesh", "server"]
    )
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds after the first face, per mode")
    ap.add_argument("--window", type=float, default=10.0, help="measured seconds per mode")
    ap.add_argument("--setup-timeout", type=float, default=90.0, help="most seconds to load a mode")
    ap.add_argument("--model", default="default", help="model name or .onnx path (EMOAR_MODEL)")
    ap.add_argument("--threads", type=int, default=1, help="server CPU threads (EMOAR_NUM_THREADS)")
    ap.add_argument(
        "--image",
        type=Path,
        default=Path(SHARED_DATA) / "photos" / "portrait.jpg",
        help="photo the fake camera plays, letterboxed to 640x480",
    )
    a = ap.parse_args()
    import cv2
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    img = cv2.imread(str(a.image), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read {a.image}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    load = os.getloadavg()
    results: list[tuple[str, dict[str, Any] | None, float, str]] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        y4m = Path(tmp) / "camera.y4m"
        y4m.write_bytes(y4m_bytes(letterbox_640x480(img), n_frames=3, fps=30))
        proc, url = start_server(1, a.model, a.threads)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(y4m))
                try:
                    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
                    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
                    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                    first = MODES[a.modes[0]]
                    page.goto(f"{url}/?mode={first[0]}&detector={first[1] or 'short'}")
                    wait_for(page, "() => window.__emoar && window.__emoar.status !== 'starting'")
                    page.evaluate(HOOK_JS)
                    on_device = page.evaluate("() => window.__emoar.onDeviceAvailable")
                    for mode in a.modes:
                        if MODES[mode][0] == "ondevice" and not on_device:
                            results.append((mode, None, float("nan"), "front-end files not vendored"))
                            continue
                        setup = switch(page, mode, a.setup_timeout)
                        results.append((mode, measure(page, mode, a.warmup, a.window, proc.pid), setup, ""))
                finally:
                    browser.close()
        finally:
            stop_server(proc)

    print(
        f"# emoar live page fps: headless Chromium (no GPU: wasm + software WebGL), fake camera "
        f"{a.image.name} letterboxed to 640x480 at 30 fps, model {a.model}, "
        f"{a.warmup:g} s warm-up + {a.window:g} s window per mode, server {a.threads} thread(s), loopback"
    )
    print(f"# machine: {machine()}; load average at start {load[0]:.2f} (other processes share the CPUs)")
    print(f"# command: python benchmarks/web_page_fps.py {' '.join(sys.argv[1:])}".rstrip() + "\n")
    rows = []
    for mode, r, setup, note in results:
        if r is None:
            rows.append([MODES[mode][2], "–", "–", "–", "–", "–", "–", "–", note])
            continue
        rows.append(
            [
                MODES[mode][2],
                r["frames"],
                f"{r['fps']:.1f}",
                f"{r['p50']:.0f}",
                f"{r['p95']:.0f}",
                f"{r['faces']:.0%}",
                f"{r['server_cpu']:.0%}",
                f"{setup:.1f}",
                r["backend"],
            ]
        )
    print(
        table(
            [
                "mode",
                "frames",
                "fps",
                "median latency ms",
                "p95 latency ms",
                "frames with the face",
                "server CPU (of one core)",
                "load + first face s",
                "backend (page)",
            ],
            rows,
        )
    )
    if errors:
        print(f"\npage errors ({len(errors)}):\n" + "\n".join(f"- {e}" for e in errors[:10]))


if __name__ == "__main__":
    try:
        main()
    except Terminated:
        raise SystemExit("terminated (SIGTERM): server and browser stopped") from None
