"""A real uvicorn server on a free loopback port (started by the ``live_server`` fixture):
HTTP routes, errors over real sockets, and a websocket round trip with real JPEG frames."""

from __future__ import annotations

import json

import httpx
import pytest
from web_helpers import assert_error


@pytest.fixture(scope="module")
def http(live_server) -> httpx.Client:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        yield c


def test_health_models_and_docs(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    models = http.get("/v1/models").json()
    assert models["models"][0]["name"] == models["default"]
    assert http.get("/docs").status_code == 200
    assert http.get("/static/vendor/manifest.json").status_code in (200, 404)


def test_analyze_real_face(http: httpx.Client, portrait_jpg: bytes) -> None:
    r = http.post("/v1/analyze", files={"file": ("portrait.jpg", portrait_jpg, "image/jpeg")})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"image", "width", "height", "faces"} and len(body["faces"]) == 1


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("bad.jpg", b"\xff\xd8\xff\xdb" + b"\x13" * 4000, 400, "undecodable_image"),
        ("notes.jpg", b"plain text pretending to be a photo\n", 400, "undecodable_image"),
        ("empty.jpg", b"", 400, "empty_file"),
        ("big.bin", b"\xff\xd8\xff" + b"\0" * 1_500_000, 413, "upload_too_large"),  # server limit: 1 MB
        ("doc.pdf", b"%PDF-1.5\n", 415, "unsupported_media_type"),
    ],
)
def test_errors_over_real_http(
    http: httpx.Client, portrait_jpg: bytes, name: str, data: bytes, status: int, code: str
) -> None:
    r = http.post("/v1/analyze", files={"file": (name, data, "application/octet-stream")})
    assert_error(r, status, code)
    ok = http.post("/v1/analyze", files={"file": ("p.jpg", portrait_jpg, "image/jpeg")})  # still serving
    assert ok.status_code == 200 and len(ok.json()["faces"]) == 1


def test_50_megapixel_and_missing_field(http: httpx.Client, png_50mp: bytes) -> None:
    assert_error(
        http.post("/v1/analyze", files={"file": ("huge.png", png_50mp, "image/png")}), 413, "image_too_large"
    )
    assert_error(http.post("/v1/analyze", data={"note": "no file"}), 422, "missing_field")
    assert http.get("/healthz").status_code == 200


def test_websocket_round_trip(live_server, jpeg_640x480: bytes) -> None:
    from websockets.sync.client import connect

    with connect(f"{live_server.ws_url}/v1/stream", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        ids = []
        for _ in range(3):
            ws.send(jpeg_640x480)
            msg = json.loads(ws.recv(timeout=20))
            assert msg["type"] == "result" and len(msg["faces"]) == 1
            ids.append(msg["faces"][0]["track_id"])
        ws.send(b"garbage")
        err = json.loads(ws.recv(timeout=10))
        assert err["type"] == "error" and err["status"] == 400
        ws.send(jpeg_640x480)
        assert json.loads(ws.recv(timeout=20))["type"] == "result"
    assert len(set(ids)) == 1 and ids[0] is not None


def test_inference_does_not_block_the_event_loop(http: httpx.Client, live_server, clip_mp4: bytes) -> None:
    """While a clip is analysed (in a worker thread), the server keeps answering other requests."""
    import threading
    import time

    done = threading.Event()

    def analyse() -> None:
        with httpx.Client(base_url=live_server.url, timeout=60) as c:
            for _ in range(3):
                c.post(
                    "/v1/analyze/video", files={"file": ("clip.mp4", clip_mp4, "video/mp4")}
                ).raise_for_status()
        done.set()

    t = threading.Thread(target=analyse)
    t.start()
    latencies = []
    while not done.is_set():
        t0 = time.perf_counter()
        assert http.get("/healthz").status_code == 200
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.02)
    t.join()
    assert len(latencies) >= 5
    assert sorted(latencies)[len(latencies) // 2] < 0.1, (
        f"median /healthz latency {sorted(latencies)[len(latencies) // 2]:.3f} s"
    )
