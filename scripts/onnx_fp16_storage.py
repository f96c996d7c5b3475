"""Store an ONNX file's float32 weights as float16 where that loses nothing, each behind a Cast
to float32 (onnxruntime folds the casts at load: the graph computes exactly as before).

BlazeFace's TF Lite files (MediaPipe, via npm) hold float16 weights; tf2onnx writes them out as
float32, doubling the shipped ONNX files. Every such weight is exactly a float16 value, so storing
it as one is lossless. The script refuses a file with any weight that float16 cannot hold
exactly (it is not a rounding tool).

Usage: python scripts/onnx_fp16_storage.py FILE.onnx [FILE.onnx ...]   (rewrites in place)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from emoar.train.onnx_export import store_weights_fp16


def store_fp16(path: Path) -> tuple[int, int]:
    """Rewrite ``path``; returns (size before, size after) in bytes.

    Raises:
        ValueError: a float32 weight is not exactly representable in float16.
    """
    before = path.stat().st_size
    m = onnx.load(str(path))
    for init in m.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            a = numpy_helper.to_array(init)
            if not np.array_equal(a.astype(np.float16).astype(np.float32), a):
                raise ValueError(f"{path}: weight {init.name!r} is not exactly float16; nothing written")
    store_weights_fp16(m, prefix="", min_elements=16)  # every weight: none sits under a prefix
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return before, path.stat().st_size


if __name__ == "__main__":
    for p in sys.argv[1:]:
        b, a = store_fp16(Path(p))
        print(f"{p}: {b / 1e6:.2f} MB -> {a / 1e6:.2f} MB")
