"""Per-track summaries (:func:`emoar.summary.summarize_tracks`) of real streams."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from emoar import Pipeline, PipelineOptions
from emoar.samples import demo_frames
from emoar.summary import summarize_tracks


def test_one_summary_per_person_of_a_group_clip(photos_dir: Path) -> None:
    img = cv2.imread(str(photos_dir / "stage_group.jpg"))
    frames = [f for f, _, _ in demo_frames([img], seconds=1, fps=10)]
    with Pipeline.from_options(PipelineOptions()) as pipe:
        stream = pipe.new_stream()
        results = [
            pipe.process(f, stream=stream, frame_index=i, timestamp_ms=100.0 * i)
            for i, f in enumerate(frames)
        ]
    tracks = summarize_tracks(results)
    assert len(tracks) == 11 and len({t.track_id for t in tracks}) == 11
    for t in tracks:
        assert t.frames == len(frames) and (t.first_ms, t.last_ms) == (0.0, 100.0 * (len(frames) - 1))
        assert sum(t.mean_probs.values()) == pytest.approx(1.0, abs=1e-4)
        assert sum(t.shares.values()) == pytest.approx(1.0)
        assert t.dominant == max(t.mean_probs, key=lambda k: t.mean_probs[k])
        d = t.to_dict()
        assert d["track_id"] == t.track_id and set(d["mean_probs"]) == set(results[0].faces[0].probs)


def test_single_images_and_empty_streams(photos_dir: Path) -> None:
    with Pipeline.from_options(PipelineOptions()) as pipe:
        group = pipe.process(cv2.imread(str(photos_dir / "office_group.jpg")))
        empty = pipe.process(cv2.imread(str(photos_dir / "office_group.jpg"))[:20, :20])
    tracks = summarize_tracks([group])
    assert len(tracks) == len(group.faces) == 8  # untracked faces: one summary each
    assert all(t.track_id is None and t.frames == 1 for t in tracks)
    assert summarize_tracks([empty]) == [] and summarize_tracks([]) == []
