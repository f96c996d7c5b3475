"""Non-face patches for the OOD head's face / non-face discriminator (emoar.train.negatives)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from emoar.train.data import load_fer2013_csv  # noqa: E402
from emoar.train.negatives import (  # noqa: E402
    BENCHMARK_SKIMAGE,
    TRAIN_SKIMAGE,
    low_resolution_faces,
    non_face_patches,
)


@pytest.fixture(scope="module")
def faces(fer_csv):  # type: ignore[no-untyped-def]
    tr = load_fer2013_csv(fer_csv)["Training"]
    return tr.images[:300], tr.images[tr.nf >= 0.5][:20]


def test_fitting_sources_are_disjoint_from_the_benchmark() -> None:
    assert not set(TRAIN_SKIMAGE) & set(BENCHMARK_SKIMAGE)


def test_patches_are_deterministic_uint8_48px_and_not_constant(faces) -> None:  # type: ignore[no-untyped-def]
    imgs, nf = faces
    a = non_face_patches(imgs, nf, np.random.default_rng(3), n_per_source=60)
    b = non_face_patches(imgs, nf, np.random.default_rng(3), n_per_source=60)
    assert set(a) == {"fer_nf", "skimage", "emoji", "jigsaw", "synthetic"}
    for k, v in a.items():
        assert v.dtype == np.uint8 and v.shape[1:] == (48, 48) and len(v) > 0, k
        np.testing.assert_array_equal(v, b[k], err_msg=k)
    # hardly any flat patches: a flat square carries no evidence either way
    flat = np.concatenate(list(a.values())).reshape(-1, 48 * 48).std(1) < 1.0
    assert flat.mean() < 0.05
    # a jigsaw keeps a face's pixels but not their layout
    assert not any(np.array_equal(j, f) for j in a["jigsaw"][:20] for f in imgs)


def test_no_nf_images_is_fine_and_bad_shapes_are_refused(faces) -> None:  # type: ignore[no-untyped-def]
    imgs, _ = faces
    out = non_face_patches(imgs, None, np.random.default_rng(0), n_per_source=12)
    assert "fer_nf" not in out
    with pytest.raises(ValueError, match="48, 48"):
        non_face_patches(imgs[:, :40, :40], None, np.random.default_rng(0))


def test_low_resolution_faces_are_blurred_copies(faces) -> None:  # type: ignore[no-untyped-def]
    imgs, _ = faces
    low = low_resolution_faces(imgs, 50, np.random.default_rng(0))
    assert low.shape == (50, 48, 48) and low.dtype == np.uint8

    def sharpness(x: np.ndarray) -> float:
        return float(np.abs(np.diff(x.astype(np.float32), axis=2)).mean())

    assert sharpness(low) < sharpness(imgs)
