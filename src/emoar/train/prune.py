"""Structured channel pruning: cut a trained ``vgg_fer`` down to a narrower ``VggFer`` (e.g.
``vgg_fer_slim``) that keeps its most useful channels, as the starting point of a short
fine-tuning run (``emoar train --init``) instead of a training run from scratch.

Which channels stay: for each convolution, a channel's score is its mean activation after the
ReLU on real training faces times the L2 norm of the weights that read it in the next layer
(the classifier's weights for the last convolution) — what it puts out, and how much the rest of
the network listens to it (activation-based pruning, as in Hu et al. 2016 "Network Trimming"
and Molchanov et al. 2019, "Importance Estimation for Neural Network Pruning", simplified).
The kept channels' weights are copied, and BatchNorm's running statistics are re-estimated on
the same faces, since the inputs of every layer changed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from emoar.preprocess import preprocess
from emoar.train.checkpoint import model_from_checkpoint, read_checkpoint
from emoar.train.nets import FerNet, VggFer, create_model

__all__ = ["prune_checkpoint", "prune_vgg"]

logger = logging.getLogger(__name__)


def _conv_blocks(net: VggFer) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """(convolution, BatchNorm) of each conv-BN-ReLU block, in order."""
    out = []
    for m in net.body:
        if isinstance(m, nn.Sequential):
            conv, bn = m[0], m[1]
            assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
            out.append((conv, bn))
    return out


@torch.no_grad()
def channel_scores(net: VggFer, x: torch.Tensor, batch: int = 256) -> list[torch.Tensor]:
    """Each convolution's per-channel importance (see the module docstring) on faces ``x``
    (N, 1, H, W, normalised)."""
    blocks = _conv_blocks(net)
    sums = [torch.zeros(conv.out_channels) for conv, _ in blocks]

    def hook(j: int) -> Any:
        def f(_m: nn.Module, _i: Any, o: torch.Tensor) -> None:
            sums[j] += o.float().clamp(min=0).mean((2, 3)).sum(0)  # per face: mean over pixels

        return f

    # post-ReLU output of each block: hooked on the BN, clamped at zero in the hook
    hooks = [bn.register_forward_hook(hook(j)) for j, (_, bn) in enumerate(blocks)]
    try:
        net.eval()
        for i in range(0, len(x), batch):
            net(x[i : i + batch])
    finally:
        for h in hooks:
            h.remove()
    scores = []
    for j, s in enumerate(sums):
        reader = blocks[j + 1][0].weight if j + 1 < len(blocks) else net.head.weight[:, :, None, None]
        scores.append(s / len(x) * reader.float().pow(2).sum((0, 2, 3)).sqrt())
    return scores


@torch.no_grad()
def prune_vgg(
    src: VggFer, dst: VggFer, x: torch.Tensor, batch: int = 256, *, recalibrate: bool = True
) -> VggFer:
    """Copy ``src``'s most important channels into the narrower ``dst`` (same depth), then
    (``recalibrate``) re-estimate ``dst``'s BatchNorm statistics on ``x``. Returns ``dst`` in
    eval mode.

    Raises:
        ValueError: different depths, or a ``dst`` layer wider than ``src``'s.
    """
    sb, db = _conv_blocks(src), _conv_blocks(dst)
    if len(sb) != len(db):
        raise ValueError(f"cannot prune {len(sb)} convolutions into {len(db)}: the depths differ")
    for j, ((sc, _), (dc, _)) in enumerate(zip(sb, db, strict=True)):
        if dc.out_channels > sc.out_channels:
            raise ValueError(
                f"convolution {j}: the target has {dc.out_channels} channels, the source "
                f"only {sc.out_channels}; pruning can only narrow a network"
            )
    if dst.head.out_features != src.head.out_features:
        raise ValueError(
            f"the target has {dst.head.out_features} classes, the source {src.head.out_features}"
        )
    src = src.float()
    scores = channel_scores(src, x, batch)
    prev = torch.arange(sb[0][0].in_channels)
    for (s_conv, s_bn), (d_conv, d_bn), score in zip(sb, db, scores, strict=True):
        keep = torch.sort(score.argsort(descending=True)[: d_conv.out_channels]).values
        d_conv.weight.copy_(s_conv.weight[keep][:, prev])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(d_bn, name).copy_(getattr(s_bn, name)[keep])
        prev = keep
    dst.head.weight.copy_(src.head.weight[:, prev])
    dst.head.bias.copy_(src.head.bias)
    if not recalibrate:
        return dst.eval()
    # every layer now sees other inputs: re-estimate BN's statistics (cumulative average over
    # the batches, momenta restored afterwards)
    update_bn((x[i : i + batch] for i in range(0, len(x), batch)), dst)
    return dst.eval()


def prune_checkpoint(
    checkpoint: str | os.PathLike[str],
    arch: str,
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    faces: int = 3000,
    seed: int = 0,
) -> Path:
    """Prune ``checkpoint`` (a ``vgg_fer``) into architecture ``arch`` (a narrower ``VggFer``,
    e.g. ``vgg_fer_slim``) using ``faces`` training faces of ``data`` (the checkpoint's task),
    and write a checkpoint that ``emoar train --init`` fine-tunes and ``emoar evaluate`` reads.

    Raises:
        ValueError: an unreadable checkpoint, an unknown or non-VGG architecture, a target wider
            than the source, or data without training faces.
    """
    from emoar.train.data import load_dataset
    from emoar.train.evaluate import task_for_labels

    ck = read_checkpoint(checkpoint)
    meta = ck["meta"]
    src: FerNet = model_from_checkpoint(ck)
    dst = create_model(arch, num_classes=len(meta["labels"]))  # ValueError lists the names
    if not isinstance(src, VggFer) or not isinstance(dst, VggFer):
        raise ValueError(
            f"pruning works on VGG-style nets (vgg_fer -> vgg_fer_slim); got {meta['arch']} -> {arch}"
        )
    if faces < 64:
        raise ValueError(f"--faces {faces}: at least 64 faces are needed to score channels")
    split = load_dataset(data, task_for_labels(tuple(meta["labels"])))
    train = split.get("Training")
    if train is None or len(train) == 0:
        raise ValueError(f"{data}: no training faces to score channels on")
    idx = np.random.default_rng(seed).choice(len(train), min(faces, len(train)), replace=False)
    x = torch.from_numpy(preprocess(train.images[np.sort(idx)], meta["mean"], meta["std"]))
    prune_vgg(src, dst, x)
    kept = [conv.out_channels for conv, _ in _conv_blocks(dst)]
    n_src = sum(p.numel() for p in src.parameters())
    n_dst = sum(p.numel() for p in dst.parameters())
    config = dict(ck.get("config") or {})
    if config:
        config["arch"] = arch
    res: dict[str, Any] = {
        "meta": {**meta, "arch": arch, "pruned_from": str(checkpoint), "pruned_channels": kept},
        "config": config,
        "history": [],
        "model": dst.state_dict(),
        "ema": None,
    }
    outp = Path(out)
    outp.parent.mkdir(parents=True, exist_ok=True)
    torch.save(res, outp)
    logger.info(
        "Pruned %s (%s, %.2f M parameters) into %s (%.2f M; channels %s) on %d faces -> %s",
        checkpoint,
        meta["arch"],
        n_src / 1e6,
        arch,
        n_dst / 1e6,
        kept,
        len(x),
        outp,
    )
    return outp
