"""Export a checkpoint to ONNX or TF Lite (LiteRT) with everything the runtime needs inside the file.

The exported graph has one input ``input`` (N, 1, H, W) float32, already normalised by
:func:`emoar.preprocess.preprocess`, and three outputs:

* ``probs`` (N, C): softmax probabilities in the label order stored in the metadata;
* ``rmd`` (N,): relative Mahalanobis distance (Ren et al. 2021) of the penultimate features:
  ``min_k d_k(f) - d_0(f)`` where ``d_k`` uses the class means and a shared covariance and
  ``d_0`` a background Gaussian fitted on all training features;
* ``ood`` (N,): the out-of-distribution logit the runtime scores: a logistic "not a face"
  discriminator on ``[features, rmd]`` fitted on training faces against non-face patches
  (outlier exposure, :mod:`emoar.train.negatives`); it equals ``rmd`` for a model exported
  without negatives;
* ``features`` (N, D): the penultimate features (for analysis / re-fitting).

The metadata (a flat ``str -> str`` map, keys ``emoar.*``) carry the label order, input size,
normalisation, the architecture, the training data, measured metrics and the OOD calibration
(quantiles of ``ood`` on held-out real faces, so the runtime can turn a distance into a score
in [0, 1]) and threshold. Where they live:

* ONNX: ``metadata_props`` (read back by :class:`emoar.classify.ExpressionClassifier`);
* TF Lite: the flatbuffer's ``metadata`` table, entry ``"emoar"``, holding the same map as
  UTF-8 JSON (:func:`read_tflite_metadata`), plus a copy next to the model,
  ``<file>.tflite.json``, for mobile apps that read JSON from their assets more easily than
  flatbuffer metadata. The embedded copy is authoritative; both are written together.

The TF Lite file is converted straight from PyTorch by ``litert-torch`` (install the
``emoar[tflite]`` extra); it runs on ``ai-edge-litert`` (``emoar[litert]``) or any LiteRT /
TF Lite runtime on Android and iOS. Its input is NCHW ``(1, 1, H, W)``, which for a single
gray channel is the same memory layout as NHWC ``(1, H, W, 1)``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoar.modelmeta import FORMAT_VERSION, ModelMeta
from emoar.train.loop import load_checkpoint, predict_logits
from emoar.train.nets import FerNet

__all__ = [
    "FORMAT_VERSION",
    "TFLITE_METADATA_NAME",
    "Deployable",
    "NonFaceHead",
    "OodStats",
    "fit_nonface",
    "fit_ood",
    "ood_quantiles",
    "prepare_export",
    "read_tflite_metadata",
    "save_onnx",
    "save_tflite",
    "store_weights_fp16",
    "write_tflite_metadata",
]

logger = logging.getLogger(__name__)

#: ``ood_score`` is the fraction of held-out real faces with a smaller distance; faces above
#: this score are reported ``uncertain`` (so about 5% of real faces are flagged by design).
DEFAULT_OOD_THRESHOLD = 0.95
#: Name of the TF Lite ``metadata`` entry that holds the emoar metadata as JSON.
TFLITE_METADATA_NAME = "emoar"
OUTPUT_NAMES = ("probs", "rmd", "ood", "features")


class OodStats:
    """Gaussian statistics of penultimate features (fitted on training faces)."""

    def __init__(
        self, class_means: np.ndarray, precision: np.ndarray, bg_mean: np.ndarray, bg_precision: np.ndarray
    ) -> None:
        self.class_means = class_means.astype(np.float32)
        self.precision = precision.astype(np.float32)
        self.bg_mean = bg_mean.astype(np.float32)
        self.bg_precision = bg_precision.astype(np.float32)
        # Whitening matrices W with W W^T = precision (kept in float64 until export).
        self._w = _whitener(precision)
        self._w0 = _whitener(bg_precision)
        self._class_means64 = class_means.astype(np.float64)
        self._bg_mean64 = bg_mean.astype(np.float64)

    def graph_constants(self) -> dict[str, np.ndarray]:
        """Float32 constants of the deployed distance computation (see :class:`_Deployed`).

        With ``c = f - bg_mean``, ``W W^T = precision`` and ``m_k = (mu_k - bg_mean) W``:
        ``d_k(f) = |c W|^2 - 2 (c W) . m_k + |m_k|^2`` and ``d_0(f) = |c W0|^2``. Centring on
        the background mean keeps the magnitudes (and float32 cancellation) small; only 2-D
        products and keep-dim reductions are used, so the graph has no reshapes and converts
        to TF Lite with a dynamic batch size (and is ~7x cheaper than a batched (N, C, D) form).
        """
        m = (self._class_means64 - self._bg_mean64) @ self._w
        return {
            "center": self._bg_mean64.astype(np.float32),
            "w": self._w.astype(np.float32),
            "m_t": np.ascontiguousarray(m.T).astype(np.float32),
            "m_sq": (m * m).sum(1).astype(np.float32),
            "w0": self._w0.astype(np.float32),
        }

    def rmd(self, feats: np.ndarray) -> np.ndarray:
        """Relative Mahalanobis distance for (N, D) features (numpy reference)."""
        d = feats[:, None, :] - self.class_means[None]
        md = np.einsum("ncd,de,nce->nc", d, self.precision, d)
        d0 = feats - self.bg_mean
        md0 = np.einsum("nd,de,ne->n", d0, self.bg_precision, d0)
        return (md - md0[:, None]).min(1)


def _whitener(precision: np.ndarray) -> np.ndarray:
    """``W`` with ``W @ W.T == precision`` (symmetric PSD) via an eigendecomposition."""
    p = precision.astype(np.float64)
    vals, vecs = np.linalg.eigh((p + p.T) / 2)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))[None, :]


def _precision(cov: np.ndarray, shrink: float = 0.05) -> np.ndarray:
    d = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / d * np.eye(d)
    return np.linalg.pinv(cov)


def fit_ood(feats: np.ndarray, labels: np.ndarray, num_classes: int) -> OodStats:
    """Fit class means + shared covariance, and the background Gaussian, on (N, D) features.

    A class without any training face (a small ``--limit`` slice) has no mean: it is left
    out of the class Gaussians (the distance is the minimum over the classes that have one).

    Raises:
        ValueError: no features.
    """
    if len(feats) == 0:
        raise ValueError("Cannot fit OOD statistics on zero training faces")
    f = feats.astype(np.float64)
    present = [c for c in range(num_classes) if np.any(labels == c)]
    if len(present) < num_classes:
        logger.warning(
            "OOD fit: classes %s have no training faces; left out of the class Gaussians",
            sorted(set(range(num_classes)) - set(present)),
        )
    means = np.stack([f[labels == c].mean(0) for c in present])
    row = np.searchsorted(present, labels)
    centred = f - means[row]
    cov = centred.T @ centred / len(f)
    bg_mean = f.mean(0)
    bg = f - bg_mean
    bg_cov = bg.T @ bg / len(f)
    return OodStats(means, _precision(cov), bg_mean, _precision(bg_cov))


@dataclass(frozen=True)
class NonFaceHead:
    """Logistic "not a face" discriminator: ``logit = features @ w + w_rmd * rmd + b``."""

    w: np.ndarray
    w_rmd: float
    b: float

    def logit(self, feats: np.ndarray, rmd: np.ndarray) -> np.ndarray:
        """The discriminator's logit (higher = less like a training face), numpy reference."""
        return feats.astype(np.float64) @ self.w.astype(np.float64) + self.w_rmd * rmd + self.b


