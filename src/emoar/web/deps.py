"""Dependencies handed to routes (override them in tests with ``app.dependency_overrides``).

The engine, settings and rate limiter are created in the app's ``lifespan`` and kept on
``app.state``; routes never reach for globals.
"""

from __future__ import annotations

import asyncio

from fastapi import Depends
from starlette.requests import HTTPConnection

from emoar.web.engine import Engine
from emoar.web.errors import ApiError
from emoar.web.ratelimit import TokenBucketLimiter
from emoar.web.settings import Settings

__all__ = ["client_key", "get_engine", "get_image_slots", "get_limiter", "get_settings", "rate_limit"]


def get_settings(conn: HTTPConnection) -> Settings:
    """The app's settings."""
    settings: Settings = conn.app.state.settings
    return settings


def get_engine(conn: HTTPConnection) -> Engine:
    """The loaded models.

    Raises:
        ApiError: 503 while the models are not loaded (startup failed or still running).
    """
    engine: Engine | None = getattr(conn.app.state, "engine", None)
    if engine is None:
        raise ApiError(503, "unavailable", "The models are not loaded yet; retry in a moment")
    return engine


def get_limiter(conn: HTTPConnection) -> TokenBucketLimiter:
    """The per-client rate limiter."""
    limiter: TokenBucketLimiter = conn.app.state.limiter
    return limiter


def get_image_slots(conn: HTTPConnection) -> asyncio.Semaphore:
    """The app's semaphore of ``max_images_in_flight`` slots: hold one from the start of an
    image's decoding to the end of its analysis."""
    slots: asyncio.Semaphore = conn.app.state.image_slots
    return slots


def client_key(conn: HTTPConnection) -> str:
    """The rate-limit key of a client: its IP address — the direct peer, or the address a
    trusted proxy (``Settings.forwarded_allow_ips``) forwarded; never a header a client chose."""
    return conn.client.host if conn.client is not None else "unknown"


def rate_limit(conn: HTTPConnection, limiter: TokenBucketLimiter = Depends(get_limiter)) -> None:  # noqa: B008
    """Take a token for this client or refuse the request.

    Raises:
        ApiError: 429 with a ``Retry-After`` header when the client is over its rate.
    """
    allowed, retry = limiter.acquire(client_key(conn))
    if not allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"Too many requests from {client_key(conn)}; retry in {retry:.1f} s "
            f"(limit {limiter.rate_per_s * 60:g}/min, burst {limiter.burst:g})",
            extra={"retry_after_s": round(retry, 2)},
            headers={"Retry-After": limiter.retry_after_header(retry)},
        )
