"""YuNet on onnxruntime (``models/yunet.onnx``, converted by ``scripts/convert_yunet.py``) against
the library it was converted from (``yuface``'s ``libfacedetection.so`` through ctypes)."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from media_helpers import read_photo

from emoar.detect import DetectorOptions, create_detector
from emoar.detect import yunet as yunet_module
from emoar.detect.base import RawDetections
from emoar.detect.yunet import MODEL_PATH, YuNetDetector, find_libfacedetection

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ["portrait.jpg", "portrait_2.jpg", "office_group.jpg", "stage_group.jpg"]
# The library truncates boxes and landmarks to whole pixels (a box's right edge is int(x) +
# int(w): less than 2 px off) and the score to whole percent; the ONNX path keeps floats.
BOX_PX, LANDMARK_PX, SCORE = 2.05, 2.0, 0.02
LIB_THRESHOLD = 0.2  # detection_output's confidence threshold

needs_yuface = pytest.mark.skipif(
    find_libfacedetection() is None, reason="yuface (libfacedetection, the reference) is not installed"
)


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    interp = cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(img, (w, h), interpolation=interp)


def _variants(photos_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """Each photo at the default detect_max_side (320) plus odd sizes, odd crops and an upscale."""
    for name in PHOTOS:
        img = read_photo(photos_dir, name)
        h, w = img.shape[:2]
        s = 320 / max(h, w)
        yield f"{name}@320", _resize(img, round(w * s), round(h * s))
        yield f"{name}@333x251", _resize(img, 333, 251) if w >= h else _resize(img, 251, 333)
        yield f"{name}@crop", np.ascontiguousarray(img[7 : 7 + min(h - 7, 301), 5 : 5 + min(w - 5, 397)])
    portrait_2 = read_photo(photos_dir, "portrait_2.jpg")
    yield "portrait_2.jpg@x1.37", _resize(portrait_2, 329, 439)
    yield "portrait_2.jpg@97x71", _resize(portrait_2, 97, 71)


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[YuNetDetector, YuNetDetector]]:
    if find_libfacedetection() is None:
        pytest.skip("yuface (libfacedetection, the reference) is not installed")
    opts = DetectorOptions(refine_landmarks=False, min_score=0.0, detect_max_side=320)
    with YuNetDetector(opts, engine="onnx") as onnx_det, YuNetDetector(opts, engine="ctypes") as c_det:
        assert onnx_det.engine == "onnx" and c_det.engine == "ctypes"
        yield onnx_det, c_det


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` IoU of XYXY boxes."""
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None] - inter)


def _compare(ours: RawDetections, ref: RawDetections) -> tuple[int, float, float, float]:
    """Match the two detection sets one to one; returns (matched, max box, score and landmark
    differences). A detection without a partner may only be one at the library's 0.2 cut."""
    n_ours, n_ref = len(ours.scores), len(ref.scores)
    pairs: list[tuple[int, int]] = []
    if n_ours and n_ref:
        iou = _iou(ours.boxes_xyxy, ref.boxes_xyxy)
        while iou.size and iou.max() > 0.5:
            i, j = np.unravel_index(int(np.argmax(iou)), iou.shape)
            pairs.append((int(i), int(j)))
            iou[i, :] = -1
            iou[:, j] = -1
    lonely = [ours.scores[i] for i in set(range(n_ours)) - {p[0] for p in pairs}]
    lonely += [ref.scores[j] for j in set(range(n_ref)) - {p[1] for p in pairs}]
    assert all(s < LIB_THRESHOLD + SCORE for s in lonely), f"unmatched detections scoring {lonely}"
    if not pairs:
        return 0, 0.0, 0.0, 0.0
    a, b = (np.array(v) for v in zip(*pairs, strict=True))
    assert ours.landmarks_xy is not None and ref.landmarks_xy is not None
    return (
        len(pairs),
        float(np.abs(ours.boxes_xyxy[a] - ref.boxes_xyxy[b]).max()),
        float(np.abs(ours.scores[a] - ref.scores[b]).max()),
        float(np.abs(ours.landmarks_xy[a] - ref.landmarks_xy[b]).max()),
    )


@needs_yuface
def test_onnx_matches_the_library_on_real_photos(
    engines: tuple[YuNetDetector, YuNetDetector], photos_dir: Path
) -> None:
    onnx_det, c_det = engines
    worst = np.zeros(3)
    for label, img in _variants(photos_dir):
        # _detect_raw with min_score 0: every box the library reports (score >= 0.2), unrounded.
        ours = onnx_det._detect_raw(img, 1.0)
        ref = c_det._detect_raw(img, 1.0)
        matched, box, score, lm = _compare(ours, ref)
        assert matched >= 1 or label.endswith("97x71"), label
        assert box <= BOX_PX and score <= SCORE and lm <= LANDMARK_PX, (label, box, score, lm)
        worst = np.maximum(worst, [box, score, lm])
        # The faces a user gets (default min_score 0.6): the same number.
        assert np.sum(ours.scores >= 0.6) == np.sum(ref.scores >= 0.6), label
    print(f"max |box| {worst[0]:.2f} px, |score| {worst[1]:.3f}, |landmark| {worst[2]:.2f} px")


