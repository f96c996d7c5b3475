"""Non-face 48x48 patches for fitting the "not a face" side of the OOD head (outlier exposure).

Everything here is available offline and is disjoint from the sets ``benchmarks/ood.py``
measures on (FER+ "not a face" images of the *test* splits, crops of ``../shared/data/photos``,
the scikit-image images listed there and ``lfw_subset``):

* ``fer_nf``: FER2013 *Training* images whose FER+ raters voted mostly "not a face";
* ``skimage``: random crops of the scikit-image sample images the benchmark does not use
  (the regions around the faces in ``astronaut`` and ``camera`` are avoided);
* ``emoji``: the bundled Noto emoji sprites (cartoon faces are not faces for this model);
* ``jigsaw``: training faces cut into 3x3 or 4x4 tiles and shuffled: face texture without a
  face's layout (the hardest negatives, and the most plentiful);
* ``synthetic``: noise, smoothed noise, gradients, stripes, checkerboards, shapes and text.

The face side of the discriminator gets, besides training faces, the same faces at low
resolution (:func:`low_resolution_faces`): without them blur itself becomes a "not a face"
cue and small faces in group photos get flagged.

All functions are deterministic for a given ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import cv2
import numpy as np

__all__ = ["BENCHMARK_SKIMAGE", "TRAIN_SKIMAGE", "low_resolution_faces", "non_face_patches"]

#: scikit-image images that ``benchmarks/ood.py`` measures on (never used for fitting).
BENCHMARK_SKIMAGE = (
    "coffee", "chelsea", "cat", "rocket", "horse", "coins", "moon", "hubble_deep_field", "brick",
    "grass", "gravel", "cell", "page", "text", "clock", "immunohistochemistry", "retina",
)  # fmt: skip
#: scikit-image images used for fitting, with face regions (x0, y0, x1, y1) to stay clear of.
TRAIN_SKIMAGE: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "astronaut": ((130, 0, 300, 230),),
    "camera": ((180, 20, 330, 200),),
    "binary_blobs": (),
    "checkerboard": (),
    "colorwheel": (),
    "logo": (),
    "microaneurysms": (),
    "shepp_logan_phantom": (),
}

SIZE = 48


def _gray_u8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        a = np.clip(a * (255.0 if a.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if a.ndim == 3:
        a = cv2.cvtColor(a[..., :3], cv2.COLOR_RGB2GRAY)
    return a


def _crops(
    g: np.ndarray, n: int, rng: np.random.Generator, avoid: tuple[tuple[int, int, int, int], ...] = ()
) -> list[np.ndarray]:
    h, w = g.shape
    out: list[np.ndarray] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        s = int(rng.uniform(0.08, 0.6) * min(h, w))
        s = max(s, 8)
        x, y = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        if any(x < b[2] and x + s > b[0] and y < b[3] and y + s > b[1] for b in avoid):
            continue
        out.append(cv2.resize(g[y : y + s, x : x + s], (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return out


def skimage_patches(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random crops of the scikit-image images in :data:`TRAIN_SKIMAGE`."""
    import skimage.data as skd

    per = max(1, n // len(TRAIN_SKIMAGE) + 1)
    out: list[np.ndarray] = []
    for name, avoid in TRAIN_SKIMAGE.items():
        # binary_blobs draws a new image per call unless seeded
        img = skd.binary_blobs(rng=0) if name == "binary_blobs" else getattr(skd, name)()
        out += _crops(_gray_u8(img), per, rng, avoid)
    idx = rng.permutation(len(out))[:n]
    return np.stack([out[i] for i in idx])


def emoji_patches(n: int, rng: np.random.Generator) -> np.ndarray:
    """The bundled emoji sprites on random backgrounds, scaled and shifted a little."""
    assets = resources.files("emoar.overlay").joinpath("assets")
    files = sorted((p for p in assets.iterdir() if p.name.endswith(".png")), key=lambda p: p.name)
    sprites = []
    for p in files:
        rgba = cv2.imdecode(np.frombuffer(p.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
        if rgba is not None and rgba.ndim == 3 and rgba.shape[2] == 4:
            sprites.append(rgba)
    out = []
    for i in range(n):
        s = sprites[i % len(sprites)]
        g = cv2.cvtColor(s[..., :3], cv2.COLOR_BGR2GRAY).astype(np.float32)
        a = s[..., 3].astype(np.float32) / 255.0
        bg = float(rng.uniform(0, 255))
        img = g * a + bg * (1 - a)
        pad = int(rng.uniform(0.0, 0.3) * img.shape[0])
        img = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=bg)
        out.append(cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.uint8))
    return np.stack(out)


def jigsaw_patches(faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Faces cut into a 3x3 or 4x4 grid of tiles and shuffled."""
    out = np.empty((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        f = faces[int(rng.integers(len(faces)))]
        k = int(rng.choice([3, 4]))
        t = SIZE // k
        tiles = [f[r * t : (r + 1) * t, c * t : (c + 1) * t] for r in range(k) for c in range(k)]
        perm = rng.permutation(len(tiles))
        while np.all(perm == np.arange(len(tiles))):
            perm = rng.permutation(len(tiles))
        grid = np.vstack([np.hstack([tiles[perm[r * k + c]] for c in range(k)]) for r in range(k)])
        out[i] = cv2.resize(grid, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    return out


def low_resolution_faces(faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Faces shrunk to 12-32 px and scaled back up: the blur of small faces in group photos
    and webcams. Used on the *face* side of the discriminator so blur alone never reads as
    "not a face"."""
    out = np.empty((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        f = faces[int(rng.integers(len(faces)))]
        s = int(rng.integers(12, 33))
        small = cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA)
        interp = cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC
        out[i] = cv2.resize(small, (SIZE, SIZE), interpolation=interp)
    return out


def _noise(rng: np.random.Generator) -> np.ndarray:
    img = rng.normal(rng.uniform(60, 200), rng.uniform(5, 70), (SIZE, SIZE))
    sigma = float(rng.choice([0.0, 1.0, 2.5, 5.0]))
    return cv2.GaussianBlur(img, (0, 0), sigma) if sigma else img


def _gradient(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    a = rng.uniform(0, 2 * np.pi)
    v = np.cos(a) * xx + np.sin(a) * yy
    v = (v - v.min()) / max(np.ptp(v), 1e-6)
    return rng.uniform(0, 120) + v * rng.uniform(30, 200)


def _stripes(rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    a = rng.uniform(0, np.pi)
    period = rng.uniform(3, 24)
    v = np.sin(2 * np.pi * (np.cos(a) * xx + np.sin(a) * yy) / period)
    if rng.random() < 0.5:
        v = np.sign(v)
    return 128 + v * rng.uniform(20, 120)


def _checker(rng: np.random.Generator) -> np.ndarray:
    k = int(rng.integers(2, 12))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    v = ((yy // max(1, SIZE // k) + xx // max(1, SIZE // k)) % 2).astype(np.float64)
    return rng.uniform(0, 100) + v * rng.uniform(50, 200)


def _shapes(rng: np.random.Generator) -> np.ndarray:
    img = np.full((SIZE, SIZE), rng.uniform(0, 255), np.float64)
    for _ in range(int(rng.integers(1, 6))):
        c = float(rng.uniform(0, 255))
        p = rng.integers(0, SIZE, 4)
        kind = rng.integers(3)
        if kind == 0:
            cv2.circle(
                img, (int(p[0]), int(p[1])), int(rng.integers(3, 24)), c, -1 if rng.random() < 0.6 else 2
            )
        elif kind == 1:
            cv2.rectangle(
                img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), c, -1 if rng.random() < 0.6 else 2
            )
        else:
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), c, int(rng.integers(1, 6)))
    return img


def _text(rng: np.random.Generator) -> np.ndarray:
    bg, fg = (0.0, 255.0) if rng.random() < 0.5 else (255.0, 0.0)
    img = np.full((SIZE * 2, SIZE * 2), bg, np.float64)
    chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    for row in range(int(rng.integers(1, 5))):
        s = "".join(rng.choice(list(chars), int(rng.integers(2, 9))))
        y = 20 + row * 24
        cv2.putText(
            img, s, (int(rng.integers(0, 20)), y), int(rng.integers(0, 8)), rng.uniform(0.5, 1.4), fg, 2
        )
    return cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


_SYNTH: tuple[Callable[[np.random.Generator], np.ndarray], ...] = (
    _noise, _gradient, _stripes, _checker, _shapes, _text,
)  # fmt: skip


def synthetic_patches(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise, gradients, stripes, checkerboards, shapes and text (an equal share of each)."""
    out = np.empty((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        out[i] = np.clip(_SYNTH[i % len(_SYNTH)](rng), 0, 255).astype(np.uint8)
    return out


def non_face_patches(
    faces: np.ndarray,
    nf: np.ndarray | None,
    rng: np.random.Generator,
    *,
    n_per_source: int = 600,
) -> dict[str, np.ndarray]:
    """The negative sets described in the module docstring, by source.

    Args:
        faces: (N, 48, 48) uint8 training faces (for ``jigsaw``).
        nf: (M, 48, 48) uint8 training images rated "not a face" by FER+ (may be None/empty).
        rng: random generator.
        n_per_source: patches per generated source.
    """
    if faces.ndim != 3 or faces.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"faces must be (N, {SIZE}, {SIZE}) uint8, got {faces.shape}")
    out: dict[str, np.ndarray] = {}
    if nf is not None and len(nf):
        out["fer_nf"] = np.asarray(nf, np.uint8)
    out["skimage"] = skimage_patches(n_per_source, rng)
    out["emoji"] = emoji_patches(max(len(_SYNTH), n_per_source // 4), rng)
    out["jigsaw"] = jigsaw_patches(faces, n_per_source, rng)
    out["synthetic"] = synthetic_patches(n_per_source, rng)
    return out
