"""StarGAN-style class balancing on real FER2013 faces: a short real training run that learns
(its losses fall), resume, the sample grid, synthetic faces, and ``emoar train --extra``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emoar.train.data import DatasetError, load_extra_faces, load_fer2013_csv  # noqa: E402
from emoar.train.stargan import (  # noqa: E402
    Discriminator,
    GanConfig,
    Generator,
    load_generator,
    train_stargan,
    translate,
)

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "emoar-resnet-fer.pt"


def _emoar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emoar.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_untrained_generator_starts_near_the_identity() -> None:
    """The attention mask starts at ~0.73 keep, so a fresh generator stays close to its input."""
    torch.manual_seed(0)
    g = Generator(7, width=8, res_blocks=1).eval()
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    with torch.no_grad():
        y, a = g(x, torch.eye(7)[:4])
    assert y.shape == x.shape and a.shape == x.shape
    assert 0.6 < float(a.mean()) < 0.85
    assert float((y - x).abs().mean()) < 0.35
    src, cls = Discriminator(7, width=8)(x)
    assert src.shape == (4, 1, 3, 3) and cls.shape == (4, 7)


def test_train_resume_sample_synth_and_extra(tmp_path: Path, fer_csv: Path) -> None:
    out = tmp_path / "gan"
    cfg = GanConfig(data=str(fer_csv), out=str(out), steps=40, batch_size=16, width=8, res_blocks=1,
                    limit=2000, save_every=20, lr=5e-4, classifier=str(SHIPPED))  # fmt: skip
    last = train_stargan(cfg)
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["step"] == 40 and [r["step"] for r in state["log"]] == [20, 40]
    # the discriminator learns to tell the fakes from real faces, the cycle comes back close
    first, second = state["log"]
    assert second["d_adv"] < first["d_adv"]
    assert second["g_rec"] < 0.1 and all(np.isfinite(list(r.values())).all() for r in state["log"])

    # resume continues to the new step count with the stored settings (width etc.), keeping the log
    resumed = GanConfig(data=str(fer_csv), out=str(out), steps=60)
    with pytest.raises(ValueError, match="no checkpoint"):
        train_stargan(GanConfig(data=str(fer_csv), out=str(tmp_path / "none")), resume=True)
    train_stargan(resumed, resume=True)
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["step"] == 60 and [r["step"] for r in state["log"]] == [20, 40, 60]
    assert state["config"]["width"] == 8

    g, labels, _ = load_generator(last)
    faces = load_fer2013_csv(fer_csv)["PublicTest"].images[:5]
    moved = translate(g, faces, labels.index("disgust"))
    assert moved.shape == faces.shape and moved.dtype == np.uint8
    assert not np.array_equal(moved, faces)  # it edits ...
    assert np.abs(moved.astype(int) - faces).mean() < 60  # ... but keeps the face
    with pytest.raises(ValueError, match="expected"):
        translate(g, faces[:, :40], 0)

    png = tmp_path / "grid.png"
    r = _emoar(
        "gan", "sample", "--checkpoint", str(last), "--data", str(fer_csv), "--rows", "3", "--out", str(png)
    )
    assert r.returncode == 0, r.stderr
    import cv2

    grid = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    assert grid.shape == (18 + 3 * 96, 8 * 96)  # a header, 3 rows; input + 7 classes

    npz = tmp_path / "disgust.npz"
    r = _emoar("gan", "synth", "--checkpoint", str(last), "--data", str(fer_csv), "-n", "64",
               "--sources", "neutral,angry", "--out", str(npz))  # fmt: skip
    assert r.returncode == 0, r.stderr
    with np.load(npz) as z:
        assert z["images"].shape == (64, 48, 48) and set(z["labels"].tolist()) == {"disgust"}
    r = _emoar("gan", "synth", "--checkpoint", str(last), "--data", str(fer_csv), "--target", "joy",
               "--out", str(npz))  # fmt: skip
    assert r.returncode == 1 and "unknown target class 'joy'" in r.stderr
    r = _emoar("gan", "sample", "--checkpoint", str(npz), "--data", str(fer_csv), "--out", str(png))
    assert r.returncode == 1 and "error" in r.stderr.lower()

    # emoar train --extra appends them (labelled disgust) to the training split
    run = tmp_path / "run"
    r = _emoar("-q", "train", "--data", str(fer_csv), "--epochs", "1", "--limit", "256", "--threads", "2",
               "--extra", str(npz), "--out", str(run))  # fmt: skip
    assert r.returncode == 0, r.stderr
    saved = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    assert saved["config"]["extra"] == str(npz) and saved["meta"]["train_n"] == 256 + 64


def test_extra_faces_bad_files(tmp_path: Path) -> None:
    labels = ("angry", "disgust")
    with pytest.raises(DatasetError, match="no such file"):
        load_extra_faces(tmp_path / "none.npz", labels)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="expected an .npz"):
        load_extra_faces(tmp_path / "junk.npz", labels)
    np.savez(tmp_path / "f.npz", images=np.zeros((2, 48, 48), np.float32), labels=np.array(["angry"] * 2))
    with pytest.raises(DatasetError, match="uint8"):
        load_extra_faces(tmp_path / "f.npz", labels)
    np.savez(tmp_path / "u.npz", images=np.zeros((2, 48, 48), np.uint8), labels=np.array(["angry", "joy"]))
    with pytest.raises(DatasetError, match="unknown class name"):
        load_extra_faces(tmp_path / "u.npz", labels)
    np.savez(tmp_path / "ok.npz", images=np.zeros((2, 48, 48), np.uint8), labels=np.array(["disgust"] * 2))
    ds = load_extra_faces(tmp_path / "ok.npz", labels)
    assert ds.labels.tolist() == [1, 1] and len(ds) == 2


def test_gan_train_cli_errors(tmp_path: Path) -> None:
    r = _emoar(
        "gan", "train", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), "--steps", "2"
    )
    assert r.returncode == 1 and "not found" in r.stderr
    r = _emoar("gan", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--steps", "0")
    assert r.returncode == 1 and "--steps must be >= 1" in r.stderr
    r = _emoar("gan", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--resume")
    assert r.returncode == 1 and "no checkpoint" in r.stderr
