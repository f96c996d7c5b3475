"""Fitting the out-of-distribution head: relative Mahalanobis statistics and the face / non-face
discriminator, and the quantiles that turn its output into a score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["DEFAULT_OOD_THRESHOLD", "NonFaceHead", "OodStats", "fit_nonface", "fit_ood", "ood_quantiles"]

logger = logging.getLogger(__name__)


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


def ood_quantiles(values: np.ndarray) -> list[float]:
    """The 101 quantiles (0%, 1%, ..., 100%) of OOD values on held-out faces, rounded."""
    q = np.quantile(np.asarray(values, dtype=np.float64), np.linspace(0, 1, 101))
    return [round(float(v), 5) for v in q]
