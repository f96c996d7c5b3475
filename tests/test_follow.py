"""Detect, then follow (``DetectorOptions.detect_every``): faces followed between full
detections stay on the real face, keep one track id and their expression, a face entering
mid-clip is picked up within ``detect_every`` frames, and a face that leaves is never kept."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emoar import Pipeline, PipelineOptions
from emoar.detect import DetectorOptions
from emoar.samples import demo_frames

EVERY = 5


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


@pytest.fixture(scope="module")
def portrait(photos_dir: Path) -> np.ndarray:
    img = cv2.imread(str(photos_dir / "portrait.jpg"))
    assert img is not None
    return img


@pytest.fixture(scope="module")
def face_box(portrait: np.ndarray) -> tuple[float, float, float, float]:
    with Pipeline.from_options(PipelineOptions()) as pipe:
        dets = pipe.detect(portrait)
    assert len(dets) == 1
    return dets[0].box_xyxy


def _pipe(every: int) -> Pipeline:
    return Pipeline.from_options(PipelineOptions(detector=DetectorOptions(detect_every=every)))


def test_followed_faces_stay_on_the_face_with_one_track(portrait: np.ndarray, face_box: tuple) -> None:
    frames = list(demo_frames([portrait], seconds=4, fps=15, face_boxes=[face_box]))  # drift + zoom
    results = {}
    for every in (1, EVERY):
        with _pipe(every) as pipe:
            stream = pipe.new_stream()
            results[every] = [
                pipe.process(f, stream=stream, frame_index=i) for i, (f, _, _) in enumerate(frames)
            ]
            full = stream.full_detections
    assert full == len(frames) // EVERY  # detected in full on frames 0, 5, 10, ... only
    followed, detected = results[EVERY], results[1]
    for i, (r, (_, _, truth)) in enumerate(zip(followed, frames, strict=True)):
        assert len(r.faces) == 1, f"frame {i}"
        assert _iou(np.array(r.faces[0].box_xyxy), truth[0]) > 0.7, f"frame {i}"
        assert r.faces[0].landmarks_xy is not None
    assert len({r.faces[0].track_id for r in followed}) == 1
    same = sum(
        a.faces[0].expression == b.faces[0].expression for a, b in zip(followed, detected, strict=True)
    )
    assert same >= 0.9 * len(frames)
    p_f = np.array([[r.faces[0].probs[k] for k in sorted(r.faces[0].probs)] for r in followed])
    p_d = np.array([[r.faces[0].probs[k] for k in sorted(r.faces[0].probs)] for r in detected])
    assert float(np.abs(p_f - p_d).max(axis=1).mean()) < 0.1


def test_a_face_entering_is_found_within_detect_every_frames(portrait: np.ndarray, face_box: tuple) -> None:
    two = list(demo_frames([portrait, portrait[:, ::-1].copy()], seconds=3, fps=15))
    one = list(demo_frames([portrait], seconds=3, fps=15))
    enter = 12  # frames 0-11: one face (left half shows the first person only)
    frames = []
    for i, ((f2, _, _), _) in enumerate(zip(two, one, strict=True)):
        f = f2.copy()
        if i < enter:
            f[:, f.shape[1] // 2 :] = f[0, -1]  # the right slot is empty background
        frames.append(f)
    with _pipe(EVERY) as pipe:
        stream = pipe.new_stream()
        counts = [len(pipe.process(f, stream=stream, frame_index=i).faces) for i, f in enumerate(frames)]
    assert counts[:enter] == [1] * enter
    first_two = counts.index(2)
    assert enter <= first_two < enter + EVERY, counts
    assert all(c == 2 for c in counts[first_two:]), counts


def test_a_face_that_leaves_is_dropped_at_once(portrait: np.ndarray) -> None:
    frames = [f for f, _, _ in demo_frames([portrait], seconds=2, fps=15)]
    blank = np.full_like(frames[0], 90)
    seq = frames[:8] + [blank] * 4 + frames[8:14]
    with _pipe(EVERY) as pipe:
        stream = pipe.new_stream()
        counts = [len(pipe.process(f, stream=stream, frame_index=i).faces) for i, f in enumerate(seq)]
    assert counts == [1] * 8 + [0] * 4 + [1] * 6


def test_single_images_are_always_detected_in_full(portrait: np.ndarray) -> None:
    with _pipe(EVERY) as pipe:
        a = pipe.process(portrait)
        b = pipe.process(np.full_like(portrait, 90))  # no face: a followed box would leak here
    assert len(a.faces) == 1 and len(b.faces) == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_detect_every_is_validated(bad: object) -> None:
    with pytest.raises(ValueError, match="detect_every"):
        DetectorOptions(detect_every=bad)  # type: ignore[arg-type]


def test_a_group_keeps_every_face_on_full_detections(photos_dir: Path) -> None:
    """BlazeFace misses one or two of stage_group's 11 faces on about a third of the frames
    when it detects every frame; followed faces it misses on a full detection are kept."""
    img = cv2.imread(str(photos_dir / "stage_group.jpg"))
    frames = [f for f, _, _ in demo_frames([img], seconds=4, fps=15)]
    counts = {}
    for every in (1, EVERY):
        opts = PipelineOptions(detector=DetectorOptions(name="blazeface", detect_every=every))
        with Pipeline.from_options(opts) as pipe:
            stream = pipe.new_stream()
            counts[every] = [
                len(pipe.process(f, stream=stream, frame_index=i).faces) for i, f in enumerate(frames)
            ]
    assert min(counts[1]) < 11  # the detector alone does miss faces here
    assert counts[EVERY] == [11] * len(frames)


def test_a_face_the_detector_misses_is_kept_for_one_detection_only(
    portrait: np.ndarray, face_box: tuple
) -> None:
    """The detector stops seeing the face (it shrinks below ``min_face_px``) while O-net still
    does: kept through the first full detection that misses it, dropped at the second."""
    x1, y1, x2, y2 = face_box
    side = max(x2 - x1, y2 - y1)
    big = portrait
    small = cv2.resize(portrait, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    small = cv2.copyMakeBorder(
        small, 0, big.shape[0] - small.shape[0], 0, big.shape[1] - small.shape[1], cv2.BORDER_REPLICATE
    )
    seq = [big] + [small] * 14
    opts = PipelineOptions(detector=DetectorOptions(detect_every=EVERY, min_face_px=0.9 * side))
    with Pipeline.from_options(opts) as pipe:
        stream = pipe.new_stream()
        counts = [len(pipe.process(f, stream=stream, frame_index=i).faces) for i, f in enumerate(seq)]
        assert len(pipe.detect(small)) == 0  # the detector alone never finds the smaller face
    assert counts == [1] * 10 + [0] * 5, counts
