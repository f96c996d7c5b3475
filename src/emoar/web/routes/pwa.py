"""The installable app: web manifest, icons and the service worker that keeps the live page's
on-device mode working offline after one visit (``static/pwa/sw.js`` explains its caching).

The service worker is served from ``/sw.js`` so that its scope is the whole site; its precache
list is built here from what the page actually loads (the static scripts and styles, the vendored
onnxruntime-web files, the BlazeFace models, the default model's ``onnx_url``, the sprites), and
its cache name from the emoar version plus a digest of that list, the models' hashes and the
contents of the page's own files (templates, scripts, styles), so a new release, a new model or
an edited script replaces the old cache.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from emoar import __version__
from emoar.web.deps import get_engine
from emoar.web.engine import Engine
from emoar.web.errors import ApiError

__all__ = ["ICON_SIZES", "precache_urls", "router"]

router = APIRouter(include_in_schema=False)

#: Icon sizes in pixels (Chrome needs 192 and 512 to offer installing).
ICON_SIZES = (192, 512)
_THEME = "#14171c"
_ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


@router.get("/manifest.webmanifest")
async def manifest() -> JSONResponse:
    """The web app manifest (name, icons, standalone display, start at the live page)."""
    body: dict[str, Any] = {
        "name": "emoar — live expression overlays",
        "short_name": "emoar",
        "description": "Facial expressions with AR overlays, on this device, offline.",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": _THEME,
        "theme_color": _THEME,
        "icons": [
            {
                "src": f"/assets/icons/{s}.png",
                "sizes": f"{s}x{s}",
                "type": "image/png",
                "purpose": "any maskable",
            }
            for s in ICON_SIZES
        ],
    }
    return JSONResponse(body, media_type="application/manifest+json", headers={"Cache-Control": "no-cache"})


@cache
def _icon(size: int) -> bytes:
    """The happy emoji centred on a dark square, inside the maskable safe zone (80%)."""
    import cv2
    import numpy as np

    data = resources.files("emoar.overlay").joinpath("assets", "happy.png").read_bytes()
    sprite = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if sprite is None:  # pragma: no cover - the sprite ships with the package
        raise RuntimeError("the happy.png sprite does not decode")
    inner = int(size * 0.62)
    interp = cv2.INTER_AREA if inner < sprite.shape[0] else cv2.INTER_LANCZOS4
    s = cv2.resize(sprite, (inner, inner), interpolation=interp).astype(np.float32)
    bg = np.array([int(_THEME[5:7], 16), int(_THEME[3:5], 16), int(_THEME[1:3], 16)], np.float32)
    out = np.empty((size, size, 3), np.float32)
    out[:] = bg
    o = (size - inner) // 2
    a = s[..., 3:4] / 255.0
    out[o : o + inner, o : o + inner] = s[..., :3] * a + out[o : o + inner, o : o + inner] * (1 - a)
    ok, png = cv2.imencode(".png", np.clip(out + 0.5, 0, 255).astype(np.uint8))
    if not ok:  # pragma: no cover - cv2 always encodes a uint8 BGR image
        raise RuntimeError("PNG encoding failed")
    return bytes(png.tobytes())


@router.get("/assets/icons/{size}.png")
async def icon(size: int) -> Response:
    """An app icon (``ICON_SIZES``)."""
    if size not in ICON_SIZES:
        raise ApiError(404, "not_found", f"No {size}px icon; available: {', '.join(map(str, ICON_SIZES))}")
    return Response(_icon(size), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


def precache_urls(engine: Engine) -> list[str]:
    """What the service worker stores at install: enough for the live page's on-device mode."""
    from emoar.overlay import SPRITE_NAMES
    from emoar.web.routes.pages import missing_vendor_files

    static = resources.files("emoar.web").joinpath("static")
    urls = [
        "/",
        "/upload",
        "/manifest.webmanifest",
        "/v1/models",
        "/assets/overlay.json",
        "/assets/quotes.json",
    ]
    for sub in ("js", "css"):
        urls += sorted(f"/static/{sub}/{p.name}" for p in static.joinpath(sub).iterdir() if p.is_file())
    if not missing_vendor_files():
        urls += [f"/static/vendor/onnxruntime-web/{n}" for n in _ORT_FILES]
    urls += [f"/assets/detectors/{n}.onnx" for n in ("blazeface_short_range", "blazeface_full_range")]
    urls += [f"/assets/emoji/{n}.png" for n in SPRITE_NAMES]
    urls += [f"/assets/icons/{s}.png" for s in ICON_SIZES]
    urls.append(f"/v1/models/{engine.default_model}/onnx")
    return urls


@cache
def _page_files_digest() -> str:
    """SHA-256 over the page's own files (templates, static js/css/pwa): an edited script changes
    the service worker's cache name even when the precache list stays the same."""
    web = resources.files("emoar.web")
    h = hashlib.sha256()
    for folder in (web.joinpath("templates"), *(web.joinpath("static", d) for d in ("js", "css", "pwa"))):
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir(), key=lambda q: q.name):
            if p.is_file():
                h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@router.get("/sw.js")
async def service_worker(engine: Engine = Depends(get_engine)) -> Response:  # noqa: B008
    """The service worker (scope ``/``), with this server's precache list and cache name."""
    urls = precache_urls(engine)
    models = sorted(f"{n}:{m.sha256 or m.path}" for n, m in engine.models.items())
    digest = hashlib.sha256(json.dumps([urls, models, _page_files_digest()]).encode()).hexdigest()[:12]
    text = (
        resources.files("emoar.web")
        .joinpath("static", "pwa", "sw.js")
        .read_text(encoding="utf-8")
        .replace("__EMOAR_CACHE__", f"emoar-{__version__}-{digest}")
        .replace("__EMOAR_PRECACHE__", json.dumps(urls))
    )
    return Response(
        text,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )
