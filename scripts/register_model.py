"""Copy an exported .onnx into the package and (re)register it in models/registry.json.

Usage: python scripts/register_model.py MODEL.onnx --name NAME [--description TEXT] [--default]

Metrics are not typed in by hand: run ``python benchmarks/accuracy.py --update-registry`` and
``python benchmarks/speed.py --update-registry`` to measure and store them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

MODELS = Path(__file__).resolve().parents[1] / "src" / "emoar" / "models"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("--name", required=True)
    ap.add_argument("--description", default="")
    ap.add_argument("--default", action="store_true")
    a = ap.parse_args()
    src = Path(a.onnx)
    dst = MODELS / f"{a.name}.onnx"
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    sha = hashlib.sha256(dst.read_bytes()).hexdigest()
    reg_path = MODELS / "registry.json"
    reg = json.loads(reg_path.read_text()) if reg_path.is_file() else {"default": a.name, "models": []}
    old = next((m for m in reg["models"] if m["name"] == a.name), None)
    entry = {
        "name": a.name,
        "file": dst.name,
        "sha256": sha,
        "description": a.description or (old or {}).get("description", ""),
        "metrics": {},
    }  # stale metrics are dropped: the benchmarks re-measure them
    reg["models"] = [m for m in reg["models"] if m["name"] != a.name] + [entry]
    if a.default or len(reg["models"]) == 1:
        reg["default"] = a.name
    reg_path.write_text(json.dumps(reg, indent=1) + "\n")
    print(f"registered {a.name} ({dst.stat().st_size / 1e6:.2f} MB, sha256 {sha[:12]}...)")


if __name__ == "__main__":
    main()
