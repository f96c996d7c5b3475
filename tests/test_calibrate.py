"""Temperature scaling: the fit finds a known temperature, the shipped models carry a fitted one
that the runtime applies, and ``emoar calibrate`` writes a file whose confidences match accuracy
better on faces it was not fitted on, with every face's top class unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emoar.classify import ExpressionClassifier, apply_temperature, read_model_info
from emoar.metrics import expected_calibration_error
from emoar.modelmeta import ModelMeta, ModelMetadataError
from emoar.models import list_models, resolve_model


def test_apply_temperature_keeps_the_top_class_and_sharpens_or_softens() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=200).astype(np.float32)
    for t in (0.5, 1.0, 2.0):
        q = apply_temperature(p, t)
        np.testing.assert_allclose(q.sum(1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(q.argmax(1), p.argmax(1))
    assert (apply_temperature(p, 0.5).max(1) >= p.max(1) - 1e-6).all()  # T < 1: more confident
    assert (apply_temperature(p, 2.0).max(1) <= p.max(1) + 1e-6).all()
    np.testing.assert_allclose(apply_temperature(p, 1.0), p, atol=1e-6)


@pytest.mark.parametrize("true_t", [0.6, 2.5])
def test_fit_temperature_recovers_the_temperature_labels_were_drawn_with(true_t: float) -> None:
    from emoar.train.calibrate import fit_temperature, nll

    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2.0, size=(6000, 7))
    shown = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # what an uncalibrated model says
    truth = apply_temperature(shown, true_t).astype(np.float64)
    y = np.array([rng.choice(7, p=row / row.sum()) for row in truth])
    t = fit_temperature(shown, y)
    assert abs(t - true_t) / true_t < 0.1, t
    assert nll(apply_temperature(shown, t), y) < nll(shown, y)
    with pytest.raises(ValueError, match="N labels"):
        fit_temperature(shown, y[:10])


def test_metadata_temperature_round_trips_and_is_validated() -> None:
    meta = ModelMeta(name="m", labels=("a", "b"), input_size=(48, 48), mean=0.5, std=0.25, temperature=0.8)
    assert ModelMeta.from_props(meta.to_props()).temperature == 0.8
    assert ModelMeta.from_props(meta.replace(temperature=1.0).to_props()).temperature == 1.0
    with pytest.raises(ModelMetadataError, match="temperature"):
        meta.replace(temperature=0.0)


@pytest.mark.parametrize("name", [m.name for m in list_models()])
def test_shipped_models_are_calibrated(name: str) -> None:
    """Every shipped model has a temperature fitted on PublicTest (``emoar calibrate``)."""
    t = read_model_info(resolve_model(name)).temperature
    assert t != 1.0 and 0.2 < t < 5.0, t


def test_calibrate_writes_a_model_that_is_better_calibrated_on_held_out_faces(
    fer_csv: Path, tmp_path: Path
) -> None:
    from emoar.train.calibrate import calibrate_model
    from emoar.train.data import load_fer2013_csv

    src = resolve_model("emoar-resnet-fer")
    # start from the uncalibrated network (T = 1), as `emoar export` writes it
    raw = tmp_path / "raw.onnx"
    from emoar.train.calibrate import _write_temperature

    _write_temperature(src, raw, 1.0)
    out = tmp_path / "calibrated.onnx"
    r = calibrate_model(
        str(raw), str(fer_csv), split="PublicTest", report_split=None, out=str(out), limit=1200
    )
    assert r.previous_temperature == 1.0 and r.n == 1200
    assert r.ece_after < r.ece_before and r.nll_after < r.nll_before
    assert read_model_info(out).temperature == pytest.approx(r.temperature)

    faces = load_fer2013_csv(fer_csv)["PrivateTest"]  # not fitted on
    x, y = faces.images[:1500], faces.labels[:1500]
    before = ExpressionClassifier(raw).classify(x).probs
    after = ExpressionClassifier(out).classify(x).probs
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))  # accuracy unchanged
    np.testing.assert_allclose(after, apply_temperature(before, r.temperature), atol=1e-5)
    assert expected_calibration_error(y, after) < expected_calibration_error(y, before)


def test_calibrate_cli_errors(tmp_path: Path, fer_csv: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "emoar.cli", "calibrate", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )

    r = run("--data", str(fer_csv))
    assert r.returncode == 1 and "--out" in r.stderr, r.stderr
    r = run("--data", str(fer_csv), "--model", "nope", "--dry-run")
    assert r.returncode == 1 and "available" in r.stderr, r.stderr
    ck = tmp_path / "m.pt"
    ck.write_bytes(b"x")
    r = run("--data", str(fer_csv), "--model", str(ck), "--dry-run")
    assert r.returncode != 0 and "export it first" in r.stderr, r.stderr
