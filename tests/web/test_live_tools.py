"""The live page's tools in a real browser (Debian's Chromium, a fake camera playing a real face):
snapshot and recording saved as files a user can open, real time off with capture-and-analyse,
the camera chooser, fullscreen and the live timeline with its colour key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_helpers import (
    ARTIFACTS,
    decoded_frames,
    wait_for,
    wait_for_one_face,
)


@pytest.fixture(scope="module")
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """The live page in server mode (the same tools serve every mode), ready with one face."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(f"{live_server.url}/?mode=server")
    wait_for_one_face(pg, what="a face in server mode")
    yield pg
    assert errors == [], errors
    context.close()


def _download(page: Any, selector: str, dest: Path) -> Path:
    with page.expect_download(timeout=30_000) as d:
        page.click(selector)
    d.value.save_as(str(dest))
    return dest


def test_snapshot_saves_the_picture_with_its_overlays(page: Any, tmp_path: Path) -> None:
    import cv2

    with page.expect_download(timeout=30_000) as d:
        page.click("#snapshot")
    assert d.value.suggested_filename.startswith("emoar-") and d.value.suggested_filename.endswith(".png")
    path = tmp_path / "snap.png"
    d.value.save_as(str(path))
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (480, 640, 3)
    # the overlay is in the picture: the expression's colour (box corners, label) is drawn over the
    # grey-toned photo, so the snapshot is more colourful than the camera frame alone
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV)
    assert (hsv[..., 1] > 150).mean() > 0.002, "no overlay colours in the snapshot"
    assert "snapshot saved" in page.inner_text("#status")


def test_recording_is_a_playable_video(page: Any, tmp_path: Path) -> None:
    page.click("#record")
    wait_for(page, "() => window.__emoar.recording === true", what="recording to start")
    page.wait_for_timeout(2500)
    assert page.inner_text("#record").startswith("Stop")
    path = _download(page, "#record", tmp_path / "rec.webm")
    assert page.evaluate("() => window.__emoar.recording") is False
    assert path.stat().st_size > 5_000
    frames = decoded_frames(path)
    assert len(frames) >= 10, f"{len(frames)} frames decoded from the recording"
    assert frames[-1].shape == (480, 640, 3) and frames[-1].std() > 10  # a picture, not a blank


def test_real_time_off_analyses_only_a_captured_photo(page: Any) -> None:
    page.uncheck("#realtime")
    wait_for(page, "() => window.__emoar.realtime === false", what="real time off")
    assert page.is_visible("#capture")
    page.wait_for_timeout(600)  # an analysis in flight when it was switched off may still land
    frames0 = page.evaluate("() => window.__emoar.frames")
    page.wait_for_timeout(1500)
    assert page.evaluate("() => window.__emoar.frames") == frames0, "frames analysed with real time off"

    page.click("#capture")
    wait_for(
        page, "() => window.__emoar.captures === 1 && window.__emoar.faces.length === 1", what="the capture"
    )
    state = page.evaluate(
        "() => ({ captured: window.__emoar.captured, paused: document.getElementById('video').paused })"
    )
    assert state == {"captured": True, "paused": True}, state  # the picture stays on the analysed photo
    assert page.inner_text("#capture") == "Back to live"
    page.wait_for_timeout(1000)
    assert page.evaluate("() => window.__emoar.captures") == 1  # one photo, one analysis

    page.click("#capture")  # back to live: the camera plays, still no analysis until the next capture
    wait_for(
        page, "() => !window.__emoar.captured && !document.getElementById('video').paused", what="live again"
    )
    page.check("#realtime")
    frames1 = page.evaluate("() => window.__emoar.frames")
    wait_for(page, f"() => window.__emoar.frames >= {frames1 + 3}", what="real-time analysis again")
    assert not page.is_visible("#capture")


def test_camera_chooser_lists_the_camera_and_switching_keeps_detecting(page: Any) -> None:
    cameras = page.evaluate("() => window.__emoar.cameras")
    assert len(cameras) >= 1 and all(c["value"].startswith("device:") for c in cameras), cameras
    options = page.eval_on_selector_all("#camera option", "os => os.map(o => o.value)")
    assert options[:3] == ["", "facing:user", "facing:environment"] and cameras[0]["value"] in options
    frames0 = page.evaluate("() => window.__emoar.frames")
    page.select_option("#camera", cameras[0]["value"])
    wait_for(
        page,
        f"() => window.__emoar.cameraOn && window.__emoar.frames >= {frames0 + 3} && window.__emoar.faces.length === 1",
        what="the face through the chosen camera",
    )
    assert page.evaluate("() => localStorage.getItem('emoar.camera')") == cameras[0]["value"]
    page.select_option("#camera", "")


def test_fullscreen_shows_the_stage(page: Any) -> None:
    wait_for_one_face(page, what="a face before fullscreen")
    page.click("#fullscreen")
    wait_for(
        page,
        "() => document.fullscreenElement && document.fullscreenElement.id === 'stage-wrap'",
        what="fullscreen",
    )
    wait_for(
        page,
        "() => document.getElementById('fullscreen').textContent === 'Exit fullscreen'",
        what="the exit button",
    )
    wait_for(page, "() => window.__emoar.drawnFaces === 1", what="the overlay in fullscreen")
    # the overlay canvas lies exactly over the picture, which fills the screen's width or height
    rects = page.evaluate("""() => ['video', 'overlay'].map((id) => {
        const r = document.getElementById(id).getBoundingClientRect(); return [r.width, r.height]; })""")
    assert rects[0] == rects[1] and (rects[0][0] > 1000 or rects[0][1] > 600), rects
    page.screenshot(path=str(ARTIFACTS / "live_fullscreen.png"))
    page.click("#fullscreen")
    wait_for(
        page,
        "() => !document.fullscreenElement && document.getElementById('fullscreen').textContent === 'Fullscreen'",
        what="fullscreen to end",
    )


def test_live_timeline_draws_one_lane_per_face_with_a_colour_key(page: Any) -> None:
    wait_for(
        page,
        "() => window.__emoar.timeline.tracks === 1 && window.__emoar.timeline.samples > 3",
        what="timeline",
    )
    n0 = page.evaluate("() => window.__emoar.timeline.samples")
    page.wait_for_timeout(1500)
    assert page.evaluate("() => window.__emoar.timeline.samples") > n0  # it keeps growing
    legend = page.eval_on_selector_all("#timeline-legend span", "s => s.map(e => e.textContent)")
    assert legend == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], legend
    # drawn: the lane holds colour (not only the empty background)
    lit = page.evaluate("""() => {
        const c = document.getElementById('timeline'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n / (c.width * c.height);
    }""")
    assert lit > 0.02, lit
    page.locator(".live-timeline").screenshot(path=str(ARTIFACTS / "live_timeline.png"))

    # the camera stopped: the samples go with it (nothing is kept)
    page.click("#start")
    wait_for(page, "() => !window.__emoar.cameraOn", what="camera off")
    page.wait_for_timeout(400)
    assert page.evaluate("() => window.__emoar.timeline.samples") == 0
    page.click("#start")
    wait_for_one_face(page, what="the face after restarting the camera")
