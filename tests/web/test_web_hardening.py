"""What an attacker or a long-running client tries, against real servers on loopback: spoofed
proxy headers, foreign origins, decompression bombs over HTTP and the websocket, oversized video
frames, a clip hogging the server, revalidated model downloads, abrupt disconnects, and uploads
that must never reach the disk."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from media_helpers import png_bomb
from web_helpers import LiveServer, assert_error, free_port

from emoar.web.routes.stream import origin_allowed


@pytest.fixture()
def serve(make_app: Callable[..., object]) -> Iterator[Callable[..., LiveServer]]:
    """Start real servers with given settings; all are stopped after the test."""
    started: list[LiveServer] = []

    def start(**settings: object) -> LiveServer:
        server = LiveServer(make_app(**settings)).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


def _files(data: bytes, name: str = "photo.jpg", ctype: str = "image/jpeg") -> dict:
    return {"file": (name, data, ctype)}


# -- proxy headers ------------------------------------------------------------------------------


def test_x_forwarded_for_does_not_escape_the_rate_limit(serve, portrait_jpg: bytes) -> None:
    server = serve(rate_limit_per_minute=1, rate_limit_burst=3)
    statuses, bodies = [], []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for i in range(6):
            r = http.post(
                "/v1/analyze", files=_files(portrait_jpg), headers={"X-Forwarded-For": f"203.0.113.{i}"}
            )
            statuses.append(r.status_code)
            bodies.append(r.json())
    assert statuses == [200, 200, 200, 429, 429, 429]
    assert "127.0.0.1" in bodies[3]["message"] and "203.0.113" not in bodies[3]["message"]


def test_x_forwarded_for_cannot_open_more_websockets(serve) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    server = serve(rate_limit_per_minute=1, rate_limit_burst=2)
    outcomes = []
    for i in range(4):
        with connect(
            f"{server.ws_url}/v1/stream",
            additional_headers={"X-Forwarded-For": f"198.51.100.{i}"},
            open_timeout=10,
        ) as ws:
            first = json.loads(ws.recv(timeout=10))
            outcomes.append(first["type"] if first["type"] == "hello" else first["status"])
            if first["type"] != "hello":
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=10)
    assert outcomes == ["hello", "hello", 429, 429]


def test_a_configured_proxy_is_trusted(serve, portrait_jpg: bytes) -> None:
    server = serve(rate_limit_per_minute=1, rate_limit_burst=1, forwarded_allow_ips=("127.0.0.1",))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert (
            http.post(
                "/v1/analyze", files=_files(portrait_jpg), headers={"X-Forwarded-For": "192.0.2.7"}
            ).status_code
            == 200
        )
        r = http.post("/v1/analyze", files=_files(portrait_jpg), headers={"X-Forwarded-For": "192.0.2.7"})
        assert r.status_code == 429 and "192.0.2.7" in r.json()["message"]
        # Another client behind the same proxy has its own bucket.
        assert (
            http.post(
                "/v1/analyze", files=_files(portrait_jpg), headers={"X-Forwarded-For": "192.0.2.8"}
            ).status_code
            == 200
        )


# -- websocket origin, abrupt disconnects -----------------------------------------------------


def test_origin_rule() -> None:
    assert origin_allowed("http://127.0.0.1:8000", "127.0.0.1:8000", ())
    assert not origin_allowed("http://evil.example", "127.0.0.1:8000", ())
    assert not origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8000", ())
    assert origin_allowed("https://app.example", "127.0.0.1:8000", ("https://app.example",))
    assert origin_allowed("https://any.example", "127.0.0.1:8000", ("*",))


def test_websocket_refuses_foreign_origins(serve, live_server) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as info:
        connect(f"{live_server.ws_url}/v1/stream", origin="http://evil.example", open_timeout=10)
    assert info.value.response.status_code == 403
    with connect(f"{live_server.ws_url}/v1/stream", origin=live_server.url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    allowed = serve(cors_origins=("http://app.example",))
    with connect(f"{allowed.ws_url}/v1/stream", origin="http://app.example", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"


def test_abrupt_disconnects_log_no_errors(
    live_server, jpeg_640x480: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Clients that vanish while their frames are analysed (what a keepalive timeout looks like
    to the server): the late results are dropped without an ERROR traceback."""
    from websockets.sync.client import connect

    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            with (
                contextlib.suppress(Exception),
                connect(f"{live_server.ws_url}/v1/stream", open_timeout=10) as ws,
            ):
                assert json.loads(ws.recv(timeout=10))["type"] == "hello"
                ws.send(jpeg_640x480)
                ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection just ends
                ws.socket.close()
        time.sleep(1.5)
        with connect(f"{live_server.ws_url}/v1/stream", open_timeout=10) as ws:  # the server still serves
            ws.recv(timeout=10)
            ws.send(jpeg_640x480)
            assert json.loads(ws.recv(timeout=20))["type"] == "result"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def _raw_ws(port: int) -> socket.socket:
    """A websocket handshake on a plain TCP socket: a client that will never answer a ping."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head[:200]
    return sock


def _binary_frame(payload: bytes) -> bytes:
    """One masked binary websocket frame (clients must mask)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x82]) + (
        bytes([0x80 | n])
        if n < 126
        else bytes([0x80 | 126]) + struct.pack(">H", n)
        if n < 65536
        else bytes([0x80 | 127]) + struct.pack(">Q", n)
    )
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


