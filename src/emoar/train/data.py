"""Datasets: Kaggle FER2013 CSV, FER+ votes, and ``<class>/`` image folders.

Everything is loaded into memory as uint8 arrays (FER2013 is 35,887 48x48 images, 83 MB),
with a ``.npz`` cache next to the user's cache dir so an epoch never re-parses text.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from emoar.labels import FER2013_LABELS, FERPLUS_LABELS, canonical_label

__all__ = [
    "FaceDataset",
    "DatasetError",
    "load_dataset",
    "load_extra_faces",
    "load_fer2013_csv",
    "load_folder",
]

logger = logging.getLogger(__name__)

SPLITS = ("Training", "PublicTest", "PrivateTest")
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
# FER+ vote columns, in file order, mapped to our label names.
_FERPLUS_COLUMNS = (
    "neutral",
    "happy",
    "surprise",
    "sad",
    "angry",
    "disgust",
    "fear",
    "contempt",
    "unknown",
    "NF",
)


class DatasetError(ValueError):
    """A dataset path or layout that cannot be read; the message says what was expected."""


@dataclass
class FaceDataset:
    """Grayscale face images with labels.

    Attributes:
        images: ``(N, H, W)`` uint8.
        labels: ``(N,)`` int64 index into ``label_names`` (hard label).
        label_names: class names in label-index order.
        soft: optional ``(N, C)`` float32 label distributions (FER+ votes), rows sum to 1.
        nf: optional ``(N,)`` float32 fraction of FER+ raters who said "not a face"/"unknown".
        source: human-readable origin, stored in model metadata.
    """

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    label_names: tuple[str, ...]
    soft: npt.NDArray[np.float32] | None = None
    nf: npt.NDArray[np.float32] | None = None
    source: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: npt.NDArray[np.int64]) -> FaceDataset:
        """Rows ``idx`` as a new dataset."""
        return FaceDataset(
            self.images[idx],
            self.labels[idx],
            self.label_names,
            None if self.soft is None else self.soft[idx],
            None if self.nf is None else self.nf[idx],
            self.source,
            dict(self.extra),
        )

    def concat(self, other: FaceDataset) -> FaceDataset:
        """This dataset followed by ``other`` (same label names and image size). Rows of one side
        without soft labels / not-a-face fractions get zeros there (read as "hard label only")."""
        if other.label_names != self.label_names:
            raise DatasetError(f"label names differ: {other.label_names} vs {self.label_names}")
        if other.images.shape[1:] != self.images.shape[1:]:
            raise DatasetError(f"image size {other.images.shape[1:]} differs from {self.images.shape[1:]}")

        c = len(self.label_names)
        return FaceDataset(
            np.concatenate([self.images, other.images]),
            np.concatenate([self.labels, other.labels]),
            self.label_names,
            _cat_rows(self.soft, other.soft, len(self), len(other), (c,)),
            _cat_rows(self.nf, other.nf, len(self), len(other), ()),
            f"{self.source}+{other.source}",
            dict(self.extra),
        )

    def class_counts(self) -> npt.NDArray[np.int64]:
        """Number of images per class, in label order."""
        return np.bincount(self.labels, minlength=len(self.label_names)).astype(np.int64)


def _cat_rows(
    a: npt.NDArray[np.float32] | None,
    b: npt.NDArray[np.float32] | None,
    na: int,
    nb: int,
    tail: tuple[int, ...],
) -> npt.NDArray[np.float32] | None:
    """Concatenate two optional per-row arrays, zero-filling the side that has none."""
    if a is None and b is None:
        return None
    za = a if a is not None else np.zeros((na, *tail), np.float32)
    zb = b if b is not None else np.zeros((nb, *tail), np.float32)
    return np.concatenate([za, zb])


def load_extra_faces(path: str | os.PathLike[str], label_names: tuple[str, ...]) -> FaceDataset:
    """Extra labelled faces from an ``.npz`` with ``images`` (N, H, W) uint8 and ``labels`` (N,)
    class names (what ``emoar gan synth`` writes), indexed by ``label_names``."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            images, names = z["images"], z["labels"]
    except FileNotFoundError as e:
        raise DatasetError(f"{p}: no such file") from e
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(
            f"{p}: expected an .npz with 'images' (N, H, W) uint8 and 'labels' (N,) names ({e})"
        ) from e
    if images.ndim != 3 or images.dtype != np.uint8 or names.shape != (len(images),):
        raise DatasetError(
            f"{p}: expected 'images' (N, H, W) uint8 and 'labels' (N,), got {images.shape} {images.dtype} "
            f"and {names.shape}"
        )
    unknown = sorted({str(n) for n in names} - set(label_names))
    if unknown:
        raise DatasetError(
            f"{p}: unknown class name(s) {', '.join(unknown)}; expected {', '.join(label_names)}"
        )
    labels = np.array([label_names.index(str(n)) for n in names], dtype=np.int64)
    return FaceDataset(images, labels, label_names, source=f"extra:{p.name}")


def _cache_dir() -> Path:
    base = os.environ.get("EMOAR_CACHE") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return (root / "emoar") if not os.environ.get("EMOAR_CACHE") else root


