"""Settings of the web app: one frozen dataclass, read from ``EMOAR_*`` environment variables.

Every field can be set as ``EMOAR_<FIELD NAME IN CAPITALS>`` (``EMOAR_MAX_UPLOAD_BYTES=5000000``);
keyword overrides given to :meth:`Settings.from_env` (the CLI flags) win over the environment.
Tuples are comma-separated lists (``EMOAR_CORS_ORIGINS=http://localhost:3000,http://a.b``),
booleans accept ``1/0, true/false, yes/no, on/off``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Settings", "SettingsError"]

logger = logging.getLogger(__name__)

_ENV_PREFIX = "EMOAR_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An invalid setting; the message names the field (and its environment variable)."""


@dataclass(frozen=True)
class Settings:
    """Configuration of ``emoar serve`` (validated at creation).

    Attributes:
        host: interface to bind; loopback by default so nothing is exposed by accident.
        port: TCP port.
        model: default model for requests: a shipped model name, ``"default"`` or an .onnx path.
        models: extra shipped model names (or paths) to load besides ``model``; empty = all
            shipped models.
        detector: face detector backend (``yunet``, ``mtcnn``, ``haar``).
        num_threads: CPU threads per pipeline (detector and classifier).
        pipelines_per_model: how many pipelines (each with its own detector and ONNX session)
            serve each model concurrently; requests beyond that wait their turn.
        max_upload_bytes: largest image upload, in bytes (the whole multipart body).
        max_video_bytes: largest video upload, in bytes.
        max_pixels: largest image, in pixels (width * height), read from the image header
            before decoding; bigger ones get HTTP 413.
        max_decode_bytes: most memory one image may need while it is decoded and converted to
            8-bit BGR, in bytes, computed from its header before decoding (bytes per pixel by
            layout: 3 for 8-bit RGB, 4 + 3 for 8-bit RGBA, 8 + 4 + 3 for 16-bit RGBA; see
            :meth:`emoar.io.formats.ImageHeader.peak_bytes`); more gets HTTP 413. The default
            admits a 40-megapixel 8-bit RGB JPEG, not a 6000x6000 16-bit RGBA PNG (540 MB).
        max_images_in_flight: decoded images held at once, from the start of decoding to the end
            of analysis (REST and websocket together; the others wait their turn holding only
            their encoded bytes), so decoded images never take more than about
            ``max_images_in_flight * max_decode_bytes`` bytes.
        max_video_frames: most frames analysed per clip (after ``stride``); longer clips get 413.
        max_video_seconds: longest clip accepted, in seconds.
        max_video_pixels: largest video frame, in pixels (width * height), read from the
            container before any frame is decoded; bigger clips get HTTP 413.
        video_workers: clips analysed at once; each has its own pipeline, apart from the ones
            that serve images and live streams, so a long clip never delays an image request.
        video_queue: clips that may wait for a free video worker; when that many already wait,
            more get HTTP 503 with ``Retry-After``.
        max_ws_frame_bytes: largest JPEG frame accepted over the websocket, in bytes.
        rate_limit_per_minute: sustained requests per minute per client IP on the analyze
            routes and websocket connects (0 disables rate limiting).
        rate_limit_burst: requests a client may make at once before the rate applies.
        cors_origins: origins allowed by CORS and by the websocket's ``Origin`` check; empty
            (the default) = CORS closed and websockets same-origin only (clients that send no
            ``Origin``, i.e. not browsers, are allowed).
        forwarded_allow_ips: proxies whose ``X-Forwarded-For``/``X-Forwarded-Proto`` headers are
            trusted (comma-separated IPs or networks, ``*`` for any); empty (the default) =
            none, so the rate limit keys on the real peer address and a client cannot pick its
            own by sending the header. Set it to your reverse proxy's address.
        cross_origin_isolation: send COOP/COEP headers so the page may use wasm threads.
        log_level: level for uvicorn's logs (the CLI configures logging).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "default"
    models: tuple[str, ...] = ()
    detector: str = "yunet"
    num_threads: int = 1
    pipelines_per_model: int = 1
    max_upload_bytes: int = 10 * 1024 * 1024
    max_video_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_decode_bytes: int = 300_000_000
    max_images_in_flight: int = 2
    max_video_frames: int = 600
    max_video_seconds: float = 60.0
    max_video_pixels: int = 3840 * 2160
    video_workers: int = 1
    video_queue: int = 2
    max_ws_frame_bytes: int = 4 * 1024 * 1024
    rate_limit_per_minute: float = 600.0
    rate_limit_burst: int = 30
    cors_origins: tuple[str, ...] = ()
    forwarded_allow_ips: tuple[str, ...] = ()
    cross_origin_isolation: bool = False
    log_level: str = "warning"

    def __post_init__(self) -> None:
        positive_int = (
            "num_threads",
            "pipelines_per_model",
            "max_upload_bytes",
            "max_video_bytes",
            "max_pixels",
            "max_decode_bytes",
            "max_images_in_flight",
            "max_video_frames",
            "max_video_pixels",
            "video_workers",
            "max_ws_frame_bytes",
            "rate_limit_burst",
        )
        for name in positive_int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name} ({_env_name(name)}) must be an integer >= 1, got {value!r}")
        if (
            isinstance(self.video_queue, bool)
            or not isinstance(self.video_queue, int)
            or self.video_queue < 0
        ):
            raise SettingsError(
                f"video_queue ({_env_name('video_queue')}) must be an integer >= 0, got {self.video_queue!r}"
            )
        if not 0 < self.port < 65536:
            raise SettingsError(f"port ({_env_name('port')}) must be in 1..65535, got {self.port}")
        if not self.max_video_seconds > 0:
            raise SettingsError(f"max_video_seconds must be > 0 seconds, got {self.max_video_seconds}")
        if self.rate_limit_per_minute < 0:
            raise SettingsError(
                f"rate_limit_per_minute must be >= 0 (0 disables), got {self.rate_limit_per_minute}"
            )
        if not self.model.strip():
            raise SettingsError("model must be a shipped model name, 'default' or a path to an .onnx file")
        if not self.host.strip():
            raise SettingsError("host must be an interface address such as 127.0.0.1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``EMOAR_*`` environment variables, then apply ``overrides``.

        Args:
            environ: the environment to read (``os.environ`` when None).
            **overrides: field values that win over the environment; ``None`` values are
                ignored (so CLI flags that were not given do not override anything).

        Raises:
            SettingsError: unknown field, unparseable value or invalid setting.
        """
        env = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, f in known.items():
            raw = env.get(_env_name(name))
            if raw is not None:
                values[name] = _parse(name, f, raw)
        for name, value in overrides.items():
            if name not in known:
                raise SettingsError(f"Unknown setting {name!r}; available: {', '.join(known)}")
            if value is not None:
                values[name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


def _env_name(field_name: str) -> str:
    return _ENV_PREFIX + field_name.upper()


def _parse(name: str, f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind == "bool":
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected 1/0, true/false, yes/no or on/off")
        if kind == "int":
            return int(raw.strip().replace("_", ""))
        if kind == "float":
            return float(raw.strip())
        if kind.startswith("tuple"):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return raw.strip()
    except ValueError as e:
        raise SettingsError(f"{_env_name(name)}={raw!r} is not a valid {kind} ({e})") from e
