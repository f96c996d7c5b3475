"""Classification metrics in plain numpy (used by ``emoar evaluate`` and the benchmarks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["classification_report", "confusion_matrix", "expected_calibration_error", "reliability_bins"]


def confusion_matrix(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int) -> npt.NDArray[np.int64]:
    """(C, C) counts; rows = true class, columns = predicted class."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def classification_report(
    y_true: npt.ArrayLike, probs: npt.NDArray[np.floating[Any]], labels: tuple[str, ...] | list[str]
) -> dict[str, Any]:
    """The ``emoar evaluate --json`` object of docs/contracts.md.

    Args:
        y_true: (N,) true class indices.
        probs: (N, C) predicted probabilities.
        labels: class names (length C).
    """
    t = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(probs).argmax(1) if len(t) else np.zeros(0, np.int64)
    c = len(labels)
    cm = confusion_matrix(t, pred, c)
    tp = np.diag(cm).astype(np.float64)
    prec = np.divide(tp, cm.sum(0), out=np.zeros(c), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros(c), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(c), where=(prec + rec) > 0)
    present = cm.sum(1) > 0
    return {
        "n": int(len(t)),
        "accuracy": float((pred == t).mean()) if len(t) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_precision": float(prec[present].mean()) if present.any() else 0.0,
        "macro_recall": float(rec[present].mean()) if present.any() else 0.0,
        "ece": expected_calibration_error(t, probs) if len(t) else 0.0,
        "per_class": {
            name: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "n": int(cm[i].sum()),
            }
            for i, name in enumerate(labels)
        },
        "confusion": cm.tolist(),
        "labels": list(labels),
    }


def reliability_bins(
    y_true: npt.ArrayLike, probs: npt.NDArray[np.floating[Any]], n_bins: int = 15
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per confidence bin: mean confidence, accuracy and count (for reliability plots)."""
    t = np.asarray(y_true)
    p = np.asarray(probs)
    conf = p.max(1)
    correct = (p.argmax(1) == t).astype(np.float64)
    edges = np.linspace(0, 1, n_bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    cnt = np.bincount(idx, minlength=n_bins)
    mc = np.bincount(idx, conf, n_bins) / np.maximum(cnt, 1)
    acc = np.bincount(idx, correct, n_bins) / np.maximum(cnt, 1)
    return mc, acc, cnt


def expected_calibration_error(
    y_true: npt.ArrayLike, probs: npt.NDArray[np.floating[Any]], n_bins: int = 15
) -> float:
    """ECE: count-weighted mean |accuracy - confidence| over confidence bins."""
    mc, acc, cnt = reliability_bins(y_true, probs, n_bins)
    return float((np.abs(acc - mc) * cnt).sum() / max(cnt.sum(), 1))
