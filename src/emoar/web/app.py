"""The FastAPI application factory.

>>> from emoar.web.app import create_app                       # doctest: +SKIP
>>> from emoar.web.settings import Settings
>>> app = create_app(Settings(model="default"))                 # nothing loads yet
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)             # models load in lifespan

Creating the app loads nothing; the models are loaded once when the server starts (the
``lifespan``), kept on ``app.state.engine`` and handed to routes through
:func:`emoar.web.deps.get_engine`.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emoar import __version__
from emoar.web.engine import AdmissionGate, Engine
from emoar.web.errors import install_error_handlers
from emoar.web.ratelimit import TokenBucketLimiter
from emoar.web.routes import api, pages, pwa, rooms, stream, webrtc
from emoar.web.settings import Settings

__all__ = ["create_app", "uvicorn_options"]

logger = logging.getLogger(__name__)

_DESCRIPTION = """Facial expression recognition with AR overlays, offline.

* `POST /v1/analyze` — one image (multipart field `file`) -> faces, expressions, probabilities.
* `POST /v1/analyze/video` — a short clip -> per-frame results and one summary per track (JSON,
  `?annotate=true` adds the annotated clip as VP8 WebM) or per-face rows (`?format=csv`).
* `WS /v1/stream` — live mode (a websocket, so not in the list below): connect, receive
  `{"type": "hello", "model", "models", "labels", "max_frame_bytes"}`, then send each frame as a
  **binary** message (JPEG, PNG or WebP); each is answered by `{"type": "result", "seq",
  "frame_index", "timestamp_ms", "width", "height", "faces": [... with "track_id" and
  "landmarks_xy"], "model", "dropped", "speed_ms"}` or `{"type": "error", ...}`. Text commands:
  `{"type": "config", "model"}`, `{"type": "reset"}`, `{"type": "ping"}`. Only the newest waiting
  frame is analysed. Close codes: 4429 rate limited, 4404 unknown model, 4403 foreign origin.
* `POST /v1/webrtc/offer` — live mode over WebRTC: the same results on a data channel.
* `WS /v1/rooms/{id}/ws` — meeting rooms (docs/contracts.md).

Every error is JSON: `{"error": code, "message": text, "status": int}`.
"""


class _HeadersMiddleware:
    """Adds ``X-Content-Type-Options`` everywhere, and COOP/COEP when cross-origin isolation is on."""

    def __init__(self, app: ASGIApp, *, isolate: bool) -> None:
        self.app = app
        extra = [(b"x-content-type-options", b"nosniff")]
        if isolate:
            extra += [
                (b"cross-origin-opener-policy", b"same-origin"),
                (b"cross-origin-embedder-policy", b"require-corp"),
            ]
        self.extra = extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: ``emoar serve --workers N`` hands its settings (flags applied) to the worker processes here.
SERVE_SETTINGS_ENV = "EMOAR_SERVE_SETTINGS_JSON"


def app_from_serve() -> FastAPI:
    """The app of one ``emoar serve --workers N`` worker process (uvicorn factory)."""
    raw = os.environ.get(SERVE_SETTINGS_ENV)
    return create_app(Settings.model_validate_json(raw) if raw else None)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` that the settings imply.

    Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are honoured only from the
    addresses in ``settings.forwarded_allow_ips``; with none configured (the default) uvicorn's
    proxy-header middleware is off altogether, so a client cannot choose the address its rate
    limit is keyed on (uvicorn's own default trusts such headers from 127.0.0.1).
    """
    trusted = ",".join(settings.forwarded_allow_ips)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "proxy_headers": bool(trusted),
        "server_header": False,
        "ws_ping_interval": settings.ws_ping_interval_s,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
    }
    if trusted:
        options["forwarded_allow_ips"] = trusted
    return options


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app (cheap: no model is loaded here).

    Args:
        settings: server settings; ``Settings.from_env()`` when None.
        engine: an already loaded :class:`Engine` to serve instead of loading one in the
            lifespan (tests share one across apps; the caller then closes it).

    Returns:
        The FastAPI application; run it with uvicorn (``emoar serve``).
    """
    settings = settings or Settings.from_env()
    # Module scripts and wasm must be served with these types; some systems' mime.types lack them.
    mimetypes.add_type("text/javascript", ".mjs")
    mimetypes.add_type("application/wasm", ".wasm")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine if engine is not None else await run_in_threadpool(Engine.load, settings)
        try:
            yield
        finally:
            webrtc_sessions = getattr(app.state, "webrtc", None)
            if webrtc_sessions is not None:
                await webrtc_sessions.close_all()
                app.state.webrtc = None
            flusher = getattr(app.state, "room_flusher", None)
            if flusher is not None:
                flusher.cancel()
            hub = getattr(app.state, "rooms", None)
            if hub is not None:
                if hub.broker is not None:
                    await hub.broker.close()
                hub.store.close()  # writes the queued timeline entries
                app.state.rooms = None
            if owned:
                app.state.engine.close()
            app.state.engine = None

    app = FastAPI(
        title="emoar",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = None
    app.state.limiter = TokenBucketLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    app.state.image_slots = asyncio.Semaphore(settings.max_images_in_flight)
    app.state.video_gate = AdmissionGate(settings.video_workers + settings.video_queue)
    install_error_handlers(app)
    app.include_router(api.router)
    app.include_router(stream.router)
    app.include_router(webrtc.router)
    app.include_router(rooms.router)
    app.include_router(pages.router)
    app.include_router(pwa.router)
    app.mount("/static", StaticFiles(packages=[("emoar.web", "static")]), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        # Swagger UI from the vendored npm package (FastAPI's default loads it from a CDN).
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="emoar API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/assets/emoji/happy.png",
        )

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(_HeadersMiddleware, isolate=settings.cross_origin_isolation)
    return app
