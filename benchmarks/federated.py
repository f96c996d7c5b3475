"""Federated learning benchmark (issue 15): a public-slice starting model, then 10 clients.

A model is trained centrally on a 20 % "public" slice of FER2013 Training; the other 80 % is
split across ``--clients`` clients as private data. Rows at equal total local epochs
(``rounds x local_epochs`` passes over the private 80 %): the public model alone (lower bound),
centralised training on the 80 % (upper bound), FedAvg / FedProx / FedBN at IID, Dirichlet
alpha=1.0 and alpha=0.1, and DP-FedAvg at two noise levels with their epsilon. Scored on
PrivateTest (never tuned on). Prints a markdown table.

    .venv/bin/python benchmarks/federated.py --scale small          # ~90 min on 1 CPU thread
    .venv/bin/python benchmarks/federated.py --scale full --cpus 8  # all rows, resnet_fer
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoar.train.data import load_fer2013_csv
from emoar.train.federated.apps import FLConfig, read_init
from emoar.train.federated.simulate import simulate
from emoar.train.federated.task import evaluate_model, train_local
from emoar.train.nets import create_model

SCALES: dict[str, dict[str, Any]] = {
    # rows of Training used, arch, rounds, public pretraining epochs, PublicTest rows for the
    # per-round server evaluation, client optimizer and learning rate (also the public model's)
    "tiny": dict(
        rows=1500, arch="cnn_small", rounds=2, pre_epochs=2, eval_limit=300, optimizer="adamw", lr=1e-3
    ),
    # SGD (lr 0.01-0.1) left cnn_small near the majority-class rate after 4 epochs on 4,800-5,740
    # faces; AdamW reached 0.34 on 1,000 PrivateTest faces after 3 epochs on 5,740
    "small": dict(
        rows=12000, arch="cnn_small", rounds=5, pre_epochs=10, eval_limit=500, optimizer="adamw", lr=1e-3
    ),
    "full": dict(rows=0, arch="resnet_fer", rounds=20, pre_epochs=15, eval_limit=0, optimizer="sgd", lr=0.01),
}


def _save_ckpt(model: torch.nn.Module, arch: str, mean: float, std: float, path: Path, data: str) -> None:
    from emoar.labels import FER2013_LABELS

    torch.save(
        {
            "meta": {
                "arch": arch,
                "labels": list(FER2013_LABELS),
                "input_size": [48, 48],
                "mean": mean,
                "std": std,
                "train_source": "benchmark public slice",
                "train_n": 0,
            },
            "model": model.state_dict(),
            "ema": None,
            "history": [],
            "config": {"data": data, "task": "fer2013", "limit": 0},
        },
        path,
    )


def run_dir(out: Path, name: str) -> Path:
    """The simulation folder of a federated row."""
    return out / name.replace(" ", "_").replace("=", "")


def print_table(results: list[dict[str, Any]], out: Path, header: str) -> None:
    """The markdown table; the clients' own validation accuracy (their 10 % of rows, with their
    own BatchNorm under FedBN) comes from each run's ``history.json``."""
    print(f"\n{header}\n")
    print(
        "| run | accuracy | macro-F1 | clients' own val acc | rounds | wall time (s) "
        "| bytes sent / client / round | epsilon |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        eps = r["epsilon"]
        eps_s = f"{eps:.3g}" if isinstance(eps, float) else str(eps)
        hist_path = run_dir(out, str(r["row"])) / "history.json"
        val = "-"
        if r["rounds"] != "-" and hist_path.is_file():
            v = json.loads(hist_path.read_text())[-1].get("client_val_acc")
            val = f"{v:.4f}" if isinstance(v, float) else "-"
        print(
            f"| {r['row']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {val} | {r['rounds']} | "
            f"{r['wall_s']:.0f} | {r['bytes_per_client_round']} | {eps_s} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz")
    )
    ap.add_argument("--scale", choices=sorted(SCALES), default="small")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--cpus", type=int, default=1, help="clients training at once (one thread each)")
    ap.add_argument("--out", default="/tmp/emoar-fl-bench")
    ap.add_argument("--dp-noise", default="0.1,0.5", help="two noise multipliers for DP-FedAvg")
    ap.add_argument("--dp-clip", type=float, default=1.0)
    ap.add_argument("--only", default="", help="comma-separated row names to run (default: all)")
    ap.add_argument(
        "--report", action="store_true", help="print the table of the runs already in --out (no training)"
    )
    args = ap.parse_args(argv)
    if args.report:
        out = Path(args.out)
        header = (out / "header.txt").read_text() if (out / "header.txt").is_file() else ""
        print_table(json.loads((out / "results.json").read_text()), out, header)
        return 0
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)
    sc = SCALES[args.scale]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_fer2013_csv(args.data)
    tr_all, test = splits["Training"], splits["PrivateTest"]
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(tr_all)) if not sc["rows"] else rng.permutation(len(tr_all))[: sc["rows"]]
    n_pub = len(rows) // 5
    pub_rows, priv_rows = np.sort(rows[:n_pub]), np.sort(rows[n_pub:])
    np.save(out / "private_rows.npy", priv_rows)
    pub, priv = tr_all.subset(pub_rows), tr_all.subset(priv_rows)
    x = pub.images.astype(np.float32) / 255.0
    mean, std = float(x.mean()), float(x.std())
    arch, rounds = sc["arch"], sc["rounds"]
    only = {s.lower() for s in args.only.split(",") if s}
    results: list[dict[str, object]] = []

    def record(
        name: str, model: torch.nn.Module, rounds_: object, wall: float, nbytes: object, eps: object
    ) -> None:
        m = evaluate_model(model, test, mean, std)
        row = {
            "row": name,
            "accuracy": m["accuracy"],
            "macro_f1": m["macro_f1"],
            "rounds": rounds_,
            "wall_s": wall,
            "bytes_per_client_round": nbytes,
            "epsilon": eps,
        }
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))

    # lower bound: the public-slice model
    init = out / "public.pt"
    t0 = time.time()
    torch.manual_seed(0)
    model = create_model(arch)
    train_local(
        model, pub, mean, std, epochs=sc["pre_epochs"], lr=sc["lr"], optimizer=sc["optimizer"], seed=0
    )
    _save_ckpt(model, arch, mean, std, init, args.data)
    record(f"public 20% only ({sc['pre_epochs']} epochs)", model, "-", time.time() - t0, "-", "-")

    # upper bound: the public model trained centrally on the pooled 80 % for `rounds` epochs
    if not only or "central" in only:
        t0 = time.time()
        central, _ = read_init(str(init), arch)
        train_local(central, priv, mean, std, epochs=rounds, lr=sc["lr"], optimizer=sc["optimizer"], seed=1)
        record(f"centralised on 80% ({rounds} epochs)", central, "-", time.time() - t0, "-", "-")

    base = FLConfig(
        data=args.data,
        clients=args.clients,
        rounds=rounds,
        init=str(init),
        arch=arch,
        rows=str(out / "private_rows.npy"),
        eval_limit=sc["eval_limit"],
        optimizer=sc["optimizer"],
        lr=sc["lr"],
    )
    runs: list[tuple[str, FLConfig]] = []
    for alpha, aname in ((0.0, "IID"), (1.0, "alpha=1.0"), (0.1, "alpha=0.1")):
        for strat in ("fedavg", "fedprox", "fedbn"):
            runs.append((f"{strat} {aname}", replace(base, strategy=strat, alpha=alpha)))
    for z in [float(v) for v in args.dp_noise.split(",")]:
        runs.append(
            (f"DP-fedavg IID z={z:g} C={args.dp_clip:g}", replace(base, dp_noise=z, dp_clip=args.dp_clip))
        )
    for name, cfg in runs:
        key = name.split()[0].lower()
        if only and key not in only and name.lower() not in only:
            continue
        cfg = replace(cfg, out=str(run_dir(out, name)))
        t0 = time.time()
        last = simulate(cfg, cpus=args.cpus)
        wall = time.time() - t0
        model, _ = read_init(str(last), arch)
        hist = json.loads((Path(cfg.out) / "history.json").read_text())
        record(
            name,
            model,
            len(hist),
            wall,
            int(hist[-1]["bytes_sent_per_client"] or 0),
            hist[-1]["epsilon"] if cfg.dp else "-",
        )

    header = (
        f"FER2013 PrivateTest ({len(test)} faces); {arch}; {len(pub)} public / {len(priv)} private "
        f"Training rows over {args.clients} clients; {rounds} rounds x 1 local epoch; client {sc['optimizer']} "
        f"lr {sc['lr']:g}, batch {base.batch_size}; DP delta {base.dp_delta:g}"
    )
    (out / "header.txt").write_text(header)
    print_table(results, out, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
