"""``emoar evaluate``: accuracy, macro-F1, per-class table, confusion matrix, calibration.

Works on a shipped/exported ONNX model (onnxruntime, no torch) or on a training checkpoint
(``.pt``, needs the ``train`` extra).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from emoar.metrics import classification_report, reliability_bins
from emoar.preprocess import resolve_tta

__all__ = ["evaluate", "labels_in_model_order", "predict_probs", "task_for_labels"]

logger = logging.getLogger(__name__)


def predict_probs(
    model: str | None, images: np.ndarray, *, tta: bool | str = False, num_threads: int = 0
) -> tuple[np.ndarray, tuple[str, ...], dict[str, Any]]:
    """Probabilities (N, C) for (N, H, W) uint8 faces from an ONNX model or a .pt checkpoint.

    Returns:
        (probs, labels, info) where info holds the model's metadata/history.
    """
    if model and str(model).endswith((".pt", ".pth")):
        import torch

        from emoar.train.loop import model_from_checkpoint, predict_logits, read_checkpoint

        ck = read_checkpoint(model)
        meta = ck["meta"]
        net = model_from_checkpoint(ck)
        lg = np.asarray(predict_logits(net, images, meta["mean"], meta["std"], tta=tta))
        probs = torch.softmax(torch.from_numpy(lg), 1).numpy()
        return probs, tuple(meta["labels"]), {"history": ck.get("history", []), **meta}
    from emoar.classify import ExpressionClassifier
    from emoar.models import resolve_model

    clf = ExpressionClassifier(resolve_model(model), num_threads=num_threads or 1, tta=tta)
    h, w = clf.input_size
    if images.shape[1:] != (h, w):
        import cv2

        images = np.stack([cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA) for im in images])
    chunks: list[np.ndarray] = []
    for i in range(0, len(images), 512):
        chunks.append(clf.classify(images[i : i + 512]).probs)
    probs = np.concatenate(chunks) if chunks else np.zeros((0, len(clf.labels)), np.float32)
    return (
        probs,
        clf.labels,
        {"name": clf.info.name, "metrics": clf.info.metrics, "builtin_tta": clf.info.builtin_tta},
    )


def task_for_labels(labels: tuple[str, ...]) -> str:
    """The labelled task a model with ``labels`` is scored on: ``ferplus`` (FER+ majority votes)
    for an 8-class FER+ model, else ``fer2013``."""
    from emoar.labels import FERPLUS_LABELS

    return "ferplus" if tuple(labels) == FERPLUS_LABELS else "fer2013"


def labels_in_model_order(ds: Any, labels: tuple[str, ...]) -> np.ndarray:
    """``ds.labels`` (indices into ``ds.label_names``) as indices into the model's ``labels``.

    Raises:
        ValueError: a dataset class the model does not have.
    """
    try:
        remap = np.array([labels.index(n) for n in ds.label_names])
    except ValueError as e:
        raise ValueError(f"Dataset labels {ds.label_names} do not match model labels {labels}") from e
    return remap[ds.labels]


def evaluate(
    data: str,
    *,
    split: str = "PrivateTest",
    model: str | None = None,
    tta: bool | str = False,
    plots_dir: str | None = None,
    num_threads: int = 0,
    limit: int = 0,
    task: str = "fer2013",
) -> dict[str, Any]:
    """Evaluate ``model`` on ``split`` of ``data`` and optionally write plots.

    Returns:
        The docs/contracts.md ``evaluate --json`` dict (plus ``macro_precision``, ``macro_recall``,
        ``ece``, ``split``, ``model``).

    Raises:
        ValueError: unknown split, or labels that the model does not have.
    """
    from emoar.train.data import load_dataset

    tta_mode = resolve_tta(tta)  # unknown modes fail before the dataset loads
    splits = load_dataset(data, task)
    if split not in splits:
        raise ValueError(f"Split {split!r} not in {data}; available: {', '.join(splits)}")
    ds = splits[split]
    if limit:
        ds = ds.subset(np.arange(min(limit, len(ds))))
    probs, labels, info = predict_probs(model, ds.images, tta=tta_mode, num_threads=num_threads)
    y = labels_in_model_order(ds, labels)
    rep = classification_report(y, probs, labels)
    rep["split"] = split
    rep["model"] = str(model or "default")
    rep["tta"] = tta_mode != "none"
    rep["tta_mode"] = tta_mode
    rep["builtin_tta"] = info.get("builtin_tta", "none")  # what the graph does itself (export --flip)
    if plots_dir:
        from emoar.plots import plot_confusion, plot_reliability, plot_training_curves

        out = Path(plots_dir)
        out.mkdir(parents=True, exist_ok=True)
        plot_confusion(
            rep["confusion"],
            labels,
            out / "confusion.png",
            f"{split}: accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f}",
        )
        mc, acc, cnt = reliability_bins(y, probs)
        plot_reliability(mc, acc, cnt, out / "reliability.png", rep["ece"])
        if info.get("history"):
            plot_training_curves(info["history"], out / "training_curves.png")
        (out / "metrics.json").write_text(json.dumps(rep, indent=1))
        if str(model or "").endswith((".pt", ".pth")):
            try:
                from emoar.train.gradcam import save_gradcam_grid

                save_gradcam_grid(str(model), ds, out / "gradcam.png")
            except ImportError:
                pass
    return rep
