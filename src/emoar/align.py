"""Face alignment: detection -> grayscale crop framed like a FER2013 training image.

The classifier was trained on FER2013's 48x48 crops, so a face from a camera frame must be cut
out with the same framing. Two ways, in order:

1. **Landmarks** (YuNet, MTCNN): a 5-point similarity transform (rotation, uniform scale,
   translation; least squares) maps the detection's landmarks onto :data:`FER_TEMPLATE_48`,
   so the face also comes out upright.
2. **Box only** (Haar, or when the landmark fit is degenerate): an axis-aligned square crop that
   puts the box centre and size where the same detector puts them on FER2013 images
   (:data:`FER_BOX_48`). Detectors frame faces differently, so pass ``detector=`` (the
   detector's ``name``) when the boxes come from Haar.

Both constants were measured, not guessed: ``scripts/estimate_template.py`` ran each detector
on 2,000 FER2013 Training images (plus their mirror images) upscaled 48 -> 240 px (bicubic)
with a 25% edge-replicated border, and took medians in 48x48 coordinates. Re-aligning
FER2013 PublicTest images this way gives back their framing in the median (scale 1.00, shift
< 0.5 px; ``tests/test_align.py``). Per image, FER's own framing varies around the template
(IQR 3-4.6 px per landmark coordinate, head roll IQR 9 degrees), and aligned crops are upright.

Coordinates: crop pixel centres are at integers (the ``cv2.warpAffine`` convention), so a
48x48 crop spans [-0.5, 47.5]; landmarks are points, boxes are edges ([0, 48] is the whole
crop). Everything is pure numpy/OpenCV; nothing happens at import.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from emoar.preprocess import to_gray
from emoar.types import Detection

__all__ = [
    "FER_BOX_48",
    "FER_SIZE",
    "FER_TEMPLATE_48",
    "MAX_FIT_RESIDUAL",
    "MAX_SCALE_RATIO",
    "MAX_SUPERSAMPLE",
    "align_face",
    "align_faces",
    "alignment_matrix",
    "box_alignment_matrix",
    "fer_template",
    "landmark_alignment_matrix",
]

logger = logging.getLogger(__name__)

#: Side of a FER2013 image in pixels; the template constants below are in this frame.
FER_SIZE = 48

#: Where the 5 landmarks sit in a FER2013 image: (x, y) in pixels of the 48x48 image, pixel
#: centres at integers, rows image-left eye, image-right eye, nose tip, image-left mouth corner,
#: image-right mouth corner. Measured with the default detector (YuNet boxes, O-net landmarks)
#: on 2 x 2,000 FER2013 Training images (see the module docstring): per-landmark medians,
#: symmetrised about x = 23.5 (training flips images, so the framing is mirror-symmetric), then
#: rescaled by 1/0.995 and shifted 0.04 px so that aligning those FER images onto it is the
#: identity in the median (scale 1.000, shift 0.0 px). Spread of FER's own framing around it:
#: IQR 3-4.6 px per coordinate. Full MTCNN's medians differ by <= 0.25 px; YuNet's raw
#: landmarks (``refine_landmarks=False``) put the mouth corners 1 px higher.
FER_TEMPLATE_48: npt.NDArray[np.float64] = np.array(
    [
        (14.30, 18.08),
        (32.70, 18.08),
        (23.50, 28.58),
        (15.86, 37.62),
        (31.14, 37.62),
    ],
    dtype=np.float64,
)
FER_TEMPLATE_48.setflags(write=False)

#: Where each detector puts its box on a FER2013 image: box centre (cx, cy) and size (w, h) in
#: pixels of the 48x48 image (edges; [0, 48] is the whole image). Same measurement as
#: :data:`FER_TEMPLATE_48`: median centre (cx symmetrised to 24), median size scaled so that the
#: fallback's max(w ratio, h ratio) is 1 in the median. Detection rates on the upscaled FER
#: images: YuNet 97%, MTCNN 89%, Haar 78%, BlazeFace full range 70%, short range 96%
#: (``scripts/estimate_template.py --n 2000 --detectors blazeface blazeface_short``). Used by the
#: box-only fallback.
FER_BOX_48: dict[str, tuple[float, float, float, float]] = {
    "yunet": (24.00, 23.70, 39.74, 53.20),
    "blazeface": (24.00, 26.09, 43.38, 43.38),
    "blazeface_short": (24.00, 27.59, 40.83, 40.83),
    "mtcnn": (24.00, 24.40, 39.50, 52.40),
    "haar": (24.00, 23.90, 46.40, 46.40),
}

# Least-squares weights of the landmarks in the similarity fit (eyes, nose, mouth corners).
# Equal: weighting the eyes 2x changed the FER round trip by less than its noise.
_FIT_WEIGHTS = np.array([1.0, 1.0, 1.0, 1.0, 1.0])

#: A landmark fit is degenerate (-> box fallback) when its RMS residual exceeds this fraction
#: of the template's eye distance. FER faces: median 0.08, 99th percentile 0.25, 1 in 2,000
#: above 0.35.
MAX_FIT_RESIDUAL = 0.35
#: ... or when its scale differs from the box fallback's by more than this factor either way.
MAX_SCALE_RATIO = 2.0
#: Largest supersampling factor when shrinking a face (anti-aliasing): faces up to 8x the crop
#: size are box-averaged; the warp only computes output pixels, so this stays cheap.
MAX_SUPERSAMPLE = 8


def fer_template(size: int = FER_SIZE) -> npt.NDArray[np.float64]:
    """The 5-point template scaled to a ``size x size`` crop.

    Args:
        size: crop side in pixels.

    Returns:
        ``(5, 2)`` float64 (x, y) in pixels of the crop, pixel centres at integers.
    """
    return (FER_TEMPLATE_48 + 0.5) * (size / FER_SIZE) - 0.5


def _check_size(size: int) -> int:
    if isinstance(size, bool) or int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}")
    return int(size)


def _fit_similarity(
    src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float]:
    """Weighted least-squares similarity (no reflection) mapping ``src`` points onto ``dst``.

    Closed form with complex numbers: ``dst ~ a * src + b``, ``a = s * exp(i * theta)``.

    Returns:
        The ``(2, 3)`` matrix and the weighted RMS residual in ``dst`` units (inf if
        ``src`` has no spread).
    """
    z = src[:, 0] + 1j * src[:, 1]
    t = dst[:, 0] + 1j * dst[:, 1]
    w = weights / weights.sum()
    zc, tc = z - (w * z).sum(), t - (w * t).sum()
    denom = float((w * np.abs(zc) ** 2).sum())
    if not math.isfinite(denom) or denom < 1e-12:
        return np.full((2, 3), np.nan), math.inf
    a = (w * tc * np.conj(zc)).sum() / denom
    b = (w * t).sum() - a * (w * z).sum()
    m = np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])
    resid = float(np.sqrt((w * np.abs(a * z + b - t) ** 2).sum()))
    return m, resid


def box_alignment_matrix(
    box_xyxy: Sequence[float], size: int = FER_SIZE, *, detector: str = "yunet"
) -> npt.NDArray[np.float64]:
    """Axis-aligned crop that frames a detector's box as that detector frames FER2013 faces.

    The box centre goes to the measured FER box centre and the box is scaled (uniformly) to the
    measured FER box size; the larger of the width and height ratios is used, so a box clipped
    by the frame border on one side keeps its scale.

    Args:
        box_xyxy: (x1, y1, x2, y2) in pixels of the frame (edges).
        size: crop side in pixels.
        detector: backend that produced the box (its boxes' framing differs: Haar's are
            square, YuNet's and MTCNN's are taller than wide). Unknown names use YuNet's.

    Returns:
        ``(2, 3)`` float64 matrix mapping frame pixel coordinates to crop pixel coordinates
        (pixel centres at integers), for ``cv2.warpAffine``.

    Raises:
        ValueError: a box with zero or negative area, or non-finite coordinates.
    """
    size = _check_size(size)
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    w, h = x2 - x1, y2 - y1
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise ValueError(f"Cannot align a face box with no area: box_xyxy={tuple(box_xyxy)}")
    cx, cy, tw, th = FER_BOX_48.get(detector, FER_BOX_48["yunet"])
    k = size / FER_SIZE
    s = k / max(w / tw, h / th)  # crop pixels per frame pixel
    # Edges: crop_edge = s * (frame_edge - box_centre) + template_centre; for pixel centres
    # (both at integers) subtract 0.5 on the crop side after adding 0.5 on the frame side.
    tx = k * cx - s * (x1 + x2) / 2 + (s - 1.0) * 0.5
    ty = k * cy - s * (y1 + y2) / 2 + (s - 1.0) * 0.5
    return np.array([[s, 0.0, tx], [0.0, s, ty]])


def landmark_alignment_matrix(
    landmarks_xy: npt.ArrayLike, size: int = FER_SIZE, *, template: npt.ArrayLike | None = None
) -> tuple[npt.NDArray[np.float64], float]:
    """Least-squares similarity taking 5 landmarks onto the FER template.

    The fit runs from the template to the landmarks and is then inverted: the template is
    exact and the landmarks are noisy, and a least-squares fit whose *source* points are noisy
    shrinks the scale (errors-in-variables: on FER2013 the direct fit's median scale is
    0.981, this one's 1.000).

    Args:
        landmarks_xy: ``(5, 2)`` points in pixels of the frame (pixel centres at integers), in
            :data:`emoar.detect.LANDMARK_NAMES` order.
        size: crop side in pixels.
        template: ``(5, 2)`` template in 48x48 coordinates; default :data:`FER_TEMPLATE_48`.

    Returns:
        ``(matrix, residual)``: the ``(2, 3)`` float64 frame -> crop matrix, and the weighted
        RMS distance between the mapped landmarks and the template as a fraction of the
        template's eye distance (``inf`` when the landmarks are degenerate).
    """
    size = _check_size(size)
    src = np.asarray(landmarks_xy, dtype=np.float64).reshape(5, 2)
    tmpl = FER_TEMPLATE_48 if template is None else np.asarray(template, dtype=np.float64).reshape(5, 2)
    dst = (tmpl + 0.5) * (size / FER_SIZE) - 0.5
    if not np.isfinite(src).all():
        return np.full((2, 3), np.nan), math.inf
    inv, resid_src = _fit_similarity(dst, src, _FIT_WEIGHTS)
    scale = math.hypot(inv[0, 0], inv[1, 0])
    if not math.isfinite(resid_src) or scale < 1e-9:
        return np.full((2, 3), np.nan), math.inf
    m = np.linalg.inv(np.vstack([inv, (0.0, 0.0, 1.0)]))[:2]
    eye_dist = float(np.linalg.norm(dst[1] - dst[0]))
    return m, resid_src / scale / eye_dist


def alignment_matrix(
    detection: Detection, size: int = FER_SIZE, *, detector: str = "yunet"
) -> npt.NDArray[np.float64]:
    """The frame -> crop transform :func:`align_face` uses for one detection.

    Landmarks when present and consistent (fit residual below 35% of the eye distance, scale
    within 2x of the box's); the box fallback otherwise.

    Args:
        detection: a face from :meth:`emoar.detect.FaceDetector.detect`.
        size: crop side in pixels.
        detector: backend that produced ``detection`` (chooses the box framing for the fallback).

    Returns:
        ``(2, 3)`` float64 matrix mapping frame pixel coordinates to crop pixel coordinates.
    """
    box_m = box_alignment_matrix(detection.box_xyxy, size, detector=detector)
    if detection.landmarks_xy is None:
        return box_m
    m, resid = landmark_alignment_matrix(detection.landmarks_xy, size)
    if not math.isfinite(resid) or resid > MAX_FIT_RESIDUAL:
        logger.debug("Landmark fit degenerate (residual %.2f eye distances); using the box", resid)
        return box_m
    ratio = math.sqrt(abs(np.linalg.det(m[:, :2]))) / box_m[0, 0]
    if not (1.0 / MAX_SCALE_RATIO <= ratio <= MAX_SCALE_RATIO):
        logger.debug("Landmark scale is %.2fx the box's; using the box", ratio)
        return box_m
    return m


def _warp_gray(
    frame: npt.NDArray[np.generic], m: npt.NDArray[np.float64], size: int
) -> npt.NDArray[np.uint8]:
    """Warp ``frame`` with ``m`` to ``size x size`` and convert to 8-bit gray, anti-aliased."""
    src: Any = frame  # uint8/uint16/float32/float64, checked by _as_warpable
    scale = math.sqrt(abs(float(np.linalg.det(m[:, :2]))))
    f = int(min(MAX_SUPERSAMPLE, max(1, math.floor(1.0 / scale)))) if scale > 0 else 1
    if f > 1:
        # Render f x larger, then average f x f blocks (INTER_AREA): a big face shrunk to 48 px
        # would alias with a plain bilinear warp. Output pixel i is the mean of big pixels
        # f*i .. f*i+f-1, centred at f*i + (f-1)/2.
        mf = m * f
        mf[:, 2] += (f - 1) / 2.0
        big = cv2.warpAffine(
            src, mf, (size * f, size * f), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        crop = cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)
    else:
        crop = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return to_gray(crop)


_WARPABLE = (np.uint8, np.uint16, np.float32, np.float64)


def _as_warpable(frame: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    img = np.asarray(frame)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"Unsupported image shape {img.shape}; expected HxW (gray), HxWx1, HxWx3 (BGR) or HxWx4 (BGRA)"
        )
    if img.size == 0:
        raise ValueError(f"Empty image (shape {img.shape}); expected an image with width and height > 0")
    if img.dtype.type not in _WARPABLE:
        img = to_gray(img)  # other integer types: clipped to 8 bits
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    return img


def align_face(
    frame: npt.NDArray[np.generic], detection: Detection, size: int = FER_SIZE, *, detector: str = "yunet"
) -> npt.NDArray[np.uint8]:
    """Cut one face out of a frame, upright and framed like a FER2013 image.

    Args:
        frame: the frame the detection came from: ``HxW`` gray, ``HxWx3`` BGR or ``HxWx4`` BGRA,
            uint8, uint16 or float in [0, 1].
        detection: a face in pixels of ``frame``.
        size: crop side in pixels (the classifier's input size).
        detector: backend that produced ``detection`` (``"haar"`` boxes are framed differently;
            only matters without landmarks).

    Returns:
        ``(size, size)`` uint8 grayscale crop. Pixels outside the frame repeat the border.

    Raises:
        ValueError: empty frame, unsupported shape, bad ``size`` or a box with no area.
    """
    size = _check_size(size)
    img = _as_warpable(frame)
    return _warp_gray(img, alignment_matrix(detection, size, detector=detector), size)


def align_faces(
    frame: npt.NDArray[np.generic],
    detections: Sequence[Detection],
    size: int = FER_SIZE,
    *,
    detector: str = "yunet",
) -> npt.NDArray[np.uint8]:
    """Cut all faces out of a frame (see :func:`align_face`).

    Args:
        frame: gray, BGR or BGRA frame (uint8, uint16 or float in [0, 1]).
        detections: faces in pixels of ``frame``.
        size: crop side in pixels.
        detector: backend that produced the detections.

    Returns:
        ``(N, size, size)`` uint8 grayscale crops in detection order (``N`` may be 0).

    Raises:
        ValueError: empty frame, unsupported shape, bad ``size`` or a box with no area.
    """
    size = _check_size(size)
    img = _as_warpable(frame)
    out = np.empty((len(detections), size, size), np.uint8)
    for i, det in enumerate(detections):
        out[i] = _warp_gray(img, alignment_matrix(det, size, detector=detector), size)
    return out
