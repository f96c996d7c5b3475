"""The runtime commands in a fresh virtual environment with only the base install
(``pip install -e .``: no torch, no onnx, no web extra), as a user who never asked for the
extras has it. ``emoar models`` used to crash there: it read model metadata with ``onnx``,
which only the ``train`` extra installs.

The venv is made once per session with the real pip (wheels come from pip's cache, filled by
``scripts/setup.sh``); set ``EMOAR_SKIP_BASE_VENV=1`` to skip it on a machine with no package
index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("EMOAR_SKIP_BASE_VENV"):
        pytest.skip("EMOAR_SKIP_BASE_VENV is set")
    venv = tmp_path_factory.mktemp("base") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return py


def _run(py: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # as a user's shell runs it: no PYTHONPATH pointing into the test venv's packages
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(py), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_base_install_has_no_extras(base_venv: Path, tmp_path: Path) -> None:
    code = "import importlib.util as u; print([m for m in ('torch', 'onnx', 'fastapi', 'skimage') if u.find_spec(m)])"
    r = _run(base_venv, "-c", code, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_runtime_commands_work_on_the_base_install(base_venv: Path, tmp_path: Path, photos_dir: Path) -> None:
    models = _run(base_venv, "-m", "emoar.cli", "models", cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    from emoar.models import default_model_name

    assert f"{default_model_name()} *" in models.stdout and "emoar-vgg-ferplus" in models.stdout
    photo = photos_dir / "portrait.jpg"
    analyze = _run(
        base_venv,
        "-m",
        "emoar.cli",
        "-q",
        "analyze",
        str(photo),
        "--json",
        "--out",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert analyze.returncode == 0, analyze.stderr
    faces = json.loads(analyze.stdout)["faces"]
    assert len(faces) == 1 and faces[0]["expression"] in faces[0]["probs"]
    assert (tmp_path / "portrait_emoar.jpg").is_file()
    # A clip through `emoar video` (cv2 writes it in the same venv).
    make_clip = (
        "import cv2, numpy as np, sys; img = cv2.resize(cv2.imread(sys.argv[1]), (320, 240));"
        "w = cv2.VideoWriter(sys.argv[2], cv2.VideoWriter.fourcc(*'mp4v'), 10.0, (320, 240));"
        "[w.write(np.roll(img, 2 * i, axis=1)) for i in range(8)]; w.release()"
    )
    assert _run(base_venv, "-c", make_clip, str(photo), str(tmp_path / "c.mp4"), cwd=tmp_path).returncode == 0
    video = _run(
        base_venv,
        "-m",
        "emoar.cli",
        "-q",
        "video",
        str(tmp_path / "c.mp4"),
        "--out",
        str(tmp_path / "o.mp4"),
        "--csv",
        str(tmp_path / "o.csv"),
        cwd=tmp_path,
    )
    assert video.returncode == 0, video.stderr
    rows = (tmp_path / "o.csv").read_text().splitlines()
    assert len(rows) >= 8 and rows[0].startswith("frame,timestamp_ms,track_id")
    serve = _run(base_venv, "-m", "emoar.cli", "serve", cwd=tmp_path)
    assert serve.returncode == 1 and "pip install 'emoar[web]'" in serve.stderr
