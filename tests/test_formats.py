"""Header probes against real decoders, and decompression bombs refused before decoding.

Every probe is checked against what OpenCV (or Pillow) actually decodes from a real image in
each layout; the bombs are real, valid files (a tiny PNG that claims 12000x12000 pixels, a
16-bit RGBA PNG inside the pixel limit) decoded in a fresh interpreter whose peak memory is
read back, so a check that happened only after decoding would fail the test.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from media_helpers import png_bomb, png_chunk
from PIL import Image

from emoar.io import (
    DECODABLE_IMAGE_FORMATS,
    ImageMemoryError,
    ImageReadError,
    ImageTooLargeError,
    UnsupportedImageError,
    decode_image,
    probe_image,
    sniff,
)
from emoar.io.formats import HeaderError


@pytest.fixture(scope="module")
def face(photos_dir: Path) -> np.ndarray:
    img = cv2.imread(str(photos_dir / "portrait.jpg"))
    return cv2.resize(img, (301, 207), interpolation=cv2.INTER_AREA)  # odd sizes catch w/h swaps


def _cv(ext: str, img: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def _pil(img_bgr: np.ndarray, fmt: str, mode: str = "RGB", **kw: object) -> bytes:
    im = Image.fromarray(cv2.cvtColor(img_bgr, cv2.COLOR_BGR2RGB)).convert(mode)
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


LAYOUTS = {
    "jpeg-color": lambda f: _cv(".jpg", f),
    "jpeg-gray": lambda f: _cv(".jpg", cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)),
    "jpeg-progressive": lambda f: _cv(".jpg", f, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "jpeg-cmyk": lambda f: _pil(f, "JPEG", "CMYK"),
    "png-rgb": lambda f: _cv(".png", f),
    "png-gray": lambda f: _cv(".png", cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)),
    "png-rgba": lambda f: _cv(".png", cv2.cvtColor(f, cv2.COLOR_BGR2BGRA)),
    "png-16bit": lambda f: _cv(".png", f.astype(np.uint16) * 257),
    "png-16bit-rgba": lambda f: _cv(".png", cv2.cvtColor(f, cv2.COLOR_BGR2BGRA).astype(np.uint16) * 257),
    "png-palette": lambda f: _pil(f, "PNG", "P"),
    "png-gray-alpha": lambda f: _pil(f, "PNG", "LA"),
    "webp-lossy": lambda f: _cv(".webp", f, cv2.IMWRITE_WEBP_QUALITY, 80),
    "webp-lossless": lambda f: _cv(".webp", f, cv2.IMWRITE_WEBP_QUALITY, 101),
    "webp-alpha": lambda f: _pil(f, "WEBP", "RGBA"),
    "bmp-24": lambda f: _cv(".bmp", f),
    "bmp-32": lambda f: _pil(f, "BMP", "RGBA"),
    "gif": lambda f: _pil(f, "GIF", "P"),
    "tiff-8bit": lambda f: _cv(".tiff", f),
    "tiff-16bit": lambda f: _cv(".tiff", f.astype(np.uint16) * 257),
    "tiff-float": lambda f: _cv(".tiff", f.astype(np.float32) / 255.0),
    "tiff-pillow-lzw": lambda f: _pil(f, "TIFF", "RGB", compression="tiff_lzw"),
    "pgm": lambda f: _cv(".pgm", cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)),
    "ppm": lambda f: _cv(".ppm", f),
    "ppm-16bit": lambda f: _cv(".ppm", f.astype(np.uint16) * 257),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_probe_matches_the_decoder(face: np.ndarray, layout: str) -> None:
    data = LAYOUTS[layout](face)
    header = probe_image(data)
    assert header.format in DECODABLE_IMAGE_FORMATS and header.format == sniff(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:  # a layout OpenCV lacks: Pillow decodes it, as decode_image does
        decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert (
        (header.width, header.height)
        == (face.shape[1], face.shape[0])
        == (decoded.shape[1], decoded.shape[0])
    )
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    assert header.channels >= channels, (header, decoded.shape)
    assert header.bytes_per_sample == decoded.dtype.itemsize
    assert header.decoded_bytes >= decoded.nbytes
    out = decode_image(data, layout)
    assert out.shape == (face.shape[0], face.shape[1], 3) and out.dtype == np.uint8


def test_big_endian_tiff_is_measured() -> None:
    # A big-endian ("MM") baseline TIFF built by hand: one strip of raw RGB.
    h, w = 5, 7
    pix = np.arange(h * w * 3, dtype=np.uint8).tobytes()
    entries = [
        (256, 3, 1, w),
        (257, 3, 1, h),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, 8 + 2 + 9 * 12 + 4),
        (277, 3, 1, 3),
        (278, 3, 1, h),
        (279, 4, 1, len(pix)),
    ]
    ifd = struct.pack(">H", len(entries))
    for tag, typ, n, val in entries:
        ifd += struct.pack(">HHI", tag, typ, n) + (
            struct.pack(">HH", val, 0) if typ == 3 else struct.pack(">I", val)
        )
    tiff = b"MM\x00*" + struct.pack(">I", 8) + ifd + b"\x00\x00\x00\x00" + pix
    header = probe_image(tiff)
    assert (header.width, header.height, header.channels, header.bytes_per_sample) == (7, 5, 3, 1)
    assert decode_image(tiff).shape == (5, 7, 3)


_PEAK = r"""
import json, resource, sys
from pathlib import Path
from emoar.io import decode_image, ImageReadError
data = Path(sys.argv[1]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:
    img = decode_image(data, "bomb", max_pixels=int(sys.argv[2]), max_decode_bytes=int(sys.argv[3]))
    outcome = list(img.shape)
except ImageReadError as e:
    outcome = type(e).__name__
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"outcome": outcome, "before_mb": before, "peak_mb": peak}))
"""


def _decode_peak(tmp_path: Path, data: bytes, max_pixels: int, max_decode_bytes: int) -> dict:
    path = tmp_path / "img.bin"
    path.write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, str(path), str(max_pixels), str(max_decode_bytes)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pixel_bomb_png_is_refused_from_its_header(tmp_path: Path) -> None:
    # 12000x12000 RGB: ~420 KB on disk, 432 MB decoded. Pillow refuses to even open it
    # (DecompressionBombError), which used to hand it straight to OpenCV's decoder.
    data = png_bomb(12000, 12000)
    assert len(data) < 1_000_000
    r = _decode_peak(tmp_path, data, 40_000_000, 300_000_000)
    assert r["outcome"] == "ImageTooLargeError"
    assert r["peak_mb"] - r["before_mb"] < 50, r


def test_16bit_rgba_inside_the_pixel_limit_is_refused_by_the_memory_budget(tmp_path: Path) -> None:
    # 6000x6000 16-bit RGBA: 36 MP (under 40 MP) but 288 MB decoded, ~540 MB at the peak.
    data = png_bomb(6000, 6000, depth=16, color=6)
    r = _decode_peak(tmp_path, data, 40_000_000, 300_000_000)
    assert r["outcome"] == "ImageMemoryError"
    assert r["peak_mb"] - r["before_mb"] < 50, r
    with pytest.raises(ImageMemoryError, match=r"6000x6000 PNG \(16-bit, 4 channel\(s\)\) would need 540 MB"):
        decode_image(data, "x.png", max_pixels=40_000_000, max_decode_bytes=300_000_000)


def test_16bit_rgba_within_budget_decodes_with_lean_conversion(tmp_path: Path) -> None:
    # 3000x2000 16-bit RGBA: 48 MB decoded + 24 MB 8-bit + 18 MB BGR = 90 MB at most. Compositing
    # alpha over the whole image in float32 (the old way) added ~200 MB on top.
    data = png_bomb(3000, 2000, depth=16, color=6)
    r = _decode_peak(tmp_path, data, 40_000_000, 300_000_000)
    assert r["outcome"] == [2000, 3000, 3]
    assert r["peak_mb"] - r["before_mb"] < 120, r


def test_hdr_named_jpg_is_unsupported_and_never_decoded() -> None:
    ok, buf = cv2.imencode(".hdr", np.random.default_rng(0).random((40, 50, 3), dtype=np.float32))
    assert ok and sniff(buf.tobytes()) == "Radiance HDR"
    with pytest.raises(UnsupportedImageError, match="Radiance HDR is not a supported image format"):
        decode_image(buf.tobytes(), "photo.jpg")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, "corrupt or truncated PNG"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 4, "corrupt or truncated JPEG"),
        (b"GIF89a\x01", "corrupt or truncated GIF"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8Z", "corrupt or truncated WebP"),
        (b"II*\x00\xff\xff\xff\x00", "corrupt or truncated TIFF"),
        (b"P6\n# only a comment\n", "corrupt or truncated PNM"),
        (b"just some text", "looks like text"),
    ],
)
def test_malformed_headers_are_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(ImageReadError, match=message):
        decode_image(data, "bad")


def test_zero_size_header_is_refused() -> None:
    ihdr = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    with pytest.raises(HeaderError, match="empty size"):
        probe_image(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr))


def test_jpeg_header_size_is_checked_before_decoding() -> None:
    jpeg = bytearray(_cv(".jpg", np.zeros((16, 16, 3), np.uint8)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)  # claims 60000x60000
    with pytest.raises(ImageTooLargeError, match="60000x60000"):
        decode_image(bytes(jpeg), "claims.jpg", max_pixels=40_000_000)
