"""Helpers shared by the web tests (imported by the test modules in this folder) and by
``benchmarks/web_page_fps.py``: assertions, the fake camera (a face photo letterboxed to 640x480,
written as a .y4m clip) and Chromium's launch flags. Needs only numpy (cv2 when called)."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Screenshots of the browser tests (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"

#: Debian's Chromium, driven through Playwright.
CHROMIUM = Path("/usr/bin/chromium")


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Check an error response: the status, a JSON body ``{"error", "message", "status"}``, the code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status and isinstance(body["message"], str) and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    return body


def y4m_bytes(frame_bgr: np.ndarray, n_frames: int = 3, fps: int = 15) -> bytes:
    """A YUV4MPEG2 clip (what Chromium's fake camera reads): text header + raw I420 frames."""
    import cv2

    h, w = frame_bgr.shape[:2]
    i420 = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    out = io.BytesIO()
    out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
    for _ in range(n_frames):
        out.write(b"FRAME\n")
        out.write(i420)
    return out.getvalue()


def y4m_clip_bytes(frames_bgr: list[np.ndarray], fps: int = 15) -> bytes:
    """A YUV4MPEG2 clip of different frames (Chromium's fake camera loops it)."""
    import cv2

    h, w = frames_bgr[0].shape[:2]
    out = io.BytesIO()
    out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
    for f in frames_bgr:
        out.write(b"FRAME\n")
        out.write(cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420).tobytes())
    return out.getvalue()


def decoded_frames(path: Path) -> list[np.ndarray]:
    """Every frame OpenCV decodes from the video file at ``path`` (BGR)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames


def letterbox_640x480(img_bgr: np.ndarray) -> np.ndarray:
    """An image scaled to fit 640x480 (even width and height) on black, like a webcam frame."""
    import cv2

    h, w = img_bgr.shape[:2]
    s = min(640 / w, 480 / h)
    nw, nh = int(round(w * s)) & ~1, int(round(h * s)) & ~1
    out = np.zeros((480, 640, 3), np.uint8)
    y0, x0 = (480 - nh) // 2, (640 - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(img_bgr, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def chromium_args(y4m: Path) -> list[str]:
    """Flags for headless Chromium: no GPU, a fake camera playing ``y4m``, allowed without a
    prompt, and no background traffic (nothing leaves the machine)."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]


def wait_for(page: Any, predicate_js: str, timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll a JS expression (page.evaluate is not subject to the page's CSP, wait_for_function is)."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = page.evaluate(predicate_js)
        if value:
            return value
        time.sleep(0.1)
    state = page.evaluate("() => JSON.stringify(window.__emoar || window.__emoarUpload || null)")
    raise AssertionError(f"timed out waiting for {what or predicate_js}; page state: {state}")


def free_port() -> int:
    """A TCP port free on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A real uvicorn server in a background thread, on 127.0.0.1."""

    def __init__(self, app: Any, **uvicorn_overrides: Any) -> None:
        import uvicorn

        from emoar.web.app import uvicorn_options

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        # The options `emoar serve` runs with (proxy headers, logging), on a free port.
        options = {
            **uvicorn_options(app.state.settings),
            "host": "127.0.0.1",
            "port": self.port,
            **uvicorn_overrides,
        }
        options.setdefault("ws", "websockets-sansio")
        config = uvicorn.Config(app, lifespan="on", **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{self.port}", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


ONE_FACE_JS = "() => window.__emoar && window.__emoar.ready && window.__emoar.faces.length === 1"


def wait_for_one_face(page: Any, *, what: str, timeout_s: float = 60) -> None:
    """Wait until the live page is ready and its last result has exactly one face."""
    wait_for(page, ONE_FACE_JS, timeout_s=timeout_s, what=what)
