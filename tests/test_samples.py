"""Bundled sample image and the generated demo video."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoar.io import VideoSource, read_image
from emoar.samples import (
    SAMPLE_IMAGES,
    DemoVideo,
    astronaut,
    demo_frames,
    make_demo_video,
    sample_face_box,
    sample_image,
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoVideo:
    return make_demo_video(tmp_path_factory.mktemp("samples") / "demo.mp4")


def test_bundled_astronaut_asset() -> None:
    assets = resources.files("emoar").joinpath("assets")
    size = len(assets.joinpath("astronaut.jpg").read_bytes())
    assert 50_000 <= size <= 80_000
    readme = assets.joinpath("README.md").read_text(encoding="utf-8")
    assert "public domain" in readme.lower() and "NASA" in readme
    img = sample_image()
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(astronaut(), img)
    assert SAMPLE_IMAGES == ("astronaut",)


def test_astronaut_matches_scikit_image() -> None:
    data = pytest.importorskip("skimage.data")
    reference = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    assert np.abs(sample_image().astype(int) - reference).mean() < 3  # JPEG quality 90


def test_astronaut_face_box_is_on_the_face() -> None:
    x1, y1, x2, y2 = sample_face_box()
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512
    assert 60 < x2 - x1 < 130 and 80 < y2 - y1 < 160


def test_unknown_sample_lists_available() -> None:
    with pytest.raises(ValueError, match="Unknown sample image 'lena'; available: astronaut"):
        sample_image("lena")


def test_default_demo_video_reads_back(demo: DemoVideo) -> None:
    assert demo.frame_count == 60 and demo.resolution_wh == (640, 480)
    assert demo.image_boxes_xyxy.shape == demo.face_boxes_xyxy.shape == (60, 2, 4)
    np.testing.assert_allclose(demo.timestamps_ms[[0, -1]], [0.0, 59 * 1000 / 15])
    with VideoSource(demo.path) as src:
        assert src.frame_count == 60 and src.resolution_wh == (640, 480)
        assert src.fps == pytest.approx(15)
        frames = [f for _, _, f in src]
    assert len(frames) == 60
    # decoded content matches the rendered content
    rendered = [f for f, _, _ in demo_frames([astronaut(), astronaut()[:, ::-1]], 4, 15)]
    for k in (0, 31, 59):
        assert np.abs(frames[k].astype(int) - rendered[k]).mean() < 4


def test_demo_motion_is_smooth_and_stays_in_slots(demo: DemoVideo) -> None:
    img, faces = demo.image_boxes_xyxy, demo.face_boxes_xyxy
    assert np.isfinite(faces).all()
    # photos stay inside their own half of the frame: no overlap, never cut off
    assert (img[:, 0, 0] >= 0).all() and (img[:, 0, 2] <= 320).all()
    assert (img[:, 1, 0] >= 320).all() and (img[:, 1, 2] <= 640).all()
    assert (img[:, :, 1] >= 0).all() and (img[:, :, 3] <= 480).all()
    # faces inside their photos
    assert (faces[..., :2] >= img[..., :2]).all() and (faces[..., 2:] <= img[..., 2:]).all()
    centres = (faces[..., :2] + faces[..., 2:]) / 2
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=2)
    assert steps.max() < 3.0  # pixels per frame: smooth
    assert np.ptp(centres[..., 0], axis=0).min() > 8  # but it really moves (pixels)
    sizes = faces[..., 2] - faces[..., 0]
    assert abs(sizes[-1, 0] / sizes[0, 0] - 1.15) < 0.01  # left face zooms in 15 %
    assert abs(sizes[-1, 1] / sizes[0, 1] - 1 / 1.15) < 0.01  # right face zooms out


def test_demo_boxes_match_frame_content() -> None:
    """The ground-truth photo box is where the photo really is in the frame."""
    photo = astronaut()
    for frame, boxes, faces in demo_frames([photo], seconds=1, fps=5, size=(320, 240)):
        x1, y1, x2, y2 = np.round(boxes[0]).astype(int)
        crop = frame[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2]
        expected = cv2.resize(photo, (x2 - x1, y2 - y1), interpolation=cv2.INTER_AREA)[2:-2, 2:-2]
        assert np.abs(crop.astype(int) - expected).mean() < 12
        assert np.isnan(faces).all()  # no face box given for a user photo


def test_demo_with_real_portraits(tmp_path: Path, photos_dir: Path) -> None:
    photos = [read_image(photos_dir / "portrait.jpg"), read_image(photos_dir / "portrait_2.jpg")]
    demo = make_demo_video(tmp_path / "portraits.mp4", photos, seconds=2, fps=10)
    assert demo.frame_count == 20
    with VideoSource(demo.path) as src:
        assert src.frame_count == 20
        assert sum(1 for _ in src) == 20


def test_demo_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        make_demo_video(tmp_path / "x.mp4", [])
    with pytest.raises(ValueError, match="face boxes"):
        make_demo_video(tmp_path / "x.mp4", [astronaut()], face_boxes=[None, None])
    with pytest.raises(ValueError, match=r"images\[0\]"):
        make_demo_video(tmp_path / "x.mp4", [np.zeros((10, 10, 3), np.float32)])  # type: ignore[list-item]
    assert not (tmp_path / "x.mp4").exists()
    assert list(tmp_path.iterdir()) == []
