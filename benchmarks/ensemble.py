"""Accuracy of checkpoints alone and averaged (an ensemble), to choose members and teachers.

Usage:
    python benchmarks/ensemble.py --checkpoint A.pt --checkpoint B.pt [--split PublicTest]
        [--task fer2013|ferplus] [--calibrate] [--weight B=0.5] [--fit-weights] [--cache DIR]

Each checkpoint's flip-averaged probabilities (EMA weights, as `emoar train` selects and
exports them) on the split, then every combination of two or more averaged. Selection happens on
PublicTest (the default); PrivateTest is for reporting only. ``--task ferplus`` scores on the
FER+ majority labels (8 classes). A checkpoint with more classes than the task (a FER+ model on
FER2013) is scored on the task's classes: its other columns are dropped and the rest renormalised.

``--calibrate`` temperature-scales each member with its own T, fitted on PublicTest, before the
average (measured here only; the exported ensembles average plain probabilities, since this
has not beaten them on PublicTest, see the README): members trained with
different mixing are not equally over-confident, and a plain average lets the most confident one
speak loudest. ``--weight NAME=W`` weighs a member in every combination it is in (default 1; the
average is ``sum(w_i p_i) / sum(w_i)``). ``--fit-weights``
fits the weights of all the checkpoints together on PublicTest (the first stays at 1; grid
search of the others, one at a time, minimising the negative log-likelihood) and adds a row for
them on the split. Temperatures and weights are always fitted on PublicTest, so
``--split PrivateTest`` reports what was chosen without looking at it. ``--cache DIR`` keeps each
checkpoint's probabilities (keyed by file size and mtime) for reruns.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, machine, table  # noqa: E402

GRID = tuple(round(0.1 * i, 1) for i in range(0, 21))  # 0.0 .. 2.0


def weighted_mean(probs: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """``sum(w_i p_i) / sum(w_i)``."""
    w = np.asarray(weights, np.float64)
    return np.tensordot(w / w.sum(), np.stack(probs), axes=1)


def fit_weights(labels: np.ndarray, probs: list[np.ndarray], sweeps: int = 3) -> list[float]:
    """Weights (the first fixed at 1) minimising the NLL of the weighted average: coordinate
    descent over :data:`GRID`, ``sweeps`` passes."""
    from emoar.train.calibrate import nll

    w = [1.0] * len(probs)
    for _ in range(sweeps):
        for i in range(1, len(probs)):
            w[i] = float(min(GRID, key=lambda g: nll(weighted_mean(probs, [*w[:i], g, *w[i + 1 :]]), labels)))
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH or PATH (repeat)")
    ap.add_argument("--split", default="PublicTest", choices=["PublicTest", "PrivateTest"])
    ap.add_argument("--data", default=FER_CSV)
    ap.add_argument("--task", default="fer2013", choices=["fer2013", "ferplus"])
    ap.add_argument(
        "--calibrate", action="store_true", help="temperature-scale each member (T fit on PublicTest)"
    )
    ap.add_argument("--weight", action="append", default=[], help="NAME=W: a member's weight (repeat)")
    ap.add_argument("--fit-weights", action="store_true", help="fit all members' weights on PublicTest")
    ap.add_argument("--cache", help="folder keeping each checkpoint's probabilities for reruns")
    a = ap.parse_args()
    import torch

    from emoar.classify import apply_temperature
    from emoar.metrics import classification_report
    from emoar.train.calibrate import fit_temperature, nll
    from emoar.train.data import load_dataset
    from emoar.train.loop import load_checkpoint
    from emoar.train.predict import predict_logits

    torch.set_num_threads(1)
    data = load_dataset(a.data, a.task)
    splits = (
        [a.split]
        if a.split == "PublicTest" or not (a.calibrate or a.fit_weights)
        else [a.split, "PublicTest"]
    )
    specs = []
    for spec in a.checkpoint:
        name, _, path = spec.rpartition("=")
        specs.append((name or os.path.basename(os.path.dirname(path)) or path, path))

    def member_probs(path: str, split: str) -> np.ndarray:
        ds = data[split]
        key = ""
        if a.cache:
            st = os.stat(path)
            ident = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{split}|{a.task}"
            key = os.path.join(a.cache, hashlib.sha1(ident.encode()).hexdigest()[:16] + ".npy")
            if os.path.exists(key):
                return np.load(key)
        model, meta = load_checkpoint(path)
        lg = np.asarray(predict_logits(model, ds.images, meta["mean"], meta["std"], tta=True))
        p = torch.softmax(torch.from_numpy(lg), 1).numpy()
        try:
            cols = [list(meta["labels"]).index(n) for n in ds.label_names]
        except ValueError:
            ap.error(f"{path}: labels {meta['labels']} lack some of the task's {ds.label_names}")
        p = p[:, cols]
        p = p / p.sum(1, keepdims=True)
        if key:
            os.makedirs(a.cache, exist_ok=True)
            np.save(key, p)
        return p

    probs = {s: {n: member_probs(p, s) for n, p in specs} for s in splits}
    names = [n for n, _ in specs]
    pub = data["PublicTest"].labels
    temps = dict.fromkeys(names, 1.0)
    if a.calibrate:
        temps = {n: fit_temperature(probs["PublicTest"][n], pub) for n in names}
        for s in splits:
            probs[s] = {n: apply_temperature(probs[s][n], temps[n]) for n in names}
    weights = dict.fromkeys(names, 1.0)
    for spec in a.weight:
        name, _, w = spec.rpartition("=")
        if name not in weights:
            ap.error(f"--weight {spec}: no checkpoint named {name!r} (names: {', '.join(names)})")
        try:
            weights[name] = float(w)
        except ValueError:
            ap.error(f"--weight {spec}: {w!r} is not a number")
        if weights[name] < 0:
            ap.error(f"--weight {spec}: a weight cannot be negative")

    ds = data[a.split]

    def row(label: str, combo: tuple[str, ...], ws: list[float]) -> list[object]:
        if sum(ws) <= 0:
            return [label, "-", "-", "-", "-"]
        p = weighted_mean([probs[a.split][n] for n in combo], ws)
        rep = classification_report(ds.labels, p, ds.label_names)
        acc, mf1, ece = rep["accuracy"], rep["macro_f1"], rep["ece"]
        return [label, f"{acc:.4f}", f"{mf1:.4f}", f"{ece:.3f}", f"{nll(p, ds.labels):.4f}"]

    rows = []
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            ws = [weights[n] for n in combo] if k > 1 else [1.0]
            shown = " + ".join(n if k == 1 or weights[n] == 1.0 else f"{weights[n]:g}*{n}" for n in combo)
            rows.append(row(shown, combo, ws))
    if a.fit_weights and len(names) > 1:
        fitted = fit_weights(pub, [probs["PublicTest"][n] for n in names])
        shown = " + ".join(f"{w:g}*{n}" for n, w in zip(names, fitted, strict=True))
        rows.append(row(f"weights fitted on PublicTest: {shown}", tuple(names), fitted))
    task = {"fer2013": "FER2013", "ferplus": "FER+ majority"}[a.task]
    how = "each member temperature-scaled (T fitted on PublicTest), then " if a.calibrate else ""
    print(f"\n{machine()}; {task} {a.split} ({len(ds)} faces); flip TTA; {how}probabilities averaged")
    if a.calibrate:
        print("member temperatures: " + ", ".join(f"{n} {t:.3f}" for n, t in temps.items()))
    print()
    print(table(["checkpoints", "accuracy", "macro-F1", "ECE", "NLL"], rows))


if __name__ == "__main__":
    main()
