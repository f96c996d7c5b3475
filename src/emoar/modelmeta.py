"""What a model file says about itself: one typed record, written by export, read by the runtime.

Every emoar model (ONNX ``metadata_props``, the TF Lite metadata buffer) carries string
key/value pairs named ``emoar.<field>``. :class:`ModelMeta` is their one definition:
:meth:`ModelMeta.to_props` writes them (``emoar export``, the int8 quantizer, the TF Lite
converter), :meth:`ModelMeta.from_props` reads and validates them (the classifier, ``emoar
models``, the web engine, the benchmarks). Keys it does not know are kept in ``extra`` and
written back unchanged, so a file passes through read -> write without loss.

>>> meta = ModelMeta(name="m", labels=("happy", "sad"), input_size=(48, 48), mean=0.5, std=0.25)
>>> ModelMeta.from_props(meta.to_props()) == meta
True
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTIN_TTA", "FORMAT_VERSION", "ModelMeta", "ModelMetadataError"]

#: Version of the metadata layout written by this emoar.
FORMAT_VERSION = "1"

#: Test-time augmentations a graph can do itself (:attr:`ModelMeta.builtin_tta`).
BUILTIN_TTA = ("none", "flip")

_PREFIX = "emoar."
_REQUIRED = ("labels", "input_size", "mean", "std")
# How each field is stored as a string.
_JSON = frozenset({"labels", "input_size", "ood_negatives", "ood_quantiles", "metrics"})
_FLOAT = frozenset({"mean", "std", "ood_threshold", "temperature"})


class ModelMetadataError(ValueError):
    """The model file is missing, unreadable, or lacks the metadata emoar needs."""


@dataclass(frozen=True)
class ModelMeta:
    """The ``emoar.*`` metadata of a model file.

    Attributes:
        name: model name (``emoar.name``; the file stem when absent).
        labels: class names in output order.
        input_size: (height, width) of the input crop in pixels.
        mean: pixel mean in [0, 1] units (input = (gray / 255 - mean) / std).
        std: pixel standard deviation in [0, 1] units.
        arch: network architecture (``resnet_fer``, ...).
        color: input colour (``gray``).
        ood_method: how the OOD output was fitted.
        ood_output: the graph output ``ood_quantiles`` describe (``ood``; ``rmd`` in files
            exported before the face / non-face head existed).
        ood_negatives: non-face patches per source used to fit the OOD head.
        ood_quantiles: 101 quantiles of ``ood_output`` on held-out real faces (empty: no OOD).
        ood_threshold: OOD score in [0, 1] above which a face is ``uncertain``.
        temperature: calibration temperature T (> 0) fitted on a held-out split (``emoar
            calibrate``); the runtime reports ``softmax(log(probs) / T)``, which keeps every
            face's top class and makes confidences match accuracy. 1.0: uncalibrated.
        builtin_tta: test-time augmentation the graph does itself: ``none``, or ``flip`` (the
            ``probs`` output averages each face and its mirror image; ``rmd``, ``ood`` and
            ``features`` are the face's own), so the runtime does not mirror again.
        train_source: the training data the model came from.
        metrics: figures measured at export time.
        format_version: metadata layout version (:data:`FORMAT_VERSION` when written now).
        extra: every other key, verbatim (``emoar.weight_storage``, ``emoar.quantization``,
            ``emoar.tflite_converter``, or keys of other tools).
    """

    name: str
    labels: tuple[str, ...]
    input_size: tuple[int, int]
    mean: float
    std: float
    arch: str = ""
    color: str = "gray"
    ood_method: str = ""
    ood_output: str = "rmd"
    ood_negatives: dict[str, int] = field(default_factory=dict)
    ood_quantiles: tuple[float, ...] = ()
    ood_threshold: float = 0.95
    temperature: float = 1.0
    builtin_tta: str = "none"
    train_source: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    format_version: str = FORMAT_VERSION
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.labels or not all(isinstance(x, str) and x for x in self.labels):
            raise ModelMetadataError("metadata 'emoar.labels' must be a non-empty list of names")
        h, w = self.input_size
        if int(h) <= 0 or int(w) <= 0:
            raise ModelMetadataError(f"invalid input size or std in metadata (input size {self.input_size})")
        if not float(self.std) > 0:
            raise ModelMetadataError(f"invalid input size or std in metadata (std {self.std})")
        if not 0.0 <= float(self.ood_threshold) <= 1.0:
            raise ModelMetadataError(f"ood_threshold must be in [0, 1], got {self.ood_threshold}")
        if not 0.05 <= float(self.temperature) <= 20.0:
            raise ModelMetadataError(f"temperature must be in [0.05, 20], got {self.temperature}")
        if self.builtin_tta not in BUILTIN_TTA:
            raise ModelMetadataError(
                f"builtin_tta must be one of {', '.join(BUILTIN_TTA)}, got {self.builtin_tta!r}"
            )

    # ------------------------------------------------------------------ (de)serialisation
    def to_props(self) -> dict[str, str]:
        """The string key/value pairs stored in the model file (``emoar.<field>``, then extra)."""
        props: dict[str, str] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name == "builtin_tta" and value == "none":
                continue  # written only when the graph does one, so older files round-trip exactly
            if f.name in _JSON:
                text = json.dumps(list(value) if isinstance(value, tuple) else value)
            elif f.name in _FLOAT:
                text = repr(float(value))
            else:
                text = str(value)
            props[_PREFIX + f.name] = text
        props.update(self.extra)
        return props

    @classmethod
    def from_props(cls, props: dict[str, str], *, source: str = "model", default_name: str = "") -> ModelMeta:
        """Read and validate the metadata of a model file.

        Args:
            props: the file's key/value pairs.
            source: what the pairs came from (a path), for error messages.
            default_name: name when the file has none (the file stem).

        Raises:
            ModelMetadataError: a required key is missing, or a value is corrupt or invalid.
        """
        missing = [_PREFIX + k for k in _REQUIRED if _PREFIX + k not in props]
        if missing:
            raise ModelMetadataError(
                f"{source}: model metadata is missing {', '.join(missing)}; export it with "
                "'emoar export' so labels and preprocessing travel inside the file"
            )
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values: dict[str, Any] = {}
        extra: dict[str, str] = {}
        try:
            for key, text in props.items():
                fname = key[len(_PREFIX) :] if key.startswith(_PREFIX) else None
                if fname not in known:
                    extra[key] = text
                    continue
                assert fname is not None
                if fname in _JSON:
                    values[fname] = json.loads(text)
                elif fname in _FLOAT:
                    values[fname] = float(text)
                else:
                    values[fname] = text
            values["labels"] = tuple(values["labels"])
            h, w = (int(v) for v in values["input_size"])
            values["input_size"] = (h, w)
            values["ood_quantiles"] = tuple(float(q) for q in values.get("ood_quantiles") or ())
            values["metrics"] = dict(values.get("metrics") or {})
            values["ood_negatives"] = {str(k): int(v) for k, v in (values.get("ood_negatives") or {}).items()}
            values.setdefault("name", default_name or "model")
            values.setdefault("format_version", "")
            return cls(**values, extra=extra)
        except ModelMetadataError as e:
            raise ModelMetadataError(f"{source}: {e}") from e
        except (ValueError, TypeError, AttributeError) as e:
            raise ModelMetadataError(f"{source}: corrupt emoar metadata ({e})") from e

    @classmethod
    def from_onnx(cls, model: Any, *, source: str = "model") -> ModelMeta:
        """Read the metadata of an ``onnx.ModelProto`` (its ``metadata_props``)."""
        return cls.from_props({p.key: p.value for p in model.metadata_props}, source=source)

    def to_onnx(self, model: Any) -> None:
        """Replace an ``onnx.ModelProto``'s ``metadata_props`` with these pairs (in place)."""
        del model.metadata_props[:]
        for key, value in self.to_props().items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value

    def replace(self, **changes: Any) -> ModelMeta:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def with_extra(self, **entries: str) -> ModelMeta:
        """A copy with more ``emoar.<key>`` entries in ``extra`` (e.g. ``weight_storage=...``)."""
        return self.replace(extra={**self.extra, **{_PREFIX + k: str(v) for k, v in entries.items()}})
