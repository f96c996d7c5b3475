"""``WS /v1/stream``: server-side live mode.

Protocol (all server messages are JSON text):

* on connect the server sends ``{"type": "hello", "model": ..., "models": [...], "labels": [...],
  "max_frame_bytes": ...}``;
* the client sends frames as **binary** messages (JPEG, or any image the analyze route accepts);
  each is answered by ``{"type": "result", "seq": n, "frame_index": i, "timestamp_ms": t,
  "width", "height", "faces": [... analyze faces with track ids, plus "landmarks_xy"], "model",
  "dropped", "speed_ms"}``; ``seq`` counts the client's binary messages from 0;
* a frame that cannot be used gets ``{"type": "error", "status": 400|413|415, "error": code,
  "message": text, "seq": n}`` and the connection stays open;
* text messages are JSON commands: ``{"type": "config", "model": name}`` (switch model, fresh
  tracks), ``{"type": "reset"}`` (forget tracks), ``{"type": "ping"}`` (answered by ``pong``).

Each connection has its own :class:`emoar.pipeline.StreamState` (tracker + smoother). When the
client sends faster than the server analyses, only the newest frame waits; older ones are
dropped (and counted in ``dropped``) so the results never lag behind the camera.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from emoar.models import UnknownModelError
from emoar.pipeline import StreamState
from emoar.types import FrameResult
from emoar.web.deps import client_key, get_engine, get_image_slots, get_limiter, get_settings
from emoar.web.engine import Engine
from emoar.web.errors import ApiError, error_body, unknown_model_error
from emoar.web.ratelimit import TokenBucketLimiter
from emoar.web.settings import Settings
from emoar.web.uploads import IMAGE_FORMATS, decode_image_bytes, sniff

__all__ = ["origin_allowed", "router", "stream_result"]

logger = logging.getLogger(__name__)

router = APIRouter()

# Close codes (4000-4999 are for applications).
_CLOSE_RATE_LIMITED = 4429
_CLOSE_UNKNOWN_MODEL = 4404
_CLOSE_FORBIDDEN_ORIGIN = 4403


def origin_allowed(origin: str, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a browser page at ``origin`` may open the websocket: the page was served by this
    server (same host and port as the ``Host`` header), or its origin is configured in
    ``cors_origins`` (``*`` allows any)."""
    if "*" in allowed or origin.rstrip("/") in {o.rstrip("/") for o in allowed}:
        return True
    netloc = urlsplit(origin).netloc.lower()
    return bool(host) and netloc == str(host).lower()


def stream_result(result: FrameResult, *, seq: int, model: str, dropped: int) -> dict[str, Any]:
    """The ``result`` message for one frame: the analyze JSON plus stream fields and landmarks."""
    body = result.to_dict(landmarks=True)
    body.update(
        {
            "type": "result",
            "seq": seq,
            "frame_index": result.frame_index,
            "timestamp_ms": round(result.timestamp_ms, 1),
            "model": model,
            "dropped": dropped,
            "speed_ms": {k: round(v, 2) for k, v in result.speed_ms.items()},
        }
    )
    return body


