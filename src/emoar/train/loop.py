"""The training loop: AdamW/SGD, OneCycle/cosine/step/plateau, label smoothing, EMA,
class balancing, FER+ soft labels, distillation, per-epoch checkpoints and ``--resume``.

Its parts live beside it, as timm keeps them: :mod:`emoar.train.checkpoint` (reading
checkpoints), :mod:`emoar.train.ema` (weight EMA), :mod:`emoar.train.predict` (prediction
and the offline teacher); ``load_checkpoint``, ``model_from_checkpoint``, ``read_checkpoint``
and ``predict_logits`` are re-exported here for callers of earlier releases.

On CPUs where oneDNN runs bf16 (AVX-512 and newer) the forward/backward run under
``torch.autocast(bfloat16)`` in channels-last layout (measured here: 4-5x faster than fp32 on 2
cores); weights stay fp32. AVX2-only CPUs would emulate bf16 (10x slower) and train in fp32.
On CUDA the augmentations run on the GPU too (their own generator there) and the running
loss stays on the device, so a step queues work without waiting for it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from emoar.classify import read_model_info
from emoar.cliargs import comma_list
from emoar.models import resolve_model
from emoar.preprocess import normalize, renormalization, unit_scale
from emoar.train.augment import AugmentConfig, augment_batch, mix_batch
from emoar.train.checkpoint import load_checkpoint, model_from_checkpoint, read_checkpoint
from emoar.train.data import FaceDataset, load_dataset, load_extra_faces
from emoar.train.ema import ModelEma
from emoar.train.nets import FerNet, create_model
from emoar.train.optim import create_optimizer, create_scheduler
from emoar.train.predict import offline_teacher_probs, onnx_teacher_probs, predict_logits

__all__ = [
    "TrainConfig",
    "cpu_runs_bf16",
    "train",
    "kd_loss",
    "load_checkpoint",
    "model_from_checkpoint",
    "offline_teacher_probs",
    "predict_logits",
    "read_checkpoint",
    "resolve_device",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a run; stored in every checkpoint (``--resume`` reuses it)."""

    data: str
    out: str = "runs/train"
    arch: str = "resnet_fer"
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 3e-3
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | step | plateau | budget
    # schedule "budget": cosine over wall-clock training time; the run ends when it is spent
    # (``epochs`` is then an upper bound). Time-boxed runs, e.g. on a borrowed GPU.
    budget_minutes: float = 0.0
    label_smoothing: float = 0.1
    balance: str = "none"  # none | weighted | sampler | merge6
    soft_labels: float = 0.0  # weight of FER+ vote distributions in the target (0..1)
    ema_decay: float = 0.999
    patience: int = 0  # early stopping on PublicTest (0 = off)
    seed: int = 0
    device: str = "auto"
    bf16: bool = True
    threads: int = 0  # CPU threads (0 = all cores); 1 is steadier when the CPU is shared
    limit: int = 0  # use only the first N training images (smoke tests / CI)
    teacher: str = ""  # checkpoint(s) of a stronger model for distillation; commas: an ensemble (offline)
    task: str = "fer2013"  # fer2013 (7 classes) | ferplus (8 classes, FER+ majority votes)
    init: str = ""  # start from these weights (fine-tuning); layers whose shapes differ are skipped
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    # offline distillation: the teacher's flip-averaged, temperature-softened probabilities on the
    # un-augmented training faces are computed once (no teacher forward per step, which doubles
    # the cost of an epoch on a CPU), mixed along with the batch, and matched at the temperature
    # as online (see kd_loss)
    kd_offline: bool = False
    # extra labelled training faces (.npz, e.g. 'emoar gan synth'); commas: several files
    extra: str = ""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        d["augment"] = AugmentConfig(**d.get("augment", {}))
        return TrainConfig(**d)


