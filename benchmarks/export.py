"""Export formats side by side: size, FER2013 PrivateTest accuracy, CPU latency, parity.

Usage: python benchmarks/export.py --checkpoint runs/x/best.pt [--data PATH] [--out DIR] [--runs N] [--json]

Exports the checkpoint the way ``emoar export`` does (same faces, same OOD fit, same
quantization: the functions the CLI calls) to ONNX fp32, ONNX with fp16-stored weights
(``--weights fp16``, what ships), ONNX int8 and, when the LiteRT
converter is installed (``pip install 'emoar[tflite]'``), TF Lite fp32 plus an *experimental*
TF Lite int8 (ai-edge-quantizer, installed with the converter; not offered by the CLI), and
prints a markdown table per format:

* file size;
* accuracy and macro-F1 on all 3,589 PrivateTest faces;
* ms/face: median latency of one face (batch 1) with 1 thread, model call only (best of
  several rounds, the rounds interleaved across formats so load drifts hit them alike);
* parity with the PyTorch module the files were made from: max |Δprobs|, max |Δrmd| (OOD
  distance), top-1 agreement and mean |Δood_score| (the OOD score in [0, 1] the runtime
  reports, from each file's own quantiles).

The PyTorch row is the reference (fp32 module, ``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, machine, table  # noqa: E402

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


def onnx_runner(path: Path) -> Runner:
    """probs/rmd/ood of an ONNX file on onnxruntime, 1 thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = 1, 1, 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        probs, rmd, ood = sess.run(["probs", "rmd", "ood"], {"input": x})
        return {"probs": probs, "rmd": rmd, "ood": ood}

    return run


def tflite_runner(path: Path) -> Runner:
    """probs/rmd/ood of a .tflite file on ai-edge-litert (XNNPack), 1 thread."""
    from ai_edge_litert.interpreter import Interpreter

    sig = Interpreter(model_path=str(path), num_threads=1).get_signature_runner()

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        out = sig(input=x)
        return {"probs": out["probs"], "rmd": out["rmd"], "ood": out["ood"]}

    return run


def torch_runner(module: Any) -> Runner:
    """probs/rmd/ood of the PyTorch module, 1 thread."""
    import torch

    torch.set_num_threads(1)

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            probs, rmd, ood, _ = module(torch.from_numpy(x))
        return {"probs": probs.numpy(), "rmd": rmd.numpy(), "ood": ood.numpy()}

    return run


