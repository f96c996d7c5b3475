"""Writing a :class:`emoar.train.deploy.Deployable` as TF Lite (litert-torch) with the metadata
inside the flatbuffer and beside it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from emoar.train.deploy import Deployable, _NamedOutputs

__all__ = ["TFLITE_METADATA_NAME", "read_tflite_metadata", "save_tflite", "write_tflite_metadata"]

logger = logging.getLogger(__name__)

#: Name of the TF Lite ``metadata`` entry that holds the emoar metadata as JSON.
TFLITE_METADATA_NAME = "emoar"


def save_tflite(dep: Deployable, out: str | os.PathLike[str]) -> Path:
    """Convert ``dep`` to TF Lite with ``litert-torch`` (fp32, dynamic batch) and embed its metadata.

    Writes ``out`` and the JSON copy of the metadata ``<out>.json``. Runs offline: the
    converter lowers the traced graph locally (torch.export -> StableHLO -> LiteRT converter).

    Raises:
        ImportError: ``litert-torch`` is not installed (``pip install 'emoar[tflite]'``).
    """
    try:
        import litert_torch
    except ImportError as e:
        raise ImportError(
            f"TF Lite export needs the LiteRT converter: pip install 'emoar[tflite]' ({e})"
        ) from e

    h, w = dep.input_size
    outp = Path(out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.zeros(2, 1, h, w)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # litert-torch prints its progress to stdout (which the CLI keeps for the output path):
    # show it only when the caller asked for progress logs.
    show = "y" if logger.isEnabledFor(logging.INFO) else "n"
    with _env("LITERT_TORCH_SHOW_PROGRESS", show), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.export deprecations, not ours
        edge = litert_torch.convert(
            _NamedOutputs(dep.module).eval(),
            sample_kwargs={"input": sample},
            dynamic_shapes={"input": {0: batch}},
        )
        flatbuffer = bytes(edge.model_content())
    meta = dep.meta.with_extra(tflite_converter=f"litert-torch {litert_torch.__version__}")
    write_tflite_metadata(flatbuffer, outp, meta.to_props())
    logger.info("Exported %s (%.1f KB)", outp, outp.stat().st_size / 1024)
    return outp


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def write_tflite_metadata(
    model: bytes | os.PathLike[str] | str, out: str | os.PathLike[str], metadata: dict[str, str]
) -> Path:
    """Write a TF Lite model to ``out`` with ``metadata`` embedded (and copied to ``<out>.json``).

    Args:
        model: the flatbuffer bytes, or a path to a .tflite file.
        out: output .tflite path (may be the input path).
        metadata: ``str -> str`` map stored as UTF-8 JSON in the ``metadata`` entry
            :data:`TFLITE_METADATA_NAME`; an existing entry of that name is replaced.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    obj = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    blob = json.dumps(metadata, sort_keys=True).encode("utf-8")
    obj.metadata = [m for m in (obj.metadata or []) if _str(m.name) != TFLITE_METADATA_NAME]
    buf = schema.BufferT()
    buf.data = np.frombuffer(blob, dtype=np.uint8)
    obj.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = TFLITE_METADATA_NAME, len(obj.buffers) - 1
    obj.metadata.append(entry)
    outp = Path(out)
    outp.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(obj)))
    outp.with_name(outp.name + ".json").write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
    return outp


def _str(v: str | bytes | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def read_tflite_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The emoar metadata embedded in a .tflite file by :func:`write_tflite_metadata`.

    Raises:
        ValueError: not a TF Lite file, or no (valid) emoar metadata in it.
    """
    from ai_edge_litert import schema_py_generated as schema

    p = Path(path)
    data = p.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{p}: not a TF Lite model (no TFL3 identifier)")
    m = schema.Model.GetRootAs(data, 0)
    for i in range(m.MetadataLength()):
        entry = m.Metadata(i)
        if _str(entry.Name()) != TFLITE_METADATA_NAME:
            continue
        b = m.Buffers(entry.Buffer())
        blob = data[b.Offset() : b.Offset() + b.Size()] if b.Offset() > 1 else b.DataAsNumpy().tobytes()
        try:
            meta = json.loads(bytes(blob).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{p}: corrupt emoar metadata ({e})") from e
        if not isinstance(meta, dict):
            raise ValueError(f"{p}: corrupt emoar metadata (not a JSON object)")
        return {str(k): str(v) for k, v in meta.items()}
    raise ValueError(
        f"{p}: no '{TFLITE_METADATA_NAME}' metadata; export it with 'emoar export --format tflite'"
    )
