"""What one federated client does with the model: which tensors are shared, local training
(with the FedProx proximal term), evaluation. Plain torch; no Flower engine needed.

BatchNorm, deliberately (the mobile-AR paper stalled on it):

* ``share="all"``: weights and BN running statistics are averaged (FedAvg, FedProx, FedAdam);
* ``share="no_bn_stats"``: running mean/var stay on the client (used with DP: the statistics
  are data summaries that clipping and noise do not cover, so they never leave the device);
* ``share="no_bn"``: every BN tensor (affine and statistics) stays local (FedBN).

Tensors that are not shared start from the values the server sends once in the round config
(``local-init``) and are kept in the client's ``Context.state`` afterwards.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emoar.metrics import classification_report
from emoar.preprocess import normalize, unit_scale
from emoar.train.augment import AugmentConfig, augment_batch
from emoar.train.data import FaceDataset
from emoar.train.federated import OPTIMIZERS
from emoar.train.predict import predict_logits

__all__ = [
    "SHARE_MODES",
    "evaluate_model",
    "pack_state",
    "shared_keys",
    "train_local",
    "unpack_state",
]

SHARE_MODES = ("all", "no_bn_stats", "no_bn")


def _bn_keys(model: nn.Module) -> tuple[set[str], set[str]]:
    """(all BN tensor names, BN running-statistics names) of ``model``'s state dict."""
    every, stats = set(), set()
    for name, mod in model.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            for k in mod.state_dict():
                full = f"{name}.{k}" if name else k
                every.add(full)
                if k in ("running_mean", "running_var", "num_batches_tracked"):
                    stats.add(full)
    return every, stats


def shared_keys(model: nn.Module, share: str) -> list[str]:
    """State-dict names exchanged with the server (``num_batches_tracked`` never is)."""
    if share not in SHARE_MODES:
        raise ValueError(f"Unknown share mode {share!r}; choose {', '.join(SHARE_MODES)}")
    every, stats = _bn_keys(model)
    drop = {k for k in model.state_dict() if k.endswith("num_batches_tracked")}
    if share == "no_bn_stats":
        drop |= stats
    elif share == "no_bn":
        drop |= every
    return [k for k in model.state_dict() if k not in drop]


def pack_state(state: dict[str, torch.Tensor]) -> bytes:
    """Tensors -> bytes (for the small ``local-init`` config entry)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: v.detach().cpu().numpy() for k, v in state.items()})  # type: ignore[arg-type]
    return buf.getvalue()


def unpack_state(data: bytes) -> dict[str, torch.Tensor]:
    with np.load(io.BytesIO(data)) as z:
        return {k: torch.from_numpy(np.array(z[k])) for k in z.files}


def train_local(
    model: nn.Module,
    ds: FaceDataset,
    mean: float,
    std: float,
    *,
    epochs: int = 1,
    lr: float = 0.01,
    batch_size: int = 64,
    optimizer: str = "sgd",
    proximal_mu: float = 0.0,
    seed: int = 0,
    augment: bool = True,
    bf16: bool = True,
) -> float:
    """Local training on the client's rows (bf16 autocast on CPUs that have it, as in
    :func:`emoar.train.loop.train`); returns the mean training loss.

    ``optimizer``: ``"sgd"`` (momentum 0.9, weight decay 5e-4; for fine-tuning a trained model)
    or ``"adamw"`` (weight decay 1e-4; a fresh state every round, which learns a weak starting
    model several times faster at these sizes: ``benchmarks/federated.py``).

    With ``proximal_mu > 0`` the FedProx term ``mu/2 * ||w - w_global||^2`` is added (``w_global``
    = the weights at entry).
    """
    model.train()
    use_bf16 = bf16 and torch.backends.mkldnn.is_available()
    model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    gen = torch.Generator().manual_seed(seed)
    opt: torch.optim.Optimizer
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    else:
        raise ValueError(f"unknown client optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    global_params = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []
    aug = AugmentConfig()
    rng = np.random.default_rng(seed)
    total, seen = 0.0, 0
    n = len(ds)
    bs = max(1, min(batch_size, n))
    for _ in range(epochs):
        order = rng.permutation(n)
        for i in range(0, n - bs + 1, bs):  # drop the last partial batch (BN needs > 1 row)
            idx = order[i : i + bs]
            x = torch.from_numpy(unit_scale(ds.images[idx]))
            if augment:
                x = augment_batch(x, aug, gen)
            x = normalize(x, mean, std)
            y = torch.from_numpy(ds.labels[idx])
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
            if proximal_mu > 0:
                prox = sum(
                    ((p - g) ** 2).sum() for p, g in zip(model.parameters(), global_params, strict=True)
                )
                loss = loss + proximal_mu / 2 * prox
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
    return total / max(seen, 1)


@torch.no_grad()
def evaluate_model(model: nn.Module, ds: FaceDataset, mean: float, std: float) -> dict[str, Any]:
    """Loss, accuracy and macro-F1 of ``model`` on ``ds`` (no test-time augmentation)."""
    if len(ds) == 0:
        return {"loss": float("nan"), "accuracy": float("nan"), "macro_f1": float("nan"), "n": 0}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=torch.backends.mkldnn.is_available()):
        lg = np.asarray(predict_logits(model, ds.images, mean, std), dtype=np.float32)  # type: ignore[arg-type]
    loss = float(F.cross_entropy(torch.from_numpy(lg), torch.from_numpy(ds.labels)))
    probs = torch.softmax(torch.from_numpy(lg), 1).numpy()
    rep = classification_report(ds.labels, probs, ds.label_names)
    return {
        "loss": loss,
        "accuracy": float(rep["accuracy"]),
        "macro_f1": float(rep["macro_f1"]),
        "n": len(ds),
    }
