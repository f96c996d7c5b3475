"""Convert YuNet (libfacedetection) from the installed ``yuface`` wheel to ONNX.

``yuface`` 2023.5.1 ships libfacedetection as ``libfacedetection.so`` with the network's weights
compiled in. The library exports ``param_pConvInfo``, an array of 53 layer descriptors
(``{int channels; int num_filters; bool is_depthwise; bool is_pointwise; bool with_relu;
float* pWeights; float* pBiases;}``); this script reads them with :mod:`ctypes`, rebuilds the
graph of libfacedetection's ``objectdetect_cnn`` with ``onnx.helper`` (opset 17) and writes
``src/emoar/detect/models/yunet.onnx``. The weights are copied unchanged (only re-laid out), so
the model computes what the library computes, up to float summation order.

The graph (layer numbers are indices into ``param_pConvInfo``):

* input ``bgr``: float32 ``[N, 3, H, W]``, BGR channel order, values 0-255 as the library reads
  the ``uint8`` pixels (no normalisation). ``H`` and ``W`` must be multiples of 32: the library
  pads the image with zeros on the bottom and right to the next multiple of 32, and the caller
  does the same (``emoar.detect.yunet``).
* layer 0: the library's 3x3 stride-2 pad-1 convolution done as im2col into 27 of 32 channels
  (channel ``(ky * 3 + kx) * 3 + c``; the last 5 weights of each filter are zero), here a plain
  ``Conv`` 3 -> 16, 3x3, stride 2, pad 1, then ReLU.
* every other layer pair is ``convolutionDP``: a 1x1 convolution (no ReLU) then a 3x3 depthwise
  convolution, pad 1 (``Conv`` with ``group = C``), with ReLU except in the heads.
  ``convolution4layerUnit`` is two of them.
* ``maxpooling2x2S2``: ``MaxPool`` 2x2 stride 2 (sizes are even at every pool because the input
  is a multiple of 32); ``upsampleX2``: nearest-neighbour ``Resize`` x2; ``elementAdd``: ``Add``.
* the four heads of each of the three levels (stride 8, 16, 32) share their input, and each of
  their channels is independent, so each level's 1x1 convolutions are concatenated into one
  64 -> 16 ``Conv`` and their depthwise convolutions into one 16-channel one (the same sums).

Output ``heads``: float32 ``[N, 16, A]``, the raw (pre-sigmoid, pre-decode) head outputs of the
``A = (H/8)(W/8) + (H/16)(W/16) + (H/32)(W/32)`` anchors: stride 8 first, each level in row-major
order (the order of libfacedetection's ``blob2vector`` / ``concat3``). Channels: 0 class logit,
1 objectness logit, 2-5 box (``dx, dy, log w, log h`` in units of the stride), 6-15 landmarks
(``x0, y0, ... x4, y4`` in units of the stride, relative to the anchor). Sigmoids, decoding and
NMS are done by the caller (``emoar.detect.yunet``), as in ``detection_output``.

The yuface version and the sha256 of the ``.so`` are stored in the model's ``metadata_props``.
The output is deterministic (same library, same bytes). Usage::

    python scripts/convert_yunet.py [--output PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.metadata
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "src" / "emoar" / "detect" / "models" / "yunet.onnx"
NUM_LAYERS = 53
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: loadable by onnxruntime >= 1.10


class ConvInfo(ctypes.Structure):
    """libfacedetection's ``ConvInfoStruct``."""

    _fields_ = [
        ("channels", ctypes.c_int),
        ("num_filters", ctypes.c_int),
        ("is_depthwise", ctypes.c_bool),
        ("is_pointwise", ctypes.c_bool),
        ("with_relu", ctypes.c_bool),
        ("pWeights", ctypes.POINTER(ctypes.c_float)),
        ("pBiases", ctypes.POINTER(ctypes.c_float)),
    ]


