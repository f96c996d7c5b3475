"""Screenshots of the web app's pages at desktop (1280x900) and phone (Pixel 7, 412x915) size,
for the README: ``docs/screenshots/<page>_<size>.jpg``.

Starts ``emoar serve``'s app on a free loopback port (the launcher of ``benchmarks/web_load.py``),
drives Debian's Chromium through Playwright with a fake camera playing the shared portrait, and
photographs: the live page (on-device, overlays drawn), the upload page with the office group
photo analysed, and with a clip analysed (annotated WebM, per-person table, timeline), and the
meeting page. Nothing leaves the machine.

Usage: python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests" / "web"))
from _common import SHARED_DATA  # noqa: E402
from web_helpers import CHROMIUM, chromium_args, letterbox_640x480, wait_for, y4m_bytes  # noqa: E402
from web_load import start_server, stop_server  # noqa: E402

SIZES = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 412, "height": 915},
        "device_scale_factor": 2.625,
        "is_mobile": True,
        "has_touch": True,
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    a = ap.parse_args()
    import cv2
    from playwright.sync_api import sync_playwright

    from emoar.samples import make_demo_video

    photos = Path(SHARED_DATA) / "photos"
    portrait = cv2.imread(str(photos / "portrait.jpg"))
    if portrait is None:
        raise SystemExit(f"missing {photos / 'portrait.jpg'}")
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        y4m = Path(tmp) / "camera.y4m"
        y4m.write_bytes(y4m_bytes(letterbox_640x480(portrait), n_frames=3, fps=30))
        images = [cv2.imread(str(photos / n)) for n in ("portrait.jpg", "portrait_2.jpg")]
        clip = make_demo_video(os.path.join(tmp, "two_people.mp4"), images=images, seconds=4, fps=10).path
        proc, url = start_server(1, "default", 1)
        written = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(y4m))
                for size, opts in SIZES.items():
                    page = browser.new_context(**opts).new_page()

                    def shot(name: str, page: object = page, size: str = size) -> None:
                        path = a.out / f"{name}_{size}.jpg"
                        page.screenshot(path=str(path), type="jpeg", quality=80, full_page=True)  # type: ignore[attr-defined]
                        written.append(path)

                    page.goto(f"{url}/")
                    wait_for(
                        page,
                        "() => window.__emoar && window.__emoar.ready && window.__emoar.faces.length > 0",
                        timeout_s=90,
                    )
                    page.wait_for_timeout(10000)  # the live timeline fills for a while
                    shot("live")
                    page.goto(f"{url}/upload")
                    wait_for(page, "() => document.body.dataset.state === 'ready'")
                    page.set_input_files("#file", str(photos / "office_group.jpg"))
                    wait_for(page, "() => document.body.dataset.state === 'done'", timeout_s=60)
                    shot("upload_image")
                    page.set_input_files("#file", str(clip))
                    wait_for(page, "() => document.body.dataset.state === 'done'", timeout_s=120)
                    wait_for(page, "() => document.getElementById('result-video').readyState >= 2")
                    page.evaluate("() => { document.getElementById('result-video').currentTime = 1.5; }")
                    page.wait_for_timeout(500)
                    shot("upload_clip")
                    page.goto(f"{url}/meet")
                    page.wait_for_load_state("networkidle")
                    shot("meet")
                    page.context.close()
                browser.close()
        finally:
            stop_server(proc)
    for path in written:
        print(
            f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({path.stat().st_size // 1024} KB)"
        )


if __name__ == "__main__":
    main()
