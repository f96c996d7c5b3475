#!/usr/bin/env python3
"""Vendor the overlay's emoji sprites from the Debian package ``fonts-noto-color-emoji``.

Run once by a developer (not at build or run time) after::

    apt-get update && apt-get install -y fonts-noto-color-emoji

It renders exactly the nine sprites the overlay uses (one per FER+ expression plus the
"uncertain" badge) from the font's embedded colour bitmaps (CBDT strike, 136 x 128 px) with
Pillow, centres each on a transparent ``--size`` x ``--size`` canvas and writes them as RGBA PNGs
to ``src/emoar/overlay/assets/`` together with ``ATTRIBUTION.md`` and the two licence texts.
The output is deterministic for a given package version, so re-running it is a no-op.

Usage::

    python scripts/vendor_emoji.py [--font PATH] [--out DIR] [--size 128]
"""

from __future__ import annotations

import argparse
import io
import logging
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger("vendor_emoji")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEFAULT_OUT = REPO / "src" / "emoar" / "overlay" / "assets"
DEB_PACKAGE = "fonts-noto-color-emoji"
DEB_COPYRIGHT = Path("/usr/share/doc/fonts-noto-color-emoji/copyright")
APACHE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")

#: The only size at which the CBDT strike of Noto Color Emoji renders (pixels per em).
CBDT_PPEM = 109

#: sprite name -> (code point, CLDR short name). Names match ``emoar.labels.FERPLUS_LABELS``.
SPRITES: dict[str, tuple[int, str]] = {
    "angry": (0x1F621, "enraged face"),
    "disgust": (0x1F922, "nauseated face"),
    "fear": (0x1F628, "fearful face"),
    "happy": (0x1F604, "grinning face with smiling eyes"),
    "sad": (0x1F622, "crying face"),
    "surprise": (0x1F632, "astonished face"),
    "neutral": (0x1F610, "neutral face"),
    "contempt": (0x1F612, "unamused face"),
    "uncertain": (0x2754, "white question mark, on a slate-grey disc"),
}

#: Badge disc behind the uncertain marker (RGB) and its rim; neutral, low-saturation greys.
BADGE_FILL_RGB = (92, 99, 112)
BADGE_RIM_RGB = (236, 238, 242)


def render_glyph(font: ImageFont.FreeTypeFont, codepoint: int) -> Image.Image:
    """Render one emoji glyph in colour and crop it to its opaque bounding box.

    Args:
        font: Noto Color Emoji loaded at ``CBDT_PPEM``.
        codepoint: Unicode code point.

    Returns:
        RGBA image cropped to the glyph (about 118 x 113 px for faces).
    """
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((4, 4), chr(codepoint), font=font, embedded_color=True)
    bbox = canvas.getbbox()
    if bbox is None:
        raise SystemExit(f"U+{codepoint:04X} renders empty; is {DEB_PACKAGE} the colour font?")
    return canvas.crop(bbox)