@needs_yuface
def test_onnx_truncated_like_the_library_gives_its_integers(
    engines: tuple[YuNetDetector, YuNetDetector], photos_dir: Path
) -> None:
    """The library's int16 rows are the ONNX floats truncated as it truncates them (int() of the
    score in percent, of xmin / ymin, of the width / height and of each landmark), nearly always
    exactly: a float rounding difference may move a value across a whole number."""
    onnx_det, c_det = engines
    total = differ = 0
    for _, img in _variants(photos_dir):
        raw = onnx_det._detect_raw(img, 1.0)
        rows = c_det._call(img)
        if len(rows) != len(raw.scores):
            continue  # a box at the 0.2 cut: _compare covers it
        b = raw.boxes_xyxy
        assert raw.landmarks_xy is not None
        ints = np.concatenate(
            [
                np.floor(raw.scores * 100 + 1e-6)[:, None],
                np.trunc(b[:, :2]),
                np.trunc(b[:, 2:] - b[:, :2]),
                np.trunc(raw.landmarks_xy.reshape(-1, 10)),
            ],
            axis=1,
        )
        d = np.abs(ints - rows[:, :15])
        assert d.size == 0 or d.max() <= 1
        total += d.size
        differ += int((d > 0).sum())
    assert total > 500 and differ <= 0.01 * total, (differ, total)


@needs_yuface
def test_same_faces_with_default_options(photos_dir: Path) -> None:
    with create_detector("yunet") as det:
        assert isinstance(det, YuNetDetector) and det.engine == "onnx"
        with YuNetDetector(det.options, engine="ctypes") as ref:
            for name in PHOTOS:
                img = read_photo(photos_dir, name)
                assert len(det.detect(img)) == len(ref.detect(img)), name


def test_yunet_runs_on_onnx_without_yuface(monkeypatch: pytest.MonkeyPatch, photos_dir: Path) -> None:
    monkeypatch.setitem(sys.modules, "yuface", None)  # what an absent wheel looks like to import
    assert find_libfacedetection() is None
    with create_detector("yunet") as det:
        assert det.name == "yunet" and isinstance(det, YuNetDetector) and det.engine == "onnx"
        (face,) = det.detect(read_photo(photos_dir, "portrait_2.jpg"))
        assert face.score >= 0.6 and face.landmarks_xy is not None
        with pytest.raises(ImportError, match="yuface"):
            det._call(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ImportError, match="yuface"):
        YuNetDetector(DetectorOptions(min_score=0.6, detect_max_side=320), engine="ctypes")


@needs_yuface
def test_falls_back_to_the_library_without_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, photos_dir: Path
) -> None:
    monkeypatch.setattr(yunet_module, "MODEL_PATH", tmp_path / "missing.onnx")
    opts = DetectorOptions(min_score=0.6, detect_max_side=320, refine_landmarks=False)
    with YuNetDetector(opts) as det:
        assert det.engine == "ctypes"
        assert len(det.detect(read_photo(photos_dir, "portrait_2.jpg"))) == 1
    with pytest.raises(ImportError, match="not installed"):
        YuNetDetector(opts, engine="onnx")
    with pytest.raises(ValueError, match="engine"):
        YuNetDetector(opts, engine="tflite")  # type: ignore[arg-type]


def test_no_face_and_tiny_images() -> None:
    opts = DetectorOptions(min_score=0.6, detect_max_side=320, refine_landmarks=False)
    with YuNetDetector(opts, engine="onnx") as det:
        for shape in [(1, 1, 3), (31, 33, 3), (240, 320, 3)]:
            assert det.detect(np.full(shape, 128, np.uint8)) == []


def test_model_metadata_names_its_source() -> None:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(MODEL_PATH))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["yuface_version"] == "2023.5.1"
    assert len(meta["libfacedetection_sha256"]) == 64
    lib = find_libfacedetection()
    if lib is not None:
        assert hashlib.sha256(lib.resolve().read_bytes()).hexdigest() == meta["libfacedetection_sha256"]


@needs_yuface
def test_convert_script_reproduces_the_shipped_model(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    spec = importlib.util.spec_from_file_location("convert_yunet", REPO / "scripts" / "convert_yunet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = module.convert(tmp_path / "yunet.onnx")
    assert data == MODEL_PATH.read_bytes()
