"""``POST /v1/webrtc/offer``: the live page's WebRTC server mode (aiortc, ``pip install "emoar[webrtc]"``).

The browser sends its camera as a WebRTC video track and opens a data channel; the offer/answer
exchange is one HTTP request (the browser gathers its ICE candidates before sending the offer,
and so does the server before answering, so no trickle signalling is needed). Like aiortc's own
server example, but the frames are analysed, not echoed:

* a reader task receives every decoded frame and keeps only the newest (``dropped`` counts the
  rest), and an analyser task runs the newest on the server's pipelines in a worker thread, so
  latency never builds up however fast the camera or slow the CPU;
* each result goes back on the data channel as the ``WS /v1/stream`` result message
  (:func:`emoar.web.routes.stream.stream_result`: faces with track ids and landmarks,
  ``frame_index``, ``dropped``, ``speed_ms``), plus ``"type": "result"``; the channel also takes
  the websocket's text commands (``config`` / ``reset`` / ``ping``);
* no STUN/TURN server by default (loopback and LAN work with host candidates); configure
  ``EMOAR_WEBRTC_ICE_SERVERS`` (comma-separated ``stun:``/``turn:`` URLs) for other networks;
* at most ``webrtc_max_sessions`` connections (503 ``busy`` beyond), each closed when the peer
  goes away, fails, or sends nothing for ``webrtc_idle_timeout_s``, and all on shutdown.

No frame is stored: each is analysed from memory and released.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from emoar.models import UnknownModelError
from emoar.web.deps import get_engine, get_settings, rate_limit
from emoar.web.engine import Engine
from emoar.web.errors import ApiError, unknown_model_error
from emoar.web.routes.stream import stream_result
from emoar.web.settings import Settings

__all__ = ["WebRTCSessions", "router", "webrtc_available"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["live"])


def webrtc_available() -> bool:
    """Whether aiortc is installed (the ``webrtc`` extra)."""
    import importlib.util

    return importlib.util.find_spec("aiortc") is not None


class OfferIn(BaseModel):
    """The browser's session description (``RTCPeerConnection.localDescription``)."""

    sdp: str = Field(max_length=100_000)
    type: str = Field(pattern="^offer$")
    model: str | None = Field(None, description="model name from /v1/models (default model if omitted)")


class AnswerOut(BaseModel):
    """The server's answer; ``id`` names the session in the server's logs."""

    sdp: str
    type: str
    id: str
    model: str


class _Session:
    """One peer connection: the newest frame, the analyser, the data channel."""

    def __init__(self, pc: Any, engine: Engine, model: str) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.pc = pc
        self.engine = engine
        self.model = model
        self.stream = engine.new_stream(model)
        self.channel: Any = None
        self.latest: Any = None  # the newest decoded frame not analysed yet
        self.wake = asyncio.Event()
        self.dropped = 0
        self.frame_index = 0
        self.t0: float | None = None
        self.last_activity = time.monotonic()
        self.tasks: list[asyncio.Task[Any]] = []
        self.closed = False

    def send(self, msg: dict[str, Any]) -> None:
        ch = self.channel
        if ch is not None and ch.readyState == "open":
            with contextlib.suppress(Exception):  # the peer left between the check and the send
                ch.send(json.dumps(msg))

    async def read(self, track: Any) -> None:
        """Receive every frame; keep only the newest."""
        from aiortc.mediastreams import MediaStreamError

        while not self.closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            self.last_activity = time.monotonic()
            if self.latest is not None:
                self.dropped += 1
            self.latest = frame
            self.wake.set()
        self.wake.set()

    async def analyse(self) -> None:
        """Analyse the newest frame whenever there is one; send its result."""
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            frame, self.latest = self.latest, None
            if frame is None:
                continue
            bgr = frame.to_ndarray(format="bgr24")
            del frame
            now = time.monotonic()
            if self.t0 is None:
                self.t0 = now
            t = time.perf_counter()
            try:
                result = await run_in_threadpool(
                    self.engine.process_stream_frame,
                    bgr,
                    self.stream,
                    model=self.model,
                    frame_index=self.frame_index,
                    timestamp_ms=(now - self.t0) * 1000.0,
                )
            except Exception as e:  # noqa: BLE001 - one bad frame must not end the session
                logger.warning("webrtc %s: frame %d failed: %s", self.id, self.frame_index, e)
                self.send({"type": "error", "status": 500, "error": "frame_failed", "message": str(e)})
                continue
            finally:
                del bgr
            result.speed_ms["total"] = (time.perf_counter() - t) * 1e3
            self.send(stream_result(result, seq=self.frame_index, model=self.model, dropped=self.dropped))
            self.frame_index += 1

    def command(self, text: str) -> None:
        """The websocket's text commands, on the data channel."""
        self.last_activity = time.monotonic()
        try:
            msg = json.loads(text)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except ValueError:
            kind = None
        if kind == "ping":
            self.send({"type": "pong"})
        elif kind == "reset":
            self.stream.reset()
        elif kind == "config" and isinstance(msg.get("model"), str):
            try:
                self.model = self.engine.model(msg["model"]).name
            except UnknownModelError as e:
                self.send({"type": "error", "status": 404, "error": "unknown_model", "message": str(e)})
                return
            self.stream = self.engine.new_stream(self.model)
            self.send({"type": "config", "model": self.model})
        else:
            self.send(
                {
                    "type": "error",
                    "status": 400,
                    "error": "bad_command",
                    "message": f"Unknown command: {text[:80]!r}",
                }
            )

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.wake.set()
        for t in self.tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()


