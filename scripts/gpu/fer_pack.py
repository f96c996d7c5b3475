"""Carry FER2013 to a borrowed GPU machine, losslessly, in under 50 MB.

The Kaggle CSV (94 MB gzipped) is over the 64 MiB a device call may carry. This packs the
Training and PublicTest rows (never PrivateTest: it is reported, not trained or tuned on) as
LOCO-I/JPEG-LS median-predictor residuals compressed with xz (48.5 MB; xz of the raw pixels
is 54 MB, lossless WebP 52 MB), with the matching FER+ vote rows, and unpacks them there
into a ``fer2013.csv`` + ``ferplus_fer2013new.csv`` pair that :func:`emoar.train.data.load_dataset`
reads as it reads the original::

    python scripts/gpu/fer_pack.py pack ../shared/data/fer2013/fer2013.csv.gz .gpu/fer_tp.npz
    python scripts/gpu/fer_pack.py unpack .gpu/fer_tp.npz /tmp/fer     # on the GPU machine

``unpack`` checks the pixels' SHA-256 against the one recorded at packing.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import lzma
import sys
import time
from pathlib import Path

import numpy as np

SPLITS = ("Training", "PublicTest")


def _med(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The median edge detector of LOCO-I: left ``a``, up ``b``, up-left ``c`` (int32)."""
    mx, mn = np.maximum(a, b), np.minimum(a, b)
    return np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))


def _residuals(x: np.ndarray) -> np.ndarray:
    xi = x.astype(np.int32)
    a, b, c = np.zeros_like(xi), np.zeros_like(xi), np.zeros_like(xi)
    a[:, :, 1:] = xi[:, :, :-1]
    b[:, 1:, :] = xi[:, :-1, :]
    c[:, 1:, 1:] = xi[:, :-1, :-1]
    return ((xi - _med(a, b, c)) % 256).astype(np.uint8)


def _reconstruct(res: np.ndarray) -> np.ndarray:
    n, h, w = res.shape
    out = np.zeros((n, h, w), np.int32)
    r = res.astype(np.int32)
    zero = np.zeros(n, np.int32)
    for i in range(h):
        for j in range(w):
            a = out[:, i, j - 1] if j else zero
            b = out[:, i - 1, j] if i else zero
            c = out[:, i - 1, j - 1] if i and j else zero
            out[:, i, j] = (_med(a, b, c) + r[:, i, j]) % 256
    return out.astype(np.uint8)


def pack(csv_path: Path, out: Path, splits: tuple[str, ...] = SPLITS) -> None:
    votes_path = csv_path.parent / "ferplus_fer2013new.csv"
    images, labels, usage = [], [], []
    with gzip.open(csv_path, "rt", newline="") as f:
        rows = csv.reader(f)
        next(rows)
        for row in rows:
            images.append(np.array(row[1].split(), dtype=np.uint8).reshape(48, 48))
            labels.append(int(row[0]))
            usage.append(row[2].strip())
    keep = np.array([u in splits for u in usage])
    x = np.stack(images)[keep]
    vote_lines = votes_path.read_text().splitlines()
    kept_votes = [vote_lines[0]] + [line for line, k in zip(vote_lines[1:], keep, strict=True) if k]
    t = time.time()
    blob = lzma.compress(_residuals(x).tobytes(), preset=9 | lzma.PRESET_EXTREME)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        xz=np.frombuffer(blob, np.uint8),
        shape=np.array(x.shape),
        labels=np.array(labels, np.int8)[keep],
        usage=np.array([splits.index(u) for u, k in zip(usage, keep, strict=True) if k], np.int8),
        splits=np.array(splits),
        votes=np.frombuffer(gzip.compress("\n".join(kept_votes).encode() + b"\n"), np.uint8),
        sha256=np.array(hashlib.sha256(x.tobytes()).hexdigest()),
    )
    print(f"{out}: {len(x)} faces, {out.stat().st_size / 1e6:.1f} MB ({time.time() - t:.0f}s)")


def unpack(pack_path: Path, out_dir: Path) -> Path:
    z = np.load(pack_path)
    splits = tuple(str(v) for v in z["splits"]) if "splits" in z.files else SPLITS
    shape = tuple(int(v) for v in z["shape"])
    res = np.frombuffer(lzma.decompress(z["xz"].tobytes()), np.uint8).reshape(shape)
    x = _reconstruct(res)
    if hashlib.sha256(x.tobytes()).hexdigest() != str(z["sha256"]):
        raise SystemExit(f"{pack_path}: pixels do not match the checksum recorded at packing")
    out_dir.mkdir(parents=True, exist_ok=True)
    # pixels as fixed-width 3-digit fields ("007 255 ..."): the CSV reader parses them as ints
    chars = np.empty((len(x), shape[1] * shape[2], 4), np.uint8)
    flat = x.reshape(len(x), -1)
    chars[..., 0], chars[..., 1], chars[..., 2] = flat // 100 + 48, flat // 10 % 10 + 48, flat % 10 + 48
    chars[..., 3] = 32
    text = chars.reshape(len(x), -1)[:, :-1]
    buf = io.BytesIO()
    buf.write(b"emotion,pixels,Usage\n")
    for lab, px, u in zip(z["labels"], text, z["usage"], strict=True):
        buf.write(f"{int(lab)},".encode() + px.tobytes() + f",{splits[int(u)]}\n".encode())
    csv_path = out_dir / "fer2013.csv"
    csv_path.write_bytes(buf.getvalue())
    (out_dir / "ferplus_fer2013new.csv").write_bytes(gzip.decompress(z["votes"].tobytes()))
    return csv_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("verb", choices=["pack", "unpack"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--splits", default=",".join(SPLITS), help="pack: the Usage splits to keep")
    a = ap.parse_args(argv)
    if a.verb == "pack":
        pack(a.src, a.dst, tuple(a.splits.split(",")))
    else:
        print(unpack(a.src, a.dst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
