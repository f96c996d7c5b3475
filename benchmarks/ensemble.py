"""Accuracy of checkpoints alone and averaged (an ensemble), to choose distillation teachers.

Usage:
    python benchmarks/ensemble.py --checkpoint A.pt --checkpoint B.pt [--split PublicTest]
        [--task fer2013|ferplus]

Each checkpoint's flip-averaged probabilities (EMA weights, as `emoar train` selects and
exports them) on the split, then every combination of two or more averaged. Selection happens on
PublicTest (the default); PrivateTest is for reporting only. ``--task ferplus`` scores on the
FER+ majority labels (8 classes). A checkpoint with more classes than the task (a FER+ model on
FER2013) is scored on the task's classes: its other columns are dropped and the rest renormalised.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, machine, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH or PATH (repeat)")
    ap.add_argument("--split", default="PublicTest", choices=["PublicTest", "PrivateTest"])
    ap.add_argument("--data", default=FER_CSV)
    ap.add_argument("--task", default="fer2013", choices=["fer2013", "ferplus"])
    a = ap.parse_args()
    import torch

    from emoar.metrics import classification_report
    from emoar.train.data import load_dataset
    from emoar.train.loop import load_checkpoint
    from emoar.train.predict import predict_logits

    torch.set_num_threads(1)
    ds = load_dataset(a.data, a.task)[a.split]
    probs = {}
    for spec in a.checkpoint:
        name, _, path = spec.rpartition("=")
        name = name or os.path.basename(os.path.dirname(path)) or path
        model, meta = load_checkpoint(path)
        lg = np.asarray(predict_logits(model, ds.images, meta["mean"], meta["std"], tta=True))
        p = torch.softmax(torch.from_numpy(lg), 1).numpy()
        try:
            cols = [list(meta["labels"]).index(n) for n in ds.label_names]
        except ValueError:
            ap.error(f"{path}: labels {meta['labels']} lack some of the task's {ds.label_names}")
        p = p[:, cols]
        probs[name] = p / p.sum(1, keepdims=True)
    rows = []
    names = list(probs)
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            p = np.mean([probs[n] for n in combo], axis=0)
            rep = classification_report(ds.labels, p, ds.label_names)
            rows.append(
                [" + ".join(combo), f"{rep['accuracy']:.4f}", f"{rep['macro_f1']:.4f}", f"{rep['ece']:.3f}"]
            )
    shown = {"fer2013": "FER2013", "ferplus": "FER+ majority"}[a.task]
    print(f"\n{machine()}; {shown} {a.split} ({len(ds)} faces); flip TTA; probabilities averaged\n")
    print(table(["checkpoints", "accuracy", "macro-F1", "ECE"], rows))


if __name__ == "__main__":
    main()
