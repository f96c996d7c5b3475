"""Expression classifier on onnxruntime.

The model file is self-describing: labels, input size, normalisation and OOD calibration are
read from its ONNX ``metadata_props`` (written by ``emoar export``), and preprocessing is the
same :func:`emoar.preprocess.preprocess` that training used.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from emoar.modelmeta import ModelMeta, ModelMetadataError
from emoar.preprocess import preprocess, resolve_tta, tta_views

__all__ = [
    "ClassifierOptions",
    "ClassifierOutput",
    "ExpressionClassifier",
    "ModelInfo",
    "ModelMetadataError",
    "TtaMode",
    "apply_temperature",
    "read_model_info",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself: its path, the stored pairs and their typed form; the
    other attributes read from :attr:`meta`.

    Attributes:
        path: the .onnx file.
        metadata: every ``metadata_props`` entry, as stored.
        meta: the same, typed (:class:`emoar.modelmeta.ModelMeta`).
    """

    path: Path
    metadata: dict[str, str]
    meta: ModelMeta

    @property
    def name(self) -> str:
        """Model name."""
        return self.meta.name

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.meta.labels

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the input crop in pixels."""
        return self.meta.input_size

    @property
    def mean(self) -> float:
        """Pixel mean in [0, 1] units."""
        return float(self.meta.mean)

    @property
    def std(self) -> float:
        """Pixel std in [0, 1] units."""
        return float(self.meta.std)

    @property
    def ood_quantiles(self) -> tuple[float, ...]:
        """101 quantiles of the OOD output on held-out real faces (or empty)."""
        return self.meta.ood_quantiles

    @property
    def ood_output(self) -> str:
        """The graph output the quantiles describe (``ood``; ``rmd`` in older files)."""
        return self.meta.ood_output

    @property
    def ood_threshold(self) -> float:
        """Score in [0, 1] above which a face is ``uncertain``."""
        return float(self.meta.ood_threshold)

    @property
    def temperature(self) -> float:
        """Calibration temperature applied to the probabilities (1.0: none)."""
        return float(self.meta.temperature)

    @property
    def builtin_tta(self) -> str:
        """Test-time augmentation the graph does itself (``none`` or ``flip``)."""
        return self.meta.builtin_tta

    @property
    def metrics(self) -> dict[str, Any]:
        """Measured metrics stored at export time."""
        return dict(self.meta.metrics)


def apply_temperature(probs: npt.NDArray[np.floating[Any]], temperature: float) -> npt.NDArray[np.float32]:
    """``softmax(log(probs) / T)`` row-wise: temperature scaling of a model whose graph ends in a
    softmax (the same as dividing its logits by T). The top class of every row is unchanged.

    >>> apply_temperature(np.array([[0.8, 0.2]]), 1.0).round(3).tolist()
    [[0.8, 0.2]]
    >>> apply_temperature(np.array([[0.8, 0.2]]), 2.0).round(3).tolist()
    [[0.667, 0.333]]
    """
    z = np.log(np.clip(np.asarray(probs, np.float64), 1e-12, None)) / float(temperature)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _parse_info(path: Path, props: dict[str, str]) -> ModelInfo:
    meta = ModelMeta.from_props(props, source=str(path), default_name=path.stem)
    return ModelInfo(path, dict(props), meta)


def _format_hint(p: Path) -> str:
    """What to do next when ``p`` is not ONNX but a file emoar knows (by its magic bytes)."""
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError:
        return ""
    if head[4:8] == b"TFL3":
        return (
            "; it is a TF Lite model, which runs on LiteRT (Android/iOS): the emoar runtime needs "
            "the .onnx export ('emoar export --format onnx')"
        )
    if head[:2] == b"PK":
        return "; it looks like a PyTorch checkpoint: export it first ('emoar export --checkpoint FILE')"
    return ""


def _open_session(p: Path, num_threads: int, *, optimize: bool = True) -> Any:
    """An onnxruntime CPU session for ``p`` (the runtime's only ONNX reader: ``onnx`` itself is
    a training extra).

    Raises:
        ModelMetadataError: missing file, or not a loadable ONNX model.
    """
    import onnxruntime as ort

    if not p.is_file():
        raise ModelMetadataError(f"Model file not found: {p}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(num_threads))
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises several types
        raise ModelMetadataError(f"{p}: not a loadable ONNX model ({e}){_format_hint(p)}") from e


def read_model_info(path: str | os.PathLike[str]) -> ModelInfo:
    """Read a model's metadata (with onnxruntime, unoptimised: no inference set-up).

    Raises:
        ModelMetadataError: missing/unreadable file or missing metadata.
    """
    p = Path(path)
    session = _open_session(p, 1, optimize=False)
    info = _parse_info(p, dict(session.get_modelmeta().custom_metadata_map))
    _check_outputs(p, info, [o.name for o in session.get_outputs()])
    return info


def _check_outputs(p: Path, info: ModelInfo, outs: list[str]) -> None:
    if "probs" not in outs:
        raise ModelMetadataError(f"{p}: model has no 'probs' output (outputs: {outs})")
    if info.ood_quantiles and info.ood_output not in outs:
        raise ModelMetadataError(
            f"{p}: metadata 'emoar.ood_output' names {info.ood_output!r}, which the model does not "
            f"output (outputs: {outs})"
        )


@dataclass(frozen=True)
class ClassifierOutput:
    """Batch output.

    Attributes:
        probs: (N, C) float32, rows sum to 1, columns in ``labels`` order.
        ood_score: (N,) float32 in [0, 1]: fraction of held-out real faces that look more
            typical than this one (0.5 = a median face, 0.99 = stranger than 99% of faces).
        uncertain: (N,) bool, ``ood_score > threshold``.
    """

    probs: npt.NDArray[np.float32]
    ood_score: npt.NDArray[np.float32]
    uncertain: npt.NDArray[np.bool_]


TtaMode = Literal["none", "flip", "crops"]


@dataclass(frozen=True)
class ClassifierOptions:
    """Options of the expression classifier stage (frozen, validated at creation).

    Attributes:
        model: shipped model name (``emoar models``), ``default``, or a path to an .onnx file.
        num_threads: CPU threads for onnxruntime (1 keeps latency stable on small CPUs).
        tta: test-time augmentation: ``none``; ``flip`` averages each face with its mirror
            image (2x classifier time); ``crops`` averages ten views (five 2-px shifted crops
            and their mirrors, 10x). ``True``/``False`` are accepted as ``flip``/``none``.
        ood_threshold: override the model's ``uncertain`` threshold (OOD score in [0, 1]);
            None keeps the model's own.
    """

    model: str = "default"
    num_threads: int = 1
    tta: TtaMode = "none"
    ood_threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tta", resolve_tta(self.tta))
        if not str(self.model).strip():
            raise ValueError("model must be a shipped model name, 'default' or a path to an .onnx file")
        if (
            isinstance(self.num_threads, bool)
            or int(self.num_threads) != self.num_threads
            or self.num_threads < 1
        ):
            raise ValueError(f"num_threads must be an integer >= 1, got {self.num_threads!r}")
        if self.ood_threshold is not None and not 0.0 <= float(self.ood_threshold) <= 1.0:
            raise ValueError(f"ood_threshold must be in [0, 1], got {self.ood_threshold}")


class ExpressionClassifier:
    """ONNX expression classifier for aligned grayscale face crops.

    Example:
        >>> clf = ExpressionClassifier("model.onnx")        # doctest: +SKIP
        >>> out = clf.classify(crops)                        # (N, 48, 48) uint8
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_threads: int = 1,
        ood_threshold: float | None = None,
        tta: bool | str = False,
    ) -> None:
        """Load the model.

        Args:
            path: .onnx file exported by ``emoar export``.
            num_threads: onnxruntime intra-op threads (1 keeps latency stable on small CPUs).
            ood_threshold: override the threshold stored in the model.
            tta: test-time augmentation (:func:`emoar.preprocess.tta_views`): ``True`` or
                ``"flip"`` averages the probabilities of each crop and its mirror image (one
                batched call; about twice the classifier time); ``"crops"`` averages ten views
                (five shifted crops and their mirrors, 10x). The OOD score is the plain crop's,
                as calibrated. A model with flip built into its graph (``emoar export --flip``,
                :attr:`ModelInfo.builtin_tta`) mirrors by itself: ``flip`` then adds nothing and
                ``crops`` runs the five shifted crops only.

        Raises:
            ModelMetadataError: missing file, not ONNX, or missing metadata.
        """
        p = Path(path)
        self._session = _open_session(p, num_threads)
        meta = self._session.get_modelmeta().custom_metadata_map
        self.info = _parse_info(p, dict(meta))
        if ood_threshold is not None:
            if not 0.0 <= ood_threshold <= 1.0:
                raise ValueError(f"ood_threshold must be in [0, 1], got {ood_threshold}")
            tuned = self.info.meta.replace(ood_threshold=float(ood_threshold))
            self.info = dataclasses.replace(self.info, meta=tuned)
        outs = [o.name for o in self._session.get_outputs()]
        _check_outputs(p, self.info, outs)
        # _check_outputs made sure the OOD output exists whenever there are quantiles to score it
        self._outputs = ["probs"] + ([self.info.ood_output] if self.info.ood_quantiles else [])
        self._input = self._session.get_inputs()[0].name
        self.tta_mode = resolve_tta(tta)
        self._quant = np.asarray(self.info.ood_quantiles, dtype=np.float64)

    @property
    def tta(self) -> bool:
        """Whether test-time augmentation is on (:attr:`tta_mode` is not ``"none"``)."""
        return self.tta_mode != "none"

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order."""
        return self.info.labels

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) in pixels of the crops :meth:`classify` expects."""
        return self.info.input_size

    def ood_score(self, values: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
        """Map the model's OOD output (see :attr:`ModelInfo.ood_output`) to [0, 1] via the
        stored quantiles: the share of held-out real faces with a smaller value."""
        q = self._quant
        levels = np.linspace(0.0, 1.0, len(q))
        # np.interp needs increasing x; quantiles may repeat, which interp tolerates.
        return np.interp(values, q, levels, left=0.0, right=1.0).astype(np.float32)

    def classify(self, crops: npt.NDArray[np.uint8]) -> ClassifierOutput:
        """Classify (N, H, W) uint8 grayscale crops at :attr:`input_size`.

        Raises:
            ValueError: wrong crop shape.
        """
        x = np.asarray(crops)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or tuple(x.shape[1:]) != self.input_size:
            raise ValueError(
                f"crops must be (N, {self.input_size[0]}, {self.input_size[1]}) uint8, got {x.shape}"
            )
        n = x.shape[0]
        c = len(self.labels)
        if n == 0:
            return ClassifierOutput(np.zeros((0, c), np.float32), np.zeros(0, np.float32), np.zeros(0, bool))
        views = tta_views(x, self.tta_mode, builtin=self.info.builtin_tta)
        if len(views) > 1:
            x = np.concatenate(views)
        res = self._session.run(self._outputs, {self._input: preprocess(x, self.info.mean, self.info.std)})
        probs = np.asarray(res[0], dtype=np.float32)
        if self.info.temperature != 1.0:  # each view calibrated, as the temperature was fitted
            probs = apply_temperature(probs, self.info.temperature)
        if len(views) > 1:
            probs = probs.reshape(len(views), n, c).mean(0).astype(np.float32)
            res = [probs] + [np.asarray(r)[:n] for r in res[1:]]
        probs /= probs.sum(1, keepdims=True)
        if len(res) > 1:
            score = self.ood_score(np.asarray(res[1]))
        else:
            score = np.zeros(n, np.float32)
        return ClassifierOutput(probs, score, score > self.info.ood_threshold)
