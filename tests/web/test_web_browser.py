"""The pages in a real browser: Debian's Chromium driven by Playwright, with a fake camera that
plays a real face photo (a .y4m clip), against the real uvicorn server of ``live_server``.

Screenshots go to ``artifacts/web/`` (gitignored). Skipped, with the reason, when Playwright or
/usr/bin/chromium is missing (``scripts/setup.sh`` installs both).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from web_helpers import ARTIFACTS, wait_for

pytestmark = pytest.mark.browser


class PageLog:
    """Console errors, uncaught exceptions and every URL a page requested."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        self.urls: list[str] = []
        page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("websocket", lambda ws: self.urls.append(ws.url))

    def foreign_urls(self, origin: str) -> list[str]:
        """Requested URLs outside ``origin`` (its ws:// twin, data: and blob: URLs are local too)."""
        ws_origin = origin.replace("http://", "ws://", 1)
        return [u for u in self.urls if not u.startswith((origin + "/", ws_origin + "/", "data:", "blob:"))]


def on_device_available(page: Any) -> bool:
    return bool(page.evaluate("() => window.__emoar && window.__emoar.onDeviceAvailable"))


@pytest.fixture(scope="module")
def live_page(browser: Any, live_server: Any) -> Iterator[tuple[Any, PageLog]]:
    """The live page, opened once for the module (camera = the fake y4m face)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    log = PageLog(page)
    page.goto(f"{live_server.url}/")
    wait_for(page, "() => window.__emoar && window.__emoar.ready", what="the page to get ready")
    yield page, log
    context.close()


def select_mode(page: Any, mode: str) -> None:
    if page.evaluate("() => window.__emoar.mode") != mode:
        page.select_option("#mode", mode)
    wait_for(page, f"() => window.__emoar.ready && window.__emoar.mode === '{mode}'", what=f"{mode} mode")


def wait_for_face(page: Any, mode: str) -> dict[str, Any]:
    frames0 = page.evaluate("() => window.__emoar.frames")
    wait_for(
        page,
        f"() => window.__emoar.mode === '{mode}' && window.__emoar.frames >= {frames0 + 2} && "
        "window.__emoar.faces.length === 1 && window.__emoar.drawnFaces === 1",
        what=f"a face in {mode} mode",
    )
    state: dict[str, Any] = page.evaluate("() => JSON.parse(JSON.stringify(window.__emoar))")
    return state


def overlay_alpha(page: Any) -> np.ndarray:
    """The overlay canvas's alpha channel (H, W) uint8: what was drawn over the video."""
    data = page.evaluate("""() => {
        const c = document.getElementById('overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = '';
        for (let i = 3; i < d.length; i += 4) s += String.fromCharCode(d[i]);
        return [c.width, c.height, btoa(s)];
    }""")
    w, h, b64 = data
    return np.frombuffer(base64.b64decode(b64), np.uint8).reshape(h, w)


def mirrored_box(box: list[float], width: int) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return int(width - x2), int(y1), int(width - x1), int(y2)


def check_face_and_overlay(page: Any, state: dict[str, Any], shot: str) -> None:
    face = state["faces"][0]
    x1, y1, x2, y2 = face["box_xyxy"]
    # portrait.jpg letterboxed to 640x480: the face is in the middle, about 200 px wide
    assert 150 < (x1 + x2) / 2 < 490 and 60 < (y1 + y2) / 2 < 420 and 120 < x2 - x1 < 360, face
    assert abs(sum(face["probs"].values()) - 1) < 1e-3 and isinstance(face["track_id"], int)
    assert page.get_attribute("body", "data-faces") == "1"
    alpha = overlay_alpha(page)
    assert alpha.shape == (480, 640)
    bx1, by1, bx2, by2 = mirrored_box(face["box_xyxy"], 640)  # the page mirrors like a selfie camera
    drawn = alpha > 0
    assert 0.02 < drawn.mean() < 0.6, f"overlay covers {drawn.mean():.1%} of the frame"
    pad = 6
    corner = drawn[max(0, by1 - pad) : by1 + pad, max(0, bx1 - pad) : bx1 + 30]
    assert corner.any(), "no box corner drawn at the face's top-left"
    above = drawn[: max(1, by1), max(0, bx1 - 80) : bx2 + 80]
    beside = drawn[:, min(639, bx2) :]
    assert above.sum() + beside.sum() > 2000, "no emoji drawn above or beside the face"
    page.screenshot(path=str(ARTIFACTS / shot))


