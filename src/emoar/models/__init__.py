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
from dataclasses import dataclass, field
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


#: Retired names already reported in this process (one log line each).
_warned_renamed: set[str] = set()


def canonical_model_name(name: str) -> str:
    """The shipped name a retired model name now means (the registry's ``renamed``: a model
    superseded by a better one of the same label set); any other name unchanged.

    ``--model emoar-resnet-ferplus`` keeps working after the FER+ models were replaced by
    ``emoar-vgg-ferplus``: the user gets the successor, with a log line saying so (once per
    name and process, so a server asked for it on every request does not flood its log).
    """
    new = _registry().get("renamed", {}).get(name)
    if new is None:
        return name
    if name not in _warned_renamed:
        _warned_renamed.add(name)
        logger.warning("Model %r was retired; using its successor %r", name, new)
    return str(new)


def list_models() -> list[ShippedModel]:
    """Shipped models, default first."""
    models = [ShippedModel(**m) for m in _registry()["models"]]
    default = default_model_name()
    return sorted(models, key=lambda m: m.name != default)


def default_model_name() -> str:
    """Name of the default shipped model: the registry's ``default`` (the int8 ``vgg_fer_slim``,
    whose 7-bit weights compute the same on every CPU), or ``EMOAR_DEFAULT_MODEL`` (a registry
    name; a retired name means its successor).

    Raises:
        UnknownModelError: ``EMOAR_DEFAULT_MODEL`` names no shipped model.
    """
    reg = _registry()
    forced = os.environ.get("EMOAR_DEFAULT_MODEL", "").strip()
    if forced:
        forced = canonical_model_name(forced)
        if forced not in {m["name"] for m in reg["models"]}:
            raise UnknownModelError.unknown(
                forced, [m["name"] for m in reg["models"]], " (from EMOAR_DEFAULT_MODEL)"
            )
        return forced
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