class Layer:
    """One layer's descriptor and weights, copied out of the library."""

    def __init__(self, info: ConvInfo) -> None:
        self.channels = int(info.channels)
        self.num_filters = int(info.num_filters)
        self.is_depthwise = bool(info.is_depthwise)
        self.is_pointwise = bool(info.is_pointwise)
        self.with_relu = bool(info.with_relu)
        if self.is_pointwise == self.is_depthwise:
            raise ValueError("a layer is either 1x1 point-wise or 3x3 depth-wise")
        # Filters<float>::operator=: point-wise weights are [num_filters][channels], depth-wise
        # ones [9][channels] (tap ky * 3 + kx), both dense; biases [num_filters].
        n = self.channels * (self.num_filters if self.is_pointwise else 9)
        self.weights = np.ctypeslib.as_array(info.pWeights, (n,)).astype(np.float32, copy=True)
        self.biases = np.ctypeslib.as_array(info.pBiases, (self.num_filters,)).astype(np.float32, copy=True)

    def pointwise(self) -> np.ndarray:
        """ONNX ``Conv`` weight ``[num_filters, channels, 1, 1]``."""
        assert self.is_pointwise
        return self.weights.reshape(self.num_filters, self.channels, 1, 1)

    def depthwise(self) -> np.ndarray:
        """ONNX ``Conv`` weight ``[channels, 1, 3, 3]`` (``group = channels``)."""
        assert self.is_depthwise and self.channels == self.num_filters
        return np.ascontiguousarray(self.weights.reshape(3, 3, self.channels).transpose(2, 0, 1)[:, None])


def find_library() -> Path:
    """The installed wheel's ``libfacedetection.so`` (``emoar``'s own lookup, without importing it)."""
    sys.path.insert(0, str(REPO / "src"))
    from emoar.detect.yunet import find_libfacedetection

    path = find_libfacedetection()
    if path is None:
        raise SystemExit("yuface is not installed: pip install yuface==2023.5.1")
    return path.resolve()


def read_layers(path: Path) -> list[Layer]:
    """The 53 layers of ``param_pConvInfo``."""
    lib = ctypes.CDLL(str(path))
    infos = (ConvInfo * NUM_LAYERS).in_dll(lib, "param_pConvInfo")
    layers = [Layer(info) for info in infos]
    # The same array is exported by name too: check the descriptor reading against one.
    named = np.ctypeslib.as_array(
        ctypes.cast(lib.backbone__model0_pw_weight, ctypes.POINTER(ctypes.c_float)), (16 * 32,)
    )
    if not np.array_equal(named, layers[0].weights):
        raise ValueError("param_pConvInfo[0] does not point at backbone__model0_pw_weight")
    return layers