def run_all(run: Runner, x: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    outs = [run(x[i : i + batch]) for i in range(0, len(x), batch)]
    return {k: np.concatenate([o[k] for o in outs]) for k in ("probs", "rmd", "ood")}


def latencies(runners: dict[str, Runner], x: np.ndarray, runs: int, rounds: int = 5) -> dict[str, float]:
    """Median ms of one face, best of ``rounds`` interleaved rounds."""
    for run in runners.values():  # warm-up
        for i in range(30):
            run(x[i : i + 1])
    best = {k: float("inf") for k in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            ts = []
            for i in range(runs):
                face = x[i % len(x) : i % len(x) + 1]
                t0 = time.perf_counter()
                run(face)
                ts.append((time.perf_counter() - t0) * 1e3)
            best[name] = min(best[name], statistics.median(ts))
    return best


def ood_scores(rmd: np.ndarray, quantiles: list[float]) -> np.ndarray:
    q = np.asarray(quantiles, dtype=np.float64)
    return np.interp(rmd, q, np.linspace(0.0, 1.0, len(q)), left=0.0, right=1.0)


def quantize_tflite_int8(fp32: Path, out: Path, faces: np.ndarray, mean: float, std: float) -> Path:
    """Experimental: static int8 (weights per channel, activations per tensor) of the backbone
    ops with ai-edge-quantizer, MinMax-calibrated on ``faces`` in batches of 128 (per-face
    batches give ranges that clip). FC/softmax/OOD ops stay float."""
    from ai_edge_quantizer import qtyping, quantizer

    from emoar.preprocess import preprocess

    qt = quantizer.Quantizer(str(fp32))
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "PAD", "MAX_POOL_2D"):
        qt.add_static_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName(op),
            activation_num_bits=8,
            weight_num_bits=8,
        )
    data = [{"input": preprocess(faces[i : i + 128], mean, std)} for i in range(0, len(faces), 128)]
    calib = qt.calibrate({"serving_default": data}, num_threads=1)
    qt.quantize(calib, enable_progress_bar=False, enable_progress_report=False).export_model(
        str(out), overwrite=True
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="best.pt/last.pt written by 'emoar train'")
    ap.add_argument("--data", default=None, help="training data (default: the checkpoint's)")
    ap.add_argument("--out", default=None, help="keep the exported files in this folder")
    ap.add_argument("--runs", type=int, default=300, help="timed single-face calls per round")
    ap.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = ap.parse_args()

    from emoar.metrics import classification_report
    from emoar.preprocess import preprocess
    from emoar.train.data import load_fer2013_csv
    from emoar.train.export import read_tflite_metadata, save_onnx, save_tflite
    from emoar.train.export_cli import load_export_inputs, quantize_int8

    out = Path(args.out or tempfile.mkdtemp(prefix="emoar-export-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    inputs = load_export_inputs(args.checkpoint, args.data)
    dep = inputs.prepare(args.checkpoint, name="bench")
    fit_s = time.perf_counter() - t0
    files: dict[str, Path] = {}
    build_s: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Path]) -> None:
        t = time.perf_counter()
        files[name] = fn()
        build_s[name] = time.perf_counter() - t

    timed("onnx fp32", lambda: save_onnx(dep, out / "model.onnx"))
    timed("onnx fp16 weights", lambda: save_onnx(dep, out / "model.fp16.onnx", weights="fp16"))
    timed(
        "onnx int8",
        lambda: quantize_int8(
            files["onnx fp32"],
            out / "model.int8.onnx",
            inputs.quant_calib_images,
            dep.mean,
            dep.std,
            ood_calib_images=inputs.ood_calib_images,
        ),
    )
    has_converter = importlib.util.find_spec("litert_torch") is not None
    if has_converter:
        timed("tflite fp32", lambda: save_tflite(dep, out / "model.tflite"))
        timed(
            "tflite int8 (exp.)",
            lambda: quantize_tflite_int8(
                files["tflite fp32"], out / "model.int8.tflite", inputs.quant_calib_images, dep.mean, dep.std
            ),
        )

    test = load_fer2013_csv(FER_CSV)["PrivateTest"]
    labels = list(dep.meta.labels)
    x = preprocess(test.images, dep.mean, dep.std)
    runners: dict[str, Runner] = {"pytorch fp32": torch_runner(dep.module)}
    quantiles: dict[str, list[float]] = {"pytorch fp32": list(dep.meta.ood_quantiles)}
    for name, path in files.items():
        if path.suffix == ".onnx":
            import onnx

            meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
            runners[name] = onnx_runner(path)
        else:
            # ai-edge-quantizer keeps the flatbuffer's metadata (the fp32 quantiles)
            meta = read_tflite_metadata(path)
            runners[name] = tflite_runner(path)
        quantiles[name] = json.loads(meta["emoar.ood_quantiles"])
    outs = {name: run_all(run, x) for name, run in runners.items()}
    ms = latencies(runners, x, args.runs)
    ref = outs["pytorch fp32"]
    ref_score = ood_scores(ref["ood"], quantiles["pytorch fp32"])
    rows: list[dict[str, Any]] = []
    for name, o in outs.items():
        rep = classification_report(test.labels, o["probs"], labels)
        path = files.get(name)
        rows.append(
            {
                "format": name,
                "size_kb": round(path.stat().st_size / 1024, 1) if path else None,
                "accuracy": rep["accuracy"],
                "macro_f1": rep["macro_f1"],
                "ms_per_face_1thread": ms[name],
                "max_abs_dprobs": float(np.abs(o["probs"] - ref["probs"]).max()),
                "max_abs_drmd": float(np.abs(o["rmd"] - ref["rmd"]).max()),
                "top1_agreement": float((o["probs"].argmax(1) == ref["probs"].argmax(1)).mean()),
                "mean_abs_dood_score": float(
                    np.abs(ood_scores(o["ood"], quantiles[name]) - ref_score).mean()
                ),
                "export_s": build_s.get(name),
            }
        )
    print(f"# Export formats: {Path(args.checkpoint).name} ({dep.meta.arch})\n")
    print(f"Machine: {machine()}. FER2013 PrivateTest, {len(test)} faces. Files in {out}.")
    print(f"OOD fit + PyTorch load: {fit_s:.1f} s (shared by every format).\n")
    headers = [
        "format",
        "size (KB)",
        "accuracy",
        "macro-F1",
        "ms/face (1 thr)",
        "max |Δprobs|",
        "max |Δrmd|",
        "top-1 agree",
        "mean |Δood_score|",
        "export (s)",
    ]
    print(
        table(
            headers,
            [
                [
                    r["format"],
                    "-" if r["size_kb"] is None else f"{r['size_kb']:.0f}",
                    f"{r['accuracy']:.4f}",
                    f"{r['macro_f1']:.4f}",
                    f"{r['ms_per_face_1thread']:.3f}",
                    f"{r['max_abs_dprobs']:.2e}",
                    f"{r['max_abs_drmd']:.2e}",
                    f"{r['top1_agreement']:.4f}",
                    f"{r['mean_abs_dood_score']:.4f}",
                    "-" if r["export_s"] is None else f"{r['export_s']:.1f}",
                ]
                for r in rows
            ],
        )
    )
    if not has_converter:
        print("\nTF Lite rows skipped: the converter is not installed (pip install 'emoar[tflite]').")
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