class WebRTCSessions:
    """The server's WebRTC sessions (``app.state.webrtc``), bounded and reaped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: dict[str, _Session] = {}
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.sessions)

    async def open(self, offer: OfferIn, engine: Engine, model: str) -> _Session:
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

        servers = [RTCIceServer(urls=u) for u in self.settings.webrtc_ice_servers]
        pc = RTCPeerConnection(configuration=RTCConfiguration(iceServers=servers))
        session = _Session(pc, engine, model)
        self.sessions[session.id] = session

        @pc.on("datachannel")
        def on_datachannel(channel: Any) -> None:
            session.channel = channel
            channel.on("message", lambda m: session.command(m) if isinstance(m, str) else None)
            # the page may open the channel after the track; say hello like the websocket does
            session.send({"type": "hello", "model": session.model, "id": session.id})
            channel.on(
                "open", lambda: session.send({"type": "hello", "model": session.model, "id": session.id})
            )

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video":
                session.tasks.append(asyncio.ensure_future(session.read(track)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed", "disconnected"):
                await self.close(session.id)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type=offer.type))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self.close(session.id)
            raise
        session.tasks.append(asyncio.ensure_future(session.analyse()))
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.ensure_future(self._reap())
        logger.info("webrtc %s: open (model %s, %d sessions)", session.id, model, len(self.sessions))
        return session

    async def close(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            await session.close()
            logger.info(
                "webrtc %s: closed after %d frames (%d dropped)",
                session_id,
                session.frame_index,
                session.dropped,
            )

    async def _reap(self) -> None:
        while self.sessions:
            await asyncio.sleep(min(5.0, self.settings.webrtc_idle_timeout_s / 3))
            now = time.monotonic()
            for sid, s in list(self.sessions.items()):
                if now - s.last_activity > self.settings.webrtc_idle_timeout_s:
                    logger.info("webrtc %s: idle for %.0f s, closing", sid, now - s.last_activity)
                    await self.close(sid)

    async def close_all(self) -> None:
        for sid in list(self.sessions):
            await self.close(sid)
        if self._reaper is not None:
            self._reaper.cancel()


def _sessions(request: Request) -> WebRTCSessions:
    state = request.app.state
    if getattr(state, "webrtc", None) is None:
        state.webrtc = WebRTCSessions(state.settings)
    sessions: WebRTCSessions = state.webrtc
    return sessions


@router.post(
    "/v1/webrtc/offer",
    response_model=AnswerOut,
    dependencies=[Depends(rate_limit)],
    responses={
        400: {"description": "an offer aiortc cannot use, or without a video track or a data channel"},
        404: {"description": "unknown model"},
        501: {"description": "aiortc is not installed (pip install 'emoar[webrtc]')"},
        503: {"description": "too many WebRTC sessions"},
    },
)
async def webrtc_offer(
    offer: OfferIn,
    request: Request,
    engine: Engine = Depends(get_engine),  # noqa: B008
    settings: Settings = Depends(get_settings),  # noqa: B008
) -> AnswerOut:
    """Start a WebRTC server-mode session: send the camera as a video track with a data channel
    in the offer; results come back on the data channel as ``WS /v1/stream`` result messages."""
    if not webrtc_available():
        raise ApiError(
            501, "webrtc_unavailable", "WebRTC needs aiortc on the server: pip install 'emoar[webrtc]'"
        )
    try:
        model = engine.model(offer.model).name
    except UnknownModelError as e:
        raise unknown_model_error(e) from e
    media = {line.split()[0][2:] for line in offer.sdp.splitlines() if line.startswith("m=") and line.split()}
    missing = [m for m in ("video", "application") if m not in media]
    if missing:
        what = {"video": "video track (the camera)", "application": "data channel (for the results)"}
        raise ApiError(
            400, "bad_offer", "The WebRTC offer has no " + " and no ".join(what[m] for m in missing)
        )
    sessions = _sessions(request)
    if len(sessions) >= settings.webrtc_max_sessions:
        raise ApiError(
            503,
            "busy",
            f"The server already has {len(sessions)} WebRTC sessions (webrtc_max_sessions); "
            "use the websocket server mode or try later",
            headers={"Retry-After": "10"},
        )
    try:
        session = await sessions.open(offer, engine, model)
    except ValueError as e:  # aiortc: an SDP it cannot use
        raise ApiError(400, "bad_offer", f"Cannot use this WebRTC offer: {e}") from e
    desc = session.pc.localDescription
    return AnswerOut(sdp=desc.sdp, type=desc.type, id=session.id, model=model)
