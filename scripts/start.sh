#!/usr/bin/env bash
# The main job, on the shipped default model:
#   1. set everything up (./.venv, front-end packages),
#   2. annotate the bundled sample media (a public-domain photo and a short clip made from it)
#      into ./emoar-demo/ and print the JSON,
#   3. start the web app (live AR page + REST API) and print its URL.
# Usage: bash scripts/start.sh [--no-serve] [--port 8000] [--out emoar-demo]
set -euo pipefail
cd "$(dirname "$0")/.."
serve=1; port=${EMOAR_PORT:-8000}; out=emoar-demo
while [ $# -gt 0 ]; do
  case "$1" in
    --no-serve) serve=0 ;;
    --port) port=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: bash scripts/start.sh [--no-serve] [--port N] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
bash scripts/setup.sh
mkdir -p "$out"
.venv/bin/python -m emoar.samples "$out" 2>/dev/null   # sample_astronaut.jpg + demo_clip.mp4
.venv/bin/emoar analyze "$out"/sample_*.jpg --out "$out" --json
.venv/bin/emoar -q video "$out/demo_clip.mp4" --out "$out/demo_clip_emoar.mp4" --csv "$out/demo_clip.csv" \
  --jsonl "$out/demo_clip.jsonl" --plot "$out/demo_clip_timeline.png"
echo "annotated image, video, per-frame CSV/JSONL and timeline plot written to $out/" >&2
if [ "$serve" = 1 ]; then
  exec .venv/bin/emoar serve --host 127.0.0.1 --port "$port"
fi
