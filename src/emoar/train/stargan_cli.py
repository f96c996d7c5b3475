"""``emoar gan`` (train / sample / synth): the StarGAN-style translator of :mod:`emoar.train.stargan`
(registered by :mod:`emoar.cli`; torch is imported only when a command runs)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from emoar.cliargs import comma_list


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``gan`` verb on the main parser's subparsers."""
    g = sub.add_parser(
        "gan", help="generative class balancing: train a StarGAN-style expression translator, make faces"
    )
    gs = g.add_subparsers(dest="gan_verb", required=True, metavar="ACTION")

    t = gs.add_parser("train", help="train (or --resume) a translator on a dataset's training faces")
    t.add_argument("--data", required=True, help="fer2013.csv(.gz) or a folder layout 'emoar train' reads")
    t.add_argument("--out", default="runs/stargan", help="run folder: last.pt, samples.png")
    t.add_argument("--steps", type=int, default=6000)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--width", type=int, default=32, help="generator channels at full resolution")
    t.add_argument("--res-blocks", type=int, default=3)
    t.add_argument(
        "--classifier",
        default="",
        help="a trained expression classifier (emoar train checkpoint), frozen, that scores whether "
        "fakes show their target class (default: the discriminator's own classifier)",
    )
    t.add_argument("--limit", type=int, default=0, help="use only the first N training faces")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--save-every", type=int, default=250, help="checkpoint and log every N steps")
    t.add_argument("--max-minutes", type=float, default=0, help="stop cleanly after this wall time")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out up to --steps (its other settings kept)",
    )
    t.set_defaults(func=cmd_gan_train)

    s = gs.add_parser("sample", help="a PNG grid: faces (rows) translated to every class (columns)")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--data", required=True, help="where the input faces come from (PublicTest split)")
    s.add_argument("--rows", type=int, default=8)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="PNG path")
    s.set_defaults(func=cmd_gan_sample)

    y = gs.add_parser("synth", help="translate training faces of other classes into one class; write .npz")
    y.add_argument("--checkpoint", required=True)
    y.add_argument("--data", required=True)
    y.add_argument("--target", default="disgust")
    y.add_argument("-n", type=int, default=2000, help="how many faces (default %(default)s)")
    y.add_argument("--sources", default="", help="comma-separated source classes (default: all others)")
    y.add_argument("--seed", type=int, default=0)
    y.add_argument("--out", required=True, help=".npz path, for 'emoar train --extra'")
    y.set_defaults(func=cmd_gan_synth)
    return g


def _imports() -> Any:
    from emoar.cli import CliError

    try:
        from emoar.train import stargan
    except ImportError as e:
        raise CliError(f"'emoar gan' needs PyTorch: pip install 'emoar[train]' ({e})") from e
    return stargan


def cmd_gan_train(args: argparse.Namespace) -> int:
    from emoar.cli import CliError
    from emoar.train.data import DatasetError

    st = _imports()
    if args.steps < 1 or args.batch_size < 2:
        raise CliError("--steps must be >= 1 and --batch-size >= 2")
    cfg = st.GanConfig(
        data=args.data,
        out=args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        width=args.width,
        res_blocks=args.res_blocks,
        limit=args.limit,
        classifier=args.classifier,
        seed=args.seed,
        threads=args.threads,
        save_every=args.save_every,
    )
    try:
        last = st.train_stargan(cfg, resume=args.resume, max_minutes=args.max_minutes)
    except (DatasetError, ValueError) as e:
        raise CliError(str(e)) from e
    print(f"checkpoint: {last}")
    return 0


def _check_out_dir(path: str) -> None:
    from emoar.cli import CliError

    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise CliError(f"{path}: folder {d} does not exist")


def cmd_gan_sample(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from emoar.cli import CliError
    from emoar.train.data import DatasetError, load_dataset

    st = _imports()
    _check_out_dir(args.out)
    try:
        g, labels, _ = st.load_generator(args.checkpoint)
        splits = load_dataset(args.data)
    except (OSError, DatasetError, ValueError) as e:
        raise CliError(str(e)) from e
    ds = splits.get("PublicTest") or splits.get("PrivateTest") or splits["Training"]
    rng = np.random.default_rng(args.seed)
    # one face of each class in turn, so every row starts from a different expression
    idx = []
    for i in range(args.rows):
        pool = np.flatnonzero(ds.labels == i % len(labels))
        idx.append(int(rng.choice(pool)) if len(pool) else int(rng.integers(len(ds))))
    grid = st.sample_grid(g, labels, ds.images[np.array(idx)])
    if not cv2.imwrite(args.out, grid):
        raise CliError(f"could not write {args.out}")
    print(args.out)
    return 0


def cmd_gan_synth(args: argparse.Namespace) -> int:
    import numpy as np

    from emoar.cli import CliError
    from emoar.train.data import DatasetError

    st = _imports()
    if args.n < 1:
        raise CliError("-n must be >= 1")
    _check_out_dir(args.out)
    sources = tuple(comma_list(args.sources))
    try:
        images, labels = st.synthesize(
            args.checkpoint, args.data, target=args.target, n=args.n, sources=sources, seed=args.seed
        )
    except (OSError, DatasetError, ValueError) as e:
        raise CliError(str(e)) from e
    np.savez_compressed(args.out, images=images, labels=labels)
    print(f"{len(images)} {args.target} faces -> {args.out}")
    return 0