def resolve_device(name: str, threads: int = 0) -> torch.device:
    """``auto`` -> CUDA when present, else CPU with ``threads`` threads (0 = all cores)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but no CUDA device is available; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"Unknown device {name!r}; choose auto, cpu or cuda")
    if name == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch.device(name)


def budget_factor(frac: float, warmup: float = 0.03) -> float:
    """The ``budget`` schedule's LR factor at ``frac`` (0..1) of the time budget: linear
    warm-up over the first ``warmup`` share, then cosine decay to 0 at the end."""
    frac = min(max(frac, 0.0), 1.0)
    warm = min(1.0, (frac + 1e-3) / warmup) if warmup > 0 else 1.0
    return warm * 0.5 * (1 + math.cos(math.pi * frac))


def _save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary file, so a run killed mid-write (a time limit, a
    borrowed machine taken back) leaves the previous checkpoint whole."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def cpu_runs_bf16() -> bool:
    """Whether oneDNN runs bf16 on this CPU (AVX-512 or newer: 4-5x faster than float32 for these
    nets). On an AVX2-only CPU bf16 autocast is emulated: a 128-face epoch took 14.3 s against
    1.4 s in float32 (session 15's AMD EPYC host), so training stays in float32 there."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older or different build: no claim of support
        return False


def _seed_all(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _pixel_stats(images: np.ndarray) -> tuple[float, float]:
    x = images.astype(np.float32) / 255.0
    return float(x.mean()), float(x.std())


def _merge6(ds: FaceDataset) -> FaceDataset:
    """Merge disgust into angry (the seeds' 6-class option)."""
    names = tuple(n for n in ds.label_names if n != "disgust")
    remap = np.array([names.index("angry" if n == "disgust" else n) for n in ds.label_names])
    soft = None
    if ds.soft is not None:
        soft = np.zeros((len(ds), len(names)), dtype=np.float32)
        for i, j in enumerate(remap):
            soft[:, j] += ds.soft[:, i]
    return FaceDataset(ds.images, remap[ds.labels], names, soft, ds.nf, ds.source + ":merge6")


@torch.no_grad()
def _teacher_probs(teachers: list[tuple[FerNet, float, float]], x: torch.Tensor, t: float) -> torch.Tensor:
    """The online teachers' temperature-softened probabilities on the student's batch ``x``
    (the same augmented, mixed view), averaged over the teachers. Each teacher is
    ``(net, scale, shift)``: it is fed ``x * scale + shift``, the batch in its own normalisation
    (:func:`emoar.preprocess.renormalization`)."""
    out = None
    for net, scale, shift in teachers:
        xt = x if (scale, shift) == (1.0, 0.0) else x * scale + shift
        p = F.softmax(net(xt).float() / t, 1)
        out = p if out is None else out + p
    assert out is not None
    return out / len(teachers)


def _targets(ds: FaceDataset, idx: np.ndarray, cfg: TrainConfig) -> torch.Tensor:
    c = len(ds.label_names)
    y = np.eye(c, dtype=np.float32)[ds.labels[idx]]
    if cfg.soft_labels > 0 and ds.soft is not None:
        s = ds.soft[idx]
        ok = s.sum(1, keepdims=True) > 0.5
        y = np.where(ok, (1 - cfg.soft_labels) * y + cfg.soft_labels * s, y)
    if cfg.label_smoothing > 0:
        y = y * (1 - cfg.label_smoothing) + cfg.label_smoothing / c
    return torch.from_numpy(y.astype(np.float32))


def kd_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    tprob: torch.Tensor | None,
    *,
    alpha: float,
    temperature: float,
    class_w: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss: cross-entropy with the targets ``y`` (N, C), class-weighted, and with
    teacher probabilities ``tprob`` (softened at ``temperature``) Hinton's distillation term
    ``alpha * T^2 * KL(tprob || softmax(logits / T))`` in place of ``alpha`` of it.

    The student matches the teacher at the same temperature, so at ``T = 1`` it is as sharp as
    the teacher's own logits, not as flat as its softened probabilities.
    """
    per = -(y * F.log_softmax(logits, 1))
    if class_w is not None:
        per = per * class_w
    loss = per.sum(1).mean()
    if tprob is None:
        return loss
    t = temperature
    kd = F.kl_div(F.log_softmax(logits / t, 1), tprob, reduction="batchmean") * t * t
    return (1 - alpha) * loss + alpha * kd


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == labels).mean()) if len(labels) else float("nan")


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True, max_minutes: float = 0.0) -> Path:
    """Train a model; writes ``last.pt`` every epoch and ``best.pt`` on PublicTest gains.

    Args:
        cfg: the run's configuration (ignored on ``resume`` except ``out``: the run continues
            with the configuration stored in its checkpoint).
        resume: continue from ``out/last.pt``.
        progress: show a progress bar with live loss/accuracy.
        max_minutes: stop cleanly after the epoch during which this wall time is exceeded
            (0 = no limit); continue later with ``resume``.

    Returns:
        Path of the best checkpoint.
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    state: dict[str, Any] | None = None
    if resume:
        if not last.is_file():
            raise ValueError(f"--resume: no checkpoint at {last}")
        state = torch.load(last, map_location="cpu", weights_only=False)
        cfg = replace(TrainConfig.from_dict(state["config"]), out=cfg.out)
        logger.info("Resuming %s from epoch %d", last, state["epoch"] + 1)
    started = time.time()
    if cfg.schedule == "budget" and cfg.budget_minutes <= 0:
        raise ValueError("--schedule budget needs --budget-minutes > 0 (the wall-clock training time)")
    device = resolve_device(cfg.device, cfg.threads)
    gen = _seed_all(cfg.seed)
    # augmentations draw on the device of the batch: a CUDA batch needs a CUDA generator
    aug_gen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(cfg.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    splits = load_dataset(cfg.data, cfg.task)
    if "Training" not in splits:
        raise ValueError(f"{cfg.data}: no training split found (need Usage=Training rows or train/)")
    tr = splits["Training"]
    va = splits.get("PublicTest")
    n_real = len(tr)
    for path in comma_list(cfg.extra):
        more = load_extra_faces(path, tr.label_names)
        tr = tr.concat(more)
        logger.info("Added %d extra training faces from %s", len(more), path)
    if cfg.balance == "merge6":
        tr = _merge6(tr)
        va = _merge6(va) if va is not None else None
    if cfg.limit:
        keep = np.arange(min(cfg.limit, n_real))  # the first N real faces, and every extra one
        tr = tr.subset(np.concatenate([keep, np.arange(n_real, len(tr))]))
        if va is not None:
            va = va.subset(np.arange(min(max(cfg.limit // 4, 64), len(va))))
    labels = tr.label_names
    mean, std = _pixel_stats(tr.images)
    model = create_model(cfg.arch, num_classes=len(labels)).to(device)
    use_bf16 = cfg.bf16 and device.type == "cpu" and cpu_runs_bf16()
    mem = torch.channels_last
    model = model.to(memory_format=mem)  # type: ignore[call-overload]
    if cfg.init and state is None:
        src, _ = load_checkpoint(cfg.init)
        own = model.state_dict()
        take = {k: v for k, v in src.state_dict().items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(take, strict=False)
        logger.info("Initialised %d/%d tensors from %s", len(take), len(own), cfg.init)
    ema = ModelEma(model, cfg.ema_decay) if cfg.ema_decay > 0 else None

    # online teachers: (model, scale, shift) each; an ensemble's softened probabilities are averaged
    teachers: list[tuple[FerNet, float, float]] = []
    offline: list[np.ndarray] = []  # --kd-offline: each teacher's softened probabilities
    for path in comma_list(cfg.teacher):
        t0 = time.time()
        exported = not path.endswith(".pt")  # an .onnx file or a shipped name: offline only
        if exported:
            if not cfg.kd_offline:
                raise ValueError(
                    f"Teacher {path!r} is an exported model, which can only teach offline: add "
                    "--kd-offline, or pass a training checkpoint (.pt)"
                )
            tlabels = read_model_info(resolve_model(path)).labels
        else:
            teacher, tmeta = load_checkpoint(path)
            tlabels = tmeta["labels"]
        if tuple(tlabels) != tuple(labels):  # before the teacher's pass over the training faces
            raise ValueError(f"Teacher labels {list(tlabels)} differ from {labels}")
        if exported:
            threads = cfg.threads or os.cpu_count() or 1
            offline.append(onnx_teacher_probs(path, tr.images, cfg.kd_temperature, num_threads=threads))
        elif cfg.kd_offline:
            offline.append(offline_teacher_probs(teacher.to(device), tmeta, tr.images, cfg.kd_temperature))
        else:
            teacher = teacher.to(device).to(memory_format=mem).eval()  # type: ignore[call-overload]
            teacher.requires_grad_(False)
            teachers.append((teacher, *renormalization(mean, std, tmeta["mean"], tmeta["std"])))
            continue
        logger.info("Offline teacher targets of %s for %d faces (%.0fs)", path, len(tr), time.time() - t0)
    teacher_probs = np.mean(offline, axis=0).astype(np.float32) if offline else None

    counts = tr.class_counts().astype(np.float64)
    class_w = None
    if cfg.balance == "weighted":
        w = counts.sum() / np.maximum(counts, 1) / len(counts)
        class_w = torch.tensor(np.sqrt(w) / np.sqrt(w).mean(), dtype=torch.float32, device=device)
    sample_p = None
    if cfg.balance == "sampler":
        w = 1.0 / np.sqrt(np.maximum(counts, 1))
        sample_p = w[tr.labels]
        sample_p /= sample_p.sum()

    steps_per_epoch = max(1, len(tr) // cfg.batch_size)
    opt = create_optimizer(model, cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = create_scheduler(opt, cfg.schedule, lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch)

    start_epoch, best_acc, history, stale = 0, -1.0, [], 0
    train_seconds = 0.0  # time spent in epochs, evaluation included (the budget schedule's clock)
    budget_s = cfg.budget_minutes * 60 if cfg.schedule == "budget" else 0.0
    if state is not None:
        train_seconds = float(state.get("train_seconds", 0.0))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None and state.get("ema") is not None:
            ema.module.load_state_dict(state["ema"])
            ema.updates = state.get("ema_updates", 0)
        gen.set_state(state["rng"])
        start_epoch, best_acc, history, stale = (
            state["epoch"] + 1,
            state["best_acc"],
            state["history"],
            state.get("stale", 0),
        )

    meta = {
        "arch": cfg.arch,
        "labels": list(labels),
        "input_size": [int(tr.images.shape[1]), int(tr.images.shape[2])],
        "mean": mean,
        "std": std,
        "train_source": tr.source,
        "train_n": len(tr),
    }
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        progress = False

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.time()
        if sample_p is not None:
            order = np.random.default_rng(cfg.seed + epoch).choice(len(tr), size=len(tr), p=sample_p)
        else:
            order = np.random.default_rng(cfg.seed + epoch).permutation(len(tr))
        batches = [order[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(steps_per_epoch)]
        it = (
            tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress)
            if progress
            else batches
        )
        run_loss = torch.zeros((), device=device)
        run_acc = torch.zeros((), device=device)
        seen = 0
        for idx in it:
            if budget_s:
                frac = (train_seconds + time.time() - t0) / budget_s
                if frac >= 1.0:
                    break
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * budget_factor(frac)
            # preprocess() in its two steps, with the augmentations on [0, 1] pixels in between
            x = torch.from_numpy(unit_scale(tr.images[idx])).to(device, non_blocking=True)
            x = augment_batch(x, cfg.augment, aug_gen)
            y = _targets(tr, idx, cfg).to(device, non_blocking=True)
            if teacher_probs is not None:  # offline targets are mixed along with the labels
                c = y.shape[1]
                tp = torch.from_numpy(teacher_probs[idx]).to(device, non_blocking=True)
                x, yt = mix_batch(x, torch.cat([y, tp], 1), cfg.augment, gen)
                y, offline_tprob = yt[:, :c], yt[:, c:]
            else:
                x, y = mix_batch(x, y, cfg.augment, gen)
                offline_tprob = None
            x = normalize(x, mean, std).contiguous(memory_format=mem)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16 or device.type == "cuda"):
                logits = model(x)
                tprob = _teacher_probs(teachers, x, cfg.kd_temperature) if teachers else offline_tprob
            logits = logits.float()
            loss = kd_loss(
                logits, y, tprob, alpha=cfg.kd_alpha, temperature=cfg.kd_temperature, class_w=class_w
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if cfg.schedule not in ("plateau", "budget"):
                sched.step()
            if ema is not None:
                ema.update(model)
            bs = len(idx)
            run_loss += loss.detach() * bs
            run_acc += (logits.argmax(1) == y.argmax(1)).float().sum()
            seen += bs
            if progress and device.type == "cpu":  # a CUDA step would wait for the GPU here
                it.set_postfix(  # type: ignore[union-attr]
                    loss=f"{float(run_loss) / seen:.3f}", acc=f"{float(run_acc) / seen:.3f}"
                )
        eval_model = ema.module if ema is not None else model
        val_acc = float("nan")
        if va is not None and len(va):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                lg = predict_logits(eval_model, va.images, mean, std, tta=True, device=device)
            val_acc = _accuracy(np.asarray(lg), va.labels)
        if cfg.schedule == "plateau":
            sched.step(val_acc if not math.isnan(val_acc) else -float(run_loss))
        epoch_s = time.time() - t0
        train_seconds += epoch_s  # steps and evaluation: the budget is wall-clock time
        budget_spent = bool(budget_s) and train_seconds >= budget_s
        rec = {
            "epoch": epoch + 1,
            "train_loss": float(run_loss) / max(seen, 1),
            "train_acc": float(run_acc) / max(seen, 1),
            "val_acc": val_acc,
            "lr": opt.param_groups[0]["lr"],
            "seconds": epoch_s,
        }
        history.append(rec)
        improved = not math.isnan(val_acc) and val_acc > best_acc
        if improved or math.isnan(val_acc):
            best_acc = val_acc if improved else best_acc
            stale = 0
        else:
            stale += 1
        logger.info(
            "epoch %d/%d loss %.4f train_acc %.4f val_acc %.4f (%.0fs)",
            epoch + 1,
            cfg.epochs,
            rec["train_loss"],
            rec["train_acc"],
            val_acc,
            rec["seconds"],
        )
        ck = {
            "meta": {**meta, "val_acc": val_acc, "epoch": epoch + 1},
            "model": model.state_dict(),
            "ema": ema.module.state_dict() if ema is not None else None,
            "ema_updates": ema.updates if ema is not None else 0,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": gen.get_state(),
            "epoch": epoch,
            "best_acc": best_acc,
            "stale": stale,
            "train_seconds": train_seconds,
            "history": history,
            "config": cfg.to_dict(),
        }
        _save_atomic(ck, last)
        if improved or math.isnan(val_acc):
            _save_atomic(
                {
                    "meta": ck["meta"],
                    "model": ck["model"],
                    "ema": ck["ema"],
                    "history": history,
                    "config": ck["config"],
                },
                out / "best.pt",
            )
        (out / "history.json").write_text(json.dumps(history, indent=1))
        if budget_spent:
            logger.info("Time budget of %.1f min spent after epoch %d", cfg.budget_minutes, epoch + 1)
            break
        if cfg.patience and stale >= cfg.patience:
            logger.info("Early stopping: no PublicTest gain for %d epochs", stale)
            break
        if max_minutes and epoch + 1 < cfg.epochs and time.time() - started > max_minutes * 60:
            logger.warning(
                "Time budget of %.1f min reached after epoch %d; continue with --resume",
                max_minutes,
                epoch + 1,
            )
            break
    return out / "best.pt"
