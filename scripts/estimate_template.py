"""Measure where face detectors put the 5 landmarks and the box in FER2013's 48x48 framing.

The expression classifier is trained on FER2013 crops, so ``emoar.align`` must cut faces out of
camera frames with the same framing. This script runs our detectors (default options, so YuNet
landmarks come from the O-net refinement) on FER2013 Training images upscaled 48 -> 240 px
(bicubic) and padded by 25% (edge-replicated, so the face does not touch the image border, as in
a real frame), plus their mirror images (which cancels any left/right bias of the detector), and
reports, in 48x48 coordinates:

* the median of each landmark (pixel centres at integers, the ``cv2.warpAffine`` convention),
  symmetrised about x = 23.5, then calibrated: scaled and shifted so that aligning the same FER
  images onto it with ``emoar.align`` gives, in the median, the identity (scale 1, shift 0);
* the median box centre and size, from which ``emoar.align`` derives the box-only fallback.

Usage (from the repository root; ~1.5 min for yunet, 2.5 for mtcnn, 10 for haar on one core)::

    python scripts/estimate_template.py --data ../shared/data/fer2013/fer2013.csv.gz \
        --n 2000 --detectors yunet mtcnn haar --save /tmp/fer_template.npz

The numbers printed (``FER_TEMPLATE_48``, ``FER_BOX_48[...]``) are pasted into
``src/emoar/align.py``; ``--load`` re-analyses a saved run without detecting again.
"""

from __future__ import annotations

import argparse
import logging
import math
import time

import cv2
import numpy as np
import numpy.typing as npt

from emoar.align import landmark_alignment_matrix
from emoar.detect import DetectorOptions, create_detector
from emoar.train.data import load_fer2013_csv

UPSCALED_PX = 240
PAD_FRACTION = 0.25
# Mirror image: landmark rows swap pairwise (left eye <-> right eye, mouth left <-> right).
MIRROR_ROWS = [1, 0, 2, 4, 3]