def test_live_page_on_device_finds_the_face_and_draws_overlays(
    live_page: tuple[Any, PageLog], live_server: Any
) -> None:
    page, log = live_page
    if not on_device_available(page):
        pytest.skip("on-device mode unavailable: front-end packages not vendored (run scripts/setup.sh)")
    select_mode(page, "ondevice")
    state = wait_for_face(page, "ondevice")
    assert page.get_attribute("body", "data-mode") == "ondevice"
    check_face_and_overlay(page, state, "live_ondevice.png")
    assert float(page.inner_text("#fps")) > 0
    assert "onnxruntime-web" in page.inner_text("#backend")
    assert log.errors == [], log.errors
    assert log.foreign_urls(live_server.url) == []
    assert any("/static/vendor/onnxruntime-web/" in u and u.endswith(".wasm") for u in log.urls)
    assert not any("/v1/stream" in u for u in log.urls), "on-device mode must not send frames to the server"


def test_live_page_blazeface_detects_on_a_schedule_and_follows(
    live_page: tuple[Any, PageLog], live_server: Any
) -> None:
    """The on-device BlazeFace finder (our shipped ONNX on onnxruntime-web): the face is found and
    drawn, and between full detections (every 5th frame) it is followed on a region around it."""
    page, log = live_page
    if not on_device_available(page):
        pytest.skip("on-device mode unavailable: front-end packages not vendored (run scripts/setup.sh)")
    select_mode(page, "ondevice")
    page.select_option("#detector", "blazeface")
    wait_for(page, "() => window.__emoar.ready && window.__emoar.detector === 'blazeface'", what="blazeface")
    state = wait_for_face(page, "ondevice")
    frames0 = state["frames"]
    wait_for(page, f"() => window.__emoar.frames >= {frames0 + 12}", what="12 more frames")
    state = page.evaluate("() => JSON.parse(JSON.stringify(window.__emoar))")
    check_face_and_overlay(page, state, "live_ondevice_blazeface.png")
    stats = state["detections"]
    assert stats["followed"] >= 3 * stats["full"] > 0, stats  # 4 of every 5 frames followed
    assert "BlazeFace" in page.inner_text("#backend")
    assert any(u.endswith("/assets/detectors/blazeface_short_range.onnx") for u in log.urls)
    assert log.errors == [], log.errors
    assert log.foreign_urls(live_server.url) == []


def test_on_device_default_finder_finds_a_group(live_page: tuple[Any, PageLog], photos_dir: Path) -> None:
    """The page's default face finder on the office photo (8 faces of 16-25 px): the near-face
    model finds nobody, so the far-face model looks too and finds the group."""
    page, log = live_page
    if not on_device_available(page):
        pytest.skip("on-device mode unavailable: front-end packages not vendored (run scripts/setup.sh)")
    b64 = base64.b64encode((photos_dir / "office_group.jpg").read_bytes()).decode()
    got = page.evaluate(
        """async (b64) => {
        const { OnDeviceEngine } = await import('/static/js/ondevice.js');
        const cat = await fetch('/v1/models').then((r) => r.json());
        const model = cat.models.find((m) => m.name === cat.default);
        const eng = await new OnDeviceEngine().init(model, cat.alignment);
        const img = new Image(); img.src = 'data:image/jpeg;base64,' + b64; await img.decode();
        const r = await eng.process(img, 0);
        const out = { faces: r.faces.length, detector: eng.detectorName, stats: eng.detectionStats };
        await eng.close();
        return out;
    }""",
        b64,
    )
    assert got["detector"] == "blazeface"
    assert got["faces"] >= 6, got
    assert got["stats"]["far"] == 1, got
    assert log.errors == [], log.errors


def test_live_page_server_mode_and_back(live_page: tuple[Any, PageLog], live_server: Any) -> None:
    page, log = live_page
    select_mode(page, "server")
    state = wait_for_face(page, "server")
    check_face_and_overlay(page, state, "live_server.png")
    assert any(u.startswith(f"{live_server.ws_url}/v1/stream") for u in log.urls)
    if on_device_available(page):
        select_mode(page, "ondevice")
        wait_for_face(page, "ondevice")
    assert log.errors == [], log.errors
    assert log.foreign_urls(live_server.url) == []


def test_overlay_styles(live_page: tuple[Any, PageLog]) -> None:
    page, log = live_page
    state = wait_for_face(page, page.evaluate("() => window.__emoar.mode"))
    bx1, by1, bx2, by2 = mirrored_box(state["faces"][0]["box_xyxy"], 640)
    cx, cy = (bx1 + bx2) // 2, (by1 + by2) // 2
    full = overlay_alpha(page)
    assert full[cy - 10 : cy + 10, cx - 10 : cx + 10].max() == 0, "the full style keeps the face visible"
    page.select_option("#style", "emoji")
    page.wait_for_timeout(300)
    sticker = overlay_alpha(page)
    assert sticker[cy - 10 : cy + 10, cx - 10 : cx + 10].min() > 200, "the emoji style covers the face"
    page.screenshot(path=str(ARTIFACTS / "live_style_emoji.png"))
    page.select_option("#style", "minimal")
    page.wait_for_timeout(300)
    minimal = overlay_alpha(page)
    assert 0 < (minimal > 0).sum() < (full > 0).sum(), "minimal draws less than full (no bars, no quote)"
    page.select_option("#style", "full")
    assert log.errors == [], log.errors


def test_js_alignment_and_classifier_match_python(
    live_page: tuple[Any, PageLog], engine: Any, frame_640x480: np.ndarray
) -> None:
    """align.js + onnxruntime-web give the crops and probabilities of emoar.align + onnxruntime."""
    import cv2

    from emoar.align import align_face

    page, _ = live_page
    if not on_device_available(page):
        pytest.skip("on-device mode unavailable: front-end packages not vendored (run scripts/setup.sh)")
    with engine.pipeline(None) as pipe:
        det = pipe.detect(frame_640x480)[0]
        crop_py = align_face(frame_640x480, det, 48)
        out_py = pipe.classifier.classify(crop_py[None])
    png = base64.b64encode(cv2.imencode(".png", frame_640x480)[1].tobytes()).decode()
    model = engine.model(None)
    res = page.evaluate(
        """async ([png, box, lm, onnxUrl]) => {
            const A = await import('/static/js/align.js');
            const catalog = await (await fetch('/v1/models')).json();
            const img = new Image();
            img.src = 'data:image/png;base64,' + png;
            await img.decode();
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const rgba = ctx.getImageData(0, 0, c.width, c.height).data;
            const m = A.alignmentMatrix(catalog.alignment, {box, landmarks: lm}, 48, 'yunet');
            const crop = A.warpGray(rgba, c.width, c.height, m, 48, catalog.alignment.max_supersample);
            const O = await import('/static/js/ondevice.js');
            const info = catalog.models.find((m) => m.onnx_url === onnxUrl);
            const x = new Float32Array(48 * 48);
            A.preprocessInto(x, 0, crop, info.mean, info.std);
            const session = await ort.InferenceSession.create(onnxUrl, {executionProviders: ['wasm']});
            const out = await session.run({[session.inputNames[0]]: new ort.Tensor('float32', x, [1, 1, 48, 48])});
            const ood = info.ood_quantiles.length ? A.oodScore(out[info.ood_output].data[0], info.ood_quantiles) : 0;
            // normalised and temperature-scaled as the page's engine does (the model's calibration)
            const probs = O.calibrated(Array.from(out.probs.data), info.temperature);
            return {crop: Array.from(crop), probs, ood, temperature: info.temperature};
        }""",
        [png, list(det.box_xyxy), det.landmarks_xy.tolist(), f"/v1/models/{model.name}/onnx"],
    )
    crop_js = np.array(res["crop"], np.uint8).reshape(48, 48)
    diff = np.abs(crop_js.astype(int) - crop_py.astype(int))
    assert diff.mean() < 1.0 and diff.max() <= 8, f"crop differs: mean {diff.mean():.2f}, max {diff.max()}"
    assert res["temperature"] == pytest.approx(model.meta.temperature) and res["temperature"] != 1.0
    probs_js = np.array(res["probs"], np.float32)
    np.testing.assert_allclose(probs_js, out_py.probs[0], atol=0.02)
    assert abs(res["ood"] - float(out_py.ood_score[0])) < 0.1


def _mirror_cases() -> list[dict[str, Any]]:
    """Faces around every branch of align.alignment_matrix: good, noisy (residuals on both sides
    of MAX_FIT_RESIDUAL), degenerate and boxless landmarks, boxes 0.3-2.5x the landmark scale,
    each detector's framing and an unknown (MediaPipe) name, several crop sizes."""
    from emoar.align import FER_TEMPLATE_48 as tpl

    rng = np.random.default_rng(0)
    cases = []
    for i in range(240):
        s, th = rng.uniform(0.5, 12), rng.normal(0, 0.4)
        rot = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]]) * s
        lm = tpl @ rot + rng.uniform(0, 600, 2) + rng.normal(0, rng.choice([0.1, 2, 8, 20]), (5, 2)) * s / 4
        if i % 37 == 0:
            lm[:] = lm[0]
        bw = 40 * s * rng.uniform(0.3, 2.5)
        bh = bw * rng.uniform(0.9, 1.5)
        c = lm.mean(0)
        cases.append(
            {
                "box": [c[0] - bw / 2, c[1] - bh / 2, c[0] + bw / 2, c[1] + bh / 2],
                "lm": None if i % 10 == 0 else lm.tolist(),
                "size": (48, 64, 96)[i % 3],
                "det": ("yunet", "mtcnn", "haar", "mediapipe_short")[i % 4],
            }
        )
    return cases


def test_js_alignment_matrix_mirrors_align_py(live_page: tuple[Any, PageLog]) -> None:
    """align.js's alignmentMatrix is align.alignment_matrix (fit direction, thresholds, box
    framing per detector, unknown names -> YuNet's), with the constants GET /v1/models serves.
    4-point faces (MediaPipe face detection: mouth centre) are the same fit with the mouth corners
    merged into their midpoint at their summed weight."""
    from emoar import align
    from emoar.types import Detection

    page, _ = live_page
    cases = _mirror_cases()
    res = page.evaluate(
        """async (cases) => {
            const A = await import('/static/js/align.js');
            const al = (await (await fetch('/v1/models')).json()).alignment;
            const fin = (r) => Number.isFinite(r) ? r : null;
            return cases.map((c) => {
                const out = {m: A.alignmentMatrix(al, {box: c.box, landmarks: c.lm}, c.size, c.det)};
                if (c.lm) {
                    out.resid = fin(A.landmarkAlignmentMatrix(al, c.lm, c.size).resid);
                    const mouth = [(c.lm[3][0] + c.lm[4][0]) / 2, (c.lm[3][1] + c.lm[4][1]) / 2];
                    const lm4 = [c.lm[0], c.lm[1], c.lm[2], mouth];
                    const r4 = A.landmarkAlignmentMatrix(al, lm4, c.size);
                    out.m4 = r4.m; out.resid4 = fin(r4.resid);
                }
                return out;
            });
        }""",
        cases,
    )
    branches = {"landmarks": 0, "residual": 0, "scale": 0, "no landmarks": 0}
    for c, r in zip(cases, res, strict=True):
        lm = None if c["lm"] is None else np.array(c["lm"])
        det = Detection(box_xyxy=tuple(c["box"]), score=1.0, landmarks_xy=lm)
        m_py = align.alignment_matrix(det, c["size"], detector=c["det"])
        np.testing.assert_allclose(r["m"], m_py, rtol=1e-9, atol=1e-9, err_msg=str(c))
        if lm is None:
            branches["no landmarks"] += 1
            continue
        m_lm, resid = align.landmark_alignment_matrix(lm, c["size"])
        assert (r["resid"] is None) == (not np.isfinite(resid)), c
        if r["resid"] is not None:
            assert abs(r["resid"] - resid) < 1e-9, c
        if np.allclose(m_py, m_lm, rtol=1e-12, atol=1e-12):
            branches["landmarks"] += 1
        else:
            branches["residual" if not resid <= align.MAX_FIT_RESIDUAL else "scale"] += 1
        # The 4-point variant against the same least-squares fit done in numpy.
        dst = align.fer_template(c["size"])
        w = align._FIT_WEIGHTS
        dst4 = np.vstack([dst[:3], dst[3:].mean(0)])
        lm4 = np.vstack([lm[:3], lm[3:].mean(0)])
        inv, r_src = align._fit_similarity(dst4, lm4, np.array([w[0], w[1], w[2], w[3] + w[4]]))
        scale = float(np.hypot(inv[0, 0], inv[1, 0]))
        if not (np.isfinite(r_src) and scale >= 1e-9):
            assert r["m4"] is None and r["resid4"] is None, c
            continue
        m4 = np.linalg.inv(np.vstack([inv, (0.0, 0.0, 1.0)]))[:2]
        np.testing.assert_allclose(r["m4"], m4, rtol=1e-9, atol=1e-9, err_msg=str(c))
        eye = float(np.linalg.norm(dst[1] - dst[0]))
        assert abs(r["resid4"] - r_src / scale / eye) < 1e-9, c
    assert min(branches.values()) >= 5, branches
    resids = [align.landmark_alignment_matrix(np.array(c["lm"]), 48)[1] for c in cases if c["lm"]]
    assert any(0.30 < r <= align.MAX_FIT_RESIDUAL for r in resids), (
        "no case between 0.30 (the draft's) and it"
    )


@pytest.mark.parametrize("detector", ["short", pytest.param("mesh", marks=pytest.mark.slow)])
def test_on_device_mediapipe_faces_take_the_landmark_branch(
    live_page: tuple[Any, PageLog], frame_640x480: np.ndarray, detector: str
) -> None:
    """MediaPipe's points (face detection: 4 with the mouth centre; face mesh: 5) fit the FER
    template well, so on-device crops come from the landmark fit; its boxes only serve as the
    scale sanity check, with YuNet's framing (MediaPipe has no FER_BOX_48 entry)."""
    import cv2

    page, _ = live_page
    if not on_device_available(page):
        pytest.skip("on-device mode unavailable: front-end packages not vendored (run scripts/setup.sh)")
    png = base64.b64encode(cv2.imencode(".png", frame_640x480)[1].tobytes()).decode()
    res = page.evaluate(
        """async ([png, detector]) => {
            const A = await import('/static/js/align.js');
            const { OnDeviceEngine } = await import('/static/js/ondevice.js');
            const catalog = await (await fetch('/v1/models')).json();
            const al = catalog.alignment;
            const img = new Image();
            img.src = 'data:image/png;base64,' + png;
            await img.decode();
            const eng = await new OnDeviceEngine().init(catalog.models[0], al, detector);
            const faces = (await eng.process(img, 0)).faces;
            await eng.close();
            return faces.map((f) => {
                const face = {box: f.box_xyxy, landmarks: f.landmarks_xy};
                const fit = A.landmarkAlignmentMatrix(al, face.landmarks, 48);
                const box = A.boxAlignmentMatrix(al, face.box, 48, eng.alignDetector);
                const det = fit.m[0][0] * fit.m[1][1] - fit.m[0][1] * fit.m[1][0];
                return {n: face.landmarks.length, det: eng.alignDetector, known: eng.alignDetector in al.box_48,
                        resid: fit.resid, m: A.alignmentMatrix(al, face, 48, eng.alignDetector), fit: fit.m,
                        ratio: Math.sqrt(Math.abs(det)) / box[0][0],
                        max_fit_residual: al.max_fit_residual, max_scale_ratio: al.max_scale_ratio};
            });
        }""",
        [png, detector],
    )
    assert len(res) == 1, res
    r = res[0]
    assert r["n"] == (5 if detector == "mesh" else 4), r
    assert r["det"] == f"mediapipe_{detector}" and not r["known"], r
    assert r["resid"] < r["max_fit_residual"] / 3, r
    assert 1 / r["max_scale_ratio"] < 0.8 < r["ratio"] < 1.25 < r["max_scale_ratio"], r
    assert r["m"] == r["fit"], "the landmark branch must be taken"


