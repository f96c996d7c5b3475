#!/usr/bin/env bash
# Convert the browser page's BlazeFace TF Lite models (vendored from npm by scripts/setup.sh) to
# the ONNX files shipped in src/emoar/detect/models/ (run once; the results are committed).
# Needs TensorFlow for tf2onnx: it uses the separate benchmark venv (benchmarks/peers/setup_fer.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=benchmarks/.venv-fer/bin/python
[ -x "$PY" ] || bash benchmarks/peers/setup_fer.sh
"$PY" -m pip install -q "tf2onnx==1.17.0" "setuptools<81"  # fer needs pkg_resources
src=src/emoar/web/static/vendor/mediapipe/face_detection
for m in short_range full_range; do
  TF_CPP_MIN_LOG_LEVEL=3 "$PY" -m tf2onnx.convert --tflite "$src/face_detection_$m.tflite" \
    --output "src/emoar/detect/models/blazeface_$m.onnx" --opset 17
done
# tf2onnx writes the TF Lite files' float16 weights out as float32: store them as float16 again
# (exactly the same values, behind Casts that onnxruntime folds at load: half the size)
.venv/bin/python scripts/onnx_fp16_storage.py src/emoar/detect/models/blazeface_short_range.onnx src/emoar/detect/models/blazeface_full_range.onnx
sha256sum src/emoar/detect/models/*.onnx
