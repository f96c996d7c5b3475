"""Prediction with a trained network: logits and features of uint8 faces through
:func:`emoar.preprocess.preprocess`, with test-time augmentation.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from emoar.preprocess import preprocess, tta_views
from emoar.train.nets import FerNet

__all__ = ["offline_teacher_probs", "onnx_teacher_probs", "predict_logits"]

logger = logging.getLogger(__name__)


def offline_teacher_probs(
    teacher: FerNet, tmeta: dict[str, Any], images: np.ndarray, temperature: float
) -> np.ndarray:
    """The teacher's flip-averaged, temperature-softened probabilities (N, C) on ``images``."""
    lg = np.asarray(predict_logits(teacher, images, tmeta["mean"], tmeta["std"], tta=True))
    return torch.softmax(torch.from_numpy(lg) / max(temperature, 1e-3), 1).numpy().astype(np.float32)


def onnx_teacher_probs(
    model: str, images: np.ndarray, temperature: float, *, num_threads: int = 1, batch_size: int = 256
) -> np.ndarray:
    """:func:`offline_teacher_probs` of an exported model (a shipped name or an .onnx file, an
    ensemble graph included), run by :class:`emoar.classify.ExpressionClassifier`.

    int8 files run several times faster than the PyTorch checkpoint on a CPU. The classifier's
    probabilities are the graph's softmax calibrated with the file's temperature ``T_f``, so their
    logs are the network's logits divided by ``T_f``, up to a per-face constant: the
    flip-averaged log-probabilities softened by ``temperature / T_f`` equal what the checkpoint
    gives (exactly for a single network; for an ensemble graph, the log of its averaged
    probabilities plays the logits' part).

    Raises:
        emoar.models.UnknownModelError: neither a shipped name nor an existing file.
        emoar.classify.ModelMetadataError: not an emoar ONNX file.
    """
    from emoar.classify import ExpressionClassifier, apply_temperature
    from emoar.models import resolve_model

    clf = ExpressionClassifier(resolve_model(model), num_threads=num_threads)
    logp = np.zeros((len(images), len(clf.labels)), np.float64)
    for i in range(0, len(images), batch_size):
        views = tta_views(images[i : i + batch_size], True)
        for v in views:
            logp[i : i + len(v)] += np.log(np.maximum(clf.classify(v).probs, 1e-12)) / len(views)
    return apply_temperature(np.exp(logp), max(temperature, 1e-3) / clf.info.temperature)


def _to_input(images_u8: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(preprocess(images_u8, mean, std)))


@torch.no_grad()
def predict_logits(
    model: FerNet,
    images: np.ndarray,
    mean: float,
    std: float,
    *,
    tta: bool | str = False,
    batch_size: int = 512,
    device: torch.device | None = None,
    features: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Logits (N, C) for uint8 (N, H, W) images, averaged over the test-time augmentation views
    of :func:`emoar.preprocess.tta_views` (``True``/``"flip"``: the mirror image; ``"crops"``:
    ten views).

    With ``features=True`` also returns the penultimate features (N, D), averaged likewise.
    """
    model.eval()
    dev = device or next(model.parameters()).device
    outs, feats = [], []
    for i in range(0, len(images), batch_size):
        views = [
            model.forward_features(_to_input(v, mean, std).to(dev))
            for v in tta_views(images[i : i + batch_size], tta)
        ]
        logits = torch.stack([model.head(fv) for fv in views]).mean(0)
        f = torch.stack(views).mean(0)
        outs.append(logits.float().cpu().numpy())
        feats.append(f.float().cpu().numpy())
    lg = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
    if features:
        return lg, np.concatenate(feats)
    return lg
