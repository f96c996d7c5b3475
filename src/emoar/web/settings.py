"""Settings of the web app on pydantic-settings: ``EMOAR_*`` environment variables, validated
before any model loads.

Every field can be set as ``EMOAR_<FIELD NAME IN CAPITALS>`` (``EMOAR_MAX_UPLOAD_BYTES=5000000``);
the pipeline's stage options nest with ``__`` (``EMOAR_PIPELINE__SMOOTHER__HALF_LIFE_MS=200``).
Keyword overrides given to :meth:`Settings.from_env` (the CLI flags) win over the environment.
Tuples are comma-separated lists (``EMOAR_CORS_ORIGINS=http://localhost:3000,http://a.b``),
booleans accept ``1/0, true/false, yes/no, on/off``. Every error names the variable.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from emoar.cliargs import comma_list
from emoar.pipeline import PipelineOptions

__all__ = ["Settings", "SettingsError"]

_ENV_PREFIX = "EMOAR_"
# The environment read by the next Settings() in this context (None: os.environ).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "emoar_environ", default=None
)

CommaList = Annotated[tuple[str, ...], NoDecode]


class SettingsError(ValueError):
    """An invalid setting; the message names the field (and its environment variable)."""


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of ``os.environ`` when set."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        return parse_env_vars(environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Settings(BaseSettings):
    """Configuration of ``emoar serve`` (frozen; validated at creation, before any model loads).

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
        data_dir: folder of the meeting-mode database (SQLite); empty = ``$XDG_DATA_HOME/emoar``
            (``~/.local/share/emoar``). Created on the first room, not before.
        database_url: SQLAlchemy URL of the meeting-mode database instead (e.g.
            ``postgresql+psycopg://...``); empty = the SQLite file in ``data_dir``.
        room_max_participants: most participants per room; more get HTTP 409.
        room_stale_after_s: a connected participant with no message for this long shows as
            ``stale``.
        room_rate_per_s: sustained messages per second per room connection (more get an
            ``error`` message and are dropped; other connections are unaffected).
        room_burst: messages a room connection may send at once before the rate applies.
        room_idle_timeout_s: a room socket that sends nothing (no state, no ping) for this long
            is closed by the server (the pages ping every 10 s; a half-open connection is
            reclaimed even where the websocket pings do not reach it).
        workers: server processes (``emoar serve --workers``); with more than one, meeting rooms
            are served only with ``broker_url`` set (503 otherwise).
        broker_url: ``redis://host:port/db``: rooms fan out through Redis pub/sub, so several
            uvicorn workers or hosts (on one ``database_url``) serve one room; empty = this
            process only (the embedded default).
        broker_prefix: prefix of the broker's keys and channel.
        broker_worker_ttl_s: a server process that has not renewed its heartbeat key for this
            long is taken as gone; its participants show as left on the other processes.
        ws_ping_interval_s: websocket protocol pings every this many seconds (uvicorn's
            ``ws_ping_interval``); ``ws_ping_timeout_s``: close when one is not answered in time.
        webrtc_ice_servers: STUN/TURN URLs for the WebRTC server mode (none by default: host
            candidates work on loopback and a LAN).
        webrtc_max_sessions: most WebRTC sessions at once (more get 503).
        webrtc_idle_timeout_s: a WebRTC session that receives no frame and no command for this
            long is closed.
        pipeline: every other stage option of the server's pipelines (tracker, smoother,
            overlay, test-time augmentation, OOD threshold, detector thresholds), nested:
            ``EMOAR_PIPELINE__TRACKER__MAX_AGE=10``, ``EMOAR_PIPELINE__CLASSIFIER__TTA=flip``,
            ``EMOAR_PIPELINE__DETECTOR__MIN_SCORE=0.7``. The model, detector backend and
            threads are set by ``model``, ``detector`` and ``num_threads`` (one name each).
        log_level: level for uvicorn's logs (the CLI configures logging).
    """

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        validate_default=False,
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, gt=0, lt=65536)
    model: str = "default"
    models: CommaList = ()
    detector: str = "yunet"
    num_threads: int = Field(1, ge=1)
    pipelines_per_model: int = Field(1, ge=1)
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1)
    max_video_bytes: int = Field(50 * 1024 * 1024, ge=1)
    max_pixels: int = Field(40_000_000, ge=1)
    max_decode_bytes: int = Field(300_000_000, ge=1)
    max_images_in_flight: int = Field(2, ge=1)
    max_video_frames: int = Field(600, ge=1)
    max_video_seconds: float = Field(60.0, gt=0)
    max_video_pixels: int = Field(3840 * 2160, ge=1)
    video_workers: int = Field(1, ge=1)
    video_queue: int = Field(2, ge=0)
    max_ws_frame_bytes: int = Field(4 * 1024 * 1024, ge=1)
    rate_limit_per_minute: float = Field(600.0, ge=0)
    rate_limit_burst: int = Field(30, ge=1)
    cors_origins: CommaList = ()
    forwarded_allow_ips: CommaList = ()
    cross_origin_isolation: bool = False
    log_level: str = "warning"
    data_dir: str = ""
    database_url: str = ""
    room_max_participants: int = Field(500, ge=1)
    room_stale_after_s: float = Field(15.0, gt=0)
    room_rate_per_s: float = Field(10.0, gt=0)
    room_burst: int = Field(20, ge=1)
    room_idle_timeout_s: float = Field(45.0, gt=0)
    workers: int = Field(1, ge=1)
    broker_url: str = ""
    broker_prefix: str = "emoar"
    broker_worker_ttl_s: float = Field(15.0, ge=1)
    ws_ping_interval_s: float = Field(20.0, gt=0)
    ws_ping_timeout_s: float = Field(20.0, gt=0)
    webrtc_ice_servers: CommaList = ()
    webrtc_max_sessions: int = Field(4, ge=1)
    webrtc_idle_timeout_s: float = Field(30.0, gt=0)
    pipeline: PipelineOptions = Field(default_factory=PipelineOptions)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _MappingEnvSource(settings_cls))

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise SettingsError(_explain(e)) from None

    @field_validator("models", "cors_origins", "forwarded_allow_ips", "webrtc_ice_servers", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(comma_list(value))
        return tuple(value) if isinstance(value, list) else value

    @field_validator("pipeline", mode="before")
    @classmethod
    def _pipeline_from_env(cls, value: Any) -> Any:
        if isinstance(value, dict):  # nested environment variables: build each stage's options
            from emoar.pipeline import STAGE_OPTIONS as kinds

            unknown = set(value) - set(kinds) - {"max_faces"}
            if unknown:
                raise ValueError(
                    f"unknown pipeline part(s) {sorted(unknown)}; available: {', '.join(kinds)}, max_faces"
                )
            parts = {k: _build(kinds[k], v) for k, v in value.items() if k in kinds}
            if "max_faces" in value:
                parts["max_faces"] = int(value["max_faces"])
            return PipelineOptions(**parts)
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.model.strip():
            raise ValueError("model must be a shipped model name, 'default' or a path to an .onnx file")
        if not self.host.strip():
            raise ValueError("host must be an interface address such as 127.0.0.1")
        c, d = self.pipeline.classifier, self.pipeline.detector
        if (
            c.model not in ("default", self.model)
            or d.name not in ("yunet", self.detector)
            or c.num_threads not in (1, self.num_threads)
            or d.num_threads not in (1, self.num_threads)
        ):
            raise ValueError(
                "set the model, detector and threads with EMOAR_MODEL, EMOAR_DETECTOR and EMOAR_NUM_THREADS "
                "(not under EMOAR_PIPELINE__...)"
            )
        # One value, one name: the top-level fields fill the pipeline's classifier and detector.
        merged = self.pipeline.replace(
            classifier=dataclasses.replace(c, model=self.model, num_threads=self.num_threads),
            detector=dataclasses.replace(d, name=self.detector, num_threads=self.num_threads),
        )
        object.__setattr__(self, "pipeline", merged)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Settings are frozen; build new ones (Settings.from_env(..., {name}=...))")

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
        known = list(cls.model_fields)
        for name in overrides:
            if name not in known:
                raise SettingsError(f"Unknown setting {name!r}; available: {', '.join(known)}")
        token = _ENVIRON.set(environ)
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _ENVIRON.reset(token)


def _build(kind: type, values: Any) -> Any:
    if not isinstance(values, dict):
        return values
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(
            f"unknown {kind.__name__} field(s) {sorted(unknown)}; available: {', '.join(sorted(names))}"
        )
    hints = {f.name: f.type for f in dataclasses.fields(kind)}
    out = {}
    for k, v in values.items():
        out[k] = _coerce(str(hints[k]), v)
    return kind(**out)


def _coerce(hint: str, v: Any) -> Any:
    if not isinstance(v, str):
        return v
    low = v.strip().lower()
    if hint == "bool":
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected 1/0, true/false, yes/no or on/off, got {v!r}")
    if hint.startswith("int"):
        return int(low.replace("_", ""))
    if hint.startswith("float"):
        return float(low)
    if "None" in hint and low in ("", "none", "null"):
        return None
    if "float" in hint:
        return float(low)
    if "int" in hint and low.lstrip("-").isdigit():
        return int(low)
    return v.strip()


def _env_name(loc: tuple[Any, ...]) -> str:
    return _ENV_PREFIX + "__".join(str(p).upper() for p in loc if isinstance(p, str))


def _explain(e: ValidationError) -> str:
    """One line per problem, each naming the field and its environment variable."""
    lines = []
    for err in e.errors()[:5]:
        loc = tuple(err.get("loc", ()))
        field_name = ".".join(str(p) for p in loc) or "settings"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            lines.append(f"Unknown setting {field_name!r}")
            continue
        got = err.get("input")
        shown = f" (got {got!r})" if isinstance(got, str | int | float) else ""
        where = f"{field_name} ({_env_name(loc)})" if loc else "settings"
        lines.append(f"{where}: {msg}{shown}")
    return "; ".join(lines)
