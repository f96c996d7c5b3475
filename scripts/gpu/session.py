"""One time-boxed training session on a borrowed GPU: teachers, then students distilled from them.

Phase 1 trains the large members (``vgg_fer``, ``resnet_fer_m``) and ``resnet_fer`` members from
scratch, for FER2013 and for FER+, all at once on the one GPU, each on the ``budget`` schedule
(cosine over wall-clock minutes, so every run ends annealed however fast the machine is).
Phase 2 distils each task's phase-1 ensemble online into ``resnet_fer`` students (the teachers see
the student's augmented, mixed batch: "function matching"), warm-started from the shipped model
and from the phase-1 members. Every result is slimmed to fp16 EMA weights and written to ``--out``
as it is ready, so a phase that runs out of time still leaves the earlier one's checkpoints.

On the GPU machine (``carry`` the ``.gpu`` folder that holds ``fer_pack.py``'s output)::

    python scripts/gpu/session.py --pack .gpu/fer_tp.npz --init .gpu/shipped_fp16.pt --out $OUT

The same script on this CPU, tiny (``--device cpu --limit 256 --p1 0.1 --p2 0.1``), is how it
was checked before it was sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

# name -> (phase, settings); the FER2013 recipe of the shipped model (label smoothing 0.1,
# soft FER+ labels 0.25, sqrt class weights, EMA 0.999) with the seeds' fmix/cutmix
_FER13 = {"task": "fer2013", "soft_labels": 0.25, "balance": "weighted"}
_FERP = {"task": "ferplus", "soft_labels": 1.0, "balance": "none"}
RUNS: dict[str, tuple[int, dict[str, Any]]] = {
    "vgg_fer13": (1, {**_FER13, "arch": "vgg_fer", "lr": 2e-3, "weight_decay": 5e-3, "mix": "fmix", "seed": 101}),
    "resm_fer13": (1, {**_FER13, "arch": "resnet_fer_m", "lr": 2e-3, "weight_decay": 5e-3, "mix": "fmix", "seed": 102}),
    "res_fer13_fmix": (1, {**_FER13, "arch": "resnet_fer", "lr": 3e-3, "weight_decay": 5e-4, "mix": "fmix", "seed": 103}),
    "res_fer13_cutmix": (1, {**_FER13, "arch": "resnet_fer", "lr": 3e-3, "weight_decay": 5e-3, "mix": "cutmix", "seed": 104}),
    "resm_ferplus": (1, {**_FERP, "arch": "resnet_fer_m", "lr": 2e-3, "weight_decay": 5e-3, "mix": "fmix", "seed": 105}),
    "vgg_ferplus": (1, {**_FERP, "arch": "vgg_fer", "lr": 2e-3, "weight_decay": 5e-3, "mix": "none", "seed": 106}),
    "res_ferplus": (1, {**_FERP, "arch": "resnet_fer", "lr": 3e-3, "weight_decay": 5e-4, "mix": "fmix", "seed": 107}),
    # students: online distillation from their task's phase-1 runs
    "st_fer13_shipped": (2, {**_FER13, "arch": "resnet_fer", "lr": 5e-4, "weight_decay": 5e-4, "mix": "fmix",
                             "seed": 201, "init": "@shipped", "teacher": "vgg_fer13,resm_fer13,res_fer13_fmix,res_fer13_cutmix"}),
    "st_fer13_member": (2, {**_FER13, "arch": "resnet_fer", "lr": 1e-3, "weight_decay": 5e-4, "mix": "cutmix",
                            "seed": 202, "init": "res_fer13_fmix", "teacher": "vgg_fer13,resm_fer13,res_fer13_fmix,res_fer13_cutmix"}),
    "st_ferplus": (2, {**_FERP, "arch": "resnet_fer", "lr": 1e-3, "weight_decay": 5e-4, "mix": "fmix",
                       "seed": 203, "init": "res_ferplus", "teacher": "resm_ferplus,vgg_ferplus,res_ferplus"}),
    # a second, shorter session (--phases 3): warm restarts of the best phase-1 members (their
    # checkpoints carried beside the pack) and two more vgg_fer from scratch, four at a time
    "vgg_fer13_c2": (3, {**_FER13, "arch": "vgg_fer", "lr": 1e-3, "weight_decay": 5e-3, "mix": "fmix",
                         "seed": 301, "init": "@file:vgg_fer13.pt"}),
    "vgg_ferplus_c2": (3, {**_FERP, "arch": "vgg_fer", "lr": 1e-3, "weight_decay": 5e-3, "mix": "none",
                           "seed": 302, "init": "@file:vgg_ferplus.pt"}),
    "vgg_fer13_cutmix": (3, {**_FER13, "arch": "vgg_fer", "lr": 2e-3, "weight_decay": 5e-3, "mix": "cutmix",
                             "seed": 303}),
    "vgg_ferplus_fmix": (3, {**_FERP, "arch": "vgg_fer", "lr": 2e-3, "weight_decay": 5e-3, "mix": "fmix",
                             "seed": 304}),
}  # fmt: skip
# what comes back (at most 8 files): the large members alone, the small ones bundled
LARGE = ("vgg_fer13", "resm_fer13", "resm_ferplus", "vgg_ferplus")
LARGE3 = ("vgg_fer13_c2", "vgg_ferplus_c2", "vgg_fer13_cutmix", "vgg_ferplus_fmix")
BUNDLES = {"p1_small.tar": ("res_fer13_fmix", "res_fer13_cutmix", "res_ferplus"),
           "p2_students.tar": ("st_fer13_shipped", "st_fer13_member", "st_ferplus")}  # fmt: skip

log = logging.getLogger("gpu-session")


def slim(best: Path, dst: Path) -> None:
    """fp16 EMA weights + meta/config/history: what ``load_checkpoint`` needs, a quarter the size."""
    import torch

    ck = torch.load(best, map_location="cpu", weights_only=False)
    sd = ck["ema"] if ck.get("ema") is not None else ck["model"]
    sd = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    torch.save(
        {"meta": ck["meta"], "config": ck["config"], "history": ck["history"], "model": sd, "ema": None}, dst
    )


def one(cfg_json: str) -> int:
    """Run one training (a child process of the session)."""
    from emoar.train.augment import AugmentConfig
    from emoar.train.loop import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    d = json.loads(cfg_json)
    d["augment"] = AugmentConfig(**d.get("augment", {}))
    train(TrainConfig(**d), progress=False)
    return 0


def _config(
    name: str, settings: dict[str, Any], a: argparse.Namespace, runs: Path, csv: Path, minutes: float
) -> dict[str, Any]:
    s = dict(settings)
    mix = s.pop("mix")
    if s.get("init") == "@shipped":
        s["init"] = str(a.init)
    elif s.get("init", "").startswith("@file:"):
        s["init"] = str(a.pack.parent / s["init"][6:])
    elif s.get("init"):
        s["init"] = str(runs / s["init"] / "best.pt")
    if s.get("teacher"):
        s["teacher"] = ",".join(str(runs / t / "best.pt") for t in s["teacher"].split(","))
        s.update(kd_alpha=0.8, kd_temperature=2.0)
    return {
        **s,
        "data": str(csv),
        "out": str(runs / name),
        "device": a.device,
        "epochs": 100000,
        "schedule": "budget",
        "budget_minutes": minutes,
        "limit": a.limit,
        "threads": 2,
        "augment": {"mix": mix, "cutout_p": 0.4},
    }


def _phase(phase: int, a: argparse.Namespace, runs: Path, csv: Path, minutes: float, deadline: float) -> None:
    names = [n for n, (p, _) in RUNS.items() if p == phase]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    procs = {}
    for n in names:
        cfg = _config(n, RUNS[n][1], a, runs, csv, minutes)
        if any(
            not Path(t).is_file()
            for t in filter(None, [cfg.get("init", ""), *cfg.get("teacher", "").split(",")])
        ):
            log.warning("%s: skipped, a teacher or init checkpoint is missing", n)
            continue
        f = open(runs / f"{n}.log", "w")  # noqa: SIM115 - closed when the process ends
        procs[n] = (
            subprocess.Popen(
                [sys.executable, __file__, "one", json.dumps(cfg)],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
            ),
            f,
        )
        log.info("phase %d: started %s", phase, n)
    for n, (p, f) in procs.items():
        try:
            p.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            log.warning("%s: killed at the phase deadline (its last best.pt stands)", n)
        f.close()
        hist = runs / n / "history.json"
        last = json.loads(hist.read_text())[-1] if hist.is_file() else {}
        log.info("%s: rc %s, %s epochs, val_acc %s", n, p.returncode, last.get("epoch"), last.get("val_acc"))


def _collect(runs: Path, out: Path, names: tuple[str, ...], bundle: str | None) -> None:
    done = []
    for n in names:
        best = runs / n / "best.pt"
        if best.is_file():
            slim(best, runs / f"{n}.pt")
            done.append(n)
    if bundle is None:
        for n in done:
            (runs / f"{n}.pt").replace(out / f"{n}.pt")
    elif done:
        with tarfile.open(out / bundle, "w") as t:
            for n in done:
                t.add(runs / f"{n}.pt", arcname=f"{n}.pt")


def _logs(runs: Path, out: Path) -> None:
    with tarfile.open(out / "logs.tar.gz", "w:gz") as t:
        for p in sorted(runs.glob("*.log")) + sorted(runs.glob("*/history.json")):
            t.add(p, arcname=str(p.relative_to(runs)))


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "one":
        return one(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pack", type=Path, required=True)
    ap.add_argument(
        "--init",
        type=Path,
        default=Path(".gpu/shipped_fp16.pt"),
        help="the shipped model's checkpoint (a student's start)",
    )
    ap.add_argument("--phases", default="1,2", help="1,2: teachers then students; 3: the second session")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gpu-session"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--p1", type=float, default=4.2, help="phase-1 budget, minutes")
    ap.add_argument("--p2", type=float, default=3.3, help="phase-2 budget, minutes")
    ap.add_argument(
        "--total", type=float, default=9.6, help="hard end of the session, minutes from its start"
    )
    a = ap.parse_args(argv)
    t0 = time.time()
    a.out.mkdir(parents=True, exist_ok=True)
    runs = a.work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(runs / "session.log")],
    )
    os.environ.setdefault("EMOAR_CACHE", str(a.work / "cache"))
    from fer_pack import unpack

    csv = unpack(a.pack, a.work / "data")
    from emoar.train.data import load_dataset

    for task in ("fer2013", "ferplus"):  # parse once: the runs read the .npz cache
        sizes = {k: len(v) for k, v in load_dataset(csv, task).items()}
        log.info("%s: %s (%.0fs)", task, sizes, time.time() - t0)
    end = t0 + a.total * 60
    if a.phases == "3":
        _phase(3, a, runs, csv, a.p1, deadline=end - 20)
        _collect(runs, a.out, LARGE3, None)
        log.info("session done (%.0fs)", time.time() - t0)
        _logs(runs, a.out)
        return 0
    # phase 1 gets its budget plus a minute for start-up and the last epoch; phase 2 what is left
    _phase(1, a, runs, csv, a.p1, deadline=min(time.time() + a.p1 * 60 + 60, end - a.p2 * 60 - 30))
    _collect(runs, a.out, LARGE, None)
    _collect(runs, a.out, BUNDLES["p1_small.tar"], "p1_small.tar")
    _logs(runs, a.out)
    log.info("phase 1 collected (%.0fs)", time.time() - t0)
    p2 = min(a.p2, (end - time.time() - 45) / 60)
    if p2 >= min(0.5, a.p2):
        _phase(2, a, runs, csv, p2, deadline=end - 15)
        _collect(runs, a.out, BUNDLES["p2_students.tar"], "p2_students.tar")
    log.info("session done (%.0fs)", time.time() - t0)
    _logs(runs, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
