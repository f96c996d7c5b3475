"""REST routes: health, models, image and clip analysis (docs/contracts.md, "REST and websocket")."""

from __future__ import annotations

import asyncio
import base64
import csv
import functools
import hashlib
import io
import logging
from pathlib import Path, PurePath
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from emoar.summary import summarize_tracks
from emoar.types import FrameResult, csv_header
from emoar.web import schemas
from emoar.web.deps import get_engine, get_image_slots, get_settings, rate_limit
from emoar.web.engine import (
    ClipTooLongError,
    Engine,
    FrameTooLargeError,
    UndecodableVideoError,
    VideoBusyError,
)
from emoar.web.errors import ApiError, unknown_model_error
from emoar.web.settings import Settings
from emoar.web.uploads import (
    IMAGE_FORMATS,
    VIDEO_FORMATS,
    Upload,
    claims_image,
    decode_image_bytes,
    parse_multipart,
    read_body,
    sniff,
)

__all__ = ["router", "video_csv"]

logger = logging.getLogger(__name__)

router = APIRouter()

# Room for the multipart boundaries and part headers on top of the file itself.
_MULTIPART_SLACK = 16 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.ErrorOut, "description": "undecodable file (corrupt, empty, not what it claims)"},
    404: {"model": schemas.ErrorOut, "description": "unknown model (the message lists the available ones)"},
    413: {
        "model": schemas.ErrorOut,
        "description": "too large (bytes, pixels, decode memory, or clip length)",
    },
    415: {"model": schemas.ErrorOut, "description": "unsupported type (sniffed from the content)"},
    422: {"model": schemas.ErrorOut, "description": "missing 'file' field or invalid parameter"},
    429: {"model": schemas.ErrorOut, "description": "rate limited (see Retry-After)"},
    503: {"model": schemas.ErrorOut, "description": "not ready or busy (see Retry-After)"},
}


#: Media types of the formats each route decodes (the server sniffs the content; these are
#: what the OpenAPI schema declares for the ``file`` part).
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff")
VIDEO_MEDIA_TYPES = ("video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/x-msvideo")


def _multipart_body(description: str, media_types: tuple[str, ...]) -> dict[str, Any]:
    accepted = ", ".join(media_types)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "contentMediaType": media_types[0],
                                "description": f"{description}. Accepted: {accepted} (decided from the "
                                "content, not the name); anything else gets 415, corrupt data 400",
                            }
                        },
                    },
                    "encoding": {"file": {"contentType": accepted}},
                }
            },
        }
    }


def _resolve_model(engine: Engine, name: str | None) -> str:
    from emoar.models import UnknownModelError

    try:
        return engine.model(name).name
    except UnknownModelError as e:
        raise unknown_model_error(e) from e


async def _read_file_field(request: Request, limit: int, what: str) -> Upload:
    body = await read_body(request, limit, what, overhead=_MULTIPART_SLACK)
    up = (await run_in_threadpool(parse_multipart, body, request.headers.get("content-type"))).get("file")
    if up is None:
        raise ApiError(
            422,
            "missing_field",
            f"Form field 'file' is required: send the {what} as multipart/form-data "
            "in a field named 'file' (curl -F file=@photo.jpg ...)",
            extra={"detail": [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}]},
        )
    if len(up.data) > limit:
        raise ApiError(
            413,
            "upload_too_large",
            f"The {what} is {len(up.data)} bytes; the limit is {limit} bytes "
            f"({limit / 1e6:.1f} MB). Send a smaller file.",
            extra={"limit_bytes": limit},
        )
    if not up.data:
        raise ApiError(400, "empty_file", f"The uploaded file {up.filename or ''!r} is empty (0 bytes)")
    return up


def check_upload_image(up: Upload) -> None:
    """Refuse an upload whose sniffed content is not an accepted image type.

    Raises:
        ApiError: 415 not an accepted image type (a video gets a hint to the video route).
    """
    fmt = sniff(up.data)
    if fmt not in IMAGE_FORMATS:
        if fmt is not None or not claims_image(up.filename, up.content_type):
            found = (
                f"the content is {fmt}"
                if fmt
                else f"the content is not a recognised image ({up.content_type or 'no type'})"
            )
            hint = "; send clips to /v1/analyze/video" if fmt in VIDEO_FORMATS else ""
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Unsupported file type: {found}. Accepted images: {', '.join(IMAGE_FORMATS)}{hint}",
                extra={"accepted": list(IMAGE_FORMATS)},
            )


