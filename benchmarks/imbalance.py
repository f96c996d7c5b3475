"""Class-imbalance options compared on the same budget: no balancing, a class-weighted loss,
re-sampling, and merging disgust into angry (6 classes).

Each option fine-tunes the same starting checkpoint for the same number of epochs with the
same recipe (only ``--balance`` differs), then is measured on FER2013 PrivateTest. The 7-class
options are also scored with disgust folded into angry, so all four rows share one 6-class
column. Disgust is 1.5% of the training set.

Usage: python benchmarks/imbalance.py --init runs/resnet_fer_v2/best.pt [--epochs 3] [--out runs/imbalance]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, machine, table  # noqa: E402

OPTIONS = ("none", "weighted", "sampler", "merge6")


def _fold(
    labels: tuple[str, ...], y: np.ndarray, probs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Merge disgust into angry in labels and probabilities."""
    if "disgust" not in labels:
        return y, probs, labels
    keep = tuple(n for n in labels if n != "disgust")
    remap = np.array([keep.index("angry" if n == "disgust" else n) for n in labels])
    p6 = np.zeros((len(probs), len(keep)), probs.dtype)
    for i, j in enumerate(remap):
        p6[:, j] += probs[:, i]
    return remap[y], p6, keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True, help="checkpoint every option starts from")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/imbalance")
    ap.add_argument("--options", default=",".join(OPTIONS))
    a = ap.parse_args()

    from emoar.metrics import classification_report
    from emoar.train.data import load_fer2013_csv
    from emoar.train.loop import TrainConfig, load_checkpoint, predict_logits, train

    test = load_fer2013_csv(FER_CSV)["PrivateTest"]
    rows = []
    for opt in a.options.split(","):
        out = os.path.join(a.out, opt)
        res_file = os.path.join(out, "privatetest.json")
        if os.path.isfile(res_file):  # resumable: a finished option is not re-trained
            with open(res_file) as f:
                res = json.load(f)
        else:
            t0 = time.time()
            cfg = TrainConfig(
                data=FER_CSV,
                out=out,
                arch="resnet_fer",
                epochs=a.epochs,
                lr=a.lr,
                schedule="cosine",
                soft_labels=0.25,
                balance=opt,
                init=a.init,
                threads=a.threads,
            )
            best = train(cfg, progress=False)
            model, meta = load_checkpoint(best)
            labels = tuple(meta["labels"])
            logits = np.asarray(predict_logits(model.float(), test.images, meta["mean"], meta["std"]))
            e = np.exp(logits - logits.max(1, keepdims=True))
            probs = e / e.sum(1, keepdims=True)
            y = test.labels
            if len(labels) == 6:  # merge6: the model's own 6 classes
                y, _, _ = _fold(tuple(test.label_names), y, np.zeros((len(y), 7)))
                rep7 = None
                rep6 = classification_report(y, probs, labels)
            else:
                rep7 = classification_report(y, probs, labels)
                y6, p6, l6 = _fold(labels, y, probs)
                rep6 = classification_report(y6, p6, l6)
            res = {
                "option": opt,
                "acc7": rep7["accuracy"] if rep7 else None,
                "f1_7": rep7["macro_f1"] if rep7 else None,
                "disgust_recall": rep7["per_class"]["disgust"]["recall"] if rep7 else None,
                "disgust_f1": rep7["per_class"]["disgust"]["f1"] if rep7 else None,
                "acc6": rep6["accuracy"],
                "f1_6": rep6["macro_f1"],
                "minutes": round((time.time() - t0) / 60, 1),
            }
            with open(res_file, "w") as f:
                json.dump(res, f)
        rows.append(
            [
                res["option"],
                "-" if res["acc7"] is None else f"{res['acc7']:.4f}",
                "-" if res["f1_7"] is None else f"{res['f1_7']:.4f}",
                "-" if res["disgust_recall"] is None else f"{res['disgust_recall']:.3f}",
                "-" if res["disgust_f1"] is None else f"{res['disgust_f1']:.3f}",
                f"{res['acc6']:.4f}",
                f"{res['f1_6']:.4f}",
            ]
        )
    print(
        f"# Imbalance options: {a.epochs} epochs from {a.init}, cosine lr {a.lr}, FER+ soft labels 0.25"
        f" (command: python benchmarks/imbalance.py --init {a.init} --epochs {a.epochs})"
    )
    print(f"# machine: {machine()}; FER2013 PrivateTest ({len(test)} faces)\n")
    print(
        table(
            [
                "--balance",
                "acc (7)",
                "macro-F1 (7)",
                "disgust recall",
                "disgust F1",
                "acc (6)",
                "macro-F1 (6)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