class _Session:
    """One websocket connection: its stream state, the newest pending frame, and counters."""

    def __init__(
        self, ws: WebSocket, engine: Engine, settings: Settings, model: str, slots: asyncio.Semaphore
    ) -> None:
        self.ws = ws
        self.engine = engine
        self.settings = settings
        self.slots = slots
        self.model = model
        self.stream: StreamState = engine.new_stream(model)
        self.seq = -1
        self.frame_index = 0
        self.dropped = 0
        self.t0: float | None = None
        self.pending: tuple[int, bytes] | None = None
        self.wake = asyncio.Event()
        self.closed = False
        self.send_lock = asyncio.Lock()

    async def send(self, msg: dict[str, Any]) -> None:
        """Send one JSON message; a no-op once the connection is gone (a result finished after
        the client left, or a keepalive timeout closed it, is dropped quietly)."""
        if self.closed:
            return
        async with self.send_lock:
            try:
                await self.ws.send_text(json.dumps(msg))
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.closed = True
                self.wake.set()

    async def error(self, status: int, code: str, message: str, **extra: Any) -> None:
        await self.send({"type": "error", **error_body(status, code, message, **extra)})

    async def command(self, text: str) -> None:
        try:
            msg = json.loads(text)
            kind = msg.get("type") if isinstance(msg, dict) else None
        except ValueError:
            kind, msg = None, None
        if kind == "ping":
            await self.send({"type": "pong", "t": msg.get("t") if isinstance(msg, dict) else None})
        elif kind == "reset":
            self.stream = self.engine.new_stream(self.model)
            await self.send({"type": "reset"})
        elif kind == "config":
            assert isinstance(msg, dict)
            name = msg.get("model")
            if name is not None:
                try:
                    self.model = self.engine.model(name).name
                except UnknownModelError as e:
                    err = unknown_model_error(e)
                    await self.error(err.status, err.code, err.message, **err.extra)
                    return
                self.stream = self.engine.new_stream(self.model)
            await self.send(
                {"type": "config", "model": self.model, "labels": list(self.engine.model(self.model).labels)}
            )
        else:
            await self.error(
                400,
                "bad_command",
                "Text messages must be JSON commands: "
                '{"type": "config", "model": NAME}, {"type": "reset"} or {"type": "ping"}; '
                "send frames as binary JPEG messages",
            )

    async def receive_loop(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data, text = msg.get("bytes"), msg.get("text")
                if data is not None:
                    self.seq += 1
                    if len(data) > self.settings.max_ws_frame_bytes:
                        await self.error(
                            413,
                            "frame_too_large",
                            f"Frame {self.seq} is {len(data)} bytes; the limit is "
                            f"{self.settings.max_ws_frame_bytes} bytes. Send smaller JPEGs",
                            seq=self.seq,
                        )
                        continue
                    if self.pending is not None:
                        self.dropped += 1
                    self.pending = (self.seq, data)
                    self.wake.set()
                elif text is not None:
                    await self.command(text)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closed = True
            self.wake.set()

    async def process_loop(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.closed:
                return
            if self.pending is None:
                continue
            seq, data = self.pending
            self.pending = None
            try:
                await self.process(seq, data)
            except Exception as e:  # keep the connection: one bad frame must not end the session
                if self.closed:
                    return
                logger.exception("stream frame %d failed", seq)
                await self.error(
                    500,
                    "internal_error",
                    f"Frame {seq} failed ({type(e).__name__}); see the server log",
                    seq=seq,
                )

    async def process(self, seq: int, data: bytes) -> None:
        fmt = sniff(data)
        if data and fmt is not None and fmt not in IMAGE_FORMATS:
            await self.error(
                415,
                "unsupported_media_type",
                f"Frame {seq} is {fmt}; send JPEG (or PNG/WebP) frames",
                seq=seq,
            )
            return
        async with self.slots:  # bounds the decoded images in memory across all clients
            try:
                frame = await run_in_threadpool(decode_image_bytes, data, f"frame {seq}", self.settings)
            except ApiError as e:
                await self.error(e.status, e.code, e.message, seq=seq, **e.extra)
                return
            now = time.monotonic()
            if self.t0 is None:
                self.t0 = now
            ts = (now - self.t0) * 1000.0
            stream, model = self.stream, self.model
            result = await run_in_threadpool(
                self.engine.process_stream_frame,
                frame,
                stream,
                model=model,
                frame_index=self.frame_index,
                timestamp_ms=ts,
            )
            del frame
        self.frame_index += 1
        if not self.closed:
            await self.send(stream_result(result, seq=seq, model=model, dropped=self.dropped))


@router.websocket("/v1/stream")
async def stream(
    ws: WebSocket,
    model: str | None = Query(None),
    engine: Engine = Depends(get_engine),  # noqa: B008
    settings: Settings = Depends(get_settings),  # noqa: B008
    limiter: TokenBucketLimiter = Depends(get_limiter),  # noqa: B008
    slots: asyncio.Semaphore = Depends(get_image_slots),  # noqa: B008
) -> None:
    """Live mode: binary JPEG frames in, JSON results out (see the module docstring)."""
    origin = ws.headers.get("origin")
    if origin is not None and not origin_allowed(origin, ws.headers.get("host"), settings.cors_origins):
        # Refused during the handshake: the browser sees HTTP 403, and no frame is ever read.
        logger.info("websocket from origin %r refused (host %r)", origin, ws.headers.get("host"))
        await ws.close(code=_CLOSE_FORBIDDEN_ORIGIN)
        return
    await ws.accept()
    allowed, retry = limiter.acquire(client_key(ws))
    if not allowed:
        await ws.send_text(
            json.dumps(
                {
                    "type": "error",
                    **error_body(
                        429,
                        "rate_limited",
                        f"Too many connections; retry in {retry:.1f} s",
                        retry_after_s=round(retry, 2),
                    ),
                }
            )
        )
        await ws.close(code=_CLOSE_RATE_LIMITED)
        return
    try:
        model_name = engine.model(model).name
    except UnknownModelError as e:
        await ws.send_text(json.dumps({"type": "error", **unknown_model_error(e).body()}))
        await ws.close(code=_CLOSE_UNKNOWN_MODEL)
        return
    session = _Session(ws, engine, settings, model_name, slots)
    await session.send(
        {
            "type": "hello",
            "model": session.model,
            "models": list(engine.models),
            "labels": list(engine.model(session.model).labels),
            "max_frame_bytes": settings.max_ws_frame_bytes,
        }
    )
    worker = asyncio.create_task(session.process_loop())
    try:
        await session.receive_loop()
    finally:
        session.closed = True
        session.wake.set()
        with contextlib.suppress(Exception):
            await worker
        logger.debug("stream closed after %d frames (%d dropped)", session.frame_index, session.dropped)