@pytest.mark.parametrize("ws_impl", ["auto", "websockets-sansio"])
def test_keepalive_timeout_mid_stream_logs_no_errors(
    make_app, jpeg_640x480: bytes, caplog: pytest.LogCaptureFixture, ws_impl: str
) -> None:
    """A client that keeps sending frames but never answers the server's pings: uvicorn closes
    it on the keepalive timeout while a frame is being analysed; the late result must be
    dropped quietly (this used to log "Unexpected ASGI message 'websocket.send' after
    'websocket.close'" with a traceback)."""
    # "auto" is what `emoar serve` runs with (uvicorn's default websocket implementation).
    server = LiveServer(
        make_app(rate_limit_burst=100), ws=ws_impl, ws_ping_interval=0.3, ws_ping_timeout=0.3
    ).start()
    try:
        with caplog.at_level(logging.WARNING):
            sock = _raw_ws(server.port)
            frame = _binary_frame(jpeg_640x480)
            deadline = time.monotonic() + 4.0
            with contextlib.suppress(OSError):
                while time.monotonic() < deadline:
                    sock.sendall(frame)  # never read: pongs are never sent
                    time.sleep(0.02)
            sock.close()
            time.sleep(1.0)
            with httpx.Client(base_url=server.url, timeout=30) as http:  # still serving
                assert http.get("/healthz").status_code == 200
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
    finally:
        server.stop()


# -- bombs and formats over HTTP and the websocket ---------------------------------------------


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    ok, hdr = cv2.imencode(".hdr", np.random.default_rng(0).random((64, 64, 3), dtype=np.float32))
    assert ok
    return {
        "pixels": png_bomb(12000, 12000),  # 144 MP
        "memory": png_bomb(6000, 6000, depth=16, color=6),  # 36 MP, ~540 MB to decode
        "hdr": hdr.tobytes(),
    }


def test_bombs_over_http(live_server, bombs: dict[str, bytes]) -> None:
    with httpx.Client(base_url=live_server.url, timeout=60) as http:
        body = assert_error(
            http.post("/v1/analyze", files=_files(bombs["pixels"], "b.png", "image/png")),
            413,
            "image_too_large",
        )
        assert "12000x12000" in body["message"]
        body = assert_error(
            http.post("/v1/analyze", files=_files(bombs["memory"], "b.png", "image/png")),
            413,
            "image_too_large",
        )
        assert body["needed_bytes"] > body["max_decode_bytes"] and "16-bit" in body["message"]
        body = assert_error(
            http.post("/v1/analyze", files=_files(bombs["hdr"], "photo.jpg")), 415, "unsupported_media_type"
        )
        assert "Radiance HDR" in body["message"]


