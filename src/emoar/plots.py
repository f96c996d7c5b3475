"""Matplotlib figures (Agg backend, imported lazily): confusion matrix, reliability diagram,
training curves and expressions over time for videos."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["plot_confusion", "plot_reliability", "plot_training_curves", "plot_tracks", "EXPRESSION_COLORS"]

#: One colour per expression (matplotlib hex), shared by plots and overlays' bars.
EXPRESSION_COLORS = {
    "angry": "#d62728",
    "disgust": "#2ca02c",
    "fear": "#9467bd",
    "happy": "#ffbf00",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#7f7f7f",
    "contempt": "#8c564b",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: npt.ArrayLike, labels: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with counts; rows = true class."""
    plt = _plt()
    m = np.asarray(cm, dtype=np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n{int(m[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "Confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p


def plot_reliability(
    conf: npt.ArrayLike, acc: npt.ArrayLike, counts: npt.ArrayLike, path: str | Path, ece: float
) -> Path:
    """Reliability (calibration) diagram from per-bin mean confidence and accuracy."""
    plt = _plt()
    c, a, n = (np.asarray(v) for v in (conf, acc, counts))
    keep = n > 0
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(c[keep], a[keep], "o-", label=f"model (ECE {ece:.3f})")
    ax.set_xlabel("confidence (max probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    ax.set_title("Reliability diagram")
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p


def plot_training_curves(history: Sequence[dict[str, float]], path: str | Path) -> Path:
    """Loss and accuracy per epoch from a checkpoint's history."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    a1.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a1.set_xlabel("epoch")
    a1.legend()
    a2.plot(ep, [h["train_acc"] for h in history], label="train acc (augmented)")
    a2.plot(ep, [h["val_acc"] for h in history], label="PublicTest acc")
    a2.set_xlabel("epoch")
    a2.legend()
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p


def plot_tracks(
    tracks: dict[int, list[tuple[float, list[float]]]],
    labels: Sequence[str],
    path: str | Path,
    max_tracks: int = 8,
) -> Path:
    """Stacked areas of expression probabilities over time, one panel per track.

    Args:
        tracks: track id -> [(time in seconds, probabilities in ``labels`` order), ...].
        labels: class names.
        path: output PNG.
        max_tracks: plot at most this many tracks (the longest ones).
    """
    plt = _plt()
    ids = sorted(tracks, key=lambda k: -len(tracks[k]))[:max_tracks]
    fig, axes = plt.subplots(
        max(1, len(ids)), 1, figsize=(10, 2.2 * max(1, len(ids))), dpi=110, squeeze=False
    )
    for ax, tid in zip(axes[:, 0], ids, strict=False):
        t = np.array([x[0] for x in tracks[tid]])
        probs = np.array([x[1] for x in tracks[tid]])
        ax.stackplot(
            t, probs.T, labels=list(labels), colors=[EXPRESSION_COLORS.get(n, "#333333") for n in labels]
        )
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"track {tid}")
    if not ids:
        axes[0, 0].text(0.5, 0.5, "no faces tracked", ha="center", va="center")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[0, 0].set_title("Expressions over time, per track")
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p
