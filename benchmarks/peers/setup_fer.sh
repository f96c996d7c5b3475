#!/usr/bin/env bash
# A separate venv with the `fer` package for benchmarks/video_e2e.py --peers (never a dependency
# of emoar). fer 25.10.3 declares tensorflow, facenet-pytorch (MTCNN), moviepy and more; only what
# its detect_emotions path imports is installed: tensorflow-cpu (not the CUDA build) and, for
# FER(mtcnn=True), facenet-pytorch on the CPU build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-fer/bin/python ] || "$PY" -m venv .venv-fer
.venv-fer/bin/pip install -q --upgrade pip
.venv-fer/bin/pip install -q "tensorflow-cpu>=2.16,<2.21" "opencv-python-headless<5" pandas matplotlib requests tqdm Pillow "setuptools<81"
.venv-fer/bin/pip install -q --no-deps fer==25.10.3
if .venv-fer/bin/pip install -q "torch==2.13.0" && .venv-fer/bin/pip install -q --no-deps facenet-pytorch; then
  .venv-fer/bin/pip install -q torchvision==0.28.0 --no-deps 2>/dev/null \
    || echo "note: no CPU torchvision wheel; FER(mtcnn=True) may not run" >&2
fi
# torch pulls a setuptools without pkg_resources, which fer.fer imports: pin it back last
.venv-fer/bin/pip install -q "setuptools<81"
.venv-fer/bin/python -c "import pkg_resources, fer; print('fer', fer.__version__ if hasattr(fer, '__version__') else '25.10.3', 'ready in benchmarks/.venv-fer')"