def test_bombs_over_the_websocket(live_server, bombs: dict[str, bytes], jpeg_640x480: bytes) -> None:
    from websockets.sync.client import connect

    with connect(f"{live_server.ws_url}/v1/stream", open_timeout=10, max_size=None) as ws:
        ws.recv(timeout=10)
        for key, status in (("pixels", 413), ("memory", 413), ("hdr", 415)):
            ws.send(bombs[key])
            msg = json.loads(ws.recv(timeout=30))
            assert msg["type"] == "error" and msg["status"] == status, (key, msg)
        ws.send(jpeg_640x480)
        assert json.loads(ws.recv(timeout=20))["type"] == "result"


# -- video ---------------------------------------------------------------------------------------


def _clip(tmp_path: Path, frame: np.ndarray, n: int, fps: float = 30.0) -> bytes:
    path = tmp_path / f"clip_{frame.shape[1]}x{frame.shape[0]}_{n}.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
    for i in range(n):
        w.write(np.roll(frame, 2 * i, axis=1))
    w.release()
    return path.read_bytes()


def test_video_frames_over_the_pixel_limit_are_refused_before_decoding(serve, tmp_path: Path) -> None:
    server = serve(max_video_pixels=1_000_000)
    data = _clip(tmp_path, np.full((1200, 1600, 3), 90, np.uint8), 3)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        body = assert_error(
            http.post("/v1/analyze/video", files=_files(data, "big.mp4", "video/mp4")), 413, "frame_too_large"
        )
    assert "1600x1200" in body["message"] and body["max_video_pixels"] == 1_000_000


def test_a_clip_never_blocks_images_and_excess_clips_get_503(
    serve, tmp_path: Path, frame_640x480: np.ndarray, portrait_jpg: bytes
) -> None:
    server = serve(
        video_workers=1, video_queue=0, max_video_frames=2000, max_video_seconds=120, rate_limit_burst=100
    )
    # long enough that the clip is still being analysed when the images are done, on a fast host
    # too (240 frames took ~1.3 s on an AVX-512 host with the session-17 default: a tie)
    clip = _clip(tmp_path, frame_640x480, 720)
    done: dict[str, float] = {}

    def long_clip() -> None:
        with httpx.Client(base_url=server.url, timeout=300) as http:
            r = http.post("/v1/analyze/video", files=_files(clip, "long.mp4", "video/mp4"))
            assert r.status_code == 200, r.text
            done["clip"] = time.monotonic()

    t = threading.Thread(target=long_clip)
    t.start()
    with httpx.Client(base_url=server.url, timeout=300) as http:
        time.sleep(1.0)  # the clip is being decoded and analysed now
        busy = http.post("/v1/analyze/video", files=_files(clip, "second.mp4", "video/mp4"))
        images = [http.post("/v1/analyze", files=_files(portrait_jpg)) for _ in range(3)]
        done["images"] = time.monotonic()
    t.join(timeout=300)
    assert_error(busy, 503, "busy")
    assert busy.headers["retry-after"] == "5"
    assert all(r.status_code == 200 and len(r.json()["faces"]) == 1 for r in images)
    assert done["images"] < done["clip"], "the image requests waited for the clip"


# -- model download, HEAD ----------------------------------------------------------------------


