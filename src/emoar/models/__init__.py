"""Registry of the models shipped inside the package (ONNX files + ``registry.json``).

Each entry carries the file's sha256 and the metrics measured by the benchmark scripts, so
``emoar models`` shows measured figures, never claimed ones. Nothing is downloaded: a model
is either shipped here or a path the user gives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "ShippedModel",
    "list_models",
    "resolve_model",
    "default_model_name",
    "canonical_model_name",
    "cpu_has_fast_int8",
    "UnknownModelError",
]


class UnknownModelError(ValueError):
    """A model name that is neither shipped nor an existing file.

    Attributes:
        name: the name asked for (None when the error is about a file).
        available: the names that would have worked (empty when not applicable).
    """

    def __init__(self, message: str, *, name: str | None = None, available: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.available = tuple(available)

    @classmethod
    def unknown(cls, name: str, available: tuple[str, ...] | list[str], hint: str = "") -> UnknownModelError:
        """The one "unknown model" error: names the model and lists the available ones."""
        avail = tuple(available)
        return cls(f"Unknown model {name!r}; available: {', '.join(avail)}{hint}", name=name, available=avail)


@dataclass(frozen=True)
class ShippedModel:
    """One registry entry.

    Attributes:
        name: registry name (``--model NAME``).
        file: file name inside ``emoar/models``.
        sha256: expected sha256 of the file.
        description: one line for humans.
        metrics: measured figures (accuracy/macro-F1 on FER2013 PrivateTest, size, latency)
            with the command that measured them.
    """

    name: str
    file: str
    sha256: str
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Absolute path of the shipped file."""
        return Path(str(resources.files("emoar.models").joinpath(self.file)))


def _registry() -> dict[str, Any]:
    text = resources.files("emoar.models").joinpath("registry.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def canonical_model_name(name: str) -> str:
    """The shipped name a retired model name now means (the registry's ``renamed``: a model
    superseded by a better one of the same label set); any other name unchanged.

    ``--model emoar-resnet-ferplus`` keeps working after the FER+ models were replaced by
    ``emoar-vgg-ferplus``: the user gets the successor, with a log line saying so.
    """
    new = _registry().get("renamed", {}).get(name)
    if new is None:
        return name
    logger.warning("Model %r was retired; using its successor %r", name, new)
    return str(new)


def list_models() -> list[ShippedModel]:
    """Shipped models, default first."""
    models = [ShippedModel(**m) for m in _registry()["models"]]
    default = default_model_name()
    return sorted(models, key=lambda m: m.name != default)


def _cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports in ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return set()


@cache
def cpu_has_fast_int8() -> bool:
    """Whether this CPU runs int8 convolutions exactly and fast in onnxruntime.

    True for x86-64 with VNNI (``avx512_vnni`` / ``avx_vnni``: Ice Lake, Zen 4 and later) and
    64-bit ARM with dot-product instructions (``asimddp``; every Apple silicon Mac). Older x86
    CPUs (AVX2 / AVX-512 without VNNI) multiply u8 x s8 pairs into 16-bit sums that can
    saturate, so an int8 model may lose accuracy there (unpredictably, model- and input-
    dependent): they keep the float model. Probed once per process.
    """
    machine = platform.machine().lower()
    if sys.platform == "darwin":
        return machine == "arm64"
    flags = _cpu_flags()
    if machine in ("x86_64", "amd64"):
        return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    if machine in ("aarch64", "arm64"):
        return "asimddp" in flags
    return False


def default_model_name(precision: str = "auto") -> str:
    """Name of the default shipped model: the registry's ``default`` (float weights), or its
    int8 variant (``default_int8``, same accuracy, ~3x faster classifier) where
    :func:`cpu_has_fast_int8` says the CPU runs int8 exactly. ``EMOAR_DEFAULT_MODEL`` (a
    registry name) overrides both.

    Args:
        precision: ``"auto"`` (the rule above), ``"float"`` or ``"int8"`` (that default,
            whatever the CPU and the environment say).
    """
    reg = _registry()
    if precision in ("float", "int8"):
        return str(reg["default"] if precision == "float" else reg.get("default_int8") or reg["default"])
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'float' or 'int8', got {precision!r}")
    forced = os.environ.get("EMOAR_DEFAULT_MODEL", "").strip()
    if forced:
        forced = canonical_model_name(forced)
        if forced not in {m["name"] for m in reg["models"]}:
            raise UnknownModelError.unknown(
                forced, [m["name"] for m in reg["models"]], " (from EMOAR_DEFAULT_MODEL)"
            )
        return forced
    if reg.get("default_int8") and cpu_has_fast_int8():
        return str(reg["default_int8"])
    return str(reg["default"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_model(name_or_path: str | None = None, *, verify: bool = True) -> Path:
    """Turn ``--model NAME|PATH`` into a file path.

    Args:
        name_or_path: a registry name, ``"default"``/``None``, or a path to an .onnx file.
        verify: check the shipped file's sha256 against the registry.

    Raises:
        UnknownModelError: neither a shipped name nor an existing file.
    """
    name = name_or_path or "default"
    p = Path(name).expanduser()
    if p.suffix == ".onnx" or "/" in name or "\\" in name:
        if not p.is_file():
            raise UnknownModelError(f"Model file not found: {p}")
        return p
    if name == "default":
        name = default_model_name()
    name = canonical_model_name(name)
    for m in list_models():
        if m.name == name:
            if not m.path.is_file():
                raise UnknownModelError(
                    f"Shipped model {name!r} is registered but its file {m.path} is missing; reinstall emoar"
                )
            if verify and _sha256(m.path) != m.sha256:
                raise UnknownModelError(
                    f"Shipped model {name!r} at {m.path} fails its sha256 check; reinstall emoar"
                )
            return m.path
    if p.is_file():
        return p
    raise UnknownModelError.unknown(
        name, [m.name for m in list_models()], " (or pass a path to an .onnx file)"
    )