def fit_center(img: Image.Image, size: int) -> Image.Image:
    """Centre ``img`` on a transparent ``size`` x ``size`` canvas, downscaling only if needed."""
    w, h = img.size
    scale = min(1.0, size / max(w, h))
    if scale < 1.0:
        img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)
    out = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    out.alpha_composite(img, ((size - img.width) // 2, (size - img.height) // 2))
    return out


def _disc_alpha(size: int, radius: float) -> np.ndarray:
    """Anti-aliased disc coverage in [0, 1] (signed-distance, 1 px ramp)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    d = np.hypot(xx - size / 2, yy - size / 2) - radius
    return np.clip(0.5 - d, 0.0, 1.0)


def make_badge(mark: Image.Image, size: int) -> Image.Image:
    """The neutral "uncertain" badge: the question-mark glyph on a grey disc with a light rim."""
    outer = _disc_alpha(size, size / 2 - 5)
    inner = _disc_alpha(size, size / 2 - 5 - max(3, size // 26))
    rgb = np.empty((size, size, 3), np.float32)
    rgb[:] = BADGE_RIM_RGB
    rgb = rgb * (outer - inner)[..., None] + np.asarray(BADGE_FILL_RGB, np.float32) * inner[..., None]
    alpha = outer
    straight = np.where(alpha[..., None] > 0, rgb / np.maximum(alpha[..., None], 1e-6), 0)
    badge = Image.fromarray(
        np.dstack([np.clip(straight + 0.5, 0, 255), alpha * 255 + 0.5]).astype(np.uint8), "RGBA"
    )
    target_h = round(size * 0.64)
    scale = target_h / mark.height
    mark = mark.resize((max(1, round(mark.width * scale)), target_h), Image.Resampling.LANCZOS)
    badge.alpha_composite(mark, ((size - mark.width) // 2, (size - mark.height) // 2))
    return badge


def png_bytes(img: Image.Image) -> bytes:
    """Encode as an optimised RGBA PNG (lossless)."""
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def font_revision(path: Path) -> str:
    """The ``head.fontRevision`` of a TrueType file, e.g. ``"2.042"``."""
    data = path.read_bytes()
    (num_tables,) = struct.unpack(">H", data[4:6])
    for i in range(num_tables):
        tag, _, offset, _ = struct.unpack(">4sIII", data[12 + 16 * i : 28 + 16 * i])
        if tag == b"head":
            (fixed,) = struct.unpack(">i", data[offset + 4 : offset + 8])
            return f"{fixed / 65536:.3f}"
    return "unknown"


def deb_version(package: str) -> str:
    """Installed Debian package version, or ``"unknown"`` off Debian."""
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def ofl_text(copyright_file: Path) -> str:
    """Extract the SIL OFL 1.1 text from the Debian copyright file (dot lines = blank lines)."""
    lines = copyright_file.read_text(encoding="utf-8").splitlines()
    start = next(i for i, ln in enumerate(lines) if "SIL OPEN FONT LICENSE Version 1.1" in ln)
    # The licence paragraph begins two lines above the title (the dashed rule).
    body = []
    for ln in lines[start - 1 :]:
        if ln and not ln.startswith(" "):
            break
        body.append("" if ln.strip() == "." else ln[1:])
    return "\n".join(body).strip() + "\n"


def attribution(version: str, revision: str, size: int, files: dict[str, int]) -> str:
    """The ATTRIBUTION.md text."""
    rows = "\n".join(
        f"| `{name}.png` | U+{cp:04X} {chr(cp)} | {desc} | {files[name]:,} |"
        for name, (cp, desc) in SPRITES.items()
    )
    return f"""# Emoji sprites: source and licence

The PNG sprites in this folder are the colour bitmaps of **Noto Color Emoji**, rendered by
`scripts/vendor_emoji.py` from the Debian package **`{DEB_PACKAGE}` {version}**
(font revision {revision}; upstream <https://github.com/googlefonts/noto-emoji>,
Copyright 2013-2017 Google Inc.). Each glyph is taken from the font's 136 x 128 px bitmap
strike, cropped and centred on a transparent {size} x {size} px RGBA canvas without resampling.
`uncertain.png` is U+2754 scaled onto a plain grey disc drawn by the script.

Licences (as stated in the package's `/usr/share/doc/{DEB_PACKAGE}/copyright`):

- the emoji artwork: **Apache License 2.0** (`LICENSE-Apache-2.0.txt`);
- the font software it was rendered from: **SIL Open Font License 1.1** (`LICENSE-OFL-1.1.txt`).

Noto is a trademark of Google Inc.; the sprites are unmodified apart from cropping (and, for
the badge, scaling and compositing).

| file | code point | CLDR name | bytes |
| --- | --- | --- | --- |
{rows}

`quotes.json` (same folder) is a separate, hand-curated list of short public-domain quotations;
its sources are given per entry.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns a process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", type=Path, default=DEFAULT_FONT, help="NotoColorEmoji.ttf path")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="assets folder to write")
    parser.add_argument("--size", type=int, default=128, help="sprite canvas side in pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if not args.font.is_file():
        print(
            f"{args.font} not found; install it with "
            f"'apt-get update && apt-get install -y {DEB_PACKAGE}' or pass --font PATH",
            file=sys.stderr,
        )
        return 1
    font = ImageFont.truetype(str(args.font), CBDT_PPEM)
    args.out.mkdir(parents=True, exist_ok=True)

    sizes: dict[str, int] = {}
    for name, (cp, _) in SPRITES.items():
        glyph = render_glyph(font, cp)
        img = make_badge(glyph, args.size) if name == "uncertain" else fit_center(glyph, args.size)
        data = png_bytes(img)
        (args.out / f"{name}.png").write_bytes(data)
        sizes[name] = len(data)
        log.info("%-10s U+%04X -> %s (%d bytes)", name, cp, f"{name}.png", len(data))

    version, revision = deb_version(DEB_PACKAGE), font_revision(args.font)
    (args.out / "ATTRIBUTION.md").write_text(attribution(version, revision, args.size, sizes), "utf-8")
    if DEB_COPYRIGHT.is_file():
        (args.out / "LICENSE-OFL-1.1.txt").write_text(ofl_text(DEB_COPYRIGHT), "utf-8")
    else:
        log.warning("%s missing; LICENSE-OFL-1.1.txt not refreshed", DEB_COPYRIGHT)
    if APACHE_TEXT.is_file():
        shutil.copyfile(APACHE_TEXT, args.out / "LICENSE-Apache-2.0.txt")
    else:
        log.warning("%s missing; LICENSE-Apache-2.0.txt not refreshed", APACHE_TEXT)
    log.info("%d sprites, %d bytes in total, written to %s", len(sizes), sum(sizes.values()), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
