"""Meeting mode's REST routes and room websocket (docs/contracts.md, "Meeting mode").

REST calls carry their token as ``Authorization: Bearer <token>``; the websocket takes it as
``?token=`` (browsers cannot set headers on websockets). A missing, wrong or other room's token
gets 401 (REST) or a close with code 1008 (websocket), and nothing about the room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from emoar.meeting.protocol import MAX_MESSAGE_BYTES, ProtocolError, parse_client_message
from emoar.meeting.rooms import Principal, RoomError, RoomHub
from emoar.web.deps import get_engine, get_settings, rate_limit
from emoar.web.errors import ApiError, error_body
from emoar.web.ratelimit import TokenBucketLimiter
from emoar.web.routes.stream import origin_allowed
from emoar.web.settings import Settings

__all__ = ["get_rooms", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["meeting"])

_CLOSE_POLICY = 1008  # RFC 6455: policy violation (auth failures)


class RoomIn(BaseModel):
    """``POST /v1/rooms`` body."""

    title: str = Field(..., min_length=1, max_length=200)
    visibility: Literal["host", "everyone", "aggregate"] = "host"
    retention_hours: float = Field(24.0, gt=0, le=24 * 90)


class JoinIn(BaseModel):
    """``POST /v1/rooms/{id}/join`` body."""

    code: str = Field(..., min_length=1, max_length=16)
    display_name: str | None = Field(None, max_length=64)


def _data_dir(settings: Settings) -> Path:
    if settings.data_dir:
        return Path(settings.data_dir).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "emoar"


async def get_rooms(conn: HTTPConnection) -> RoomHub:
    """The app's rooms, created on first use (a server that never hosts a room writes nothing).

    Raises:
        ApiError: 503 when ``broker_url`` is set and the broker cannot be reached.
    """
    hub: RoomHub | None = getattr(conn.app.state, "rooms", None)
    if hub is not None:
        return hub
    lock = conn.app.state.__dict__.setdefault("_rooms_lock", asyncio.Lock())
    async with lock:
        hub = getattr(conn.app.state, "rooms", None)
        if hub is not None:
            return hub
        from emoar.meeting.store import RoomStore

        settings: Settings = conn.app.state.settings
        if settings.workers > 1 and not settings.broker_url:
            raise ApiError(
                503,
                "broker_required",
                "Meeting rooms served by several workers need EMOAR_BROKER_URL=redis://... "
                "(or run one worker)",
            )
        broker = None
        if settings.broker_url:
            from emoar.meeting.broker import BrokerError, RedisBroker

            try:
                broker = RedisBroker(
                    settings.broker_url,
                    prefix=settings.broker_prefix,
                    worker_ttl_s=settings.broker_worker_ttl_s,
                )
            except BrokerError as e:
                raise ApiError(503, "broker_unavailable", str(e)) from e
        engine = get_engine(conn)
        store = await run_in_threadpool(RoomStore, settings.database_url or _data_dir(settings))
        await run_in_threadpool(store.purge_expired)
        hub = RoomHub(
            store,
            engine.model(None).labels,
            stale_after_s=settings.room_stale_after_s,
            max_participants=settings.room_max_participants,
            broker=broker,
            loop=asyncio.get_running_loop(),
        )
        if broker is not None:
            try:
                await broker.start(hub)
            except BrokerError as e:
                await broker.close()
                store.close()
                logger.error("%s", e)
                raise ApiError(503, "broker_unavailable", str(e)) from e
        conn.app.state.rooms = hub
        conn.app.state.room_flusher = asyncio.get_running_loop().create_task(_flush_forever(hub))
    return hub


async def _flush_forever(hub: RoomHub, every_s: float = 0.5) -> None:
    last_purge = time.monotonic()
    while True:
        await asyncio.sleep(every_s)
        try:
            await run_in_threadpool(hub.store.flush)
            if time.monotonic() - last_purge > 600:
                last_purge = time.monotonic()
                await run_in_threadpool(hub.store.purge_expired)
        except Exception:  # pragma: no cover - keep flushing after a transient database error
            logger.exception("meeting store flush failed")


def _api(e: RoomError) -> ApiError:
    return ApiError(e.status, e.code, e.message)


def _bearer(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None


def _principal(hub: RoomHub, room_id: str, authorization: str | None) -> Principal:
    try:
        return hub.authenticate(room_id, _bearer(authorization))
    except RoomError as e:
        raise ApiError(e.status, e.code, e.message, headers={"WWW-Authenticate": "Bearer"}) from e


_ROOM_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, wrong or other room's token"},
    403: {"description": "not allowed for this role, or wrong join code"},
    404: {"description": "no such room"},
    409: {"description": "room full"},
    410: {"description": "room ended"},
    422: {"description": "invalid body or parameter"},
    429: {"description": "rate limited"},
}


@router.post("/v1/rooms", status_code=201, responses=_ROOM_ERRORS, dependencies=[Depends(rate_limit)])
async def create_room(body: RoomIn, request: Request, hub: RoomHub = Depends(get_rooms)) -> JSONResponse:  # noqa: B008
    """Create a room: the host token is returned once (keep it), with the join code and links."""
    try:
        created = await run_in_threadpool(hub.create, body.title, body.visibility, body.retention_hours)
    except RoomError as e:
        raise _api(e) from e
    base = str(request.base_url).rstrip("/")
    created["host_url"] = base + created["host_url"]
    created["join_url"] = base + created["join_url"]
    return JSONResponse(created, status_code=201)


@router.get("/v1/rooms/{room_id}", responses=_ROOM_ERRORS)
async def get_room(
    room_id: str,
    authorization: str | None = Header(None),
    hub: RoomHub = Depends(get_rooms),  # noqa: B008
) -> JSONResponse:
    """The room as the token's holder may see it (host: tiles or mood; participant: own state,
    or everyone's in an ``everyone`` room)."""
    principal = _principal(hub, room_id, authorization)
    await hub.ensure(room_id)
    try:
        snap = hub.snapshot(principal)
    except RoomError as e:
        raise _api(e) from e
    snap.pop("type", None)
    return JSONResponse(snap)