def fit_nonface(
    face_feats: np.ndarray,
    face_rmd: np.ndarray,
    neg_feats: np.ndarray,
    neg_rmd: np.ndarray,
    *,
    l2: float = 1e-3,
    max_iter: int = 200,
) -> NonFaceHead:
    """Fit the face / non-face logistic regression on ``[features, rmd]`` (outlier exposure).

    Inputs are standardised, the two classes weighted equally, L2 penalty ``l2`` on the
    standardised weights (L-BFGS, float64); the returned weights apply to raw inputs.

    Raises:
        ValueError: no faces or no negatives.
    """
    if len(face_feats) == 0 or len(neg_feats) == 0:
        raise ValueError("fit_nonface needs both faces and non-face patches")
    x = np.concatenate(
        [
            np.concatenate([face_feats, face_rmd[:, None]], 1),
            np.concatenate([neg_feats, neg_rmd[:, None]], 1),
        ]
    ).astype(np.float64)
    y = np.r_[np.zeros(len(face_feats)), np.ones(len(neg_feats))]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mu) / sd)
    yt = torch.from_numpy(y)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    pos_weight = torch.tensor(len(face_feats) / len(neg_feats), dtype=torch.float64)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (
            nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt, pos_weight=pos_weight)
            + l2 * (w * w).sum()
        )
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    opt.step(closure)  # type: ignore[no-untyped-call]
    ws = w.detach().numpy() / sd
    b0 = float(b.detach()[0]) - float(mu @ ws)
    return NonFaceHead(ws[:-1].astype(np.float32), float(ws[-1]), b0)


