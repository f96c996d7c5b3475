"""The live page's overlay on a moving face (headless Chromium, a fake camera whose face sweeps
left and right): drawn on every animation frame between results, moving smoothly with the face
instead of jumping at each result, and each element keeping its side of the face."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from web_helpers import ARTIFACTS, CHROMIUM, chromium_args, wait_for, wait_for_one_face, y4m_clip_bytes

FPS = 15
PERIOD_S = 4.0
AMPLITUDE_PX = 60


def _sweep(frame: np.ndarray) -> list[np.ndarray]:
    import cv2

    out = []
    for i in range(int(FPS * PERIOD_S)):
        dx = AMPLITUDE_PX * math.sin(2 * math.pi * i / (FPS * PERIOD_S))
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        out.append(
            cv2.warpAffine(frame, m, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        )
    return out


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """One Playwright driver for the module (a second one in the same thread is refused)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium; scripts/setup.sh does it as root)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def moving_browser(
    playwright: Any, frame_640x480: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    y4m = tmp_path_factory.mktemp("camera") / "sweep.y4m"
    y4m.write_bytes(y4m_clip_bytes(_sweep(frame_640x480), fps=FPS))
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(y4m))
    yield b
    b.close()


def _run(browser: Any, url: str, seconds: float = 6.0) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(url)
    wait_for_one_face(page, what="a face")
    page.wait_for_timeout(1500)
    page.evaluate(
        "() => { window.__emoar.drawLog.length = 0; window.__emoar.frames0 = window.__emoar.frames; }"
    )
    page.wait_for_timeout(seconds * 1000)
    out = page.evaluate(
        "() => ({ log: window.__emoar.drawLog.slice(), frames: window.__emoar.frames - window.__emoar.frames0 })"
    )
    page.screenshot(path=str(ARTIFACTS / f"live_motion_{'server' if 'server' in url else 'ondevice'}.png"))
    context.close()
    out["seconds"] = seconds
    return out


def _check(run: dict[str, Any]) -> dict[str, float]:
    log = [e for e in run["log"] if len(e["faces"]) == 1]
    assert len(log) >= 0.9 * len(run["log"]) > 0
    results = len({e["resultAt"] for e in log})
    cx = np.array([(e["faces"][0]["box"][0] + e["faces"][0]["box"][2]) / 2 for e in log])
    t = np.array([e["t"] for e in log])
    # jumps: the drawn centre moves by more than 12 px from one draw to the next (the face moves
    # at most ~95 px/s, i.e. ~1.6 px per 60-Hz frame; a draw of a stale box then a fresh one jumps)
    steps = np.abs(np.diff(cx))
    # the drawn box's speed between draws, px/s: a stall of the page (a busy CPU) is not a jump
    speed = steps / np.maximum(np.diff(t), 1.0) * 1000.0
    sides = {k: [e["faces"][0]["sides"].get(k) for e in log] for k in ("emoji", "label", "bars", "quote")}
    changes = {
        k: sum(a != b for a, b in zip(v, v[1:], strict=False) if a is not None and b is not None)
        for k, v in sides.items()
    }
    stats = {
        "draws_per_s": len(log) / run["seconds"],
        "results_per_s": results / run["seconds"],
        "max_step_px": float(steps.max()),
        "p95_speed": float(np.percentile(speed, 95)),
        "p99_speed": float(np.percentile(speed, 99)),
        "max_speed": float(speed.max()),
        # draws on which the overlay stood still although the face was moving (all of those
        # between two results, when the last result is drawn as it is)
        "still_share": float(np.mean(steps < 0.05)),
        "p95_step_px": float(np.percentile(steps, 95)),
        "span_px": float(cx.max() - cx.min()),
        "duration_s": float((t[-1] - t[0]) / 1000),
        **{f"{k}_changes": float(v) for k, v in changes.items()},
    }
    return stats


@pytest.mark.parametrize("mode", ["ondevice", "server"])
def test_overlay_follows_a_moving_face_smoothly(moving_browser: Any, live_server: Any, mode: str) -> None:
    run = _run(moving_browser, f"{live_server.url}/?mode={mode}")
    s = _check(run)
    print(mode, s)
    assert s["span_px"] > AMPLITUDE_PX  # the overlay does follow the face across the sweep
    # each camera frame analysed once (a fast model re-analysing the newest frame until the next
    # arrives burnt the CPU on copies: 45 results/s from a 15-fps camera)
    assert s["results_per_s"] < 1.1 * FPS, s
    assert s["draws_per_s"] > 1.5 * s["results_per_s"], s  # drawn between results, not once per result
    # the face moves at up to 2*pi*60/4 = 94 px/s; drawing each result as it is moves the
    # overlay in jumps of one result's motion (measured p99 262 px/s on-device, 603 in server
    # mode; 150-260 with the smoothing, which varies with the load)
    face_speed = 2 * math.pi * AMPLITUDE_PX / PERIOD_S
    assert s["p95_step_px"] < 6 and s["p99_speed"] < 3.5 * face_speed, s
    assert s["still_share"] < 0.15, s
    assert all(s[f"{k}_changes"] <= 2 for k in ("emoji", "label", "bars", "quote")), s


def test_camera_denied_says_why_and_what_to_do(
    playwright: Any, live_server: Any, frame_640x480: np.ndarray, tmp_path: Path
) -> None:
    """A browser that denies the camera (no permission granted, nothing auto-accepted): the page
    says so with advice, offers Start camera, and shows no figures from frames it never saw."""
    y4m = tmp_path / "still.y4m"
    y4m.write_bytes(y4m_clip_bytes([frame_640x480] * 2, fps=FPS))
    args = [a for a in chromium_args(y4m) if a != "--use-fake-ui-for-media-stream"]
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
    page = b.new_context().new_page()  # no "camera" permission: getUserMedia is refused
    page.goto(f"{live_server.url}/")
    wait_for(page, "() => window.__emoar && window.__emoar.ready", timeout_s=60, what="the page")
    state = page.evaluate("() => window.__emoar")
    assert state["cameraOn"] is False and state["cameraError"] == "NotAllowedError"
    assert page.inner_text("#start") == "Start camera"
    placeholder = page.inner_text("#placeholder")
    assert "denied" in placeholder and "Upload" in placeholder, placeholder
    assert "denied" in page.inner_text("#status")  # not overwritten by "on-device mode"
    assert page.inner_text("#fps") == "–" and page.inner_text("#nfaces") == "0"
    page.screenshot(path=str(ARTIFACTS / "live_camera_denied.png"))
    b.close()
