"""WS /v1/stream through TestClient: real JPEG frames in, per-frame results out, per-connection
state, and bad frames answered with an error message on a connection that stays open."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from emoar.web.engine import Engine


def _shifted_jpegs(frame: np.ndarray, n: int, step: int = 6) -> list[bytes]:
    import cv2

    return [cv2.imencode(".jpg", np.roll(frame, step * i, axis=1))[1].tobytes() for i in range(n)]


def test_stream_round_trip_with_track_ids(
    client: TestClient, frame_640x480: np.ndarray, engine: Engine
) -> None:
    frames = _shifted_jpegs(frame_640x480, 4)
    with client.websocket_connect("/v1/stream") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["model"] == engine.default_model
        assert hello["labels"] == list(engine.model(None).labels)
        results = []
        for jpeg in frames:
            ws.send_bytes(jpeg)
            results.append(ws.receive_json())
    assert [r["type"] for r in results] == ["result"] * 4
    assert [r["seq"] for r in results] == [0, 1, 2, 3] and [r["frame_index"] for r in results] == [0, 1, 2, 3]
    assert all(len(r["faces"]) == 1 for r in results)
    ids = {r["faces"][0]["track_id"] for r in results}
    assert len(ids) == 1 and isinstance(ids.pop(), int)  # one stable id for the moving face
    face = results[-1]["faces"][0]
    assert {"box_xyxy", "score", "expression", "probs", "ood_score", "uncertain", "track_id"} <= set(face)
    assert len(face["landmarks_xy"]) == 5  # stream extra: for tilting the overlay
    assert results[-1]["width"] == 640 and results[-1]["timestamp_ms"] >= results[0]["timestamp_ms"]
    xs = [r["faces"][0]["box_xyxy"][0] for r in results]
    assert xs[-1] > xs[0]  # the box follows the face


def test_each_connection_has_its_own_tracks(client: TestClient, jpeg_640x480: bytes) -> None:
    with client.websocket_connect("/v1/stream") as a, client.websocket_connect("/v1/stream") as b:
        a.receive_json()
        b.receive_json()
        for _ in range(2):
            a.send_bytes(jpeg_640x480)
            a.receive_json()
        b.send_bytes(jpeg_640x480)
        rb = b.receive_json()
        a.send_bytes(jpeg_640x480)
        ra = a.receive_json()
    assert rb["frame_index"] == 0 and ra["frame_index"] == 2
    assert rb["faces"][0]["track_id"] == ra["faces"][0]["track_id"] == 1  # ids restart per connection


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"not a jpeg at all", 400, "undecodable_image"),
        (b"", 400, "undecodable_image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 500, 400, "undecodable_image"),
        (b"%PDF-1.4\n", 415, "unsupported_media_type"),
    ],
)
def test_bad_frames_get_an_error_not_a_disconnect(
    client: TestClient, jpeg_640x480: bytes, payload: bytes, status: int, code: str
) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        ws.send_bytes(payload)
        err = ws.receive_json()
        assert err["type"] == "error" and err["status"] == status and err["error"] == code and err["seq"] == 0
        assert err["message"]
        ws.send_bytes(jpeg_640x480)
        ok = ws.receive_json()
        assert ok["type"] == "result" and ok["seq"] == 1 and len(ok["faces"]) == 1


def test_commands(client: TestClient, jpeg_640x480: bytes, engine: Engine) -> None:
    with client.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        ws.send_text('{"type": "ping", "t": 5}')
        assert ws.receive_json() == {"type": "pong", "t": 5}
        ws.send_bytes(jpeg_640x480)
        first = ws.receive_json()["faces"][0]["track_id"]
        ws.send_text('{"type": "reset"}')
        assert ws.receive_json()["type"] == "reset"
        ws.send_bytes(jpeg_640x480)
        assert ws.receive_json()["faces"][0]["track_id"] == first  # a fresh tracker starts at 1 again
        ws.send_text(f'{{"type": "config", "model": "{engine.default_model}"}}')
        assert ws.receive_json() == {
            "type": "config",
            "model": engine.default_model,
            "labels": list(engine.model(None).labels),
        }
        ws.send_text('{"type": "config", "model": "nope"}')
        err = ws.receive_json()
        assert err["status"] == 404 and err["available"] == list(engine.models)
        ws.send_text("hello?")
        assert ws.receive_json()["error"] == "bad_command"
        ws.send_bytes(jpeg_640x480)
        assert ws.receive_json()["type"] == "result"


def test_oversize_frame_is_413_message(make_app: Callable[..., FastAPI], jpeg_640x480: bytes) -> None:
    with TestClient(make_app(max_ws_frame_bytes=1000)) as c, c.websocket_connect("/v1/stream") as ws:
        ws.receive_json()
        ws.send_bytes(jpeg_640x480)
        err = ws.receive_json()
        assert err["status"] == 413 and err["error"] == "frame_too_large"


def test_unknown_model_and_rate_limit_close_the_socket(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(rate_limit_per_minute=1, rate_limit_burst=1)) as c:
        with c.websocket_connect("/v1/stream?model=nope") as ws:
            err = ws.receive_json()
            assert err["status"] == 404 and "available" in err
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4404
        with c.websocket_connect("/v1/stream") as ws:
            err = ws.receive_json()
            assert err["status"] == 429 and err["error"] == "rate_limited"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == 4429
