"""The installable app (headless Chromium): the manifest and icons make the live page
installable with no installability errors, and after one visit the service worker serves the
page, its runtime and its models, so on-device mode finds the face with the server stopped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from web_helpers import ARTIFACTS, CHROMIUM, LiveServer, chromium_args, wait_for, wait_for_one_face, y4m_bytes


def test_manifest_icons_and_worker_are_served(make_app: Callable[..., FastAPI]) -> None:
    import cv2

    with TestClient(make_app()) as c:
        m = c.get("/manifest.webmanifest")
        assert m.status_code == 200 and m.headers["content-type"].startswith("application/manifest+json")
        body = m.json()
        assert body["start_url"] == "/" and body["display"] == "standalone"
        for ic in body["icons"]:
            r = c.get(ic["src"])
            img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
            side = int(ic["sizes"].split("x")[0])
            assert r.status_code == 200 and img.shape == (side, side, 3)
            centre = img[side // 2 - 4 : side // 2 + 4, side // 2 - 4 : side // 2 + 4].mean(axis=(0, 1))
            assert centre[2] > 150  # the yellow emoji is in the middle, on the dark background
        assert c.get("/assets/icons/77.png").status_code == 404
        sw = c.get("/sw.js")
        assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
        assert "__EMOAR" not in sw.text and '"/static/js/live.js"' in sw.text
        for page in ("/", "/upload", "/meet"):
            assert '<link rel="manifest" href="/manifest.webmanifest">' in c.get(page).text


def test_worker_cache_name_follows_the_page_files(
    make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited script gives a new cache name (an installed app then fetches the new files),
    while the same files give the same name (no needless re-download)."""
    import re

    from emoar.web.routes import pwa

    def name(c: TestClient) -> str:
        m = re.search(r"emoar-[0-9][^\"']*-[0-9a-f]{12}", c.get("/sw.js").text)
        assert m, "no cache name in /sw.js"
        return m.group(0)

    real = pwa._page_files_digest
    assert len(real()) == 64  # the real digest reads the files
    with TestClient(make_app()) as c:
        first = name(c)
        assert name(c) == first
        monkeypatch.setattr(pwa, "_page_files_digest", lambda: "another live.js")
        assert name(c) != first


def test_installable_and_on_device_works_with_the_server_stopped(
    make_app: Callable[..., FastAPI], frame_640x480: np.ndarray, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from emoar.web.routes.pages import missing_vendor_files

    if missing_vendor_files():
        pytest.skip("front-end packages not vendored (scripts/setup.sh)")
    y4m = tmp_path / "portrait.y4m"
    y4m.write_bytes(y4m_bytes(frame_640x480, n_frames=3))
    server = LiveServer(make_app()).start()
    stopped = False
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as p:
            # a persistent profile: Playwright's default contexts are incognito, which is never installable
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=str(CHROMIUM),
                args=chromium_args(y4m),
                viewport={"width": 1100, "height": 900},
            )
            page = context.new_page()
            page.goto(f"{server.url}/")
            wait_for(
                page, "() => window.__emoarSW && window.__emoarSW.registered", timeout_s=60, what="the worker"
            )
            cached: Any = page.evaluate(
                """async () => { const name = (await caches.keys()).find((k) => k.startsWith('emoar-'));
                                 const c = await caches.open(name);
                                 return (await c.keys()).map((r) => new URL(r.url).pathname); }"""
            )
            for must in (
                "/",
                "/static/js/live.js",
                "/static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm",
                "/assets/detectors/blazeface_short_range.onnx",
                "/v1/models",
            ):
                assert must in cached, must
            assert any(u.startswith("/v1/models/") and u.endswith("/onnx") for u in cached)
            cdp = context.new_cdp_session(page)
            errors = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
            assert errors == [], errors
            wait_for(
                page,
                "() => window.__emoar.ready && window.__emoar.faces.length === 1",
                timeout_s=60,
                what="a face",
            )

            server.stop()
            stopped = True
            gone = page.evaluate("() => fetch('/healthz').then(() => 'up', () => 'down')")
            assert gone == "down"  # the service worker does not pretend the server is there
            page.reload()
            wait_for_one_face(page, what="on-device results with the server stopped")
            assert page.evaluate("() => window.__emoar.mode") == "ondevice"
            page.screenshot(path=str(ARTIFACTS / "pwa_offline.png"))
            context.close()
    finally:
        if not stopped:
            server.stop()
