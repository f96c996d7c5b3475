"""Grad-CAM (Selvaraju et al. 2017) for the CNN architectures: where the model looks."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emoar.train.data import FaceDataset
from emoar.train.loop import load_checkpoint

__all__ = ["gradcam", "save_gradcam_grid"]


def _last_conv(model: nn.Module) -> nn.Conv2d:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a convolutional model (this one has no Conv2d)")
    return convs[-1]


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> np.ndarray:
    """Heat maps (N, H, W) in [0, 1] for input ``x`` (N, 1, H, W), for class ``target``
    (default: the predicted class), from the last convolution's activations and gradients."""
    layer = _last_conv(model)
    acts: list[torch.Tensor] = []
    grads: list[torch.Tensor] = []
    h1 = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    h2 = layer.register_full_backward_hook(lambda m, gi, go: grads.append(go[0]))  # type: ignore[index]
    try:
        model.eval()
        x = x.clone().requires_grad_(True)
        logits = model(x)
        t = logits.argmax(1) if target is None else target
        model.zero_grad()
        logits.gather(1, t[:, None]).sum().backward()
    finally:
        h1.remove()
        h2.remove()
    a, g = acts[0].detach(), grads[0].detach()
    cam = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
    cam = cam / cam.flatten(1).max(1).values.clamp(min=1e-8)[:, None, None]
    return cam.numpy()


def save_gradcam_grid(
    checkpoint: str | os.PathLike[str], ds: FaceDataset, path: str | os.PathLike[str], per_class: int = 2
) -> Path:
    """A PNG grid: for each class, ``per_class`` test faces with their Grad-CAM overlay."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, meta = load_checkpoint(checkpoint)
    model = model.float()
    labels = meta["labels"]
    idx = np.concatenate([np.flatnonzero(ds.labels == c)[:per_class] for c in range(len(ds.label_names))])
    imgs = ds.images[idx]
    x = (torch.from_numpy(imgs).float().div(255).unsqueeze(1) - meta["mean"]) / meta["std"]
    cams = gradcam(model, x)
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    cols = per_class * 2
    fig, axes = plt.subplots(
        len(ds.label_names), cols, figsize=(cols * 1.4, len(ds.label_names) * 1.5), dpi=100, squeeze=False
    )
    for k, i in enumerate(range(len(idx))):
        r, c = divmod(k, per_class)
        ax1, ax2 = axes[r, 2 * c], axes[r, 2 * c + 1]
        ax1.imshow(imgs[i], cmap="gray")
        ax1.set_title(f"true {ds.label_names[ds.labels[idx[i]]]}", fontsize=7)
        ax2.imshow(imgs[i], cmap="gray")
        ax2.imshow(cams[i], cmap="jet", alpha=0.45)
        ax2.set_title(f"pred {labels[pred[i]]}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Grad-CAM on test faces (last conv layer)", fontsize=9)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p)
    plt.close(fig)
    return p
