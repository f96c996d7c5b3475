"""Architectures side by side: parameters, MACs per face, CPU latency per face (ONNX Runtime,
1 thread), and — for trained checkpoints given with --checkpoint — FER2013 PrivateTest
accuracy and macro-F1 (flip TTA off).

Usage: python benchmarks/architectures.py [--checkpoint RECIPE=runs/x/best.pt ...]
       python benchmarks/architectures.py --train-cost   # CPU training cost per architecture

``--train-cost`` prints, for each architecture, the median wall time of one training step on a
128-face batch (forward, backward and an AdamW step, bf16 autocast where the CPU has it and
channels-last, as ``emoar train`` runs; 1 thread) and what that makes one FER2013 epoch
(28,709 faces, 225 steps), without data loading or augmentation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, machine, table  # noqa: E402


def count_macs(model, x) -> int:  # type: ignore[no-untyped-def]
    """Multiply-accumulates of Conv2d/Linear/attention projections for one forward pass."""
    import torch
    from torch import nn

    total = 0

    def conv_hook(m: nn.Conv2d, i: tuple, o: torch.Tensor) -> None:
        nonlocal total
        total += int(
            o.numel() // o.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        )

    def lin_hook(m: nn.Linear, i: tuple, o: torch.Tensor) -> None:
        nonlocal total
        total += int(o.numel() // o.shape[0] * m.in_features)

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, nn.MultiheadAttention):
            # in/out projections run through F.linear (no Linear module hooks): count them here
            def mha_hook(mod: nn.MultiheadAttention, i: tuple, o: tuple) -> None:
                nonlocal total
                n_tok, d = i[0].shape[1], mod.embed_dim
                total += 4 * n_tok * d * d + 2 * n_tok * n_tok * d

            hooks.append(m.register_forward_hook(mha_hook))
    with torch.no_grad():
        model.eval()(x)
    for h in hooks:
        h.remove()
    return total


def onnx_latency_ms(model, reps: int = 200) -> float:  # type: ignore[no-untyped-def]
    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        prog = torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 1, 48, 48),),
            input_names=["input"],
            dynamo=True,
            external_data=False,
            verbose=False,
            opset_version=18,
        )
        prog.save(path, external_data=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).normal(size=(1, 1, 48, 48)).astype(np.float32)
        for _ in range(20):
            s.run(None, {"input": x})
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            s.run(None, {"input": x})
            ts.append((time.perf_counter() - t) * 1e3)
        return statistics.median(ts)


def train_step_seconds(model, steps: int = 12, batch: int = 128) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of one training step (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    model.train().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, 48, 48, generator=gen).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,), generator=gen)
    from emoar.train.loop import cpu_runs_bf16

    bf16 = cpu_runs_bf16()  # as emoar train: only where oneDNN runs it (emulated on AVX2 CPUs)
    ts = []
    for i in range(steps + 2):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:  # the first steps allocate
            ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def train_cost() -> None:
    from emoar.train.nets import create_model, list_models

    rows = []
    for arch in list_models():
        sec = train_step_seconds(create_model(arch))
        rows.append([arch, f"{sec:.2f}", f"{sec * 225 / 60:.1f}"])
    print(f"\n# CPU training cost, 128-face batches, 1 thread; {machine()}\n")
    print(table(["arch", "s / training step", "min / FER2013 epoch (225 steps)"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", default=[], metavar="RECIPE=PATH")
    ap.add_argument("--train-cost", action="store_true", help="print the CPU training cost table instead")
    a = ap.parse_args()
    import logging

    import torch

    logging.disable(logging.INFO)
    torch.set_num_threads(1)
    if a.train_cost:
        train_cost()
        return
    from emoar.train.nets import create_model, list_models

    rows = []
    for arch in list_models():
        m = create_model(arch)
        params = sum(p.numel() for p in m.parameters())
        macs = count_macs(m, torch.zeros(1, 1, 48, 48))
        rows.append(
            [
                arch,
                "(untrained)",
                f"{params / 1e6:.2f} M",
                f"{macs / 1e6:.0f} M",
                f"{onnx_latency_ms(m):.2f}",
                "-",
                "-",
            ]
        )
    if a.checkpoint:
        from emoar.metrics import classification_report
        from emoar.train.data import load_fer2013_csv
        from emoar.train.evaluate import predict_probs
        from emoar.train.loop import load_checkpoint

        test = load_fer2013_csv(FER_CSV)["PrivateTest"]
        for spec in a.checkpoint:
            recipe, path = spec.split("=", 1)
            net, meta = load_checkpoint(path)
            probs, labels, _ = predict_probs(path, test.images)
            rep = classification_report(test.labels, probs, labels)
            params = sum(p.numel() for p in net.parameters())
            macs = count_macs(net.float(), torch.zeros(1, 1, 48, 48))
            rows.append(
                [
                    meta["arch"],
                    recipe,
                    f"{params / 1e6:.2f} M",
                    f"{macs / 1e6:.0f} M",
                    f"{onnx_latency_ms(net.float()):.2f}",
                    f"{rep['accuracy']:.4f}",
                    f"{rep['macro_f1']:.4f}",
                ]
            )
    cmd = "python benchmarks/architectures.py" + "".join(f" --checkpoint {c}" for c in a.checkpoint)
    print(f"# architectures (command: {cmd})\n# machine: {machine()}\n")
    print(
        table(
            [
                "arch",
                "recipe",
                "params",
                "MACs/face",
                "ms/face (ONNX, 1 thread)",
                "PrivateTest acc",
                "macro-F1",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
