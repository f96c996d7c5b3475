"""HTML pages (live camera page and upload page) and the overlay assets they draw with.

The pages are plain HTML files from ``emoar/web/templates``; the only server-side substitution
is a notice when the vendored front-end packages (``static/vendor``, built by
``scripts/setup.sh``) are missing, so the page says what to run instead of failing silently.
"""

from __future__ import annotations

import html
import json
import logging
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response

from emoar import __version__
from emoar.web.errors import ApiError

__all__ = ["CONTENT_SECURITY_POLICY", "VENDOR_BUILD_HINT", "missing_vendor_files", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

#: What to run when the vendored front-end files are missing.
VENDOR_BUILD_HINT = "scripts/setup.sh (needs node + npm), or: cd web && npm ci && npm run vendor"

_NOTICE_MARK = "<!--EMOAR_NOTICE-->"

#: The pages load nothing from other origins: scripts, wasm, models and sprites all come from
#: this server (the camera stream is a local ``mediastream:``/``blob:``). ``'unsafe-eval'`` is
#: needed by MediaPipe's Emscripten glue (embind builds functions with ``new Function``).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self' data: blob:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def missing_vendor_files() -> list[str]:
    """Vendored files the pages need but that are not installed (empty when all are there).

    ``static/vendor/manifest.json`` is written by ``web/vendor.mjs`` after copying; it lists
    every vendored file relative to ``static/vendor``.
    """
    vendor = resources.files("emoar.web").joinpath("static", "vendor")
    manifest = vendor.joinpath("manifest.json")
    if not manifest.is_file():
        return ["manifest.json"]
    try:
        files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):
        return ["manifest.json (unreadable)"]
    missing = []
    for rel in files:
        node = vendor
        for part in str(rel).split("/"):
            node = node.joinpath(part)
        if not node.is_file():
            missing.append(str(rel))
    return missing


@cache
def _template(name: str) -> str:
    return resources.files("emoar.web").joinpath("templates", name).read_text(encoding="utf-8")


def _page(name: str) -> HTMLResponse:
    text = _template(name).replace("__EMOAR_VERSION__", __version__)
    missing = missing_vendor_files()
    if missing:
        logger.warning(
            "Front-end vendor files missing (%s); run %s", ", ".join(missing[:3]), VENDOR_BUILD_HINT
        )
        notice = (
            '<div class="notice error" id="vendor-missing" role="alert">The on-device front-end files are not '
            f"installed (missing: {html.escape(', '.join(missing[:3]))}{' …' if len(missing) > 3 else ''}). "
            f"Run <code>{html.escape(VENDOR_BUILD_HINT)}</code> and reload. Server mode and the upload page "
            "still work.</div>"
        )
        text = text.replace(_NOTICE_MARK, notice).replace('data-vendor="ok"', 'data-vendor="missing"')
    return HTMLResponse(
        text, headers={"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
    )


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def live_page() -> HTMLResponse:
    """The live camera page (on-device or server mode)."""
    return _page("index.html")


@router.api_route("/upload", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def upload_page() -> HTMLResponse:
    """The upload page (image or clip -> annotated result, table, JSON/CSV download)."""
    return _page("upload.html")


@router.api_route("/meet", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def meet_page() -> HTMLResponse:
    """Meeting mode: create a room (with the EU AI Act note) and get its links."""
    return _page("meet.html")


@router.api_route("/meet/{room_id}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def meet_join_page(room_id: str) -> HTMLResponse:
    """A participant's page: consent, local camera preview, own emoji, what is sent, pause."""
    return _page("meet_join.html")


@router.api_route("/meet/{room_id}/host", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def meet_host_page(room_id: str) -> HTMLResponse:
    """The host's dashboard: tiles, the room's mood now and over time, export, end, delete."""
    return _page("meet_host.html")


_DETECTOR_FILES = ("blazeface_short_range", "blazeface_full_range")


@router.get("/assets/detectors/{name}.onnx")
async def detector_model(name: str) -> Response:
    """A BlazeFace detector model for the on-device page (the files ``emoar.detect`` ships)."""
    if name not in _DETECTOR_FILES:
        raise ApiError(
            404, "not_found", f"No detector model {name!r}; available: {', '.join(_DETECTOR_FILES)}"
        )
    data = resources.files("emoar.detect").joinpath("models", f"{name}.onnx").read_bytes()
    return Response(
        data, media_type="application/octet-stream", headers={"Cache-Control": "public, max-age=86400"}
    )


@router.get("/assets/emoji/{name}.png")
async def emoji(name: str) -> Response:
    """One emoji sprite (straight-alpha PNG) from the overlay's assets."""
    from emoar.overlay import SPRITE_NAMES

    if name not in SPRITE_NAMES:
        raise ApiError(404, "not_found", f"No sprite {name!r}; available: {', '.join(SPRITE_NAMES)}")
    data = resources.files("emoar.overlay").joinpath("assets", f"{name}.png").read_bytes()
    return Response(data, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/assets/quotes.json")
async def quotes() -> Response:
    """The quote list of the overlay's speech bubbles."""
    data = resources.files("emoar.overlay").joinpath("assets", "quotes.json").read_bytes()
    return Response(data, media_type="application/json", headers={"Cache-Control": "public, max-age=3600"})


@router.get("/assets/overlay.json")
async def overlay_style() -> JSONResponse:
    """Colours (hex RGB per expression) and sprite names, shared with the server renderer."""
    from emoar.overlay import EXPRESSION_COLORS_BGR, SPRITE_NAMES, UNCERTAIN_COLOR_BGR, UNCERTAIN_SPRITE

    def hexrgb(bgr: tuple[int, int, int]) -> str:
        b, g, r = bgr
        return f"#{r:02x}{g:02x}{b:02x}"

    body: dict[str, Any] = {
        "colors": {k: hexrgb(v) for k, v in EXPRESSION_COLORS_BGR.items()},
        "uncertain_color": hexrgb(UNCERTAIN_COLOR_BGR),
        "sprites": list(SPRITE_NAMES),
        "uncertain_sprite": UNCERTAIN_SPRITE,
    }
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})
