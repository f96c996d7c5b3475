"""Reading training checkpoints: the config, the (EMA) weights and the metadata a model needs."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from emoar.train.nets import FerNet, create_model

__all__ = ["load_checkpoint", "model_from_checkpoint", "read_checkpoint"]

logger = logging.getLogger(__name__)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`train` (``meta``, weights, and the
    ``history``/``config`` when present), without building the model.

    Raises:
        ValueError: the file is missing or is not an emoar checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"Checkpoint not found: {p}")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        raise ValueError(f"{p}: not a readable PyTorch checkpoint ({e})") from e
    if not isinstance(ck, dict) or "meta" not in ck or "model" not in ck:
        raise ValueError(f"{p}: not an emoar checkpoint (missing 'meta'/'model')")
    return ck


def model_from_checkpoint(ck: dict[str, Any], *, ema: bool = True) -> FerNet:
    """The eval-mode model of a :func:`read_checkpoint` dict (EMA weights by default)."""
    meta = ck["meta"]
    model = create_model(meta["arch"], num_classes=len(meta["labels"]))
    state: dict[str, Any] = ck["ema"] if ema and ck.get("ema") is not None else ck["model"]
    model.load_state_dict(state)
    model.eval()
    return model


def load_checkpoint(path: str | os.PathLike[str], *, ema: bool = True) -> tuple[FerNet, dict[str, Any]]:
    """Load a checkpoint written by :func:`train`; returns the model (EMA weights by
    default) and the checkpoint's metadata dict.

    Raises:
        ValueError: the file is not an emoar checkpoint.
    """
    ck = read_checkpoint(path)
    return model_from_checkpoint(ck, ema=ema), ck["meta"]
