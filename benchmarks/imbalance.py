"""Class-imbalance options compared on the same budget: no balancing, a class-weighted loss,
re-sampling, and merging disgust into angry (6 classes).

Each option fine-tunes the same starting checkpoint for the same number of epochs with the
same recipe (only ``--balance`` differs), then is measured on FER2013 PrivateTest. The 7-class
options are also scored with disgust folded into angry, so all four rows share one 6-class
column. Disgust is 1.5% of the training set.

``--extra synth.npz`` (faces from ``emoar gan synth``) adds options named ``<balance>+synth``:
the same fine-tuning with those synthetic faces appended to the training split. Whether to keep
them is decided on PublicTest (its disgust F1 and macro-F1 columns); PrivateTest is reported.

Usage: python benchmarks/imbalance.py --init runs/resnet_fer_v2/best.pt [--epochs 3] [--out runs/imbalance]
       [--extra runs/synth_disgust.npz --options none,none+synth,weighted,weighted+synth]
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


def _reports(model, meta, ds):  # -> (7-class report or None, 6-class report)
    from emoar.metrics import classification_report
    from emoar.train.loop import predict_logits

    labels = tuple(meta["labels"])
    logits = np.asarray(predict_logits(model.float(), ds.images, meta["mean"], meta["std"]))
    e = np.exp(logits - logits.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    y = ds.labels
    if len(labels) == 6:  # merge6: the model's own 6 classes
        y, _, _ = _fold(tuple(ds.label_names), y, np.zeros((len(y), 7)))
        return None, classification_report(y, probs, labels)
    y6, p6, l6 = _fold(labels, y, probs)
    return classification_report(y, probs, labels), classification_report(y6, p6, l6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True, help="checkpoint every option starts from")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/imbalance")
    ap.add_argument("--options", default=",".join(OPTIONS))
    ap.add_argument("--extra", default="", help="synthetic faces (.npz) for the '<balance>+synth' options")
    a = ap.parse_args()
    for opt in a.options.split(","):
        base, _, synth = opt.partition("+")
        if base not in OPTIONS or synth not in ("", "synth"):
            ap.error(f"unknown option {opt!r}: use {', '.join(OPTIONS)}, each optionally with +synth")
        if synth and not a.extra:
            ap.error(f"option {opt!r} needs --extra FILE.npz")

    from emoar.train.data import load_fer2013_csv
    from emoar.train.loop import TrainConfig, load_checkpoint, train

    splits = load_fer2013_csv(FER_CSV)
    test, public = splits["PrivateTest"], splits["PublicTest"]
    rows = []
    for opt in a.options.split(","):
        out = os.path.join(a.out, opt)
        res_file = os.path.join(out, "results.json")
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
                balance=opt.partition("+")[0],
                extra=a.extra if opt.endswith("+synth") else "",
                init=a.init,
                threads=a.threads,
            )
            best = train(cfg, progress=False)
            model, meta = load_checkpoint(best)

            rep7, rep6 = _reports(model, meta, test)
            pub7, pub6 = _reports(model, meta, public)
            res = {
                "option": opt,
                "acc7": rep7["accuracy"] if rep7 else None,
                "f1_7": rep7["macro_f1"] if rep7 else None,
                "disgust_recall": rep7["per_class"]["disgust"]["recall"] if rep7 else None,
                "disgust_f1": rep7["per_class"]["disgust"]["f1"] if rep7 else None,
                "acc6": rep6["accuracy"],
                "f1_6": rep6["macro_f1"],
                "public_f1_7": pub7["macro_f1"] if pub7 else None,
                "public_disgust_f1": pub7["per_class"]["disgust"]["f1"] if pub7 else None,
                "public_f1_6": pub6["macro_f1"],
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
                "-" if res["public_disgust_f1"] is None else f"{res['public_disgust_f1']:.3f}",
                "-" if res["public_f1_7"] is None else f"{res['public_f1_7']:.4f}",
            ]
        )
    print(
        f"# Imbalance options: {a.epochs} epochs from {a.init}, cosine lr {a.lr}, FER+ soft labels 0.25"
        f" (command: python benchmarks/imbalance.py --init {a.init} --epochs {a.epochs}"
        + (f" --extra {a.extra}" if a.extra else "")
        + f" --options {a.options})"
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
                "PublicTest disgust F1",
                "PublicTest macro-F1 (7)",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
