"""Reading training checkpoints: the config, the (EMA) weights and the metadata a model needs;
averaging the weights of several (a "model soup")."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from emoar.train.nets import FerNet, create_model

__all__ = ["average_checkpoints", "load_checkpoint", "model_from_checkpoint", "read_checkpoint"]

#: What must agree between checkpoints whose weights are averaged.
_SOUP_KEYS = ("arch", "labels", "input_size", "mean", "std")

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


def average_checkpoints(paths: list[str], out: str | os.PathLike[str]) -> Path:
    """Average the weights of checkpoints of one lineage into one checkpoint (a uniform "model
    soup", Wortsman et al. 2022): a single model, at a single model's cost.

    It only makes sense for runs that share a basin, such as a run and its warm restart
    (``--init``); independent runs average into noise, so measure the result
    (``benchmarks/ensemble.py``) before using it. Every floating-point tensor of the weights
    (and of the EMA weights when all have them) is averaged in float32 and stored in the first
    one's dtype; BatchNorm's running statistics are averaged like the weights. ``meta``,
    ``config`` and ``history`` are the last checkpoint's, with ``meta["soup"]`` naming the
    sources.

    Args:
        paths: two or more checkpoints written by ``emoar train``.
        out: the checkpoint to write.

    Raises:
        ValueError: fewer than two checkpoints, an unreadable one, or ones that differ in
            architecture, labels, input size, normalisation or tensor shapes.
    """
    if len(paths) < 2:
        raise ValueError(f"a soup needs at least two checkpoints, got {len(paths)}")
    cks = [read_checkpoint(p) for p in paths]
    first = cks[0]["meta"]
    for p, ck in zip(paths[1:], cks[1:], strict=True):
        for key in _SOUP_KEYS:
            if ck["meta"].get(key) != first.get(key):
                raise ValueError(
                    f"{p}: {key} {ck['meta'].get(key)!r} differs from {paths[0]}'s {first.get(key)!r}; "
                    "only checkpoints of one architecture and label set can be averaged"
                )
    soup = dict(cks[-1])
    keys = ["model"] + (["ema"] if all(ck.get("ema") is not None for ck in cks) else [])
    if "ema" not in keys:
        soup.pop("ema", None)
    for key in keys:
        states = [ck[key] for ck in cks]
        names = set(states[0])
        for p, st in zip(paths[1:], states[1:], strict=True):
            if set(st) != names or any(st[k].shape != states[0][k].shape for k in names):
                raise ValueError(f"{p}: its {key} weights do not match {paths[0]}'s tensor for tensor")
        soup[key] = {
            k: (
                torch.stack([st[k].float() for st in states]).mean(0).to(v.dtype)
                if v.is_floating_point()
                else v
            )
            for k, v in states[0].items()
        }
    soup["meta"] = {**cks[-1]["meta"], "soup": [str(p) for p in paths]}
    outp = Path(out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, outp)
    logger.info("Averaged %d checkpoints into %s", len(paths), outp)
    return outp
