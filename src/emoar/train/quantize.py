"""Static int8 quantization of an exported ONNX model (onnxruntime QDQ), the OOD head kept in
float.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from emoar.modelmeta import ModelMeta
from emoar.preprocess import preprocess

__all__ = ["feature_tensors", "float_nodes", "ood_head_nodes", "quantize_int8"]

logger = logging.getLogger(__name__)


def ood_head_nodes(model: Any) -> list[str]:
    """Names of the nodes that compute ``rmd`` and ``ood`` from ``features`` (the OOD head).

    Found structurally (ancestors of the ``rmd`` / ``ood`` outputs that are not ancestors of
    ``features``), so it holds for every architecture, whatever ops its backbone uses.
    """
    producer = {o: n for n in model.graph.node for o in n.output}

    def ancestors(tensor: str) -> set[str]:
        seen: set[str] = set()
        stack = [tensor]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            stack.extend(node.input)
        return seen

    outputs = {o.name for o in model.graph.output}
    head: set[str] = set()
    for name in ("rmd", "ood"):
        if name in outputs:
            head |= ancestors(name)
    return sorted(head - ancestors("features"))


def feature_tensors(model: Any) -> set[str]:
    """``features`` and the tensors it is a slice of: a graph with built-in flip TTA computes
    the features of 2N faces and outputs the first N (``Slice``)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    tensors = {"features"}
    node = producer.get("features")
    while node is not None and node.op_type in ("Slice", "Identity") and node.input:
        tensors.add(node.input[0])
        node = producer.get(node.input[0])
    return tensors


def float_nodes(model: Any) -> list[str]:
    """Names of the nodes int8 quantization leaves in float32: everything after the backbone.

    That is the OOD head (:func:`ood_head_nodes`); the pooling that produces the features and
    every reader of them (in QDQ a quantized reader, like the classifier's Gemm, would put one
    Q/DQ pair on ``features`` that all readers share); each softmax and everything computed
    from its output (an ensemble's average, a built-in flip's average), so ``probs`` keep full
    resolution rather than uint8 steps of 1/255. These are a few thousand MACs; the
    convolutions are millions.
    """
    feats = feature_tensors(model)
    keep = set(ood_head_nodes(model))
    keep |= {n.name for n in model.graph.node if feats & set(n.output) or feats & set(n.input)}
    readers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    after_softmax: set[str] = set()
    stack = [n for n in model.graph.node if n.op_type == "Softmax"]
    while stack:
        n = stack.pop()
        if n.name not in after_softmax:
            after_softmax.add(n.name)
            stack.extend(r for o in n.output for r in readers.get(o, []))
    return sorted(keep | after_softmax)


def quantize_int8(
    fp32_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    calib: np.ndarray,
    mean: float,
    std: float,
    *,
    ood_calib_images: np.ndarray | None = None,
    batch_size: int = 64,
) -> Path:
    """Post-training static int8 quantization of an exported fp32 ONNX model.

    QDQ format, int8 per-channel weights in 7 bits (``reduce_range``), uint8 per-tensor
    activations calibrated (MinMax) on ``calib``; everything after the backbone (pooling,
    classifier, softmax, OOD head) stays float32. Metadata are copied from the fp32 file, with
    ``emoar.quantization`` (JSON) describing the scheme.

    Args:
        fp32_path: .onnx written by :func:`emoar.train.export.save_onnx`.
        out: output .onnx path.
        calib: (N, H, W) uint8 real training faces for the activation ranges.
        mean: pixel mean in [0, 1] units (the model's).
        std: pixel std in [0, 1] units (the model's).
        ood_calib_images: (M, H, W) uint8 held-out faces (the ones that calibrated the fp32
            model's OOD quantiles); when given, ``emoar.ood_quantiles`` is re-measured on the
            int8 model so ``ood_score`` keeps its meaning (int8 features shift distances a little).
        batch_size: calibration batch size.

    Raises:
        ValueError: no calibration faces.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calib) == 0:
        raise ValueError("int8 quantization needs calibration faces; got none")

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._starts = iter(range(0, len(calib), batch_size))

        def get_next(self) -> dict[str, np.ndarray] | None:
            i = next(self._starts, None)
            return None if i is None else {"input": preprocess(calib[i : i + batch_size], mean, std)}

    m = onnx.load(str(fp32_path))
    keep_float = float_nodes(m)
    outp = Path(out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ONNX shape inference + constant folding, as onnxruntime recommends before quantizing
        # (its symbolic shape inference is for dynamic transformer shapes; it trips on the
        # OOD head's reductions and a CNN with a dynamic batch does not need it)
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(outp),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # 7-bit weights: x86 CPUs without VNNI (AVX2, AVX-512F) multiply u8 x s8 pairs with
            # vpmaddubsw, whose 16-bit sums of two products saturate with 8-bit weights (255 *
            # 127 * 2 > 32767); with |w| <= 64 they cannot (32640), so the file computes the
            # same on every CPU. Measured: a vgg_fer FER+ model lost 1.7 points of PublicTest on
            # an AVX2 host with 8-bit weights and none with 7 (README, export formats).
            reduce_range=True,
            nodes_to_exclude=keep_float,
        )
    q = onnx.load(str(outp))
    meta = ModelMeta.from_onnx(m, source=str(fp32_path))
    meta = meta.with_extra(
        quantization=json.dumps(
            {
                "scheme": "int8 static post-training quantization (onnxruntime QDQ)",
                "weights": "int8 in 7 bits (reduce_range: exact without VNNI), symmetric, per output channel",
                "activations": "uint8, asymmetric, per tensor",
                "calibration": f"MinMax on {len(calib)} training faces",
                "float32": "after the backbone: pooling, classifier, softmax and what reads it, OOD head (Mahalanobis)",
                "tool": f"onnxruntime {onnxruntime.__version__}",
            }
        )
    )
    if ood_calib_images is not None and len(ood_calib_images):
        quantiles = _ood_quantiles(q, meta.ood_output, ood_calib_images, mean, std)
        meta = meta.replace(ood_quantiles=tuple(quantiles))
    meta.to_onnx(q)
    q.producer_name = "emoar"
    onnx.save(q, str(outp))
    logger.info("Quantized %s -> %s (%.1f KB)", fp32_path, outp, outp.stat().st_size / 1024)
    return outp


def _ood_quantiles(model: Any, output: str, images: np.ndarray, mean: float, std: float) -> list[float]:
    import onnxruntime as ort

    from emoar.train.export import ood_quantiles

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    vals = [
        sess.run([output], {"input": preprocess(images[i : i + 256], mean, std)})[0]
        for i in range(0, len(images), 256)
    ]
    return ood_quantiles(np.concatenate(vals))