def decode_and_analyze(
    up: Upload, settings: Settings, engine: Engine, model: str, annotate: bool
) -> tuple[FrameResult, str | None]:
    """Decode an uploaded image and analyse it, in one worker-thread call (hold an image slot
    around it). The decoded frame lives only inside this call.

    Raises:
        ApiError: 400 undecodable, 413 over ``max_pixels`` or ``max_decode_bytes``.
    """
    frame = decode_image_bytes(up.data, up.filename or "upload", settings)
    return engine.analyze(frame, model=model, image=up.filename or None, annotate=annotate)


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", response_model=schemas.HealthOut, tags=["meta"])
async def healthz() -> dict[str, str]:
    """Liveness: ``{"status": "ok"}``."""
    return {"status": "ok"}


def alignment_constants() -> dict[str, Any]:
    """Everything the browser's mirror of :mod:`emoar.align` (``static/js/align.js``) needs, read
    from :mod:`emoar.align` itself so the two cannot drift apart: the FER crop template and
    per-detector box framing (48x48 coordinates), the landmark fit weights, and the thresholds
    (``max_fit_residual``, ``max_scale_ratio``) and supersampling limit of the warp."""
    from emoar import align

    return {
        "size": align.FER_SIZE,
        "template_48": align.FER_TEMPLATE_48.tolist(),
        "box_48": {k: list(v) for k, v in align.FER_BOX_48.items()},
        "landmarks": [
            "left_eye_image",
            "right_eye_image",
            "nose_tip",
            "mouth_left_image",
            "mouth_right_image",
        ],
        "fit_weights": align._FIT_WEIGHTS.tolist(),  # private in align.py, but the fit needs them
        "max_fit_residual": align.MAX_FIT_RESIDUAL,
        "max_scale_ratio": align.MAX_SCALE_RATIO,
        "max_supersample": align.MAX_SUPERSAMPLE,
    }


@router.get("/v1/models", response_model=schemas.ModelsOut, tags=["models"])
async def models(engine: Engine = Depends(get_engine)) -> dict[str, Any]:  # noqa: B008
    """The models this server runs (default first), with their measured metrics and the
    preprocessing a browser needs to run them on-device (labels, input size, mean/std, OOD)."""
    return {
        "default": engine.default_model,
        "models": [m.to_dict(default=(n == engine.default_model)) for n, m in engine.models.items()],
        "detector": engine.settings.detector,
        "alignment": alignment_constants(),
    }


@router.get(
    "/v1/models/{name}/onnx",
    tags=["models"],
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        304: {"description": "not modified (the If-None-Match ETag matches)"},
        404: _ERRORS[404],
        429: _ERRORS[429],
    },
    dependencies=[Depends(rate_limit)],
)
async def model_file(
    name: str,
    if_none_match: str | None = Header(None, description="an ETag from an earlier download"),
    engine: Engine = Depends(get_engine),  # noqa: B008
) -> Response:
    """The model's .onnx file, for on-device inference in the browser (onnxruntime-web).

    Rate limited like the analyze routes; the ``ETag`` is the file's SHA-256, so a page that
    already holds the model revalidates with ``If-None-Match`` and gets ``304`` without a body.
    """
    model = engine.model(_resolve_model(engine, name))
    # shipped models carry their SHA-256 in the registry; other files are hashed once per mtime
    digest = model.sha256 or await run_in_threadpool(_file_digest, model.path)
    etag = f'"{digest}"'
    headers = {"Cache-Control": "public, max-age=3600, must-revalidate", "ETag": etag}
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        if etag in tags or "*" in tags:
            return Response(status_code=304, headers=headers)
    return FileResponse(
        model.path, media_type="application/octet-stream", filename=f"{model.name}.onnx", headers=headers
    )


@functools.lru_cache(maxsize=32)
def _digest_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    """SHA-256 of a file, computed once per (path, size, mtime)."""
    st = path.stat()
    return _digest_cached(str(path), st.st_size, st.st_mtime_ns)


@router.post(
    "/v1/analyze",
    response_model=schemas.AnalyzeOut,
    response_model_exclude_none=True,
    tags=["analyze"],
    responses=_ERRORS,
    openapi_extra=_multipart_body("the image", IMAGE_MEDIA_TYPES),
    dependencies=[Depends(rate_limit)],
)
async def analyze(
    request: Request,
    annotate: bool = Query(False, description="add 'annotated_png_base64': the image with the overlays"),
    model: str | None = Query(None, description="model name from /v1/models (default model if omitted)"),
    engine: Engine = Depends(get_engine),  # noqa: B008
    settings: Settings = Depends(get_settings),  # noqa: B008
    slots: asyncio.Semaphore = Depends(get_image_slots),  # noqa: B008
) -> JSONResponse:
    """Faces and expressions in one image: the ``emoar analyze --json`` object."""
    model_name = _resolve_model(engine, model)
    up = await _read_file_field(request, settings.max_upload_bytes, "image")
    check_upload_image(up)
    async with slots:  # bounds the decoded images in memory, however many clients send
        result, png = await run_in_threadpool(decode_and_analyze, up, settings, engine, model_name, annotate)
    body = result.to_dict()
    if png is not None:
        body["annotated_png_base64"] = png
    return JSONResponse(body)


