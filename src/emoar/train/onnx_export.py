"""Writing a :class:`emoar.train.deploy.Deployable` as ONNX (dynamo exporter), optionally with
float16 weight storage.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoar.train.deploy import OUTPUT_NAMES, Deployable

__all__ = ["FP16_MIN_ELEMENTS", "save_onnx", "store_weights_fp16"]

logger = logging.getLogger(__name__)

#: Weight tensors smaller than this stay float32 under ``weights="fp16"`` (biases, BN).
FP16_MIN_ELEMENTS = 1024


#: Where the networks' weights sit in an exported graph: a single model's ``net.``, an
#: ensemble's first member ``first.net.`` and the others ``others.<i>.`` (the OOD head is outside).
BACKBONE_PREFIXES = ("net.", "first.net.", "others.")


def store_weights_fp16(
    model: Any, *, prefix: str | tuple[str, ...] = BACKBONE_PREFIXES, min_elements: int = FP16_MIN_ELEMENTS
) -> int:
    """Store the backbone's large float32 weights as float16, each behind a ``Cast`` to float32.

    The graph still computes in float32: onnxruntime folds the casts at load time, so speed
    and memory at run time are those of the float32 model, while the file is about half the
    size. The OOD head's matrices (not under ``prefix``) keep float32. Edits ``model`` in
    place; returns the number of tensors converted.
    """
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    renamed: dict[str, str] = {}
    keep = []
    casts = []
    for init in g.initializer:
        if (
            init.data_type == TensorProto.FLOAT
            and init.name.startswith(prefix)
            and int(np.prod(init.dims)) >= min_elements
        ):
            half = numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16"
            )
            keep.append(half)
            casts.append(
                helper.make_node(
                    "Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=init.name + "_cast"
                )
            )
            renamed[init.name] = half.name
        else:
            keep.append(init)
    del g.initializer[:]
    g.initializer.extend(keep)
    for i, node in enumerate(casts):
        g.node.insert(i, node)
    return len(renamed)


def save_onnx(
    dep: Deployable, out: str | os.PathLike[str], *, opset: int = 18, weights: str = "fp32"
) -> Path:
    """Write ``dep`` as ONNX (dynamic batch, opset ``opset``) with its metadata in ``metadata_props``.

    Args:
        dep: from :func:`prepare_export`.
        out: output .onnx path.
        opset: ONNX opset.
        weights: ``fp32``, or ``fp16`` to store the backbone's weights at half size (the graph
            still computes in float32, see :func:`store_weights_fp16`).

    Raises:
        ValueError: unknown ``weights``.
    """
    import onnx

    if weights not in ("fp32", "fp16"):
        raise ValueError(f"Unknown weight storage {weights!r}; choose fp32 or fp16")

    h, w = dep.input_size
    dummy = torch.zeros(2, 1, h, w)
    outp = Path(out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=4096)
    # The exporter warns once per torchvision op it cannot register (no CPU torchvision here)
    # and logs every optimisation pass: neither concerns our graph, so keep the console quiet.
    quiet = [
        logging.getLogger(n) for n in ("torch.onnx._internal.exporter._registration", "onnx_ir", "onnxscript")
    ]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export deprecations, not ours
            prog = torch.onnx.export(
                dep.module,
                (dummy,),
                input_names=["input"],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes={"x": {0: batch}},
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        for q, lv in zip(quiet, levels, strict=True):
            q.setLevel(lv)
    if prog is None:  # pragma: no cover - dynamo=True always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        prog.save(str(tmp_path), external_data=False)
        m = onnx.load(str(tmp_path))
    meta = dep.meta
    if weights == "fp16":
        n = store_weights_fp16(m)
        meta = meta.with_extra(weight_storage=f"fp16 ({n} backbone tensors; computed in float32)")
    meta.to_onnx(m)
    m.producer_name = "emoar"
    onnx.checker.check_model(m)
    onnx.save(m, str(outp))
    logger.info("Exported %s (%.1f KB)", outp, outp.stat().st_size / 1024)
    return outp