@router.post("/v1/rooms/{room_id}/join", responses=_ROOM_ERRORS, dependencies=[Depends(rate_limit)])
async def join_room(room_id: str, body: JoinIn, hub: RoomHub = Depends(get_rooms)) -> JSONResponse:  # noqa: B008
    """Join with the room's code; the participant token is returned once."""
    await hub.ensure(room_id)
    try:
        return JSONResponse(await run_in_threadpool(hub.join, room_id, body.code, body.display_name))
    except RoomError as e:
        raise _api(e) from e


@router.get("/v1/rooms/{room_id}/timeline", responses=_ROOM_ERRORS)
async def room_timeline(
    room_id: str,
    format: Literal["json", "csv"] = Query("json"),  # noqa: A002
    authorization: str | None = Header(None),
    hub: RoomHub = Depends(get_rooms),  # noqa: B008
) -> Response:
    """The room's history (host only): every state change, reaction, join and leave, or in an
    ``aggregate`` room the counts over time only."""
    principal = _principal(hub, room_id, authorization)
    try:
        text = await run_in_threadpool(hub.timeline, principal, format)
    except RoomError as e:
        raise _api(e) from e
    if format == "csv":
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="room_{room_id}.csv"'},
        )
    return Response(text, media_type="application/json")


async def _host_action(
    hub: RoomHub, room_id: str, authorization: str | None, action: Callable[[Principal], None]
) -> Response:
    principal = _principal(hub, room_id, authorization)
    try:
        await run_in_threadpool(action, principal)
    except RoomError as e:
        raise _api(e) from e
    return Response(status_code=204)


@router.post("/v1/rooms/{room_id}/end", status_code=204, responses=_ROOM_ERRORS)
async def end_room(
    room_id: str,
    authorization: str | None = Header(None),
    hub: RoomHub = Depends(get_rooms),  # noqa: B008
) -> Response:
    """End the room for everyone (host only); its history stays exportable until deleted."""
    return await _host_action(hub, room_id, authorization, hub.end)


@router.delete("/v1/rooms/{room_id}", status_code=204, responses=_ROOM_ERRORS)
async def delete_room(
    room_id: str,
    authorization: str | None = Header(None),
    hub: RoomHub = Depends(get_rooms),  # noqa: B008
) -> Response:
    """Delete the room and every record of it (host only)."""
    return await _host_action(hub, room_id, authorization, hub.delete)


@router.websocket("/v1/rooms/{room_id}/ws")
async def room_socket(
    ws: WebSocket,
    room_id: str,
    token: str | None = Query(None),
    settings: Settings = Depends(get_settings),  # noqa: B008
) -> None:
    """The room's live channel (docs/contracts.md lists every message)."""
    origin = ws.headers.get("origin")
    if origin is not None and not origin_allowed(origin, ws.headers.get("host"), settings.cors_origins):
        await ws.close(code=4403)
        return
    await ws.accept()
    try:
        hub = await get_rooms(ws)
        principal = hub.authenticate(room_id, token)
        await hub.ensure(room_id)
        conn = hub.connect(principal)
    except (RoomError, ApiError) as e:
        status, code, message = (e.status, e.code, e.message)
        await ws.send_text(json.dumps({"type": "error", **error_body(status, code, message)}))
        await ws.close(code=_CLOSE_POLICY if status in (401, 403) else 4000 + status)
        return
    limiter = TokenBucketLimiter(settings.room_rate_per_s * 60.0, settings.room_burst)

    async def sender() -> None:
        while True:
            text = await conn.queue.get()
            await ws.send_text(text)
            if conn.finished and conn.queue.empty() and principal.role == "participant":
                await ws.close(code=1000)
                return

    task = asyncio.create_task(sender())
    try:
        while True:
            try:
                msg = await asyncio.wait_for(ws.receive(), settings.room_idle_timeout_s)
            except TimeoutError:
                await ws.close(code=1001, reason="idle")  # the client reconnects if it is alive
                break
            if msg["type"] == "websocket.disconnect":
                break
            raw = msg.get("text") if msg.get("text") is not None else msg.get("bytes")
            if raw is None:
                continue
            if not limiter.acquire("c")[0]:
                conn.send(
                    {"type": "error", **error_body(429, "rate_limited", "Too many messages; slow down")}
                )
                continue
            try:
                parsed = parse_client_message(raw, hub.labels)
                if parsed["type"] == "ping":
                    conn.send({"type": "pong", "t": parsed["t"]})
                elif parsed["type"] == "state":
                    hub.update_state(principal, parsed["state"])
                else:
                    hub.react(principal, parsed["reaction"])
            except ProtocolError as e:
                status = 413 if len(raw) > MAX_MESSAGE_BYTES else 400
                conn.send({"type": "error", **error_body(status, "bad_message", str(e))})
            except RoomError as e:
                conn.send({"type": "error", **error_body(e.status, e.code, e.message)})
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.disconnect(conn)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
