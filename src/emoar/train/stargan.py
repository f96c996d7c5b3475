"""Generative class balancing: a small StarGAN-style expression translator at 48x48.

One generator ``G(x, c)`` turns a grayscale face ``x`` into the same face with expression ``c``
(the target class as a one-hot map concatenated to the input channels, as in StarGAN, Choi et
al. 2018). The generator predicts a colour image and an attention mask and blends them with the
input (``a * x + (1 - a) * colour``, as in GANimation, Pumarola et al. 2018), so an untrained
generator starts as the identity and only the expression regions change. One discriminator
``D(x)`` gives a PatchGAN real/fake map and the expression class (its auxiliary classifier,
trained on real faces).

Losses: least-squares adversarial (no gradient penalty, which would need a second backward pass
on a CPU), classification of fakes as their target class (by the discriminator's classifier,
or by a trained expression classifier, frozen, with ``classifier``), cycle reconstruction
``|x - G(G(x, c), c_x)|``, and a small penalty on the mask so the edit stays local.

The training faces are drawn class-balanced (every class equally often), so disgust (1.5% of
FER2013's training faces) is seen as often as happy. :func:`synthesize` then translates faces
of other classes into one target class (``disgust``) and writes them as an ``.npz`` that
``emoar train --extra`` appends to the training split.

Everything checkpoints to ``<out>/last.pt`` every ``save_every`` steps and resumes from it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn as nn
import torch.nn.functional as F

from emoar.train.data import FaceDataset, load_dataset
from emoar.train.loop import cpu_runs_bf16

__all__ = [
    "GanConfig",
    "Generator",
    "Discriminator",
    "train_stargan",
    "load_generator",
    "translate",
    "sample_grid",
    "synthesize",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GanConfig:
    """One StarGAN run (stored in its checkpoint)."""

    data: str
    out: str = "runs/stargan"
    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-4
    width: int = 32  # generator channels at full resolution (x2, x4 after each down-sampling)
    res_blocks: int = 3
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    lambda_mask: float = 0.01
    lambda_tv: float = 0.1  # total variation of the colour and the mask: smooth edits, no dot patterns
    # a trained expression classifier (emoar train checkpoint), frozen, that judges whether a
    # fake shows its target class; "" = the discriminator's own auxiliary classifier (StarGAN's
    # choice, which needs far more steps than a CPU run has to learn expressions first)
    classifier: str = ""
    limit: int = 0  # use only the first N training faces
    seed: int = 0
    threads: int = 1
    save_every: int = 250
    bf16: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _norm(c: int) -> nn.Module:
    return nn.InstanceNorm2d(c, affine=True, track_running_stats=False)


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            _norm(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            _norm(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """``G(x, c)``: faces (N, 1, 48, 48) in [-1, 1] and target one-hots (N, C) -> faces."""

    def __init__(self, num_classes: int, width: int = 32, res_blocks: int = 3) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [
            nn.Conv2d(1 + num_classes, w, 7, 1, 3, bias=False),
            _norm(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False),
            _norm(2 * w),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False),
            _norm(4 * w),
            nn.ReLU(inplace=True),
        ]
        layers += [_Res(4 * w) for _ in range(res_blocks)]
        # nearest up-sampling + convolution, not transposed convolutions: those leave the
        # checkerboard dots that a classifier-guided generator learns to exploit
        layers += [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(4 * w, 2 * w, 3, 1, 1, bias=False),
            _norm(2 * w),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(2 * w, w, 3, 1, 1, bias=False),
            _norm(w),
            nn.ReLU(inplace=True),
        ]
        self.num_classes = num_classes
        self.body = nn.Sequential(*layers)
        self.color = nn.Conv2d(w, 1, 7, 1, 3)
        self.mask = nn.Conv2d(w, 1, 7, 1, 3)
        assert self.mask.bias is not None
        nn.init.constant_(self.mask.bias, 1.0)  # sigmoid(1) = 0.73: start near the identity

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the translated faces and the attention mask (1 = keep the input pixel)."""
        cmap = c[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        h = self.body(torch.cat([x, cmap], 1))
        a = torch.sigmoid(self.mask(h))
        return a * x + (1 - a) * torch.tanh(self.color(h)), a


class Discriminator(nn.Module):
    """``D(x)``: a PatchGAN real/fake map (N, 1, 3, 3) and expression logits (N, C)."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        chans = [1, w, 2 * w, 4 * w, 8 * w]  # 48 -> 24 -> 12 -> 6 -> 3
        layers: list[nn.Module] = []
        for a, b in zip(chans, chans[1:], strict=False):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.LeakyReLU(0.01, inplace=True)]
        self.body = nn.Sequential(*layers)
        self.src = nn.Conv2d(8 * w, 1, 3, 1, 1)
        self.cls = nn.Conv2d(8 * w, num_classes, 3, 1, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.src(h), self.cls(h).flatten(1)


def _to_tensor(images: npt.NDArray[np.uint8]) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(127.5).sub_(1.0)[:, None]


def _to_uint8(x: torch.Tensor) -> npt.NDArray[np.uint8]:
    return ((x[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def _one_hot(y: torch.Tensor, n: int) -> torch.Tensor:
    return F.one_hot(y, n).float()


def _training_faces(cfg: GanConfig) -> FaceDataset:
    splits = load_dataset(cfg.data)
    if "Training" not in splits:
        raise ValueError(f"{cfg.data}: no training split found")
    tr = splits["Training"]
    if cfg.limit:
        tr = tr.subset(np.arange(min(cfg.limit, len(tr))))
    return tr


def train_stargan(cfg: GanConfig, *, resume: bool = False, max_minutes: float = 0.0) -> Path:
    """Train (or, with ``resume``, continue) a translator; returns ``<out>/last.pt``.

    On ``resume`` the run keeps the settings stored in its checkpoint except ``out`` and
    ``steps``: it continues up to ``cfg.steps`` (more than before extends a finished run).

    Stops cleanly when ``max_minutes`` of wall time have passed (0 = no limit), after saving.
    Every ``save_every`` steps it logs the losses and how often the fakes are classified as
    their target class (by the judge with ``classifier``, else by the discriminator's head).
    """
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    state: dict[str, Any] | None = None
    if resume:
        if not last.is_file():
            raise ValueError(f"resume: no checkpoint at {last}")
        state = torch.load(last, map_location="cpu", weights_only=False)
        cfg = GanConfig(**{**state["config"], "out": cfg.out, "steps": cfg.steps})
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tr = _training_faces(cfg)
    labels = tr.label_names
    nc = len(labels)
    by_class = [np.flatnonzero(tr.labels == k) for k in range(nc)]
    present = [k for k in range(nc) if len(by_class[k])]
    if len(present) < 2:
        raise ValueError("StarGAN needs faces of at least two classes")

    g = Generator(nc, cfg.width, cfg.res_blocks)
    d = Discriminator(nc, cfg.width)
    judge = _frozen_classifier(cfg.classifier, labels) if cfg.classifier else None
    og = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    od = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    step, log = 0, []
    if state is not None:
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        og.load_state_dict(state["og"])
        od.load_state_dict(state["od"])
        step, log = state["step"], state["log"]
        rng.bit_generator.state = state["rng"]
        logger.info("Resuming %s at step %d", last, step)

    def save() -> None:
        tmp = last.with_suffix(".tmp")
        torch.save(
            {
                "config": cfg.to_dict(),
                "labels": list(labels),
                "g": g.state_dict(),
                "d": d.state_dict(),
                "og": og.state_dict(),
                "od": od.state_dict(),
                "step": step,
                "log": log,
                "rng": rng.bit_generator.state,
            },
            tmp,
        )
        tmp.replace(last)

    # about half the step time where oneDNN runs bf16; on AVX2-only CPUs it is emulated, far slower
    bf16 = cfg.bf16 and cpu_runs_bf16()
    started = time.time()
    acc: dict[str, float] = {}
    while step < cfg.steps:
        ys = rng.choice(present, cfg.batch_size)  # class-balanced draw
        idx = np.array([rng.choice(by_class[k]) for k in ys])
        x = _to_tensor(tr.images[idx])
        flip = torch.from_numpy(rng.random(cfg.batch_size) < 0.5)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        y = torch.from_numpy(ys).long()
        yt = torch.from_numpy(rng.choice(present, cfg.batch_size)).long()
        ct, cs = _one_hot(yt, nc), _one_hot(y, nc)

        # one generator pass serves both updates: G does not change before its own step
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            fake, a = g(x, ct)

        # discriminator: real vs fake, and the class of real faces
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            src_r, cls_r = d(x)
            src_f, _ = d(fake.detach())
        src_r, cls_r, src_f = src_r.float(), cls_r.float(), src_f.float()
        d_adv = F.mse_loss(src_r, torch.ones_like(src_r)) + F.mse_loss(src_f, torch.zeros_like(src_f))
        d_cls = F.cross_entropy(cls_r, y)
        od.zero_grad(set_to_none=True)
        (d_adv + cfg.lambda_cls * d_cls).backward()
        od.step()

        # generator: fool D, be read as the target class, come back to the input
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            src_f, cls_f = d(fake)
            rec, _ = g(fake, cs)
        src_f, cls_f, rec, a = src_f.float(), cls_f.float(), rec.float(), a.float()
        g_adv = F.mse_loss(src_f, torch.ones_like(src_f))
        if judge is not None:
            # the judge sees the fake slightly blurred and shifted, so a pattern of dots that
            # fools one fixed network does not pay: only a changed expression does
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                jl = judge(_jitter(fake, rng))
            cls_f = jl.float()
        g_cls = F.cross_entropy(cls_f, yt)
        g_rec = (x - rec).abs().mean()
        g_mask = (1 - a).mean()
        g_tv = _tv(a) + _tv(fake)
        og.zero_grad(set_to_none=True)
        (
            g_adv
            + cfg.lambda_cls * g_cls
            + cfg.lambda_rec * g_rec
            + cfg.lambda_mask * g_mask
            + cfg.lambda_tv * g_tv
        ).backward()
        og.step()
        step += 1

        for k, v in (
            ("d_adv", d_adv),
            ("d_cls", d_cls),
            ("g_adv", g_adv),
            ("g_cls", g_cls),
            ("g_rec", g_rec),
            ("mask", 1 - a.mean()),
            ("fake_as_target", (cls_f.argmax(1) == yt).float().mean()),
            ("real_acc", (cls_r.argmax(1) == y).float().mean()),
        ):
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        timed_out = max_minutes > 0 and time.time() - started > max_minutes * 60
        if step % cfg.save_every == 0 or step == cfg.steps or timed_out:
            n = step % cfg.save_every or cfg.save_every
            row = {"step": step, **{k: round(v / n, 4) for k, v in acc.items()}}
            log.append(row)
            logger.info("stargan %s", row)
            acc = {}
            save()
        if timed_out:
            logger.info("Stopping after %.1f min at step %d (resume to continue)", max_minutes, step)
            break
    return last


def _tv(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def _jitter(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A 3x3 box blur and a random shift of up to 2 pixels (one for the batch)."""
    x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
    dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
    return torch.roll(x, (dy, dx), (2, 3))


class _Judge(nn.Module):
    """A frozen expression classifier on [-1, 1] faces (re-normalised to its own statistics)."""

    def __init__(self, net: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.net = net
        self.mean, self.std = float(mean), float(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(((x + 1) * 0.5 - self.mean) / self.std)


def _frozen_classifier(path: str, labels: tuple[str, ...]) -> _Judge:
    from emoar.train.checkpoint import load_checkpoint

    net, meta = load_checkpoint(path)
    if tuple(meta["labels"]) != tuple(labels):
        raise ValueError(f"{path}: classifier labels {meta['labels']} differ from the data's {labels}")
    net = net.float().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return _Judge(net, meta["mean"], meta["std"])


def load_generator(path: str | Path) -> tuple[Generator, tuple[str, ...], dict[str, Any]]:
    """The generator of a :func:`train_stargan` checkpoint, its label names and the checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "g" not in state or "labels" not in state:
        raise ValueError(f"{path}: not a StarGAN checkpoint (no generator weights)")
    cfg = state["config"]
    labels = tuple(state["labels"])
    g = Generator(len(labels), cfg["width"], cfg["res_blocks"])
    g.load_state_dict(state["g"])
    return g.eval(), labels, state


@torch.no_grad()
def translate(
    g: Generator, images: npt.NDArray[np.uint8], target: int, *, batch: int = 256
) -> npt.NDArray[np.uint8]:
    """Faces (N, 48, 48) uint8 -> the same faces with expression ``target`` (label index)."""
    if images.ndim != 3 or images.shape[1:] != (48, 48):
        raise ValueError(f"expected (N, 48, 48) faces, got {images.shape}")
    nc = g.num_classes
    outs = []
    for i in range(0, len(images), batch):
        x = _to_tensor(images[i : i + batch])
        c = _one_hot(torch.full((len(x),), target, dtype=torch.long), nc)
        outs.append(_to_uint8(g(x, c)[0]))
    return np.concatenate(outs) if outs else np.zeros((0, 48, 48), np.uint8)


def sample_grid(
    g: Generator, labels: tuple[str, ...], faces: npt.NDArray[np.uint8], *, scale: int = 2
) -> npt.NDArray[np.uint8]:
    """A grid image: one row per input face; the input, then its translation to every class."""
    import cv2

    cols = [faces] + [translate(g, faces, k) for k in range(len(labels))]
    s = 48 * scale
    head = 18
    grid = np.full((head + s * len(faces), s * len(cols)), 255, np.uint8)
    for j, name in enumerate(("input", *labels)):
        cv2.putText(grid, name, (j * s + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
        for i in range(len(faces)):
            tile = cv2.resize(cols[j][i], (s, s), interpolation=cv2.INTER_NEAREST)
            grid[head + i * s : head + (i + 1) * s, j * s : (j + 1) * s] = tile
    return grid


def synthesize(
    checkpoint: str | Path,
    data: str,
    *,
    target: str = "disgust",
    n: int = 2000,
    sources: tuple[str, ...] = (),
    seed: int = 0,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.str_]]:
    """``n`` synthetic ``target`` faces made from random training faces of ``sources``.

    ``sources`` defaults to every other class. Returns ``(images (n, 48, 48) uint8, labels)``;
    save them with ``np.savez(path, images=..., labels=...)`` for ``emoar train --extra``.
    """
    g, labels, _ = load_generator(checkpoint)
    if target not in labels:
        raise ValueError(f"unknown target class {target!r}; the model has {', '.join(labels)}")
    bad = [s for s in sources if s not in labels]
    if bad:
        raise ValueError(f"unknown source class(es) {', '.join(bad)}; the model has {', '.join(labels)}")
    tr = load_dataset(data)["Training"]
    src = [labels.index(s) for s in (sources or [c for c in labels if c != target])]
    pool = np.flatnonzero(np.isin(tr.labels, src))
    if not len(pool):
        raise ValueError("no training faces of the source classes")
    idx = np.random.default_rng(seed).choice(pool, n, replace=n > len(pool))
    images = translate(g, tr.images[idx], labels.index(target))
    return images, np.array([target] * n)
