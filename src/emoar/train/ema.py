"""Exponential moving average of model weights (evaluated and exported instead of the raw weights)."""

from __future__ import annotations

import copy
import logging

import torch

from emoar.train.nets import FerNet

__all__ = ["ModelEma"]

logger = logging.getLogger(__name__)


class ModelEma:
    def __init__(self, model: FerNet, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: FerNet) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))  # warm-up as in timm
        msd = model.state_dict()
        ema_f, src_f = [], []
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                ema_f.append(v)
                src_f.append(msd[k].detach())
            else:
                v.copy_(msd[k])
        # one fused kernel per dtype group instead of two per tensor (timm's ModelEmaV3 does the same)
        torch._foreach_lerp_(ema_f, src_f, 1.0 - d)