def measure(
    images: npt.NDArray[np.uint8], detector_name: str, mirror: bool
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int]:
    """Run one detector on upscaled, padded FER images.

    Returns:
        landmarks ``(M, 5, 2)`` (NaN when the detector has none) and boxes ``(M, 4)`` in 48x48
        coordinates for the M images where a face was found, and M.
    """
    s = UPSCALED_PX / 48.0
    pad = round(PAD_FRACTION * UPSCALED_PX)
    side = UPSCALED_PX + 2 * pad
    opts = DetectorOptions(name=detector_name, detect_max_side=side, min_score=0.5)
    lms, boxes = [], []
    with create_detector(opts) as det:
        if det.name != detector_name:
            raise SystemExit(f"{detector_name} is not available here (got {det.name})")
        for img in images:
            if mirror:
                img = img[:, ::-1]
            up = cv2.resize(
                np.ascontiguousarray(img), (UPSCALED_PX, UPSCALED_PX), interpolation=cv2.INTER_CUBIC
            )
            up = cv2.copyMakeBorder(up, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            faces = det.detect(cv2.cvtColor(up, cv2.COLOR_GRAY2BGR))
            if not faces:
                continue
            # The face nearest the centre (FER images hold one face).
            f = min(
                faces,
                key=lambda d: (
                    abs((d.box_xyxy[0] + d.box_xyxy[2]) / 2 - side / 2)
                    + abs((d.box_xyxy[1] + d.box_xyxy[3]) / 2 - side / 2)
                ),
            )
            box = (np.asarray(f.box_xyxy, np.float64) - pad) / s  # edges
            if f.landmarks_xy is not None:
                lm = (f.landmarks_xy.astype(np.float64) - pad + 0.5) / s - 0.5  # pixel centres
            else:
                lm = np.full((5, 2), np.nan)
            if mirror:
                box = np.array([48.0 - box[2], box[1], 48.0 - box[0], box[3]])
                lm = lm[MIRROR_ROWS].copy()
                lm[:, 0] = 47.0 - lm[:, 0]
            lms.append(lm)
            boxes.append(box)
    return np.array(lms).reshape(-1, 5, 2), np.array(boxes).reshape(-1, 4), len(boxes)


def symmetrise(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Average each landmark with the mirror image of its partner (x -> 47 - x)."""
    mirrored = points[MIRROR_ROWS].copy()
    mirrored[:, 0] = 47.0 - mirrored[:, 0]
    return (points + mirrored) / 2.0


def median_alignment(
    lms: npt.NDArray[np.float64], template: npt.NDArray[np.float64]
) -> tuple[float, float, float, float, float]:
    """Align every sample's landmarks (48x48 coords) onto ``template`` with emoar.align's fit.

    Returns:
        Median scale, median rotation (degrees), median displacement (dx, dy) of the image
        centre (23.5, 23.5) in pixels, and the 90th-percentile fit residual (eye distances).
        An exact template gives (1, 0, 0, 0).
    """
    c0 = np.array([23.5, 23.5])
    params, resid = [], []
    for lm in lms:
        m, r = landmark_alignment_matrix(lm, 48, template=template)
        if not np.isfinite(r):
            continue
        params.append(
            [
                math.hypot(m[0, 0], m[1, 0]),
                math.degrees(math.atan2(m[1, 0], m[0, 0])),
                *(m[:, :2] @ c0 + m[:, 2] - c0),
            ]
        )
        resid.append(r)
    med = np.median(np.array(params), axis=0)
    return float(med[0]), float(med[1]), float(med[2]), float(med[3]), float(np.percentile(resid, 90))


def calibrate(lms: npt.NDArray[np.float64], template: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Adjust ``template`` so that aligning FER images onto it is, in the median, the identity.

    The per-landmark medians are not quite the least-squares "mean shape" (expressions move the
    mouth, landmarks are noisy), so aligning FER images onto them would shrink and shift the
    faces slightly. The fit is equivariant: replacing the template by A(template) turns every
    alignment M into A o M, so with the median scale s and centre displacement d,
    A(y) = c0 + (y - c0 - d) / s cancels both in one step.
    """
    s, _, dx, dy, _ = median_alignment(lms, template)
    c0 = np.array([23.5, 23.5])
    return symmetrise(c0 + (template - c0 - np.array([dx, dy])) / s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    ap.add_argument("--n", type=int, default=2000, help="number of Training images (random, seeded)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detectors", nargs="+", default=["yunet"])
    ap.add_argument("--save", help="write the raw measurements to this .npz (per detector)")
    ap.add_argument("--load", help="re-analyse measurements saved with --save instead of detecting")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    np.set_printoptions(precision=2, suppress=True)

    raw: dict[str, npt.NDArray[np.float64]] = {}
    if args.load:
        with np.load(args.load) as z:
            raw = {k: z[k] for k in z.files}
    else:
        train = load_fer2013_csv(args.data)["Training"]
        rng = np.random.default_rng(args.seed)
        idx = rng.choice(len(train), size=min(args.n, len(train)), replace=False)
        images = train.images[np.sort(idx)]
        for name in args.detectors:
            t0 = time.perf_counter()
            parts = [measure(images, name, mirror) for mirror in (False, True)]
            raw[f"{name}_lms"] = np.concatenate([p[0] for p in parts])
            raw[f"{name}_boxes"] = np.concatenate([p[1] for p in parts])
            raw[f"{name}_tried"] = np.array(2 * len(images))
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
        if args.save:
            np.savez(args.save, **raw)  # type: ignore[arg-type]  # numpy stubs mistype **kwargs

    for name in args.detectors:
        lms, boxes, tried = raw[f"{name}_lms"], raw[f"{name}_boxes"], int(raw[f"{name}_tried"])
        print(f"\n== {name}: face found in {len(boxes)}/{tried} images ({len(boxes) / tried:.1%})")
        centre = np.median((boxes[:, :2] + boxes[:, 2:]) / 2, axis=0)
        wh = np.median(boxes[:, 2:] - boxes[:, :2], axis=0)
        # The fallback scales by the larger of the w and h ratios; rescale the size so that
        # this ratio is 1 in the median.
        ratio = np.median(np.max((boxes[:, 2:] - boxes[:, :2]) / wh, axis=1))
        print("median box xyxy (edges):", np.median(boxes, axis=0))
        print("box IQR w, h:", np.subtract(*np.percentile(boxes[:, 2:] - boxes[:, :2], [75, 25], axis=0)))
        # Training flips images horizontally, so the framing is mirror-symmetric: cx = 24.
        print(f"median box centre x measured: {centre[0]:.2f} (reported symmetrised: 24.00)")
        print(
            f"FER_BOX_48[{name!r}] = (24.00, {centre[1]:.2f}, {wh[0] * ratio:.2f}, {wh[1] * ratio:.2f})"
            f"  # centre x, y; size w, h (max-ratio correction {ratio:.3f})"
        )
        if np.isnan(lms).all():
            continue
        med = np.median(lms, axis=0)
        print("median landmarks:\n", med)
        print("IQR per landmark (x, y):\n", np.subtract(*np.percentile(lms, [75, 25], axis=0)))
        sym = symmetrise(med)
        s_, rot, dx, dy, r90 = median_alignment(lms, sym)
        print(
            f"symmetrised medians; alignment of FER onto them: scale {s_:.3f}, rot {rot:.2f} deg, "
            f"dx {dx:.2f}, dy {dy:.2f} px, residual p90 {r90:.3f}"
        )
        cal = calibrate(lms, sym)
        s_, rot, dx, dy, r90 = median_alignment(lms, cal)
        print(
            f"calibrated; alignment of FER onto it:        scale {s_:.3f}, rot {rot:.2f} deg, "
            f"dx {dx:.2f}, dy {dy:.2f} px, residual p90 {r90:.3f}"
        )
        print("FER_TEMPLATE_48 =")
        for row in cal:
            print(f"    ({row[0]:.2f}, {row[1]:.2f}),")


if __name__ == "__main__":
    main()