def test_upload_page_image(browser: Any, live_server: Any, photos_dir: Path) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    log = PageLog(page)
    page.goto(f"{live_server.url}/upload")
    wait_for(page, "() => document.body.dataset.state === 'ready'", what="the upload page")
    page.set_input_files("#file", str(photos_dir / "portrait.jpg"))
    wait_for(page, "() => ['done', 'error'].includes(document.body.dataset.state)", what="the analysis")
    assert page.get_attribute("body", "data-state") == "done", page.inner_text("#status")
    result = page.evaluate("() => window.__emoarUpload.result")
    assert set(result) == {"image", "width", "height", "faces"} and len(result["faces"]) == 1
    assert page.locator("#faces tbody tr").count() == 1
    assert page.evaluate("() => document.getElementById('result-image').naturalWidth") == 681
    assert page.get_attribute("#dl-json", "href").startswith("blob:")
    assert page.get_attribute("#dl-csv", "download") == "portrait_emoar.csv"
    badges = page.locator(".face-no")  # numbered on the image like the table's "#" column
    assert badges.count() == 1 and badges.first.inner_text() == "1"
    box, img = badges.first.bounding_box(), page.locator("#result-image").bounding_box()
    x1, y1 = result["faces"][0]["box_xyxy"][:2]
    assert abs(box["x"] + box["width"] / 2 - (img["x"] + x1 / 681 * img["width"])) < 3
    assert abs(box["y"] + box["height"] / 2 - (img["y"] + y1 / result["height"] * img["height"])) < 3
    page.screenshot(path=str(ARTIFACTS / "upload_image.png"), full_page=True)
    assert log.errors == [] and log.foreign_urls(live_server.url) == []
    context.close()


def test_upload_page_rejects_a_text_file_with_the_server_message(
    browser: Any, live_server: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo\n")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/upload")
    wait_for(page, "() => document.body.dataset.state === 'ready'", what="the upload page")
    page.set_input_files("#file", str(bad))
    wait_for(page, "() => document.body.dataset.state === 'error'", what="the error")
    assert "400" in page.inner_text("#status") and "text" in page.inner_text("#status")
    context.close()


