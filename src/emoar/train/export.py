"""Export a checkpoint to ONNX with everything the runtime needs inside the file.

The exported graph has one input ``input`` (N, 1, H, W) float32, already normalised by
:func:`emoar.preprocess.preprocess`, and three outputs:

* ``probs`` (N, C): softmax probabilities in the label order stored in the metadata;
* ``rmd`` (N,): relative Mahalanobis distance (Ren et al. 2021) of the penultimate features:
  ``min_k d_k(f) - d_0(f)`` where ``d_k`` uses the class means and a shared covariance and
  ``d_0`` a background Gaussian fitted on all training features;
* ``features`` (N, D): the penultimate features (for analysis / re-fitting).

``metadata_props`` carry the label order, input size, normalisation, the architecture, the
training data, measured metrics and the OOD calibration (quantiles of ``rmd`` on held-out real
faces, so the runtime can turn a distance into a score in [0, 1]) and threshold.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoar.train.loop import load_checkpoint, predict_logits
from emoar.train.nets import FerNet

__all__ = ["fit_ood", "export_onnx", "OodStats", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"
#: ``ood_score`` is the fraction of held-out real faces with a smaller distance; faces above
#: this score are reported ``uncertain`` (so about 5% of real faces are flagged by design).
DEFAULT_OOD_THRESHOLD = 0.95


class OodStats:
    """Gaussian statistics of penultimate features (fitted on training faces)."""

    def __init__(
        self, class_means: np.ndarray, precision: np.ndarray, bg_mean: np.ndarray, bg_precision: np.ndarray
    ) -> None:
        self.class_means = class_means.astype(np.float32)
        self.precision = precision.astype(np.float32)
        self.bg_mean = bg_mean.astype(np.float32)
        self.bg_precision = bg_precision.astype(np.float32)

    def rmd(self, feats: np.ndarray) -> np.ndarray:
        """Relative Mahalanobis distance for (N, D) features (numpy reference)."""
        d = feats[:, None, :] - self.class_means[None]
        md = np.einsum("ncd,de,nce->nc", d, self.precision, d)
        d0 = feats - self.bg_mean
        md0 = np.einsum("nd,de,ne->n", d0, self.bg_precision, d0)
        return (md - md0[:, None]).min(1)


def _precision(cov: np.ndarray, shrink: float = 0.05) -> np.ndarray:
    d = cov.shape[0]
    cov = (1 - shrink) * cov + shrink * np.trace(cov) / d * np.eye(d)
    return np.linalg.pinv(cov)


def fit_ood(feats: np.ndarray, labels: np.ndarray, num_classes: int) -> OodStats:
    """Fit class means + shared covariance, and the background Gaussian, on (N, D) features."""
    f = feats.astype(np.float64)
    means = np.stack([f[labels == c].mean(0) for c in range(num_classes)])
    centred = f - means[labels]
    cov = centred.T @ centred / len(f)
    bg_mean = f.mean(0)
    bg = f - bg_mean
    bg_cov = bg.T @ bg / len(f)
    return OodStats(means, _precision(cov), bg_mean, _precision(bg_cov))


class _Deployed(nn.Module):
    mu: torch.Tensor
    prec: torch.Tensor
    mu0: torch.Tensor
    prec0: torch.Tensor

    def __init__(self, net: FerNet, ood: OodStats) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mu", torch.from_numpy(ood.class_means))
        self.register_buffer("prec", torch.from_numpy(ood.precision))
        self.register_buffer("mu0", torch.from_numpy(ood.bg_mean))
        self.register_buffer("prec0", torch.from_numpy(ood.bg_precision))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.net.forward_features(x)
        probs = torch.softmax(self.net.head(f), dim=1)
        d = f.unsqueeze(1) - self.mu.unsqueeze(0)  # N,C,D
        md = ((d @ self.prec) * d).sum(-1)  # N,C
        d0 = f - self.mu0
        md0 = ((d0 @ self.prec0) * d0).sum(-1)  # N
        rmd = (md - md0.unsqueeze(1)).min(dim=1).values
        return probs, rmd, f


def export_onnx(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    calib_images: np.ndarray,
    metrics: dict[str, Any] | None = None,
    name: str | None = None,
    ood_threshold: float = DEFAULT_OOD_THRESHOLD,
    opset: int = 18,
) -> Path:
    """Export ``checkpoint`` to ``out`` (.onnx) with metadata and fitted OOD statistics.

    Args:
        checkpoint: a ``best.pt``/``last.pt`` written by ``emoar train``.
        out: output path of the .onnx file.
        train_images: (N, H, W) uint8 training faces to fit the OOD Gaussians on.
        train_labels: (N,) their labels.
        calib_images: (M, H, W) uint8 held-out real faces (PublicTest) that calibrate the
            distance -> score mapping (never the test split).
        metrics: measured metrics to store (e.g. PublicTest accuracy).
        name: model name stored in the metadata.
        ood_threshold: score above which a face is reported uncertain.
        opset: ONNX opset.
    """
    import onnx

    model, meta = load_checkpoint(checkpoint)
    model = model.float().eval()
    labels = meta["labels"]
    _, feats = predict_logits(model, train_images, meta["mean"], meta["std"], features=True)
    ood = fit_ood(np.asarray(feats), train_labels, len(labels))
    _, cfeats = predict_logits(model, calib_images, meta["mean"], meta["std"], features=True)
    calib_rmd = ood.rmd(np.asarray(cfeats))
    quantiles = np.quantile(calib_rmd, np.linspace(0, 1, 101)).astype(float).tolist()

    deployed = _Deployed(model, ood).eval()
    h, w = meta["input_size"]
    dummy = torch.zeros(2, 1, h, w)
    outp = Path(out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    tmp = outp.with_suffix(".tmp.onnx")
    batch = torch.export.Dim("batch", min=1, max=4096)
    prog = torch.onnx.export(
        deployed,
        (dummy,),
        input_names=["input"],
        output_names=["probs", "rmd", "features"],
        dynamic_shapes={"x": {0: batch}},
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    assert prog is not None
    prog.save(str(tmp), external_data=False)
    m = onnx.load(str(tmp))
    props = {
        "emoar.format_version": FORMAT_VERSION,
        "emoar.name": name or outp.stem,
        "emoar.arch": meta["arch"],
        "emoar.labels": json.dumps(labels),
        "emoar.input_size": json.dumps([h, w]),
        "emoar.color": "gray",
        "emoar.mean": repr(float(meta["mean"])),
        "emoar.std": repr(float(meta["std"])),
        "emoar.ood_method": "relative_mahalanobis",
        "emoar.ood_quantiles": json.dumps([round(q, 5) for q in quantiles]),
        "emoar.ood_threshold": repr(float(ood_threshold)),
        "emoar.train_source": str(meta.get("train_source", "")),
        "emoar.metrics": json.dumps(metrics or {"val_acc": meta.get("val_acc")}),
    }
    del m.metadata_props[:]
    for k, v in props.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    m.producer_name = "emoar"
    onnx.checker.check_model(m)
    onnx.save(m, str(outp))
    tmp.unlink(missing_ok=True)
    logger.info("Exported %s (%.1f KB)", outp, outp.stat().st_size / 1024)
    return outp
