"""One set of pixel-conversion rules for every stage (emoar.io.pixels), on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emoar.detect import as_bgr_uint8
from emoar.io import decode_image
from emoar.io.pixels import to_bgr, to_gray, to_uint8
from emoar.preprocess import to_gray as preprocess_gray


@pytest.fixture(scope="module")
def photo(photos_dir: Path) -> np.ndarray:
    return cv2.imread(str(photos_dir / "portrait_2.jpg"))


def test_depth_rules() -> None:
    np.testing.assert_array_equal(to_uint8(np.array([0, 257, 32896, 65535], np.uint16)), [0, 1, 128, 255])
    np.testing.assert_array_equal(
        to_uint8(np.array([0.0, 0.5, 1.0, 2.0, -1.0, np.nan], np.float32)), [0, 128, 255, 255, 0, 0]
    )
    np.testing.assert_array_equal(to_uint8(np.array([False, True])), [0, 255])
    np.testing.assert_array_equal(to_uint8(np.array([-128, 0, 127], np.int8)), [0, 128, 255])
    np.testing.assert_array_equal(to_uint8(np.array([-5, 300], np.int32)), [0, 255])
    with pytest.raises(ValueError, match="dtype"):
        to_uint8(np.zeros(3, np.complex64))


def test_alpha_is_an_explicit_choice(photo: np.ndarray) -> None:
    bgra = cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA)
    bgra[:, : bgra.shape[1] // 2, 3] = 0  # left half transparent
    dropped, composited = to_bgr(bgra, "drop"), to_bgr(bgra, "composite")
    np.testing.assert_array_equal(dropped, photo)
    assert (composited[:, : photo.shape[1] // 2] == 255).all()
    np.testing.assert_array_equal(composited[:, photo.shape[1] // 2 :], photo[:, photo.shape[1] // 2 :])
    # A PNG file with that alpha decodes like the composite; a live frame drops it.
    png = cv2.imencode(".png", bgra)[1].tobytes()
    np.testing.assert_array_equal(decode_image(png), composited)
    np.testing.assert_array_equal(decode_image(png, alpha="drop"), dropped)
    np.testing.assert_array_equal(as_bgr_uint8(bgra), dropped)


def test_every_stage_converts_16_bit_the_same_way(photo: np.ndarray) -> None:
    deep = photo.astype(np.uint16) * 257 + 100  # not an exact multiple: rounding matters
    png = cv2.imencode(".png", deep)[1].tobytes()
    via_file = decode_image(png)
    via_detector = as_bgr_uint8(deep)
    np.testing.assert_array_equal(via_file, via_detector)
    np.testing.assert_array_equal(to_gray(deep), preprocess_gray(deep))
    np.testing.assert_array_equal(to_gray(deep), to_gray(via_file))


def test_gray_matches_opencv(photo: np.ndarray) -> None:
    ref = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(int)
    assert np.abs(to_gray(photo).astype(int) - ref).max() <= 1


@pytest.mark.parametrize("shape", [(0, 4, 3), (4, 4, 5), (2, 2, 2, 3), (4,)])
def test_bad_layouts(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="image"):
        to_bgr(np.zeros(shape, np.uint8))
