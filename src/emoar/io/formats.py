"""What an encoded image is, from its first bytes: the one format sniffer, and header probes that
give an image's size and sample layout without decoding a pixel.

Every reader checks an image here before any decoder runs, so a 400 KB PNG that claims
20000x20000 pixels, a 16-bit RGBA PNG that would decode to gigabytes, or a Radiance HDR file
named ``.jpg`` (whose OpenCV decoder copies the data to a temporary file) is refused before it
costs memory or touches the disk. Only :data:`DECODABLE_IMAGE_FORMATS` are decoded: formats whose
header this module can measure and whose OpenCV decoder reads from memory.

>>> sniff(b"\\x89PNG\\r\\n\\x1a\\n")
'PNG'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DECODABLE_IMAGE_FORMATS",
    "ImageHeader",
    "probe_image",
    "sniff",
]

#: Image formats that are decoded (header measured here; decoded from memory, never via a file).
DECODABLE_IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WebP", "BMP", "GIF", "TIFF", "PNM")

# Magic numbers; checked in order. Each entry: (offset, bytes, format name).
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "BigTIFF"),
    (0, b"MM\x00+", "BigTIFF"),
    (0, b"\x1a\x45\xdf\xa3", "WebM/Matroska"),
    (0, b"#?RADIANCE", "Radiance HDR"),
    (0, b"#?RGBE", "Radiance HDR"),
    (0, b"\x76\x2f\x31\x01", "OpenEXR"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"\x59\xa6\x6a\x95", "Sun raster"),
    (0, b"PF\n", "PFM"),
    (0, b"Pf\n", "PFM"),
    (0, b"%PDF", "PDF"),
    (0, b"PK\x03\x04", "ZIP"),
    (0, b"\x1f\x8b", "gzip"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"8BPS", "PSD"),
    (0, b"OggS", "Ogg"),
    (0, b"ID3", "MP3"),
    (0, b"fLaC", "FLAC"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
)

_HEIF_BRANDS = (b"avif", b"avis", b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")
_PNM = re.compile(rb"P[1-7]\s")


def sniff(data: bytes | bytearray | memoryview) -> str | None:
    """Name the format of ``data`` from its first bytes.

    Returns:
        An image name (``"JPEG"``, ``"PNG"``, ``"WebP"``, ``"BMP"``, ``"GIF"``, ``"TIFF"``,
        ``"PNM"``, ``"Radiance HDR"``, ``"OpenEXR"``, ...), a video container (``"MP4"``,
        ``"QuickTime"``, ``"WebM/Matroska"``, ``"AVI"``), another known format's name
        (``"PDF"``, ``"HEIF/AVIF"``, ``"SVG"``, ...), or None.
    """
    head = bytes(data[:64])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "WAV"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "HEIF/AVIF"
        return "QuickTime" if brand == b"qt  " else "MP4"
    if (
        head[:2] == b"BM"
        and len(data) >= 26
        and int.from_bytes(bytes(data[14:18]), "little") in (12, 40, 52, 56, 64, 108, 124)
    ):
        return "BMP"
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if _PNM.match(head):
        return "PNM"
    text = head.lstrip()[:16].lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in bytes(data[:1024]).lower()):
        return "SVG"
    if text.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return None


@dataclass(frozen=True)
class ImageHeader:
    """What the header of an encoded image says, read without decoding.

    Attributes:
        format: one of :data:`DECODABLE_IMAGE_FORMATS`.
        width: width in pixels.
        height: height in pixels.
        channels: samples per pixel the decoder produces (an upper bound where the format
            leaves it open, e.g. 4 for GIF and WebP).
        bytes_per_sample: 1, 2 (16-bit) or 4 (32-bit, e.g. float TIFF).
    """

    format: str
    width: int
    height: int
    channels: int
    bytes_per_sample: int

    @property
    def pixels(self) -> int:
        """``width * height``."""
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        """Size of the decoded array (``IMREAD_UNCHANGED``), in bytes."""
        return self.pixels * self.channels * self.bytes_per_sample

    def peak_bytes(self) -> int:
        """Memory that decoding and converting to 8-bit BGR needs at its peak, in bytes: the
        decoded array, plus its 8-bit copy when it has more than 8 bits per sample (plus a
        float32 copy for 32-bit samples), plus the BGR result when it is not the decoded array
        itself. Orientation and alpha compositing work in place or in small strips."""
        n = self.pixels
        extra = 0
        if self.bytes_per_sample > 1:
            extra += n * self.channels
        if self.bytes_per_sample == 4:
            extra += n * self.channels * 4
        if self.channels != 3 or self.bytes_per_sample > 1:
            extra += n * 3
        return self.decoded_bytes + extra


class HeaderError(ValueError):
    """The header of a recognised format is truncated, malformed or of a variant that cannot be
    measured (the message says which)."""


def probe_image(data: bytes | bytearray | memoryview) -> ImageHeader:
    """Read the size and sample layout of an encoded image from its header.

    Args:
        data: the encoded bytes.

    Returns:
        The header of a :data:`DECODABLE_IMAGE_FORMATS` image.

    Raises:
        HeaderError: the format is one of those, but its header is truncated or malformed, or
            gives a zero size.
        ValueError: the format is not one of those (``sniff`` names it, or None).
    """
    buf = bytes(data)
    fmt = sniff(buf)
    probe = _PROBES.get(fmt or "")
    if probe is None:
        raise ValueError(f"not a decodable image format ({fmt or 'unrecognised'})")
    try:
        header = probe(buf)
    except (IndexError, ValueError, KeyError) as exc:
        if isinstance(exc, HeaderError):
            raise
        raise HeaderError(f"truncated or malformed {fmt} header") from exc
    if header.width <= 0 or header.height <= 0:
        raise HeaderError(f"the {fmt} header gives an empty size ({header.width}x{header.height})")
    return header


def _u16be(b: bytes, i: int) -> int:
    if i + 2 > len(b):
        raise IndexError(i)
    return int.from_bytes(b[i : i + 2], "big")


def _u32be(b: bytes, i: int) -> int:
    if i + 4 > len(b):
        raise IndexError(i)
    return int.from_bytes(b[i : i + 4], "big")


def _png(b: bytes) -> ImageHeader:
    if b[12:16] != b"IHDR":
        raise HeaderError("PNG without an IHDR chunk first")
    width, height = _u32be(b, 16), _u32be(b, 20)
    depth, color = b[24], b[25]
    # 0 gray, 2 RGB, 3 palette (expanded, maybe with tRNS), 4 gray+alpha, 6 RGBA.
    channels = {0: 1, 2: 3, 3: 4, 4: 4, 6: 4}.get(color)
    if channels is None:
        raise HeaderError(f"PNG with an invalid colour type {color}")
    return ImageHeader("PNG", width, height, channels, 2 if depth == 16 else 1)


# SOF markers: C0-C3, C5-C7, C9-CB, CD-CF (C4 DHT, C8 JPG, CC DAC are not frames).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg(b: bytes) -> ImageHeader:
    i = 2
    while i < len(b):
        if b[i] != 0xFF:
            raise HeaderError("JPEG segments are malformed before the frame header")
        while i < len(b) and b[i] == 0xFF:  # fill bytes
            i += 1
        marker = b[i]
        i += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):
            break
        length = _u16be(b, i)
        if marker in _SOF:
            precision, height, width, comps = b[i + 2], _u16be(b, i + 3), _u16be(b, i + 5), b[i + 7]
            if height == 0:
                raise HeaderError("JPEG whose height is given later (DNL marker) cannot be measured")
            return ImageHeader("JPEG", width, height, max(1, min(comps, 4)), 2 if precision > 8 else 1)
        if length < 2:
            raise HeaderError("JPEG segment with an invalid length")
        i += length
    raise HeaderError("JPEG without a frame header (truncated?)")


def _gif(b: bytes) -> ImageHeader:
    width, height = int.from_bytes(b[6:8], "little"), int.from_bytes(b[8:10], "little")
    if len(b) < 10:
        raise IndexError(10)
    return ImageHeader("GIF", width, height, 4, 1)


def _bmp(b: bytes) -> ImageHeader:
    dib = int.from_bytes(b[14:18], "little")
    if dib == 12:
        width, height = int.from_bytes(b[18:20], "little"), int.from_bytes(b[20:22], "little")
        bpp = int.from_bytes(b[24:26], "little")
    else:
        if len(b) < 30:
            raise IndexError(30)
        width = int.from_bytes(b[18:22], "little", signed=True)
        height = abs(int.from_bytes(b[22:26], "little", signed=True))
        bpp = int.from_bytes(b[28:30], "little")
    return ImageHeader("BMP", width, height, 4 if bpp == 32 else 3, 1)


def _webp(b: bytes) -> ImageHeader:
    chunk = b[12:16]
    if chunk == b"VP8X":
        if len(b) < 30:
            raise IndexError(30)
        width = int.from_bytes(b[24:27], "little") + 1
        height = int.from_bytes(b[27:30], "little") + 1
    elif chunk == b"VP8 ":
        if b[23:26] != b"\x9d\x01\x2a":
            raise HeaderError("WebP (lossy) without a VP8 key frame")
        width = int.from_bytes(b[26:28], "little") & 0x3FFF
        height = int.from_bytes(b[28:30], "little") & 0x3FFF
    elif chunk == b"VP8L":
        if len(b) < 25 or b[20] != 0x2F:
            raise HeaderError("WebP (lossless) without a VP8L signature")
        bits = int.from_bytes(b[21:25], "little")
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    else:
        raise HeaderError(f"WebP with an unknown first chunk {chunk!r}")
    return ImageHeader("WebP", width, height, 4, 1)


def _tiff(b: bytes) -> ImageHeader:
    order = "little" if b[:2] == b"II" else "big"

    def u(i: int, n: int) -> int:
        if i + n > len(b):
            raise IndexError(i)
        return int.from_bytes(b[i : i + n], order)  # type: ignore[arg-type]

    ifd = u(4, 4)
    count = u(ifd, 2)
    tags: dict[int, tuple[int, int, int]] = {}
    for k in range(min(count, 512)):
        e = ifd + 2 + 12 * k
        tags[u(e, 2)] = (u(e + 2, 2), u(e + 4, 4), e + 8)  # type, count, value offset

    def value(tag: int, default: int | None = None) -> int:
        if tag not in tags:
            if default is None:
                raise HeaderError(f"TIFF without tag {tag}")
            return default
        typ, n, at = tags[tag]
        size = {3: 2, 4: 4, 16: 8}.get(typ, 1)
        if n * size > 4:  # the values live elsewhere; read the first (they are all equal in practice)
            at = u(at, 4)
        vals = [u(at + j * size, size) for j in range(min(n, 8))]
        return max(vals) if vals else (default or 0)

    width, height = value(256), value(257)
    bits = value(258, 1)
    spp = value(277, 1)
    return ImageHeader("TIFF", width, height, max(3, min(spp, 4)), max(1, -(-bits // 8)))


def _pnm(b: bytes) -> ImageHeader:
    kind = b[1:2]
    if kind == b"7":
        fields: dict[bytes, int] = {}
        for line in b[3:4096].split(b"\n"):
            parts = line.split()
            if parts and parts[0] == b"ENDHDR":
                break
            if len(parts) == 2 and parts[0] in (b"WIDTH", b"HEIGHT", b"DEPTH", b"MAXVAL"):
                fields[parts[0]] = int(parts[1])
        width, height = fields[b"WIDTH"], fields[b"HEIGHT"]
        channels, maxval = fields.get(b"DEPTH", 1), fields.get(b"MAXVAL", 255)
    else:
        text = re.sub(rb"#[^\n]*", b" ", b[2:4096])
        tokens = text.split()
        need = 2 if kind in (b"1", b"4") else 3
        if len(tokens) < need:
            raise HeaderError("truncated PNM header")
        width, height = int(tokens[0]), int(tokens[1])
        maxval = 1 if need == 2 else int(tokens[2])
        channels = 3 if kind in (b"3", b"6") else 1
    return ImageHeader("PNM", width, height, max(1, min(channels, 4)), 2 if maxval > 255 else 1)


_PROBES = {
    "PNG": _png,
    "JPEG": _jpeg,
    "GIF": _gif,
    "BMP": _bmp,
    "WebP": _webp,
    "TIFF": _tiff,
    "PNM": _pnm,
}
