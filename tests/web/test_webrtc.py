"""WebRTC server mode (aiortc): the live page streams its fake camera to a real server over
WebRTC on loopback and gets results on the data channel; a Python aiortc peer checks the
protocol, newest-frame-only processing and the bad-input answers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web_helpers import ARTIFACTS, CHROMIUM, LiveServer, chromium_args, wait_for, wait_for_one_face, y4m_bytes

pytest.importorskip("aiortc", reason="aiortc is not installed (pip install 'emoar[webrtc]')")


@pytest.fixture(scope="module")
def rtc_server(make_app: Callable[..., FastAPI]) -> Iterator[LiveServer]:
    server = LiveServer(
        make_app(webrtc_max_sessions=2, rate_limit_per_minute=6000, rate_limit_burst=200)
    ).start()
    yield server
    server.stop()


def _sessions(server: LiveServer) -> int:
    webrtc = getattr(server.server.config.app.state, "webrtc", None)
    return 0 if webrtc is None else len(webrtc)


def test_live_page_webrtc_mode_gets_results(
    rtc_server: LiveServer, frame_640x480: np.ndarray, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing")
    y4m = tmp_path / "portrait.y4m"
    y4m.write_bytes(y4m_bytes(frame_640x480, n_frames=3))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(y4m))
        page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
        page.goto(f"{rtc_server.url}/?mode=webrtc")
        wait_for_one_face(page, what="a face over WebRTC")
        assert page.evaluate("() => window.__emoar.mode") == "webrtc"
        assert _sessions(rtc_server) == 1
        f0 = page.evaluate("() => window.__emoar.frames")
        page.wait_for_timeout(2000)
        frames = page.evaluate("() => window.__emoar.frames") - f0
        assert frames >= 10, frames  # results keep coming (>= 5 per second even on a loaded CPU)
        face = page.evaluate("() => window.__emoar.faces[0]")
        x1, y1, x2, y2 = face["box_xyxy"]
        assert 200 < (x1 + x2) / 2 < 440 and x2 - x1 > 100  # the face, in the page's pixels
        page.screenshot(path=str(ARTIFACTS / "live_webrtc.png"))
        page.select_option("#mode", "server")  # leaving the mode closes the session on the server
        wait_for(page, "() => window.__emoar.mode === 'server' && window.__emoar.ready", what="server mode")
        deadline = time.monotonic() + 10
        while _sessions(rtc_server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _sessions(rtc_server) == 0
        browser.close()


async def _peer(url: str, frame: np.ndarray, seconds: float, fps: float = 30.0) -> dict[str, Any]:
    """A Python WebRTC client: sends ``frame`` at ``fps``, collects the data channel's messages."""
    import av
    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

    class Camera(VideoStreamTrack):
        async def recv(self) -> Any:
            pts, time_base = await self.next_timestamp()
            vf = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vf.pts, vf.time_base = pts, time_base
            return vf

    pc = RTCPeerConnection()
    channel = pc.createDataChannel("emoar")
    messages: list[dict[str, Any]] = []
    channel.on("message", lambda m: messages.append(json.loads(m)))
    pc.addTrack(Camera())
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{url}/v1/webrtc/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"})
        assert r.status_code == 200, r.text
        answer = r.json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(0.1)
    channel.send(json.dumps({"type": "ping"}))
    await asyncio.sleep(0.5)
    await pc.close()
    return {"answer": answer, "messages": messages}


def test_python_peer_gets_newest_frame_results(rtc_server: LiveServer, frame_640x480: np.ndarray) -> None:
    out = asyncio.run(_peer(rtc_server.url, frame_640x480, seconds=4.0))
    assert out["answer"]["type"] == "answer" and out["answer"]["model"]
    results = [m for m in out["messages"] if m["type"] == "result"]
    assert len(results) >= 10, [m["type"] for m in out["messages"]][:5]
    assert all(len(r["faces"]) == 1 for r in results[2:])
    ids = {r["faces"][0]["track_id"] for r in results[2:]}
    assert len(ids) == 1 and None not in ids  # one track across the stream
    assert [r["frame_index"] for r in results] == list(range(len(results)))
    # the camera sends 30 fps; what the server cannot analyse is dropped, not queued
    assert results[-1]["timestamp_ms"] > 3000 * 0.7
    assert any(m["type"] == "pong" for m in out["messages"])


def test_offer_errors(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app()) as c:
        r = c.post("/v1/webrtc/offer", json={"sdp": "v=0\r\nnonsense", "type": "offer"})
        assert r.status_code == 400 and r.json()["error"] == "bad_offer", r.text
        assert "video track" in r.json()["message"] and "data channel" in r.json()["message"]
        r = c.post("/v1/webrtc/offer", json={"sdp": "v=0", "type": "answer"})
        assert r.status_code == 422
        r = c.post("/v1/webrtc/offer", json={"sdp": "v=0", "type": "offer", "model": "nope"})
        assert r.status_code == 404 and "available" in r.json()


async def _offers(url: str, n: int) -> list[int]:
    import httpx
    from aiortc import RTCPeerConnection, VideoStreamTrack

    pcs, codes = [], []
    async with httpx.AsyncClient() as http:
        for _ in range(n):
            pc = RTCPeerConnection()
            pc.createDataChannel("emoar")
            pc.addTrack(VideoStreamTrack())
            await pc.setLocalDescription(await pc.createOffer())
            r = await http.post(
                f"{url}/v1/webrtc/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"}
            )
            codes.append(r.status_code)
            pcs.append(pc)
            if r.status_code == 503:
                assert r.json()["error"] == "busy" and r.headers["retry-after"]
    for pc in pcs:
        await pc.close()
    return codes


def test_sessions_are_bounded(rtc_server: LiveServer) -> None:
    deadline = time.monotonic() + 15
    while _sessions(rtc_server) and time.monotonic() < deadline:  # earlier tests' sessions close
        time.sleep(0.1)
    assert asyncio.run(_offers(rtc_server.url, 3)) == [200, 200, 503]
