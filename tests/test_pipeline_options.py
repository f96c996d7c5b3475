"""PipelineOptions: the stages' own frozen options composed, and what each one changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import pytest

from emoar import Pipeline, PipelineOptions
from emoar.pipeline import ClassifierOptions, DetectorOptions, OverlayOptions, SmootherOptions, TrackerOptions


def test_defaults_are_the_stages_defaults() -> None:
    o = PipelineOptions()
    assert o.classifier == ClassifierOptions() and o.detector == DetectorOptions()
    assert o.tracker == TrackerOptions() and o.smoother == SmootherOptions() and o.overlay == OverlayOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.max_faces = 3  # type: ignore[misc]


def test_create_from_plain_values() -> None:
    o = PipelineOptions.create(
        model="emoar-vgg-ferplus", detector="MTCNN", num_threads=2, tta=True, style="minimal"
    )
    assert o.classifier == ClassifierOptions(model="emoar-vgg-ferplus", num_threads=2, tta="flip")
    assert o.detector.name == "mtcnn" and o.detector.num_threads == 2  # one value, both stages
    assert o.overlay.style == "minimal"
    with pytest.raises(TypeError):
        PipelineOptions.create(no_such_option=1)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: PipelineOptions(detector="yunet"), TypeError, "must be a DetectorOptions"),
        (lambda: PipelineOptions(max_faces=0), ValueError, "max_faces"),
        (lambda: ClassifierOptions(tta="sideways"), ValueError, "Unknown test-time augmentation"),
        (lambda: ClassifierOptions(num_threads=0), ValueError, "num_threads"),
        (lambda: ClassifierOptions(ood_threshold=2.0), ValueError, "ood_threshold"),
        (lambda: PipelineOptions.create(detector="nope"), ValueError, "Unknown detector 'nope'"),
    ],
)
def test_invalid_options(make, error, match) -> None:
    with pytest.raises(error, match=match):
        make()


def test_each_stage_takes_its_options(photos_dir: Path) -> None:
    frame = cv2.imread(str(photos_dir / "portrait.jpg"))
    opts = PipelineOptions(
        classifier=ClassifierOptions(tta="flip", ood_threshold=0.5),
        tracker=TrackerOptions(min_hits=3),
        overlay=OverlayOptions(style="emoji"),
    )
    with Pipeline.from_options(opts) as pipe:
        assert pipe.classifier.tta_mode == "flip" and pipe.classifier.info.ood_threshold == 0.5
        assert pipe.renderer.options.style == "emoji"
        stream = pipe.new_stream()
        ids = [pipe.process(frame, stream=stream, frame_index=i).faces[0].track_id for i in range(4)]
    assert ids[:2] == [None, None] and ids[2] is not None and ids[3] == ids[2]  # confirmed on the 3rd hit
