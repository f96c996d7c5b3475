"""Golden outputs of the shipped default model on real faces (tolerances, not exact floats).

After shipping a new default model, regenerate with ``python scripts/make_golden.py`` and
review the diff: the semantic checks below must still hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emoar.io import read_image
from emoar.models import default_model_name, list_models
from emoar.pipeline import Pipeline, PipelineOptions
from emoar.samples import sample_image

GOLDEN = json.loads((Path(__file__).parent / "golden" / "shipped_model.json").read_text())


@pytest.fixture(scope="module")
def pipe():  # type: ignore[no-untyped-def]
    with Pipeline.from_options(PipelineOptions()) as p:
        yield p


def test_golden_file_matches_shipped_model() -> None:
    model = next(m for m in list_models() if m.name == default_model_name())
    assert GOLDEN["sha256"] == model.sha256, (
        "shipped model changed: run python scripts/make_golden.py and review"
    )


@pytest.mark.parametrize("name", sorted(GOLDEN["images"]))
def test_shipped_model_reproduces_golden_outputs(pipe, photos_dir: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    frame = sample_image() if name.startswith("astronaut") else read_image(photos_dir / name)
    faces = [f.to_dict() for f in pipe.process(frame).faces]
    want = GOLDEN["images"][name]
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