def test_model_download_revalidates_and_is_rate_limited(serve) -> None:
    server = serve(rate_limit_per_minute=1, rate_limit_burst=3)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        first = http.get("/v1/models/default/onnx")
        assert first.status_code == 200 and len(first.content) > 100_000
        etag = first.headers["etag"]
        import hashlib

        assert etag == f'"{hashlib.sha256(first.content).hexdigest()}"'
        again = http.get("/v1/models/default/onnx", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert http.get("/v1/models/default/onnx").status_code == 200  # the third of the burst of 3
        assert_error(http.get("/v1/models/default/onnx"), 429, "rate_limited")


def test_head_requests(live_server) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        for path in ("/", "/upload", "/healthz"):
            r = http.head(path)
            assert r.status_code == 200, path
            assert r.content == b""


# -- nothing reaches the disk ---------------------------------------------------------------


class _Inotify:
    """Files created in a folder (Linux inotify through libc; no extra package)."""

    IN_CREATE, IN_MOVED_TO, IN_NONBLOCK = 0x100, 0x80, 0o4000

    def __init__(self, folder: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(self.IN_NONBLOCK)
        assert self.fd >= 0
        assert (
            self.libc.inotify_add_watch(self.fd, str(folder).encode(), self.IN_CREATE | self.IN_MOVED_TO) >= 0
        )

    def created(self) -> list[str]:
        names: list[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return names
            i = 0
            while i < len(data):
                _, _, _, n = struct.unpack_from("iIII", data, i)
                names.append(data[i + 16 : i + 16 + n].rstrip(b"\0").decode())
                i += 16 + n

    def close(self) -> None:
        os.close(self.fd)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux-only")
def test_no_upload_reaches_the_disk(
    tmp_path: Path, frame_640x480: np.ndarray, bombs: dict[str, bytes]
) -> None:
    """`emoar serve` in its own process, with every temporary-file location (TMPDIR, OpenCV's
    OPENCV_TEMP_PATH, the working directory) pointed at one watched folder; every accepted and
    refused kind of upload goes through; not one file appears there."""
    watched = tmp_path / "watched"
    watched.mkdir()
    clips = tmp_path / "clips"
    clips.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "TMPDIR": str(watched),
        "OPENCV_TEMP_PATH": str(watched),
        "EMOAR_RATE_LIMIT_BURST": "500",
    }
    ino = _Inotify(watched)
    proc = subprocess.Popen(
        [sys.executable, "-m", "emoar.cli", "serve", "--port", str(port)],
        cwd=watched,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if (
                    httpx.get(f"{url}/healthz", timeout=2).status_code == 200
                    and httpx.get(f"{url}/v1/models", timeout=5).status_code == 200
                ):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        f = frame_640x480
        images = {
            "a.jpg": cv2.imencode(".jpg", f)[1].tobytes(),
            "a.png": cv2.imencode(".png", f)[1].tobytes(),
            "a.webp": cv2.imencode(".webp", f)[1].tobytes(),
            "a.bmp": cv2.imencode(".bmp", f)[1].tobytes(),
            "a.tiff": cv2.imencode(".tiff", f)[1].tobytes(),
            "big.jpg": cv2.imencode(".jpg", cv2.resize(f, (3200, 2400)))[1].tobytes(),  # > 1 MB multipart
            "hdr.jpg": bombs["hdr"],
            "bomb.png": bombs["pixels"],
        }
        images["a.exr.jpg"] = b"\x76\x2f\x31\x01" + b"\x00" * 64  # an OpenEXR header
        with httpx.Client(base_url=url, timeout=120) as http:
            for name, data in images.items():
                r = http.post("/v1/analyze", files=_files(data, name))
                assert r.status_code in (200, 400, 413, 415), (name, r.status_code)
            for fourcc, ext in (("mp4v", ".mp4"), ("MJPG", ".avi"), ("VP80", ".webm")):
                path = clips / f"c{ext}"
                w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), 10.0, (640, 480))
                for i in range(5):
                    w.write(np.roll(f, 3 * i, axis=1))
                w.release()
                r = http.post("/v1/analyze/video", files=_files(path.read_bytes(), path.name, "video/mp4"))
                assert r.status_code == 200, (ext, r.text)
            # the annotated clip is encoded in memory too
            r = http.post(
                "/v1/analyze/video",
                params={"annotate": "true"},
                files=_files(path.read_bytes(), path.name, "video/mp4"),
            )
            assert (
                r.status_code == 200
                and base64.b64decode(r.json()["annotated_webm_base64"])[:4] == b"\x1a\x45\xdf\xa3"
            )
            r = http.post("/v1/analyze", params={"annotate": "true"}, files=_files(images["a.jpg"]))
            assert base64.b64decode(r.json()["annotated_png_base64"])[:4] == b"\x89PNG"
        created = ino.created()
        assert created == [], f"uploads reached the disk: {created}"
        assert list(watched.iterdir()) == []
    finally:
        ino.close()
        proc.terminate()
        proc.wait(timeout=30)


def test_security_headers(live_server) -> None:
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        page = http.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for r in (page, http.get("/healthz"), http.get("/nope")):
            assert r.headers["x-content-type-options"] == "nosniff"
            assert "server" not in r.headers  # no version banner
