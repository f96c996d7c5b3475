"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017) of a
shipped ONNX model: one scalar T fitted on a held-out split by minimising the negative
log-likelihood, stored in the model's metadata (``emoar.temperature``) and applied by the runtime
(:func:`emoar.classify.apply_temperature`, and the browser page). The top class of every face is
unchanged, so accuracy and macro-F1 stay as they were; confidences come to match accuracy
(ECE down). Fit on PublicTest, report on PrivateTest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from emoar.classify import apply_temperature
from emoar.metrics import expected_calibration_error

__all__ = ["CalibrationResult", "calibrate_model", "fit_temperature", "nll"]

logger = logging.getLogger(__name__)

#: The search range of T (log-spaced golden-section search).
T_RANGE = (0.1, 10.0)


def nll(probs: npt.NDArray[np.floating[Any]], y: npt.NDArray[np.integer[Any]]) -> float:
    """Mean negative log-likelihood of the true classes ``y`` under ``probs`` (N, C)."""
    p = np.clip(np.asarray(probs, np.float64)[np.arange(len(y)), np.asarray(y)], 1e-12, None)
    return float(-np.log(p).mean())


def fit_temperature(
    probs: npt.NDArray[np.floating[Any]], y: npt.NDArray[np.integer[Any]], *, iters: int = 60
) -> float:
    """The T in :data:`T_RANGE` minimising ``nll(apply_temperature(probs, T), y)``.

    The NLL of temperature scaling is convex in 1/T, so a golden-section search over log T finds
    its minimum.

    Raises:
        ValueError: no rows, or ``y`` not matching ``probs``.
    """
    probs = np.asarray(probs)
    y = np.asarray(y)
    if probs.ndim != 2 or len(probs) == 0 or len(y) != len(probs):
        raise ValueError(f"need (N, C) probabilities and N labels, got {probs.shape} and {y.shape}")
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    g = (np.sqrt(5) - 1) / 2

    def f(logt: float) -> float:
        return nll(apply_temperature(probs, float(np.exp(logt))), y)

    a, b = lo + (1 - g) * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - g) * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return float(np.exp((lo + hi) / 2))


@dataclass(frozen=True)
class CalibrationResult:
    """What :func:`calibrate_model` fitted and measured.

    Attributes:
        model: the model calibrated (name or path).
        out: the file written (None when nothing was written).
        split: the split T was fitted on.
        n: faces in that split.
        temperature: the temperature stored (the old one times the fitted factor).
        previous_temperature: the temperature the file had.
        ece_before, ece_after: expected calibration error on ``split`` (15 bins).
        nll_before, nll_after: negative log-likelihood on ``split``.
        accuracy: accuracy on ``split`` (the same before and after).
        report: ECE/NLL before and after on ``report_split`` (``{}`` when not asked).
    """

    model: str
    out: str | None
    split: str
    n: int
    temperature: float
    previous_temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    accuracy: float
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``emoar calibrate --json``)."""
        return dict(self.__dict__)


def _write_temperature(src: Path, dest: Path, temperature: float) -> None:
    import onnx

    from emoar.modelmeta import ModelMeta

    m = onnx.load(str(src))
    ModelMeta.from_onnx(m, source=str(src)).replace(temperature=float(temperature)).to_onnx(m)
    tmp = dest.with_name(dest.name + ".tmp")
    onnx.save(m, str(tmp))
    tmp.replace(dest)  # never a half-written model file


def calibrate_model(
    model: str | None,
    data: str,
    *,
    split: str = "PublicTest",
    report_split: str | None = "PrivateTest",
    out: str | None = None,
    task: str | None = None,
    num_threads: int = 0,
    limit: int = 0,
) -> CalibrationResult:
    """Fit the temperature of an ONNX ``model`` on ``split`` of ``data`` and write it to ``out``.

    Args:
        model: a registered name, an .onnx path, or None (the default model).
        data: FER2013 CSV (or another layout ``emoar evaluate`` reads).
        split: the split to fit on (PublicTest: tune there, report PrivateTest).
        report_split: a second split to measure ECE before/after on (not used for fitting).
        out: the .onnx file to write (the same file for in place); None writes nothing.
        task: ``fer2013`` or ``ferplus`` (by default from the model's labels).
        num_threads: onnxruntime threads (0: one).
        limit: fit on the first N faces only (quick checks).

    Raises:
        ValueError: an unknown split, a .pt checkpoint (export it first), or labels that do not match.
    """
    from emoar.classify import read_model_info
    from emoar.models import resolve_model
    from emoar.train.data import load_dataset
    from emoar.train.evaluate import labels_in_model_order, predict_probs, task_for_labels

    if model and str(model).endswith((".pt", ".pth")):
        raise ValueError(f"{model} is a checkpoint; export it first (emoar export --checkpoint {model})")
    path = Path(resolve_model(model))
    info = read_model_info(path)
    task = task or task_for_labels(info.labels)
    splits = load_dataset(data, task)
    for s in (split, report_split):
        if s is not None and s not in splits:
            raise ValueError(f"Split {s!r} not in {data}; available: {', '.join(splits)}")

    def measure(name: str) -> tuple[np.ndarray, np.ndarray]:
        ds = splits[name]
        if limit:
            ds = ds.subset(np.arange(min(limit, len(ds))))
        probs, labels, _ = predict_probs(str(path), ds.images, num_threads=num_threads)
        return probs, labels_in_model_order(ds, labels)

    probs, y = measure(split)
    factor = fit_temperature(probs, y)
    after = apply_temperature(probs, factor)
    previous = info.temperature
    temperature = float(np.clip(previous * factor, 0.05, 20.0))
    report: dict[str, Any] = {}
    if report_split and report_split != split:
        rp, ry = measure(report_split)
        ra = apply_temperature(rp, factor)
        report = {
            "split": report_split,
            "n": len(ry),
            "accuracy": float((rp.argmax(1) == ry).mean()),
            "ece_before": expected_calibration_error(ry, rp),
            "ece_after": expected_calibration_error(ry, ra),
            "nll_before": nll(rp, ry),
            "nll_after": nll(ra, ry),
        }
    if out:
        _write_temperature(path, Path(out), temperature)
        logger.info("wrote %s with temperature %.3f", out, temperature)
    return CalibrationResult(
        model=str(model or "default"),
        out=str(out) if out else None,
        split=split,
        n=len(y),
        temperature=temperature,
        previous_temperature=previous,
        ece_before=expected_calibration_error(y, probs),
        ece_after=expected_calibration_error(y, after),
        nll_before=nll(probs, y),
        nll_after=nll(after, y),
        accuracy=float((probs.argmax(1) == y).mean()),
        report=report,
    )
