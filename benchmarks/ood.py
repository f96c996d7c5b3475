"""How well the shipped model's OOD score separates real faces from non-faces.

Usage: python benchmarks/ood.py [--model default]

In-distribution: FER2013 PrivateTest faces. Out-of-distribution sets (48x48 gray, fed to the
classifier exactly like aligned face crops):
  * FER+ "not a face": PublicTest/PrivateTest images whose FER+ raters voted mostly
    "NF"/"unknown" (the Training ones are the export's negatives, so they are not used here);
  * random crops of non-face regions of the real photos in ../shared/data/photos;
  * random crops of scikit-image's non-face sample images (cat, coffee, rocket, text, ...);
  * scikit-image's lfw_subset negatives (its 100 non-face patches).
None of these images is used when the model is exported: the face / non-face discriminator is
fitted on the disjoint sources of emoar.train.negatives. Prints AUROC per set, the share of real faces flagged at the model's threshold, the share of
each OOD set caught, and accuracy on the unflagged faces at several coverages (risk-coverage).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import FER_CSV, SHARED_DATA, machine, table  # noqa: E402


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random OOD sample > score of a random face); ties count half."""
    s = np.concatenate([pos, neg])
    order = s.argsort(kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    # average ranks for ties
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, ranks)
    ranks = (sums / counts)[inv]
    r_neg = ranks[len(pos) :].sum()
    return float((r_neg - len(neg) * (len(neg) + 1) / 2) / (len(pos) * len(neg)))


def _random_crops(
    img: np.ndarray, n: int, rng: np.random.Generator, avoid: list[tuple[float, ...]] | None = None
) -> list[np.ndarray]:
    import cv2

    from emoar.preprocess import to_gray

    g = to_gray(img)
    h, w = g.shape
    out: list[np.ndarray] = []
    tries = 0
    while len(out) < n and tries < n * 50:
        tries += 1
        s = int(rng.uniform(0.1, 0.5) * min(h, w))
        x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
        if avoid and any(
            x < b[2] + 5 and x + s > b[0] - 5 and y < b[3] + 5 and y + s > b[1] - 5 for b in avoid
        ):
            continue
        out.append(cv2.resize(g[y : y + s, x : x + s], (48, 48), interpolation=cv2.INTER_AREA))
    return out