def test_upload_error_after_a_success_clears_the_previous_result(
    browser: Any, live_server: Any, photos_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((photos_dir / "portrait.jpg").read_bytes()[:300])  # a truncated JPEG
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{live_server.url}/upload")
    wait_for(page, "() => document.body.dataset.state === 'ready'", what="the upload page")
    page.set_input_files("#file", str(photos_dir / "portrait.jpg"))
    wait_for(page, "() => document.body.dataset.state === 'done'", what="the first analysis")
    assert page.locator("#faces tbody tr").count() == 1 and page.is_visible("#result")
    page.set_input_files("#file", str(bad))
    wait_for(page, "() => document.body.dataset.state === 'error'", what="the error")
    assert not page.is_visible("#result"), "the old result is still shown under the error"
    assert page.locator("#faces tbody tr").count() == 0
    assert page.get_attribute("#dl-json", "href") is None and page.get_attribute("#dl-csv", "href") is None
    assert page.evaluate("() => window.__emoarUpload.result") is None
    context.close()


def test_upload_page_clip(browser: Any, live_server: Any, clip_mp4: bytes, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(clip_mp4)
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    log = PageLog(page)
    page.goto(f"{live_server.url}/upload")
    wait_for(page, "() => document.body.dataset.state === 'ready'", what="the upload page")
    page.set_input_files("#file", str(clip))
    wait_for(page, "() => ['done', 'error'].includes(document.body.dataset.state)", what="the clip analysis")
    assert page.get_attribute("body", "data-state") == "done", page.inner_text("#status")
    result = page.evaluate("() => window.__emoarUpload.result")
    assert len(result["frames"]) == 10 and len(result["tracks"]) == 1
    assert page.locator("#faces tbody tr").count() == 1  # one row per person, not per frame
    assert page.inner_text("#faces tbody tr td >> nth=0") == "1"
    # the upload is MPEG-4 Part 2 (which Chromium cannot play): the page plays the server's WebM
    wait_for(page, "() => document.getElementById('result-video').readyState >= 2", what="the clip to load")
    assert page.evaluate("() => document.getElementById('result-video').videoWidth") == 640
    page.evaluate("() => { const v = document.getElementById('result-video'); v.play(); }")
    wait_for(page, "() => document.getElementById('result-video').currentTime > 0.3", what="the clip to play")
    assert page.get_attribute("#dl-video", "download") == "clip_emoar.webm"
    assert page.get_attribute("#dl-video", "href").startswith("blob:") and page.is_visible("#dl-video")
    assert page.get_attribute("#dl-csv", "href").startswith("blob:")
    lanes = page.evaluate(
        """() => { const c = document.getElementById('timeline'), dpr = window.devicePixelRatio || 1;
                   // the lane of person #1: rows 16-34 css px, right of the "#1" label
                   const d = c.getContext('2d').getImageData(40 * dpr, 18 * dpr, c.width - 50 * dpr, 14 * dpr).data;
                   let painted = 0, n = d.length / 4;
                   for (let i = 0; i < d.length; i += 4)
                     if (Math.abs(d[i] - 0x2b) + Math.abs(d[i+1] - 0x31) + Math.abs(d[i+2] - 0x40) > 30) painted++;
                   return painted / n; }"""
    )
    assert lanes > 0.9, f"the person's lane is only {lanes:.0%} painted with expressions"
    page.evaluate(
        "() => { const v = document.getElementById('result-video'); v.pause(); v.currentTime = 0.5; }"
    )
    page.screenshot(path=str(ARTIFACTS / "upload_clip.png"), full_page=True)
    assert log.errors == [] and log.foreign_urls(live_server.url) == []
    context.close()


def test_api_docs_render_offline(browser: Any, live_server: Any) -> None:
    """/docs is Swagger UI from the vendored npm package (FastAPI's default would use a CDN)."""
    from emoar.web.routes.pages import VENDOR_BUILD_HINT, missing_vendor_files

    if missing_vendor_files():
        pytest.skip(f"front-end packages not vendored; run {VENDOR_BUILD_HINT}")
    context = browser.new_context()
    page = context.new_page()
    log = PageLog(page)
    page.goto(f"{live_server.url}/docs")
    wait_for(page, "() => document.querySelectorAll('.opblock').length >= 4", timeout_s=30, what="Swagger UI")
    assert "/v1/analyze" in page.inner_text("body")
    assert log.errors == [] and log.foreign_urls(live_server.url) == []
    context.close()


def test_live_page_without_vendor_files_says_so_and_uses_server_mode(
    browser: Any, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emoar.web.routes import pages

    monkeypatch.setattr(pages, "missing_vendor_files", lambda: ["onnxruntime-web/ort.wasm.min.js"])
    context = browser.new_context()
    page = context.new_page()
    log = PageLog(page)
    page.goto(f"{live_server.url}/")
    assert "npm ci" in page.inner_text("#vendor-missing")
    wait_for(page, "() => window.__emoar && window.__emoar.ready", what="the page to get ready")
    assert page.evaluate("() => window.__emoar.mode") == "server"
    assert page.is_disabled('#mode option[value="ondevice"]')
    wait_for_face(page, "server")
    assert not any("/static/vendor/" in u for u in log.urls)
    assert log.errors == [], log.errors
    context.close()


@pytest.mark.slow
def test_live_page_face_mesh_landmarks(live_page: tuple[Any, PageLog]) -> None:
    """On-device mode with MediaPipe face mesh (468 landmarks -> the 5 alignment points)."""
    page, log = live_page
    if not on_device_available(page):
        pytest.skip("on-device mode unavailable: front-end packages not vendored (run scripts/setup.sh)")
    select_mode(page, "ondevice")
    page.select_option("#detector", "mesh")
    wait_for(page, "() => window.__emoar.ready && window.__emoar.detector === 'mesh'", what="face mesh")
    state = wait_for_face(page, "ondevice")
    # the mesh itself is drawn (468 points, the contours), not only the 5 alignment points
    wait_for(page, "() => window.__emoar.meshPoints >= 468", what="the face mesh drawn")
    check_face_and_overlay(page, state, "live_ondevice_mesh.png")
    page.select_option("#detector", "short")
    wait_for(page, "() => window.__emoar.ready && window.__emoar.detector === 'short'", what="face detection")
    assert log.errors == [], log.errors


PHONE = {
    "viewport": {"width": 412, "height": 915},
    "device_scale_factor": 2.625,
    "is_mobile": True,
    "has_touch": True,
}


@pytest.mark.parametrize("path", ["/", "/upload", "/meet"])
def test_pages_fit_a_phone_screen(browser: Any, live_server: Any, path: str) -> None:
    """Pixel 7 size: nothing wider than the screen, touch-size controls, settings folded away on
    the live page so the picture comes first."""
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(f"{live_server.url}{path}")
    page.wait_for_load_state("networkidle")
    if path == "/":
        wait_for(page, "() => window.__emoar && window.__emoar.ready", what="the live page")
        assert page.evaluate("() => document.getElementById('settings').open") is False
        stage = page.locator("#stage").bounding_box()
        assert stage["y"] < 915 * 0.35 and stage["width"] > 380  # the picture is near the top, full width
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 412, f"{path} scrolls sideways: {width} px wide on a 412-px screen"
    small = page.evaluate(
        """() => [...document.querySelectorAll('button, select, input[type=checkbox], .downloads a')]
                  .filter((e) => e.offsetParent !== null)
                  .map((e) => [e.id || e.tagName, e.getBoundingClientRect().height])
                  .filter(([, h]) => h < 24)"""
    )
    assert small == [], f"targets too small to touch: {small}"
    context.close()


def test_upload_result_fits_a_phone_screen(browser: Any, live_server: Any, photos_dir: Path) -> None:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(f"{live_server.url}/upload")
    wait_for(page, "() => document.body.dataset.state === 'ready'", what="the upload page")
    page.set_input_files("#file", str(photos_dir / "office_group.jpg"))
    wait_for(page, "() => document.body.dataset.state === 'done'", what="the analysis")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 412, f"the result page scrolls sideways: {width} px"
    assert page.locator("#faces tbody tr").count() == 8  # the wide table scrolls inside its box
    context.close()


def test_every_shipped_model_runs_on_device_as_in_python(
    live_page: tuple[Any, PageLog], fer_csv: Path
) -> None:
    """Each model of GET /v1/models (float, int8, the ensembles' QDQ graphs) in onnxruntime-web
    gives, on real FER2013 faces, the calibrated probabilities and OOD scores of onnxruntime."""
    from emoar.classify import ExpressionClassifier
    from emoar.models import list_models
    from emoar.train.data import load_fer2013_csv

    page, log = live_page
    if not on_device_available(page):
        pytest.skip("on-device mode unavailable: front-end packages not vendored (run scripts/setup.sh)")
    faces = load_fer2013_csv(fer_csv)["PrivateTest"].images[:12]
    got = page.evaluate(
        """async (pixels) => {
            const A = await import('/static/js/align.js');
            const O = await import('/static/js/ondevice.js');
            const catalog = await (await fetch('/v1/models')).json();
            const out = {};
            for (const info of catalog.models) {
                const session = await ort.InferenceSession.create(info.onnx_url, {executionProviders: ['wasm']});
                const px = 48 * 48, n = pixels.length / px;
                const x = new Float32Array(pixels.length);
                for (let i = 0; i < n; i++) {
                    A.preprocessInto(x, i * px, Uint8Array.from(pixels.slice(i * px, (i + 1) * px)), info.mean, info.std);
                }
                const r = await session.run({[session.inputNames[0]]: new ort.Tensor('float32', x, [n, 1, 48, 48])});
                const k = info.labels.length, probs = [], ood = [];
                for (let i = 0; i < n; i++) {
                    probs.push(O.calibrated(Array.from(r.probs.data.slice(i * k, (i + 1) * k)), info.temperature));
                    ood.push(info.ood_quantiles.length ? A.oodScore(r[info.ood_output].data[i], info.ood_quantiles) : 0);
                }
                out[info.name] = {probs, ood};
            }
            return out;
        }""",
        faces.reshape(-1).tolist(),
    )
    shipped = {m.name: m for m in list_models()}
    assert set(got) == set(shipped), "the page's catalogue is the shipped registry"
    for name, res in got.items():
        ref = ExpressionClassifier(shipped[name].path).classify(faces)
        np.testing.assert_allclose(np.array(res["probs"]), ref.probs, atol=0.02, err_msg=name)
        assert np.abs(np.array(res["ood"]) - ref.ood_score).max() < 0.1, name
        assert (np.array(res["probs"]).argmax(1) == ref.probs.argmax(1)).mean() >= 11 / 12, name
    assert log.errors == [], log.errors
