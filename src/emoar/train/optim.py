"""Optimiser and learning-rate schedule factories (as timm keeps ``optim_factory`` and
``scheduler_factory`` apart from its training loop)."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["OPTIMIZERS", "SCHEDULES", "create_optimizer", "create_scheduler"]

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("onecycle", "cosine", "step", "plateau", "budget")


def create_optimizer(
    model: torch.nn.Module, name: str, *, lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.9, over all of ``model``'s parameters.

    Raises:
        ValueError: unknown ``name`` (the message lists :data:`OPTIMIZERS`).
    """
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
    raise ValueError(f"Unknown optimizer {name!r}; choose adamw or sgd")


def create_scheduler(
    opt: torch.optim.Optimizer, name: str, *, lr: float, epochs: int, steps_per_epoch: int
) -> Any:
    """The learning-rate schedule, stepped once per batch (``plateau``: once per epoch, on the
    validation accuracy).

    * ``onecycle``: OneCycle to ``lr`` with 15% warm-up;
    * ``cosine``: one epoch of linear warm-up, then cosine decay to 0 over the run;
    * ``step``: x0.1 every third of the run;
    * ``plateau``: x0.5 after 2 epochs without a gain;
    * ``budget``: a constant factor here; the training loop sets each step's rate from the
      share of its wall-clock budget spent (:func:`emoar.train.loop.budget_factor`).

    Raises:
        ValueError: unknown ``name`` (the message lists :data:`SCHEDULES`).
    """
    total = steps_per_epoch * epochs
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    if name == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / steps_per_epoch) * 0.5 * (1 + math.cos(math.pi * s / total))
        )
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(
            opt, step_size=max(1, epochs // 3) * steps_per_epoch, gamma=0.1
        )
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=2)
    if name == "budget":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    raise ValueError(f"Unknown schedule {name!r}; choose onecycle, cosine, step, plateau or budget")
