"""``emoar export``: checkpoint -> ONNX (fp32 or int8) with metadata and OOD statistics."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from emoar.train.data import load_dataset

__all__ = ["run_export", "quantize_int8"]

logger = logging.getLogger(__name__)


def quantize_int8(
    fp32_path: str | os.PathLike[str], out: str | os.PathLike[str], calib: np.ndarray, mean: float, std: float
) -> Path:
    """Post-training static int8 quantization (QDQ, per-channel) of the network's convolutions
    and linear layers, calibrated on real training faces; the OOD head stays in fp32."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from emoar.preprocess import preprocess

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(
                [{"input": preprocess(calib[i : i + 64], mean, std)} for i in range(0, len(calib), 64)]
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    m = onnx.load(str(fp32_path))
    # Keep the Mahalanobis part (MatMuls on features) in float: quantize convs and the classifier.
    keep_float = [
        n.name
        for n in m.graph.node
        if n.op_type in ("MatMul", "Sub", "Mul", "ReduceSum", "ReduceMin", "Softmax")
    ]
    outp = Path(out)
    quantize_static(
        str(fp32_path),
        str(outp),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv", "Gemm"],
        nodes_to_exclude=keep_float,
    )
    q = onnx.load(str(outp))
    del q.metadata_props[:]
    for p in m.metadata_props:
        np_ = q.metadata_props.add()
        np_.key, np_.value = p.key, p.value
    extra = q.metadata_props.add()
    extra.key, extra.value = "emoar.quantization", "int8 static QDQ per-channel (onnxruntime)"
    onnx.save(q, str(outp))
    return outp


def run_export(
    checkpoint: str,
    *,
    fmt: str = "onnx",
    out: str | None = None,
    int8: bool = False,
    data: str | None = None,
    name: str | None = None,
) -> Path:
    """Export a checkpoint; returns the written file.

    Raises:
        ValueError: unknown format, unreadable checkpoint or data.
    """
    import torch

    from emoar.train.export import export_onnx
    from emoar.train.loop import load_checkpoint

    if fmt == "tflite":
        raise ValueError("TF Lite export is not implemented yet; export to ONNX (--format onnx) instead")
    if fmt != "onnx":
        raise ValueError(f"Unknown format {fmt!r}; choose onnx or tflite")
    _, meta = load_checkpoint(checkpoint)
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    data = data or ck.get("config", {}).get("data")
    if not data:
        raise ValueError("--data is required: the checkpoint does not record its training data")
    splits = load_dataset(data)
    tr = splits["Training"]
    va = splits.get("PublicTest", tr)
    limit = int(ck.get("config", {}).get("limit") or 0)
    if limit:  # fit on the same slice the model was trained on
        tr = tr.subset(np.arange(min(limit, len(tr))))
        va = va.subset(np.arange(min(max(limit // 4, 64), len(va))))
    rng = np.random.default_rng(0)
    fit_idx = np.sort(rng.permutation(len(tr))[:20000])
    outp = Path(out or Path(checkpoint).with_suffix(".onnx"))
    metrics = {"publictest_accuracy": meta.get("val_acc"), "epochs": meta.get("epoch")}
    fp32 = outp if not int8 else outp.with_name(outp.stem + ".fp32.onnx")
    export_onnx(
        checkpoint,
        fp32,
        train_images=tr.images[fit_idx],
        train_labels=tr.labels[fit_idx],
        calib_images=va.images,
        metrics=metrics,
        name=name or outp.stem,
    )
    if not int8:
        return fp32
    q = quantize_int8(fp32, outp, tr.images[fit_idx[:1024]], meta["mean"], meta["std"])
    fp32.unlink(missing_ok=True)
    return q
