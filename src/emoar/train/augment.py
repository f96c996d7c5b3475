"""Batch augmentations on tensors (N, 1, H, W) in [0, 1], on the batch's device (the
generator must live there too); cheap enough for 2 cores.

Geometric: flip, random affine (rotation/scale/shift, one ``grid_sample`` per batch), random
crop. Photometric: brightness/contrast/gamma. Occlusion: cutout. Mixing: mixup, cutmix, fmix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "augment_batch", "mix_batch"]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths (0 disables a transform)."""

    flip: float = 0.5
    rotate_deg: float = 12.0
    scale: float = 0.12
    shift: float = 0.08
    affine_p: float = 0.8
    brightness: float = 0.25
    contrast: float = 0.3
    cutout_p: float = 0.4
    cutout_frac: float = 0.35
    mix: str = "none"  # none | mixup | cutmix | fmix
    mix_alpha: float = 1.0
    mix_p: float = 0.5


def augment_batch(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Apply per-sample random geometric + photometric + cutout augmentation."""
    n, _, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=gen, device=dev)

    if cfg.flip > 0:
        m = rand(n) < cfg.flip
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    if cfg.affine_p > 0:
        ang = (rand(n) * 2 - 1) * math.radians(cfg.rotate_deg)
        sc = 1 + (rand(n) * 2 - 1) * cfg.scale
        tx = (rand(n) * 2 - 1) * cfg.shift * 2
        ty = (rand(n) * 2 - 1) * cfg.shift * 2
        on = (rand(n) < cfg.affine_p).float()
        ang, sc, tx, ty = ang * on, 1 + (sc - 1) * on, tx * on, ty * on
        cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if cfg.brightness > 0 or cfg.contrast > 0:
        b = (rand(n, 1, 1, 1) * 2 - 1) * cfg.brightness
        c = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.contrast
        mean = x.mean((2, 3), keepdim=True)
        x = ((x - mean) * c + mean + b).clamp(0, 1)
    if cfg.cutout_p > 0:
        ch = (cfg.cutout_frac * h * rand(n)).long().clamp(min=1)
        cw = (cfg.cutout_frac * w * rand(n)).long().clamp(min=1)
        cy = (rand(n) * h).long()
        cx = (rand(n) * w).long()
        yy = torch.arange(h, device=dev)[None, :, None]
        xx = torch.arange(w, device=dev)[None, None, :]
        box = ((yy - cy[:, None, None]).abs() <= ch[:, None, None] // 2) & (
            (xx - cx[:, None, None]).abs() <= cw[:, None, None] // 2
        )
        on = (rand(n) < cfg.cutout_p)[:, None, None]
        x = x.masked_fill((box & on)[:, None], 0.5)
    return x


def _fmix_mask(h: int, w: int, lam: float, gen: torch.Generator, decay: float = 3.0) -> torch.Tensor:
    """FMix (Harris et al. 2020): threshold a low-frequency random field at quantile ``lam``."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    freq = torch.sqrt(fy**2 + fx**2).clamp(min=1.0 / max(h, w))
    spec = torch.randn(h, w // 2 + 1, 2, generator=gen)
    spec = torch.complex(spec[..., 0], spec[..., 1]) / freq**decay
    field = torch.fft.irfft2(spec, s=(h, w))
    thr = torch.quantile(field.flatten(), 1 - lam)
    return (field > thr).float()


def mix_batch(
    x: torch.Tensor, y: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with a shuffled copy of itself; ``y`` are target distributions (N, C)."""
    if cfg.mix == "none" or torch.rand(1, generator=gen).item() > cfg.mix_p:
        return x, y
    lam = float(torch.distributions.Beta(cfg.mix_alpha, cfg.mix_alpha).sample().item())
    # the draws come from the (CPU) generator; the batch and targets may live on a GPU
    perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
    yperm = perm.to(y.device)
    h, w = x.shape[2:]
    if cfg.mix == "mixup":
        return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[yperm]
    if cfg.mix == "cutmix":
        rh, rw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy = int(torch.randint(h, (1,), generator=gen))
        cx = int(torch.randint(w, (1,), generator=gen))
        y1, y2 = max(cy - rh // 2, 0), min(cy + rh // 2, h)
        x1, x2 = max(cx - rw // 2, 0), min(cx + rw // 2, w)
        mask = torch.ones(h, w)
        mask[y1:y2, x1:x2] = 0
    elif cfg.mix == "fmix":
        mask = _fmix_mask(h, w, lam, gen)
    else:
        raise ValueError(f"Unknown mix {cfg.mix!r}; choose none, mixup, cutmix or fmix")
    lam_eff = float(mask.mean())
    mask = mask.to(x.device)
    return x * mask + x[perm] * (1 - mask), lam_eff * y + (1 - lam_eff) * y[yperm]