def _file_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _parse_fer_csv(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    opener = gzip.open if path.suffix == ".gz" else open
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    usage: list[str] = []
    with opener(path, "rt", newline="") as f:  # type: ignore[operator]
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
            raise DatasetError(
                f"{path}: expected the Kaggle FER2013 CSV header 'emotion,pixels,Usage', got {header!r}"
            )
        for lineno, row in enumerate(reader, start=2):
            if len(row) < 3:
                raise DatasetError(f"{path}:{lineno}: expected 3 columns, got {len(row)}")
            px = np.array(row[1].split(), dtype=np.uint8)
            if px.size != 48 * 48:
                raise DatasetError(f"{path}:{lineno}: expected 2304 pixels, got {px.size}")
            images.append(px.reshape(48, 48))
            labels.append(int(row[0]))
            usage.append(row[2].strip())
    return {
        "images": np.stack(images),
        "labels": np.array(labels, dtype=np.int64),
        "usage": np.array(usage),
    }


def _parse_ferplus(path: Path, n_rows: int) -> npt.NDArray[np.float32]:
    votes = np.zeros((n_rows, len(_FERPLUS_COLUMNS)), dtype=np.float32)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or len(header) < 12 or header[1].strip() != "Image name":
            raise DatasetError(f"{path}: not a FER+ fer2013new.csv (header {header!r})")
        for i, row in enumerate(reader):
            if i >= n_rows:
                break
            votes[i] = [float(v or 0) for v in row[2:12]]
    return votes


def load_fer2013_csv(path: str | os.PathLike[str], *, use_cache: bool = True) -> dict[str, FaceDataset]:
    """Read a Kaggle ``fer2013.csv`` / ``.csv.gz`` into one dataset per Usage split.

    When a FER+ ``fer2013new.csv`` (or ``ferplus_fer2013new.csv``) lies next to the CSV, its
    votes are joined on row order and exposed as ``soft`` labels (7 FER2013 classes, contempt
    folded out) and ``nf`` (share of "unknown"/"not a face" votes).

    Raises:
        DatasetError: the file is missing or is not a FER2013 CSV.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"Dataset file not found: {p}")
    cache = _cache_dir() / f"fer2013-{_file_key(p)}.npz"
    arrays: dict[str, npt.NDArray[np.generic]]
    if use_cache and cache.is_file():
        with np.load(cache) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        logger.info("Parsing %s (first time; cached to %s)", p, cache)
        arrays = _parse_fer_csv(p)
        if use_cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npz")
            np.savez(tmp, **arrays)  # type: ignore[arg-type]
            tmp.replace(cache)
    votes = None
    for name in ("fer2013new.csv", "ferplus_fer2013new.csv"):
        cand = p.parent / name
        if cand.is_file():
            votes = _parse_ferplus(cand, len(arrays["labels"]))
            break
    out: dict[str, FaceDataset] = {}
    for split in SPLITS:
        idx = np.flatnonzero(arrays["usage"] == split)
        if idx.size == 0:
            continue
        soft = nf = None
        if votes is not None:
            v = votes[idx]
            # our label order: angry disgust fear happy sad surprise neutral
            order = [4, 5, 6, 1, 3, 2, 0]
            emo = v[:, order]
            tot = emo.sum(1, keepdims=True)
            soft = np.where(tot > 0, emo / np.maximum(tot, 1e-6), 0).astype(np.float32)
            nf = (v[:, 8:10].sum(1) / np.maximum(v.sum(1), 1e-6)).astype(np.float32)
        out[split] = FaceDataset(
            arrays["images"][idx],  # type: ignore[arg-type]
            arrays["labels"][idx],  # type: ignore[arg-type]
            FER2013_LABELS,
            soft,
            nf,
            source=f"{p.name}:{split}",
        )
    if not out:
        raise DatasetError(f"{p}: no rows with Usage in {SPLITS}")
    return out


def load_ferplus_task(path: str | os.PathLike[str]) -> dict[str, FaceDataset]:
    """The FER+ 8-class task (majority vote, contempt included) built from CSV + votes.

    Rows whose majority is "unknown"/"not a face" are dropped, as in the FER+ protocol.
    """
    p = Path(path)
    base = load_fer2013_csv(p)
    votes_path = next(
        (p.parent / n for n in ("fer2013new.csv", "ferplus_fer2013new.csv") if (p.parent / n).is_file()),
        None,
    )
    if votes_path is None:
        raise DatasetError(f"FER+ task needs fer2013new.csv next to {p}")
    raw = _load_cached_votes(votes_path, p)
    out: dict[str, FaceDataset] = {}
    usage_order = _usage_index(p)
    for split, ds in base.items():
        idx = usage_order[split]
        v = raw[idx]
        order = [4, 5, 6, 1, 3, 2, 0, 7]  # -> FERPLUS_LABELS
        emo = v[:, order]
        keep = (emo.max(1) > v[:, 8:10].max(1)) & (emo.sum(1) > 0)
        soft = (emo / np.maximum(emo.sum(1, keepdims=True), 1e-6)).astype(np.float32)
        out[split] = FaceDataset(
            ds.images[keep],
            emo[keep].argmax(1).astype(np.int64),
            FERPLUS_LABELS,
            soft[keep],
            ds.nf[keep] if ds.nf is not None else None,
            source=f"FER+:{split}",
        )
    return out


def _load_cached_votes(votes_path: Path, csv_path: Path) -> npt.NDArray[np.float32]:
    n = sum(len(v) for v in _usage_index(csv_path).values())
    return _parse_ferplus(votes_path, n)


def _usage_index(csv_path: Path) -> dict[str, npt.NDArray[np.int64]]:
    cache = _cache_dir() / f"fer2013-{_file_key(csv_path)}.npz"
    if not cache.is_file():
        load_fer2013_csv(csv_path)
    with np.load(cache) as z:
        usage = z["usage"]
    return {s: np.flatnonzero(usage == s) for s in SPLITS if (usage == s).any()}


def load_folder(
    root: str | os.PathLike[str], label_names: tuple[str, ...] = FER2013_LABELS, size: int = 48
) -> FaceDataset:
    """Read a ``<class>/*.(png|jpg)`` folder; class-name variants are accepted.

    Classes outside ``label_names`` are skipped with a warning; images are converted to
    grayscale and resized to ``size`` x ``size``.

    Raises:
        DatasetError: no class folder matched, or no readable image was found.
    """
    import cv2

    r = Path(root)
    if not r.is_dir():
        raise DatasetError(f"Dataset folder not found: {r}")
    images: list[npt.NDArray[np.uint8]] = []
    labels: list[int] = []
    seen = []
    for sub in sorted(d for d in r.iterdir() if d.is_dir()):
        name = canonical_label(sub.name)
        if name is None or name not in label_names:
            logger.warning("Skipping folder %s: not one of %s", sub, ", ".join(label_names))
            continue
        seen.append(sub.name)
        li = label_names.index(name)
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() not in _IMAGE_EXT:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is None:
                logger.warning("Skipping unreadable image %s", f)
                continue
            if img.shape != (size, size):
                img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            images.append(np.asarray(img, dtype=np.uint8))
            labels.append(li)
    if not seen:
        raise DatasetError(
            f"{r}: expected class folders named like {', '.join(label_names)} "
            f"(or train/ and test/ containing them); found "
            f"{', '.join(sorted(d.name for d in r.iterdir() if d.is_dir())) or 'none'}"
        )
    if not images:
        raise DatasetError(f"{r}: class folders {seen} contain no readable .png/.jpg images")
    return FaceDataset(np.stack(images), np.array(labels, dtype=np.int64), label_names, source=str(r))


def load_dataset(path: str | os.PathLike[str], task: str = "fer2013") -> dict[str, FaceDataset]:
    """Load any supported layout and return splits keyed like FER2013's Usage values.

    ``task="ferplus"`` builds the FER+ 8-class majority-vote task from a FER2013 CSV with
    ``fer2013new.csv`` next to it (see :func:`load_ferplus_task`).

    * ``fer2013.csv`` / ``.csv.gz`` -> ``Training``/``PublicTest``/``PrivateTest``;
    * a folder with ``train/`` and ``test/`` (Kaggle "msambare") -> ``Training`` and
      ``PrivateTest`` (a stratified 10% of train becomes ``PublicTest`` for tuning);
    * a single ``<class>/`` folder -> ``PrivateTest`` (evaluation only).
    """
    p = Path(path)
    if task not in ("fer2013", "ferplus"):
        raise DatasetError(f"Unknown task {task!r}; choose fer2013 or ferplus")
    if task == "ferplus":
        if not (p.is_file() and p.name.endswith((".csv", ".csv.gz"))):
            raise DatasetError(f"{p}: the ferplus task needs fer2013.csv(.gz) with fer2013new.csv next to it")
        return load_ferplus_task(p)
    if p.is_file():
        if p.name.endswith((".csv", ".csv.gz")):
            return load_fer2013_csv(p)
        raise DatasetError(f"{p}: unsupported dataset file; expected fer2013.csv(.gz) or a folder")
    if not p.exists():
        raise DatasetError(f"Dataset not found: {p}")
    subs = {d.name.lower(): d for d in p.iterdir() if d.is_dir()}
    if "train" in subs:
        train = load_folder(subs["train"])
        out = {"Training": train}
        rng = np.random.default_rng(0)
        val_idx = np.concatenate(
            [
                rng.permutation(np.flatnonzero(train.labels == c))[: max(1, int(0.1 * n))]
                for c, n in enumerate(train.class_counts())
                if n > 0
            ]
        )
        mask = np.ones(len(train), dtype=bool)
        mask[val_idx] = False
        out["Training"] = train.subset(np.flatnonzero(mask))
        out["PublicTest"] = train.subset(np.sort(val_idx))
        test = subs.get("test") or subs.get("val") or subs.get("validation")
        if test is not None:
            out["PrivateTest"] = load_folder(test)
        return out
    return {"PrivateTest": load_folder(p)}
