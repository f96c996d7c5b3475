"""Real media made on the fly for the tests (valid files, not mocks)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png_bomb(width: int, height: int, *, depth: int = 8, color: int = 2) -> bytes:
    """A valid PNG of ``width x height`` zero pixels: a few hundred KB that decode to gigabytes."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    row = b"\x00" * (1 + width * channels * depth // 8)
    z = zlib.compressobj(9)
    parts = [z.compress(row) for _ in range(height)]
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def read_photo(photos_dir: Path, name: str) -> np.ndarray:
    """A shared test photo as BGR uint8 (fails the test when it cannot be read)."""
    img = cv2.imread(str(photos_dir / name), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {name}"
    return img
