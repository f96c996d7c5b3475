"""A checkpoint made deployable: the network with its OOD head as one module, plus the model-file
metadata (:class:`Deployable`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from emoar.modelmeta import FORMAT_VERSION, ModelMeta
from emoar.preprocess import renormalization
from emoar.train.checkpoint import load_checkpoint
from emoar.train.nets import FerNet
from emoar.train.ood import DEFAULT_OOD_THRESHOLD, NonFaceHead, OodStats, fit_nonface, fit_ood, ood_quantiles
from emoar.train.predict import predict_logits

__all__ = ["OUTPUT_NAMES", "Deployable", "prepare_export"]

logger = logging.getLogger(__name__)

OUTPUT_NAMES = ("probs", "rmd", "ood", "features")


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


class _Ensemble(nn.Module):
    """Several networks as one graph: their probabilities averaged. ``rmd``, ``ood`` and
    ``features`` are the first member's (its OOD statistics were fitted on those features).

    Each later member sees the input re-normalised from the first member's pixel statistics
    to its own (``x * scale + shift``)."""

    def __init__(self, first: nn.Module, others: list[FerNet], renorm: list[tuple[float, float]]) -> None:
        super().__init__()
        self.first = first
        self.others = nn.ModuleList(others)
        self.renorm = [(float(a), float(b)) for a, b in renorm]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        probs, rmd, ood, f = self.first(x)
        total = probs
        for net, (a, b) in zip(self.others, self.renorm, strict=True):
            xi = x if (a, b) == (1.0, 0.0) else x * a + b
            total = total + torch.softmax(net(xi), dim=1)
        return total / (1 + len(self.others)), rmd, ood, f


class _FlipAveraged(nn.Module):
    """Flip test-time augmentation inside the graph: ``probs`` averages each face and its mirror
    image (one batch of 2N through ``inner``); ``rmd``, ``ood`` and ``features`` are the face's
    own, as the OOD head was calibrated on unmirrored faces."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        probs, rmd, ood, f = self.inner(torch.cat([x, torch.flip(x, dims=[3])], dim=0))
        return (probs[:n] + probs[n:]) * 0.5, rmd[:n], ood[:n], f[:n]


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


def checkpoint_metrics(meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint records of its selection: PublicTest accuracy and the epoch."""
    return {"publictest_accuracy": meta.get("val_acc"), "epochs": meta.get("epoch")}


def prepare_export(
    checkpoint: str | os.PathLike[str] | list[str],
    *,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    calib_images: np.ndarray,
    metrics: dict[str, Any] | None = None,
    name: str | None = None,
    ood_threshold: float = DEFAULT_OOD_THRESHOLD,
    negatives: dict[str, np.ndarray] | None = None,
    extra_faces: np.ndarray | None = None,
    flip: bool = False,
) -> Deployable:
    """Load ``checkpoint``, fit the OOD statistics and build the deployable module + metadata.

    Args:
        checkpoint: a ``best.pt``/``last.pt`` written by ``emoar train``; a list of several
            (same labels and input size) makes an ensemble: one graph averaging their
            probabilities, with the OOD head fitted on the first one's features.
        train_images: (N, H, W) uint8 training faces to fit the OOD Gaussians on.
        train_labels: (N,) their labels.
        calib_images: (M, H, W) uint8 held-out real faces (PublicTest) that calibrate the
            distance -> score mapping (never the test split).
        metrics: measured metrics of the (first) checkpoint to store (default: its PublicTest
            accuracy and epoch); an ensemble stores ``{"members": [...]}``, one entry per member.
        name: model name stored in the metadata (default: the checkpoint's file stem).
        ood_threshold: score above which a face is reported uncertain.
        negatives: non-face (N, H, W) uint8 patches by source (see
            :func:`emoar.train.negatives.non_face_patches`); with them the exported ``ood``
            output is the face / non-face discriminator, without them it is ``rmd``.
        extra_faces: more (N, H, W) uint8 faces for the discriminator's face side only
            (e.g. :func:`emoar.train.negatives.low_resolution_faces`).
        flip: build flip test-time augmentation into the graph (``probs`` averaged over each
            face and its mirror image, about twice the time per face; metadata
            ``builtin_tta="flip"``, so the runtime does not mirror again).

    Raises:
        ValueError: unreadable checkpoint, or ensemble members that do not fit together.
    """
    paths = [str(p) for p in checkpoint] if isinstance(checkpoint, list) else [str(checkpoint)]
    if not paths:
        raise ValueError("no checkpoint given")
    model, meta = load_checkpoint(paths[0])
    model = model.float().eval()
    labels = meta["labels"]
    others: list[FerNet] = []
    renorm: list[tuple[float, float]] = []
    archs = [str(meta["arch"])]
    member_metrics = [metrics or checkpoint_metrics(meta)]
    for p in paths[1:]:
        m, mm = load_checkpoint(p)
        if list(mm["labels"]) != list(labels) or list(mm["input_size"]) != list(meta["input_size"]):
            raise ValueError(
                f"{p}: labels {mm['labels']} / input {mm['input_size']} differ from {paths[0]}'s "
                f"{labels} / {meta['input_size']}; an ensemble needs the same"
            )
        others.append(m.float().eval())
        renorm.append(renormalization(meta["mean"], meta["std"], mm["mean"], mm["std"]))
        archs.append(str(mm["arch"]))
        member_metrics.append(checkpoint_metrics(mm))

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
        name=name or Path(paths[0]).stem,
        labels=tuple(labels),
        input_size=(h, w),
        mean=float(meta["mean"]),
        std=float(meta["std"]),
        arch=meta["arch"] if not others else "ensemble(" + "+".join(archs) + ")",
        color="gray",
        ood_method="relative_mahalanobis+outlier_exposure" if nonface is not None else "relative_mahalanobis",
        ood_output="ood",
        ood_negatives=neg_counts,
        ood_quantiles=tuple(quantiles),
        ood_threshold=float(ood_threshold),
        builtin_tta="flip" if flip else "none",
        train_source=str(meta.get("train_source", "")),
        # an ensemble's own accuracy is not any member's: store each member's, in order
        metrics={"members": member_metrics} if others else member_metrics[0],
        format_version=FORMAT_VERSION,
    )
    deployed: nn.Module = _Deployed(model, ood, nonface).eval()
    if others:
        deployed = _Ensemble(deployed, others, renorm).eval()
    if flip:
        deployed = _FlipAveraged(deployed).eval()
    return Deployable(
        deployed,
        model_meta,
        (h, w),
        float(meta["mean"]),
        float(meta["std"]),
        ood,
        nonface,
    )