def video_csv(results: list[FrameResult], labels: tuple[str, ...]) -> str:
    """The per-face CSV of ``emoar video --csv`` (docs/contracts.md columns) for analysed frames."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(csv_header(labels))
    for r in results:
        w.writerows(r.csv_rows(labels))
    return out.getvalue()


@router.post(
    "/v1/analyze/video",
    response_model=schemas.VideoOut,
    tags=["analyze"],
    responses={**_ERRORS, 200: {"content": {"text/csv": {}}, "description": "JSON (default) or CSV"}},
    openapi_extra=_multipart_body("a short clip", VIDEO_MEDIA_TYPES),
    dependencies=[Depends(rate_limit)],
)
async def analyze_video(
    request: Request,
    format: Literal["json", "csv"] = Query("json", description="json: per-frame list; csv: one row per face"),  # noqa: A002
    model: str | None = Query(None, description="model name from /v1/models (default model if omitted)"),
    stride: int = Query(1, ge=1, le=1000, description="analyse every N-th frame"),
    annotate: bool = Query(
        False,
        description="JSON only: add 'annotated_webm_base64', the analysed frames with the overlays "
        "as a VP8 WebM (plays in browsers); nothing is kept on the server",
    ),
    engine: Engine = Depends(get_engine),  # noqa: B008
    settings: Settings = Depends(get_settings),  # noqa: B008
) -> Response:
    """Faces and expressions in every frame of a short clip, with track ids and smoothing, and
    one summary per track (``tracks``: frames seen, first/last time, dominant expression, mean
    probabilities).

    Clips longer than the server's limits (``max_video_seconds``, ``max_video_frames``) get 413.
    """
    model_name = _resolve_model(engine, model)
    if annotate and format == "csv":
        raise ApiError(
            422, "invalid_parameter", "annotate=true needs format=json (the CSV has no room for a video)"
        )
    up = await _read_file_field(request, settings.max_video_bytes, "video")
    fmt = sniff(up.data)
    if fmt not in VIDEO_FORMATS:
        found = f"the content is {fmt}" if fmt else "the content is not a recognised video container"
        hint = "; send still images to /v1/analyze" if fmt in IMAGE_FORMATS else ""
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Unsupported file type: {found}. Accepted clips: {', '.join(VIDEO_FORMATS)}{hint}",
            extra={"accepted": list(VIDEO_FORMATS)},
        )
    try:
        with request.app.state.video_gate.admit():
            analysis = await run_in_threadpool(
                engine.analyze_video,
                up.data,
                model=model_name,
                stride=stride,
                max_frames=settings.max_video_frames,
                max_seconds=settings.max_video_seconds,
                max_pixels=settings.max_video_pixels,
                annotate=annotate,
            )
    except VideoBusyError as e:
        raise ApiError(
            503, "busy", f"The server is busy with other clips: {e}", headers={"Retry-After": "5"}
        ) from e
    except FrameTooLargeError as e:
        raise ApiError(
            413,
            "frame_too_large",
            f"Video {up.filename or ''!r}: {e}",
            extra={"max_video_pixels": settings.max_video_pixels},
        ) from e
    except UndecodableVideoError as e:
        raise ApiError(400, "undecodable_video", f"Cannot read video {up.filename or ''!r}: {e}") from e
    except ClipTooLongError as e:
        raise ApiError(
            413,
            "clip_too_long",
            f"Video {up.filename or ''!r}: {e}",
            extra={"max_seconds": settings.max_video_seconds, "max_frames": settings.max_video_frames},
        ) from e
    labels = engine.model(model_name).labels
    results = analysis.results
    if format == "csv":
        stem = PurePath(up.filename or "video").stem or "video"
        return Response(
            video_csv(results, labels),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{_safe(stem)}_emoar.csv"'},
        )
    body: dict[str, Any] = {
        "video": up.filename or None,
        "model": model_name,
        "fps": round(analysis.fps, 3),
        "frames": [r.frame_dict() for r in results],
        "tracks": [t.to_dict() for t in summarize_tracks(results)],
    }
    if analysis.annotated_webm is not None:
        body["annotated_webm_base64"] = base64.b64encode(analysis.annotated_webm).decode("ascii")
    return JSONResponse(body)


def _safe(stem: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
