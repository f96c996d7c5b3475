"""IouTracker: stable ids on synthetic box sequences and on the real demo video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emoar.io import VideoSource
from emoar.samples import DemoVideo, make_demo_video
from emoar.track import UNTRACKED, IouTracker, TrackerOptions, box_iou_xyxy


def box(cx: float, cy: float, size: float = 60.0) -> list[float]:
    return [cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoVideo:
    return make_demo_video(tmp_path_factory.mktemp("track") / "demo.mp4")


def photo_boxes_from_frame(frame: np.ndarray) -> np.ndarray:
    """Find the photos in a decoded demo frame: pixels that differ from the background.

    The background is a vertical gradient, so the left-most column (never covered by a photo)
    gives its colour per row.
    """
    bg = frame[:, 1:2].astype(np.int16)
    mask = (np.abs(frame.astype(np.int16) - bg).max(axis=2) > 20).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((9, 9), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    boxes = [
        [x, y, x + w, y + h] for x, y, w, h, area in stats[1:] if area > 2000
    ]  # drop the background label 0 and specks
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def test_empty_inputs() -> None:
    tracker = IouTracker()
    for empty in ([], np.zeros((0, 4)), np.zeros((0,))):
        ids = tracker.update(empty, [])
        assert ids.shape == (0,) and ids.dtype == np.int64
    assert tracker.update([box(50, 50)]).tolist() == [1]
    assert tracker.update(np.zeros((0, 4))).tolist() == []
    assert tracker.update([box(52, 50)]).tolist() == [1]


def test_two_faces_moving_keep_ids_in_any_input_order() -> None:
    tracker = IouTracker()
    rng = np.random.default_rng(0)
    for t in range(40):
        a = box(100 + 4 * t, 200 + 2 * np.sin(t / 3))  # moving right
        b = box(500 - 3 * t, 180 + t)  # moving left and down; they pass each other
        order = rng.permutation(2)
        boxes = np.array([a, b])[order]
        ids = tracker.update(boxes, np.array([0.9, 0.8])[order])
        by_face = dict(zip(order.tolist(), ids.tolist(), strict=True))
        assert by_face == {0: 1, 1: 2}, f"frame {t}"
    assert sorted(tracker.active_ids) == [1, 2]


def test_fast_small_boxes_need_centroid_fallback() -> None:
    # 20 px faces jumping 24 px per frame: consecutive boxes never overlap (IoU 0).
    steps = [box(50 + 24 * t, 100, size=20) for t in range(6)]
    assert box_iou_xyxy([steps[0]], [steps[1]])[0, 0] == 0.0
    with_fallback = IouTracker(TrackerOptions(max_center_distance=1.5))
    assert {int(with_fallback.update([b])[0]) for b in steps} == {1}
    without = IouTracker(TrackerOptions(max_center_distance=0.0))
    assert int(without.update([steps[0]])[0]) == 1
    assert int(without.update([steps[1]])[0]) == 2


def test_dropout_within_max_age_keeps_id_and_longer_dropout_gets_new_id() -> None:
    tracker = IouTracker(TrackerOptions(max_age=2))
    assert tracker.update([box(100, 100)]).tolist() == [1]
    assert tracker.update([box(103, 100)]).tolist() == [1]
    for _ in range(2):  # 2 frames without the face: still within max_age
        assert tracker.update([]).tolist() == []
    assert tracker.update([box(112, 100)]).tolist() == [1]
    for _ in range(3):  # 3 frames: one more than max_age
        tracker.update([])
    assert tracker.update([box(112, 100)]).tolist() == [2]


def test_ids_start_at_one_and_are_never_reused() -> None:
    tracker = IouTracker(TrackerOptions(max_age=1))
    seen: list[int] = []
    for t in range(30):
        # A face appears at a new place every 3 frames and lives for 3 frames.
        boxes = [box(40 + 90 * (k % 7), 40 + 90 * (k // 7), 50) for k in range(t // 3, t // 3 + 2)]
        ids = tracker.update(boxes).tolist()
        seen.extend(i for i in ids if i not in seen)
    assert seen[0] == 1
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert seen == list(range(1, len(seen) + 1))


def test_min_hits_reports_untracked_until_confirmed() -> None:
    tracker = IouTracker(TrackerOptions(min_hits=3))
    out = [int(tracker.update([box(100 + t, 100)])[0]) for t in range(4)]
    assert out == [UNTRACKED, UNTRACKED, 1, 1]


def test_low_score_detection_continues_but_does_not_start_a_track() -> None:
    tracker = IouTracker(TrackerOptions(high_score_threshold=0.5, new_track_min_score=0.5))
    assert tracker.update([box(100, 100)], [0.9]).tolist() == [1]
    # Face becomes blurry (low score) but is still matched; a low-score blob elsewhere is not a track.
    ids = tracker.update([box(300, 300), box(104, 100)], [0.2, 0.3]).tolist()
    assert ids == [UNTRACKED, 1]


def test_reset_restarts_ids() -> None:
    tracker = IouTracker()
    tracker.update([box(50, 50), box(200, 50)])
    tracker.reset()
    assert tracker.update([box(400, 50)]).tolist() == [1]


@pytest.mark.parametrize(
    ("boxes", "scores"),
    [(np.zeros((2, 3)), None), (np.zeros((2, 4)), [0.5]), ([[0, 0, np.nan, 1]], None)],
)
def test_bad_input_raises(boxes: object, scores: object) -> None:
    with pytest.raises(ValueError):
        IouTracker().update(boxes, scores)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs", [{"iou_threshold": 0.0}, {"max_age": -1}, {"min_hits": 0}, {"max_scale_change": 0.5}]
)
def test_options_are_validated(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TrackerOptions(**kwargs)  # type: ignore[arg-type]


def test_demo_video_one_track_per_photo(demo: DemoVideo) -> None:
    """Boxes measured from the decoded demo frames (the moving photos) keep one id each."""
    tracker = IouTracker()
    ids_per_photo: dict[int, set[int]] = {0: set(), 1: set()}
    frames = 0
    with VideoSource(demo.path) as src:
        for index, _, frame in src:
            found = photo_boxes_from_frame(frame)
            assert found.shape == (2, 4), f"frame {index}"
            truth = demo.image_boxes_xyxy[index]
            iou = box_iou_xyxy(truth, found)
            assert iou.max(axis=1).min() > 0.9, f"frame {index}"
            reversed_order = found[::-1]  # ids must follow the boxes, whatever their order
            ids = tracker.update(reversed_order)
            match = box_iou_xyxy(truth, reversed_order).argmax(axis=1)
            for photo in (0, 1):
                ids_per_photo[photo].add(int(ids[match[photo]]))
            frames += 1
    assert frames == demo.frame_count
    assert len(ids_per_photo[0]) == len(ids_per_photo[1]) == 1
    assert ids_per_photo[0] | ids_per_photo[1] == {1, 2}


def test_demo_face_boxes_every_third_frame(demo: DemoVideo) -> None:
    """Subsampled (faster motion per step) ground-truth face boxes also keep their ids."""
    tracker = IouTracker(TrackerOptions(iou_threshold=0.3))
    for faces in demo.face_boxes_xyxy[::3]:
        assert tracker.update(faces).tolist() == [1, 2]


def test_tracker_with_real_detector_on_demo_video(demo: DemoVideo) -> None:
    """A real face detector on the decoded demo clip gives exactly one track per person."""
    yuface = pytest.importorskip("yuface")
    tracker = IouTracker()
    left_ids: set[int] = set()
    right_ids: set[int] = set()
    with VideoSource(demo.path) as src:
        for index, _, frame in src:
            if index % 10:
                continue  # a detector is slow on this shared CPU; 6 frames, 2/3 s apart
            _, xywh, _ = yuface.detect(frame, 0.5)
            boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in xywh], dtype=np.float64).reshape(-1, 4)
            assert len(boxes) == 2, f"frame {index}"
            ids = tracker.update(boxes)
            left, right = np.argsort(boxes[:, 0])
            left_ids.add(int(ids[left]))
            right_ids.add(int(ids[right]))
    assert len(left_ids) == len(right_ids) == 1
    assert left_ids | right_ids == {1, 2}
