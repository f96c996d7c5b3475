"""One JSON error shape for every failure: ``{"error": code, "message": text, "status": int}``.

Routes raise :class:`ApiError`; :func:`install_error_handlers` turns it, FastAPI's validation
errors, Starlette's HTTP errors (404 route, 405 method) and anything unexpected into that shape,
so a client never sees an HTML page or an empty 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "error_body", "install_error_handlers", "unknown_model_error"]

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error a route reports to the client.

    Attributes:
        status: HTTP status code (4xx for anything the client can fix).
        code: short machine-readable error name (``"undecodable_image"``).
        message: what went wrong and what to do next, in words.
        extra: more JSON fields for the body (e.g. ``available`` model names).
        headers: extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = int(status)
        self.code = code
        self.message = message
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body of the response."""
        return error_body(self.status, self.code, self.message, **self.extra)

    def response(self) -> JSONResponse:
        """The JSON response for this error."""
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def unknown_model_error(exc: Exception) -> ApiError:
    """The 404 for an :class:`emoar.models.UnknownModelError` (REST and websocket alike)."""
    available = list(getattr(exc, "available", ()))
    return ApiError(404, "unknown_model", str(exc), extra={"available": available})


def error_body(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error JSON: ``{"error": code, "message": message, "status": status, **extra}``."""
    return {"error": code, "message": message, "status": int(status), **extra}


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {e.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the JSON shape above."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        logger.info("%s %s -> %d %s: %s", request.method, request.url.path, exc.status, exc.code, exc.message)
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        body = error_body(422, "invalid_request", _validation_message(errors), detail=errors)
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if status == 404 and message == "Not Found":
            message = f"No route {request.url.path!r}; see /docs for the API"
        body = error_body(status, _CODES.get(status, "http_error"), message)
        return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - safety net
        logger.exception("Unexpected error on %s %s", request.method, request.url.path)
        body = error_body(500, "internal_error", f"Internal error ({type(exc).__name__}); see the server log")
        return JSONResponse(body, status_code=500)