def ood_sets(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The non-face sets described in the module docstring."""
    import cv2
    import skimage.data as skd

    from emoar.detect import create_detector
    from emoar.train.data import load_fer2013_csv

    sets: dict[str, np.ndarray] = {}
    d = load_fer2013_csv(FER_CSV)
    nf_imgs = []
    for name, split in d.items():
        if split.nf is not None and name != "Training":
            nf_imgs.append(split.images[split.nf >= 0.5])
    sets["FER+ not-a-face"] = np.concatenate(nf_imgs)
    crops: list[np.ndarray] = []
    with create_detector("yunet") as det:
        photos = os.path.join(SHARED_DATA, "photos")
        for f in sorted(os.listdir(photos)):
            if f.endswith(".jpg"):
                img = cv2.imread(os.path.join(photos, f))
                boxes = [tuple(x.box_xyxy) for x in det.detect(img)]
                # skip generous regions around faces (hair, necks) too
                grown = [
                    (
                        b[0] - (b[2] - b[0]),
                        b[1] - (b[3] - b[1]),
                        b[2] + (b[2] - b[0]),
                        b[3] + 2 * (b[3] - b[1]),
                    )
                    for b in boxes
                ]
                crops += _random_crops(img, 100, rng, grown)
    sets["photo background crops"] = np.stack(crops)
    from emoar.train.negatives import BENCHMARK_SKIMAGE

    names = [n for n in BENCHMARK_SKIMAGE if n != "cat"]  # "cat" is an alias of "chelsea"
    sk = []
    for n in names:
        sk += _random_crops(getattr(skd, n)(), 40, rng)
    sets["scikit-image objects/textures"] = np.stack(sk)
    lfw = skd.lfw_subset()  # 100 faces then 100 non-faces, 25x25 float
    sets["lfw_subset negatives"] = np.stack(
        [cv2.resize((x * 255).astype(np.uint8), (48, 48), interpolation=cv2.INTER_CUBIC) for x in lfw[100:]]
    )
    return sets


def other_face_sets() -> dict[str, np.ndarray]:
    """Real faces from outside FER2013 that should *not* be flagged: scikit-image's
    lfw_subset faces (25x25, upscaled) and the faces YuNet finds in ../shared/data/photos,
    aligned exactly as the pipeline aligns them."""
    import cv2
    import skimage.data as skd

    from emoar.align import align_faces
    from emoar.detect import create_detector

    lfw = skd.lfw_subset()[:100]
    sets = {
        "lfw_subset faces (25 px)": np.stack(
            [cv2.resize((x * 255).astype(np.uint8), (48, 48), interpolation=cv2.INTER_CUBIC) for x in lfw]
        )
    }
    crops = []
    photos = os.path.join(SHARED_DATA, "photos")
    with create_detector("yunet") as det:
        for f in sorted(os.listdir(photos)):
            if f.endswith(".jpg"):
                img = cv2.imread(os.path.join(photos, f))
                crops.append(align_faces(img, det.detect(img), 48, detector="yunet"))
    sets["faces detected in shared/data/photos"] = np.concatenate(crops)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    a = ap.parse_args()
    from emoar.classify import ClassifierOutput, ExpressionClassifier
    from emoar.models import resolve_model
    from emoar.train.data import load_dataset, load_fer2013_csv
    from emoar.train.evaluate import labels_in_model_order, task_for_labels

    clf = ExpressionClassifier(resolve_model(a.model))
    test = load_fer2013_csv(FER_CSV)["PrivateTest"]
    everything = clf.classify(test.images)
    # the PrivateTest images FER+ raters call "not a face" belong to the OOD side only
    is_face = test.nf < 0.5 if test.nf is not None else np.ones(len(test), bool)
    faces = ClassifierOutput(
        everything.probs[is_face], everything.ood_score[is_face], everything.uncertain[is_face]
    )
    rng = np.random.default_rng(0)
    thr = clf.info.ood_threshold
    print(f"# OOD: model {a.model}, threshold {thr} (command: python benchmarks/ood.py --model {a.model})")
    print(f"# machine: {machine()}\n")
    rows = [
        [
            "FER2013 PrivateTest faces (in-distribution)",
            int(is_face.sum()),
            "-",
            f"{faces.uncertain.mean():.3f} flagged",
        ]
    ]
    for name, imgs in other_face_sets().items():
        out = clf.classify(imgs)
        rows.append([name, len(imgs), "-", f"{out.uncertain.mean():.3f} flagged"])
    all_neg = []
    for name, imgs in ood_sets(rng).items():
        out = clf.classify(imgs)
        all_neg.append(out.ood_score)
        rows.append(
            [
                name,
                len(imgs),
                f"{auroc(faces.ood_score, out.ood_score):.3f}",
                f"{out.uncertain.mean():.3f} caught",
            ]
        )
    neg = np.concatenate(all_neg)
    rows.append(
        [
            "all non-face sets",
            len(neg),
            f"{auroc(faces.ood_score, neg):.3f}",
            f"{(neg > thr).mean():.3f} caught",
        ]
    )
    print(table(["set", "n", "AUROC vs faces", "at threshold"], rows))
    # risk-coverage: keep the most typical faces first (an 8-class FER+ model is scored on the
    # FER+ majority labels of the faces FER+ keeps)
    scored, scored_out, label_set = test, everything, "FER2013 labels"
    if task_for_labels(clf.labels) == "ferplus":
        scored = load_dataset(FER_CSV, task="ferplus")["PrivateTest"]
        scored_out, label_set = clf.classify(scored.images), "FER+ majority labels"
    order = np.argsort(scored_out.ood_score)
    correct = scored_out.probs.argmax(1)[order] == labels_in_model_order(scored, clf.labels)[order]
    cov_rows = []
    for cov in (1.0, 0.95, 0.9, 0.8, 0.7, 0.5):
        k = int(round(cov * len(order)))
        cov_rows.append([f"{cov:.2f}", k, f"{correct[:k].mean():.4f}"])
    print(f"\nRisk-coverage on all of PrivateTest, {label_set} (kept in order of increasing ood_score):\n")
    print(table(["coverage", "faces kept", "accuracy on kept faces"], cov_rows))


if __name__ == "__main__":
    main()