class GraphBuilder:
    """Nodes and initializers with deterministic names."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{kind}_{self._n}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: Any) -> str:
        out = self._name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, w: np.ndarray, b: np.ndarray, tag: str, relu: bool, **attrs: Any) -> str:
        y = self.node("Conv", [x, self.const(f"{tag}.weight", w), self.const(f"{tag}.bias", b)], **attrs)
        return self.node("Relu", [y]) if relu else y

    def pw(self, x: str, i: int) -> str:
        layer = self.layers[i]
        if layer.with_relu:
            raise ValueError(f"layer {i}: the library never applies ReLU after a 1x1 of convolutionDP")
        return self.conv(x, layer.pointwise(), layer.biases, f"layer{i}", False, kernel_shape=[1, 1])

    def dw(self, x: str, i: int, relu: bool) -> str:
        layer = self.layers[i]
        if layer.with_relu != relu:
            raise ValueError(f"layer {i}: with_relu={layer.with_relu} but the graph has relu={relu}")
        return self.conv(
            x,
            layer.depthwise(),
            layer.biases,
            f"layer{i}",
            relu,
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            group=layer.channels,
        )

    def dp(self, x: str, p: int, d: int, relu: bool = True) -> str:
        """``convolutionDP``: 1x1 (no ReLU), then 3x3 depth-wise (ReLU unless ``relu=False``)."""
        return self.dw(self.pw(x, p), d, relu)

    def unit(self, x: str, first: int) -> str:
        """``convolution4layerUnit``: two ``convolutionDP`` with ReLU."""
        return self.dp(self.dp(x, first, first + 1), first + 2, first + 3)

    def pool(self, x: str) -> str:
        return self.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])

    def up2(self, x: str) -> str:
        scales = "up2.scales"
        if not any(t.name == scales for t in self.inits):
            self.const(scales, np.array([1.0, 1.0, 2.0, 2.0], np.float32))
        return self.node(
            "Resize",
            [x, "", scales],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )

    def heads(self, x: str, level: int) -> str:
        """The level's cls, obj, bbox and kps heads as one 16-channel ``convolutionDP``, flattened
        to ``[N, 16, h * w]``."""
        # model.cpp: level 0 (stride 8) uses cls 29/30, bbox 35/36, obj 41/42, kps 47/48; each
        # next level adds 2.
        pairs = [(29 + 2 * level), (41 + 2 * level), (35 + 2 * level), (47 + 2 * level)]
        pws = [self.layers[p] for p in pairs]
        dws = [self.layers[p + 1] for p in pairs]
        for i, layer in zip(pairs, pws, strict=True):
            if layer.with_relu or self.layers[i + 1].with_relu:
                raise ValueError(f"head layers {i}, {i + 1} have ReLU")
        pw_w = np.concatenate([layer.pointwise() for layer in pws])
        pw_b = np.concatenate([layer.biases for layer in pws])
        dw_w = np.concatenate([layer.depthwise() for layer in dws])
        dw_b = np.concatenate([layer.biases for layer in dws])
        assert pw_w.shape == (16, 64, 1, 1) and dw_w.shape == (16, 1, 3, 3)
        tag = f"head{level}"
        y = self.conv(x, pw_w, pw_b, f"{tag}.pw", False, kernel_shape=[1, 1])
        y = self.conv(y, dw_w, dw_b, f"{tag}.dw", False, kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=16)
        shape = "heads.shape"
        if not any(t.name == shape for t in self.inits):
            self.const(shape, np.array([0, 16, -1], np.int64))
        return self.node("Reshape", [y, shape])


def build_model(layers: list[Layer], metadata: dict[str, str]) -> onnx.ModelProto:
    """The ONNX model of ``objectdetect_cnn`` (see the module docstring)."""
    g = GraphBuilder(layers)
    first = layers[0]
    if not (first.is_pointwise and first.channels == 32 and first.num_filters == 16 and first.with_relu):
        raise ValueError("layer 0 is not the 27(+5)-channel im2col convolution 3 -> 16")
    w0 = first.weights.reshape(16, 32)
    if np.any(w0[:, 27:]):
        raise ValueError("layer 0's padding channels 27-31 are not zero")
    # im2col channel (ky * 3 + kx) * 3 + c  ->  Conv weight [f, c, ky, kx].
    conv0 = np.ascontiguousarray(w0[:, :27].reshape(16, 3, 3, 3).transpose(0, 3, 1, 2))

    x = g.conv(
        "bgr", conv0, first.biases, "layer0", True, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
    )
    x = g.dp(x, 1, 2)
    x = g.pool(x)
    x = g.unit(x, 3)
    x = g.unit(x, 7)
    x = g.pool(x)
    fb1 = g.unit(x, 11)
    fb2 = g.unit(g.pool(fb1), 15)
    fb3 = g.unit(g.pool(fb2), 19)

    fb3 = g.dp(fb3, 27, 28)
    head2 = g.heads(fb3, 2)
    fb2 = g.node("Add", [g.up2(fb3), fb2])
    fb2 = g.dp(fb2, 25, 26)
    head1 = g.heads(fb2, 1)
    fb1 = g.node("Add", [g.up2(fb2), fb1])
    fb1 = g.dp(fb1, 23, 24)
    head0 = g.heads(fb1, 0)
    g.nodes.append(helper.make_node("Concat", [head0, head1, head2], ["heads"], name="heads", axis=2))

    graph = helper.make_graph(
        g.nodes,
        "yunet",
        [helper.make_tensor_value_info("bgr", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("heads", TensorProto.FLOAT, ["N", 16, "anchors"])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="emoar scripts/convert_yunet.py",
        doc_string=(
            "YuNet (libfacedetection, BSD-3-Clause, Copyright (c) 2018-2021 Shiqi Yu) converted from the "
            "yuface wheel's libfacedetection.so. Input bgr: float32 [N,3,H,W] BGR 0-255, H and W multiples "
            "of 32 (zero-padded bottom/right). Output heads: float32 [N,16,A], anchors of strides 8, 16, 32 "
            "in row-major order; channels cls, obj, dx, dy, log w, log h, x0, y0 ... x4, y4 (raw logits, "
            "units of the stride)."
        ),
    )
    model.ir_version = IR_VERSION
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    return model


def convert(output: Path) -> bytes:
    """Write the model to ``output``; returns its bytes."""
    lib_path = find_library()
    digest = hashlib.sha256(lib_path.read_bytes()).hexdigest()
    version = importlib.metadata.version("yuface")
    layers = read_layers(lib_path)
    model = build_model(
        layers,
        {
            "source": "libfacedetection (YuNet) param_pConvInfo from the yuface wheel's libfacedetection.so",
            "yuface_version": version,
            "libfacedetection_sha256": digest,
            "license": "BSD-3-Clause, Copyright (c) 2018-2021, Shiqi Yu",
            "input": "bgr: float32 [N,3,H,W], BGR 0-255, H and W multiples of 32 (zero-padded)",
            "output": "heads: float32 [N,16,A]; cls, obj, dx, dy, logw, logh, 10 landmark offsets",
            "strides": "8,16,32",
        },
    )
    data = model.SerializeToString(deterministic=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(data)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the model")
    args = parser.parse_args(argv)
    data = convert(args.output)
    print(f"{args.output}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