class _Deployed(nn.Module):
    center: torch.Tensor
    w: torch.Tensor
    m_t: torch.Tensor
    m_sq: torch.Tensor
    w0: torch.Tensor

    nf_w: torch.Tensor
    nf_w_rmd: torch.Tensor
    nf_b: torch.Tensor

    def __init__(self, net: FerNet, ood: OodStats, nonface: NonFaceHead | None = None) -> None:
        super().__init__()
        self.net = net
        for k, v in ood.graph_constants().items():
            self.register_buffer(k, torch.from_numpy(v))
        self.has_nonface = nonface is not None
        if nonface is not None:
            # elementwise products and reductions only (no reshapes): shape inference for int8
            # quantization and the TF Lite converter take it as they take the distances above
            self.register_buffer("nf_w", torch.from_numpy(nonface.w.astype(np.float32)[None, :]))
            self.register_buffer("nf_w_rmd", torch.tensor([nonface.w_rmd], dtype=torch.float32))
            self.register_buffer("nf_b", torch.tensor([nonface.b], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.net.forward_features(x)
        probs = torch.softmax(self.net.head(f), dim=1)
        c = f - self.center  # N,D
        g = c @ self.w  # whitened for the class Gaussians
        md = (g * g).sum(1, keepdim=True) - 2.0 * (g @ self.m_t) + self.m_sq  # N,C
        g0 = c @ self.w0  # whitened for the background Gaussian
        md0 = (g0 * g0).sum(1, keepdim=True)  # N,1
        rmd = (md - md0).min(dim=1).values  # N
        if not self.has_nonface:
            return probs, rmd, rmd, f
        ood = (f * self.nf_w).sum(dim=1) + rmd * self.nf_w_rmd + self.nf_b  # N
        return probs, rmd, ood, f


class _NamedOutputs(nn.Module):
    """LiteRT names a signature's inputs after ``forward``'s arguments and its outputs after
    the keys of a returned dict; this gives the TF Lite file the ONNX file's names."""

    def __init__(self, deployed: nn.Module) -> None:
        super().__init__()
        self.deployed = deployed

    def forward(self, input: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: A002 - the I/O name
        return dict(zip(OUTPUT_NAMES, self.deployed(input), strict=True))


@dataclass(frozen=True)
class Deployable:
    """A checkpoint ready to be written in any format.

    Attributes:
        module: eval-mode module mapping (N, 1, H, W) normalised input to ``probs``, ``rmd``,
            ``ood``, ``features``.
        meta: the metadata stored with the model (``meta.to_props()`` are the key/value pairs).
        input_size: (height, width) in pixels.
        mean: pixel mean in [0, 1] units.
        std: pixel std in [0, 1] units.
        ood: the fitted OOD statistics.
        nonface: the fitted face / non-face discriminator (None without negatives).
    """

    module: nn.Module
    meta: ModelMeta
    input_size: tuple[int, int]
    mean: float
    std: float
    ood: OodStats
    nonface: NonFaceHead | None = None

    @property
    def metadata(self) -> dict[str, str]:
        """The key/value pairs written into the model file (``meta.to_props()``)."""
        return self.meta.to_props()


def prepare_export(
    checkpoint: str | os.PathLike[str],
    *,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    calib_images: np.ndarray,
    metrics: dict[str, Any] | None = None,
    name: str | None = None,
    ood_threshold: float = DEFAULT_OOD_THRESHOLD,
    negatives: dict[str, np.ndarray] | None = None,
    extra_faces: np.ndarray | None = None,
) -> Deployable:
    """Load ``checkpoint``, fit the OOD statistics and build the deployable module + metadata.

    Args:
        checkpoint: a ``best.pt``/``last.pt`` written by ``emoar train``.
        train_images: (N, H, W) uint8 training faces to fit the OOD Gaussians on.
        train_labels: (N,) their labels.
        calib_images: (M, H, W) uint8 held-out real faces (PublicTest) that calibrate the
            distance -> score mapping (never the test split).
        metrics: measured metrics to store (e.g. PublicTest accuracy).
        name: model name stored in the metadata (default: the checkpoint's file stem).
        ood_threshold: score above which a face is reported uncertain.
        negatives: non-face (N, H, W) uint8 patches by source (see
            :func:`emoar.train.negatives.non_face_patches`); with them the exported ``ood``
            output is the face / non-face discriminator, without them it is ``rmd``.
        extra_faces: more (N, H, W) uint8 faces for the discriminator's face side only
            (e.g. :func:`emoar.train.negatives.low_resolution_faces`).

    Raises:
        ValueError: unreadable checkpoint.
    """
    model, meta = load_checkpoint(checkpoint)
    model = model.float().eval()
    labels = meta["labels"]

    def features(images: np.ndarray) -> np.ndarray:
        return np.asarray(predict_logits(model, images, meta["mean"], meta["std"], features=True)[1])

    feats = features(train_images)
    ood = fit_ood(feats, train_labels, len(labels))
    cfeats = features(calib_images)
    nonface = None
    negs = {k: v for k, v in (negatives or {}).items() if len(v)}
    neg_counts = {k: len(v) for k, v in negs.items()}
    if negs:
        nfeats = features(np.concatenate(list(negs.values())))
        pfeats = feats
        if extra_faces is not None and len(extra_faces):
            pfeats = np.concatenate([feats, features(extra_faces)])
        nonface = fit_nonface(pfeats, ood.rmd(pfeats), nfeats, ood.rmd(nfeats))
        quantiles = ood_quantiles(nonface.logit(cfeats, ood.rmd(cfeats)))
    else:
        quantiles = ood_quantiles(ood.rmd(cfeats))
    h, w = (int(v) for v in meta["input_size"])
    model_meta = ModelMeta(
        name=name or Path(checkpoint).stem,
        labels=tuple(labels),
        input_size=(h, w),
        mean=float(meta["mean"]),
        std=float(meta["std"]),
        arch=meta["arch"],
        color="gray",
        ood_method="relative_mahalanobis+outlier_exposure" if nonface is not None else "relative_mahalanobis",
        ood_output="ood",
        ood_negatives=neg_counts,
        ood_quantiles=tuple(quantiles),
        ood_threshold=float(ood_threshold),
        train_source=str(meta.get("train_source", "")),
        metrics=metrics or {"val_acc": meta.get("val_acc")},
        format_version=FORMAT_VERSION,
    )
    return Deployable(
        _Deployed(model, ood, nonface).eval(),
        model_meta,
        (h, w),
        float(meta["mean"]),
        float(meta["std"]),
        ood,
        nonface,
    )


def ood_quantiles(values: np.ndarray) -> list[float]:
    """The 101 quantiles (0%, 1%, ..., 100%) of OOD values on held-out faces, rounded."""
    q = np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0, 1, 101))
    return [round(float(v), 5) for v in q]


#: Weight tensors smaller than this stay float32 under ``weights="fp16"`` (biases, BN).
FP16_MIN_ELEMENTS = 1024


def store_weights_fp16(model: Any, *, prefix: str = "net.", min_elements: int = FP16_MIN_ELEMENTS) -> int:
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
    del m.metadata_props[:]
    for k, v in meta.to_props().items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "emoar"
    onnx.checker.check_model(m)
    onnx.save(m, str(outp))
    logger.info("Exported %s (%.1f KB)", outp, outp.stat().st_size / 1024)
    return outp


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
