"""Golden outputs of the shipped default model on real faces (tolerances, not exact floats).

The default is an int8 file with 7-bit weights, which every CPU computes the same (with or without
VNNI), so one golden file holds everywhere. After shipping a new default model, regenerate with
``python scripts/make_golden.py`` and review the diff: the semantic checks below must still hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emoar.io import read_image
from emoar.models import default_model_name, list_models, resolve_model
from emoar.pipeline import Pipeline, PipelineOptions
from emoar.samples import sample_image

DEFAULTS = (default_model_name(),)
GOLDEN = {m: json.loads((Path(__file__).parent / "golden" / f"{m}.json").read_text()) for m in DEFAULTS}


@pytest.fixture(scope="module")
def pipe():  # type: ignore[no-untyped-def]
    with Pipeline.from_options(PipelineOptions()) as p:
        yield p


@pytest.fixture(scope="module", params=DEFAULTS)
def model_pipe(request):  # type: ignore[no-untyped-def]
    with Pipeline.from_options(PipelineOptions.create(model=request.param)) as p:
        yield request.param, p


@pytest.mark.parametrize("model", DEFAULTS)
def test_golden_file_matches_shipped_model(model: str) -> None:
    shipped = next(m for m in list_models() if m.name == model)
    assert GOLDEN[model]["sha256"] == shipped.sha256, (
        "shipped model changed: run python scripts/make_golden.py and review"
    )


def test_default_is_one_of_the_golden_models(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_model_name() in DEFAULTS
    # the resnet_fer defaults (float, then int8) were retired: their names mean the default
    for old in ("emoar-resnet-fer", "emoar-resnet-fer-int8"):
        assert resolve_model(old) == resolve_model("default") == resolve_model(DEFAULTS[0])
    monkeypatch.setenv("EMOAR_DEFAULT_MODEL", "emoar-vgg-ferplus")
    assert default_model_name() == "emoar-vgg-ferplus"
    monkeypatch.setenv("EMOAR_DEFAULT_MODEL", "emoar-resnet-ferplus")  # retired: its successor
    assert default_model_name() == "emoar-vgg-ferplus"
    monkeypatch.setenv("EMOAR_DEFAULT_MODEL", "nope")
    with pytest.raises(ValueError, match="EMOAR_DEFAULT_MODEL"):
        default_model_name()


@pytest.mark.parametrize("name", sorted(GOLDEN[DEFAULTS[0]]["images"]))
def test_shipped_model_reproduces_golden_outputs(model_pipe, photos_dir: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    model, p = model_pipe
    frame = sample_image() if name.startswith("astronaut") else read_image(photos_dir / name)
    faces = [f.to_dict() for f in p.process(frame).faces]
    want = GOLDEN[model]["images"][name]
    assert len(faces) == len(want)
    for got, exp in zip(faces, want, strict=True):
        assert got["expression"] == exp["expression"]
        np.testing.assert_allclose(got["box_xyxy"], exp["box_xyxy"], atol=2.0)
        np.testing.assert_allclose(list(got["probs"].values()), list(exp["probs"].values()), atol=0.02)
        assert abs(got["ood_score"] - exp["ood_score"]) < 0.05


def test_semantics_on_real_faces(pipe, photos_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """What any acceptable model must say: the smiling astronaut is happy, the neutral
    portrait is not, and both are ordinary faces (not flagged uncertain)."""
    astronaut = pipe.process(sample_image()).faces
    assert len(astronaut) == 1 and astronaut[0].expression == "happy" and astronaut[0].probs["happy"] > 0.6
    portrait = pipe.process(read_image(photos_dir / "portrait.jpg")).faces
    assert len(portrait) == 1 and portrait[0].expression != "happy"
    assert not astronaut[0].uncertain and not portrait[0].uncertain


def test_shipped_model_tells_faces_from_non_faces(fer_csv: Path, photos_dir: Path) -> None:
    """The OOD score on real faces (FER2013 PrivateTest, the faces in the shared photos) vs
    patches that are not faces (text, bricks, a rocket, coins from scikit-image; none of these
    images is used when the model is exported)."""
    pytest.importorskip("skimage")
    import cv2
    import skimage.data as skd

    from emoar.classify import ExpressionClassifier
    from emoar.models import resolve_model
    from emoar.train.data import load_fer2013_csv

    clf = ExpressionClassifier(resolve_model("default"))
    test = load_fer2013_csv(fer_csv)["PrivateTest"]
    faces = test.images[test.nf < 0.5][:500]
    rng = np.random.default_rng(0)
    patches = []
    for name in ("text", "brick", "rocket", "coins", "page", "gravel"):
        img = getattr(skd, name)()
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
        for _ in range(20):
            s = int(rng.integers(40, min(g.shape) // 2))
            y, x = int(rng.integers(0, g.shape[0] - s)), int(rng.integers(0, g.shape[1] - s))
            patches.append(cv2.resize(g[y : y + s, x : x + s], (48, 48), interpolation=cv2.INTER_AREA))
    f, n = clf.classify(faces), clf.classify(np.stack(patches))
    assert f.uncertain.mean() < 0.1  # ~5% of real faces by design
    assert n.uncertain.mean() > 0.8
    # AUROC: a random non-face scores above a random face
    auroc = float((n.ood_score[:, None] > f.ood_score[None, :]).mean())
    assert auroc > 0.95
    with Pipeline.from_options(PipelineOptions()) as p:
        group = p.process(read_image(photos_dir / "office_group.jpg")).faces
    assert len(group) == 8 and sum(x.uncertain for x in group) <= 1  # small faces are faces too


def test_tta_averages_each_face_with_its_mirror(fer_csv: Path) -> None:
    from emoar.classify import ExpressionClassifier
    from emoar.models import resolve_model
    from emoar.train.data import load_fer2013_csv

    faces = load_fer2013_csv(fer_csv)["PrivateTest"].images[:64]
    plain = ExpressionClassifier(resolve_model("default"))
    tta = ExpressionClassifier(resolve_model("default"), tta=True)
    a, b, t = plain.classify(faces), plain.classify(faces[:, :, ::-1].copy()), tta.classify(faces)
    np.testing.assert_allclose(t.probs, (a.probs + b.probs) / 2, atol=1e-5)
    np.testing.assert_allclose(t.probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(t.ood_score, a.ood_score)  # calibrated on unmirrored crops
    assert tta.classify(faces[:0]).probs.shape == (0, 7)


def test_ten_crop_tta_averages_shifted_crops_and_mirrors(fer_csv: Path) -> None:
    from emoar.classify import ExpressionClassifier
    from emoar.models import resolve_model
    from emoar.preprocess import CROP_SHIFT, resolve_tta, tta_views
    from emoar.train.data import load_fer2013_csv

    faces = load_fer2013_csv(fer_csv)["PrivateTest"].images[:32]
    views = tta_views(faces, "crops")
    assert len(views) == 10 and all(v.shape == faces.shape for v in views)
    np.testing.assert_array_equal(views[0], faces)
    k = CROP_SHIFT
    np.testing.assert_array_equal(views[1][:, k:], faces[:, :-k])  # content moved down by k pixels
    np.testing.assert_array_equal(views[4][:, :, :-k], faces[:, :, k:])  # moved left
    np.testing.assert_array_equal(views[5], faces[:, :, ::-1])
    assert len(tta_views(faces, True)) == 2 and len(tta_views(faces, "none")) == 1
    with pytest.raises(ValueError, match="Unknown test-time augmentation"):
        resolve_tta("rotate")

    plain = ExpressionClassifier(resolve_model("default"))
    crops = ExpressionClassifier(resolve_model("default"), tta="crops")
    ref = np.mean([plain.classify(v).probs for v in views], 0)
    got = crops.classify(faces)
    np.testing.assert_allclose(got.probs, ref / ref.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_array_equal(got.ood_score, plain.classify(faces).ood_score)


def test_evaluate_tta_modes_on_the_cli(fer_csv: Path) -> None:
    import subprocess
    import sys

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "emoar.cli", "evaluate", "--data", str(fer_csv), "--limit", "120", *a]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    reps = {}
    for mode in ("none", "flip", "crops"):
        r = run("--json", *([] if mode == "none" else ["--tta", mode]))
        assert r.returncode == 0, r.stderr
        reps[mode] = json.loads(r.stdout)
        assert reps[mode]["tta_mode"] == mode and reps[mode]["tta"] == (mode != "none")
    assert len({json.dumps(rep["confusion"]) for rep in reps.values()}) > 1  # the views change answers
    r = run("--tta", "rotate")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    # a model that mirrors inside its graph: --tta flip adds nothing, and the report says why
    ens = {
        mode: run("--model", "emoar-ensemble", "--json", *flag)
        for mode, flag in (("none", []), ("flip", ["--tta"]))
    }
    reps = {mode: json.loads(r.stdout) for mode, r in ens.items()}
    assert reps["flip"]["builtin_tta"] == "flip" and reps["flip"]["confusion"] == reps["none"]["confusion"]
    r = run("--model", "emoar-ensemble", "--tta", "crops")
    assert r.returncode == 0 and "(flip built into the graph; --tta crops)" in r.stdout, r.stderr
