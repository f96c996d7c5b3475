"""Accuracy of checkpoints alone and averaged (an ensemble), to choose distillation teachers.

Usage:
    python benchmarks/ensemble.py --checkpoint A.pt --checkpoint B.pt [--split PublicTest]

Each checkpoint's flip-averaged probabilities (EMA weights, as `emoar train` selects and
exports them) on the split, then every combination of two or more averaged. Selection happens on
PublicTest (the default); PrivateTest is for reporting only.
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
    a = ap.parse_args()
    import torch

    from emoar.metrics import classification_report
    from emoar.train.data import load_fer2013_csv
    from emoar.train.loop import load_checkpoint
    from emoar.train.predict import predict_logits

    torch.set_num_threads(1)
    ds = load_fer2013_csv(a.data)[a.split]
    probs = {}
    for spec in a.checkpoint:
        name, _, path = spec.rpartition("=")
        name = name or os.path.basename(os.path.dirname(path)) or path
        model, meta = load_checkpoint(path)
        lg = np.asarray(predict_logits(model, ds.images, meta["mean"], meta["std"], tta=True))
        probs[name] = torch.softmax(torch.from_numpy(lg), 1).numpy()
    rows = []
    names = list(probs)
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            p = np.mean([probs[n] for n in combo], axis=0)
            rep = classification_report(ds.labels, p, ds.label_names)
            rows.append(
                [" + ".join(combo), f"{rep['accuracy']:.4f}", f"{rep['macro_f1']:.4f}", f"{rep['ece']:.3f}"]
            )
    print(f"\n{machine()}; FER2013 {a.split} ({len(ds)} faces); flip TTA; probabilities averaged\n")
    print(table(["checkpoints", "accuracy", "macro-F1", "ECE"], rows))


if __name__ == "__main__":
    main()
