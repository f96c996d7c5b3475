#!/usr/bin/env bash
# Set up and run the main job on the shipped default model: annotate the bundled sample media
# (a public-domain photo and a short clip made from it) into ./emoar-demo/ and print the JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=${1:-emoar-demo}
mkdir -p "$out"
.venv/bin/python -m emoar.samples "$out"            # writes sample images + demo clip
.venv/bin/emoar analyze "$out"/sample_*.jpg --out "$out" --json
.venv/bin/emoar -q video "$out/demo_clip.mp4" --out "$out/demo_clip_emoar.mp4" --csv "$out/demo_clip.csv" \
  --json "$out/demo_clip.jsonl" --plot "$out/demo_clip_timeline.png"
echo "annotated media, JSON, CSV and plot in $out/" >&2
