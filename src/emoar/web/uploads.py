"""Uploads: read a request body under a byte limit, parse multipart in memory, sniff the type,
decode images under the server's pixel and memory limits.

Nothing touches the disk: the body is read into memory (at most the configured limit), and the
multipart parts are collected into ``bytes`` (Starlette's own form parser would spool files of
over 1 MB to a temporary file); images are decoded only in formats whose decoders read from
memory (:data:`emoar.io.DECODABLE_IMAGE_FORMATS`). The type of an upload is decided by its first
bytes (:func:`emoar.io.sniff`), not by its name or declared content type, which only decide
between "undecodable" (400) and "unsupported" (415) when the bytes are not recognised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import numpy.typing as npt
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from emoar.io import (
    ImageMemoryError,
    ImageReadError,
    ImageTooLargeError,
    UnsupportedImageError,
    decode_image,
    sniff,
)
from emoar.web.errors import ApiError
from emoar.web.settings import Settings

__all__ = [
    "IMAGE_FORMATS",
    "VIDEO_FORMATS",
    "Upload",
    "claims_image",
    "decode_image_bytes",
    "parse_multipart",
    "read_body",
    "sniff",
]

logger = logging.getLogger(__name__)

#: Image formats the analyze route accepts (sniffed name -> what users call it).
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF")
#: Video containers the video route accepts.
VIDEO_FORMATS: tuple[str, ...] = ("MP4", "QuickTime", "WebM/Matroska", "AVI")

_IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_IMAGE_TYPES = frozenset(
    {
        "image/jpeg",
        "image/pjpeg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/x-ms-bmp",
        "image/gif",
        "image/tiff",
    }
)


def claims_image(filename: str | None, content_type: str | None) -> bool:
    """Whether the client said the upload is an image (by its name or declared type)."""
    ext = PurePath(filename or "").suffix.lower()
    ctype = (content_type or "").split(";")[0].strip().lower()
    return ext in _IMAGE_EXTS or ctype in _IMAGE_TYPES


def decode_image_bytes(data: bytes, name: str, settings: Settings) -> npt.NDArray[np.uint8]:
    """Decode an uploaded image or websocket frame under the server's limits (call it from a
    worker thread): the header is checked against ``max_pixels`` and ``max_decode_bytes``
    before anything is decoded.

    Raises:
        ApiError: 413 too many pixels or too much decode memory, 415 a recognised format that
            is not decoded, 400 undecodable.
    """
    try:
        return decode_image(
            data, name, max_pixels=settings.max_pixels, max_decode_bytes=settings.max_decode_bytes
        )
    except ImageTooLargeError as e:
        raise ApiError(413, "image_too_large", str(e), extra={"max_pixels": settings.max_pixels}) from e
    except ImageMemoryError as e:
        raise ApiError(
            413,
            "image_too_large",
            str(e),
            extra={"max_decode_bytes": settings.max_decode_bytes, "needed_bytes": e.needed_bytes},
        ) from e
    except UnsupportedImageError as e:
        raise ApiError(415, "unsupported_media_type", str(e), extra={"accepted": list(IMAGE_FORMATS)}) from e
    except ImageReadError as e:
        raise ApiError(400, "undecodable_image", str(e)) from e


@dataclass(frozen=True)
class Upload:
    """One multipart part, held in memory.

    Attributes:
        field: form field name.
        filename: the client's file name (None for plain fields).
        content_type: the part's declared content type, if any.
        data: the part's bytes.
    """

    field: str
    filename: str | None
    content_type: str | None
    data: bytes


def _too_large(size: int | str, limit: int, what: str) -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"The {what} is {size} bytes; the limit is {limit} bytes ({limit / 1e6:.1f} MB). "
        "Send a smaller file (downscale or trim it).",
        extra={"limit_bytes": limit},
    )


async def read_body(request: Request, limit: int, what: str = "upload", *, overhead: int = 0) -> bytes:
    """Read the request body into memory, refusing more than ``limit + overhead`` bytes.

    Args:
        request: the incoming request.
        limit: largest file accepted, in bytes (what the error message states).
        what: what the body carries, for the error message.
        overhead: extra bytes allowed for the multipart framing around the file.

    Raises:
        ApiError: 413 when the body (declared or actual) is over the limit.
    """
    cap = limit + overhead
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise _too_large(int(declared), limit, what)
    chunks = bytearray()
    async for chunk in request.stream():
        chunks.extend(chunk)
        if len(chunks) > cap:
            raise _too_large(f"more than {cap}", limit, what)
    return bytes(chunks)


def parse_multipart(body: bytes, content_type: str | None) -> dict[str, Upload]:
    """Parse a ``multipart/form-data`` body into its parts (first part wins per field name).

    Raises:
        ApiError: 422 when the body is not multipart form data or is malformed.
    """
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(
            422,
            "missing_field",
            "Expected a multipart/form-data body with the media in a field named 'file' "
            "(curl -F file=@photo.jpg ...)",
            extra={"detail": [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}]},
        )
    parts: dict[str, Upload] = {}
    cur: dict[str, object] = {}
    header_name = bytearray()
    header_value = bytearray()
    data = bytearray()

    def on_part_begin() -> None:
        cur.clear()
        cur["headers"] = {}
        data.clear()

    def on_header_field(b: bytes, start: int, end: int) -> None:
        header_name.extend(b[start:end])

    def on_header_value(b: bytes, start: int, end: int) -> None:
        header_value.extend(b[start:end])

    def on_header_end() -> None:
        headers = cur["headers"]
        assert isinstance(headers, dict)
        headers[bytes(header_name).lower().decode("latin-1")] = bytes(header_value)  # raw: names may be UTF-8
        header_name.clear()
        header_value.clear()

    def on_part_data(b: bytes, start: int, end: int) -> None:
        data.extend(b[start:end])

    def on_part_end() -> None:
        headers = cur.get("headers") or {}
        assert isinstance(headers, dict)
        _, opts = parse_options_header(headers.get("content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts[b"filename"].decode("utf-8", "replace") if b"filename" in opts else None
        if name and name not in parts:
            ctype = headers.get("content-type")
            parts[name] = Upload(name, filename, ctype.decode("latin-1") if ctype else None, bytes(data))

    callbacks = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except (FormParserError, ValueError) as e:
        raise ApiError(422, "invalid_multipart", f"Malformed multipart/form-data body ({e})") from e
    return parts
