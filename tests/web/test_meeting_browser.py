"""Meeting mode in real browsers: a host dashboard and three participants, each participant in
its own headless Chromium whose fake camera plays a different real face (y4m clips of the shared
photos). The participants' own browsers infer the expressions; the host's tiles show what they
sent; pause shows *paused*, closing a page shows *left*, a reload keeps the same tile, and an
aggregate room shows no names. Screenshots go to artifacts/web/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
from web_helpers import ARTIFACTS, CHROMIUM, LiveServer, chromium_args, letterbox_640x480, wait_for, y4m_bytes

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def meet_server(make_app: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    s = LiveServer(make_app(data_dir=str(tmp_path_factory.mktemp("meet")), rate_limit_burst=500)).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browsers(photos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium; scripts/setup.sh does it as root)")
    folder = tmp_path_factory.mktemp("cams")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cams = {}
    for name in ("portrait.jpg", "portrait_2.jpg"):
        y4m = folder / f"{Path(name).stem}.y4m"
        y4m.write_bytes(y4m_bytes(letterbox_640x480(cv2.imread(str(photos_dir / name))), n_frames=3))
        cams[name] = y4m
    # A third person: one smiling face cut out of the stage photo (about 35 px there), enlarged.
    stage = cv2.imread(str(photos_dir / "stage_group.jpg"))
    crop = stage[62:186, 377:479]
    cams["stage_face"] = folder / "stage_face.y4m"
    cams["stage_face"].write_bytes(y4m_bytes(letterbox_640x480(crop), n_frames=3))
    with sync_api.sync_playwright() as p:
        out = {
            "host": p.chromium.launch(
                executable_path=str(CHROMIUM), args=chromium_args(cams["portrait.jpg"])
            ),
            "ann": p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(cams["portrait.jpg"])),
            "bo": p.chromium.launch(
                executable_path=str(CHROMIUM), args=chromium_args(cams["portrait_2.jpg"])
            ),
            "cy": p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(cams["stage_face"])),
        }
        yield out
        for b in out.values():
            b.close()


def _errors(page: Any) -> list[str]:
    errs: list[str] = []
    page.on("pageerror", lambda e: errs.append(str(e)))
    page.on("console", lambda m: errs.append(m.text) if m.type == "error" else None)
    return errs


def _join(browser: Any, url: str, name: str) -> tuple[Any, Any, list[str]]:
    ctx = browser.new_context(viewport={"width": 1000, "height": 900})
    page = ctx.new_page()
    errs = _errors(page)
    page.goto(url)
    assert "No picture or video ever leaves this device" in page.inner_text("#consent")
    page.fill("#name", name)
    page.click("#agree")
    wait_for(
        page,
        "() => window.__emoarJoin && window.__emoarJoin.connected && window.__emoarJoin.lastSent "
        "&& window.__emoarJoin.lastSent.face === true",
        timeout_s=120,
        what=f"{name} to send a face",
    )
    return ctx, page, errs


def _tiles(host: Any) -> dict[str, dict[str, Any]]:
    raw = host.evaluate("() => JSON.stringify(Object.values(window.__emoarHost.tiles))")
    return {t["name"]: t for t in json.loads(raw)}


def test_host_sees_each_participants_live_emoji(browsers: dict[str, Any], meet_server: LiveServer) -> None:
    with httpx.Client(base_url=meet_server.url, timeout=30) as http:
        room = http.post("/v1/rooms", json={"title": "Browser room", "visibility": "host"}).json()
    hctx = browsers["host"].new_context(viewport={"width": 1200, "height": 1000})
    host = hctx.new_page()
    host_errs = _errors(host)
    host.goto(f"{meet_server.url}/meet/{room['room_id']}/host#token={room['host_token']}")
    wait_for(host, "() => window.__emoarHost && window.__emoarHost.ready", what="the host dashboard")
    assert "#token" not in host.url  # the key is taken out of the address bar
    assert room["join_code"] in host.inner_text("#room-code")
    actx, ann, ann_errs = _join(browsers["ann"], room["join_url"], "Ann")
    bctx, bo, bo_errs = _join(browsers["bo"], room["join_url"], "Bo")
    cctx, cy, cy_errs = _join(browsers["cy"], room["join_url"], "Cy")
    for name, page in (("Ann", ann), ("Bo", bo), ("Cy", cy)):
        sent = page.evaluate("() => window.__emoarJoin.lastSent")
        assert set(sent) == {
            "type",
            "expression",
            "probs",
            "face",
            "paused",
            "at",
        }  # labels only, never pixels
        wait_for(
            host,
            f"() => {{ const t = Object.values(window.__emoarHost.tiles).find(t => t.name === '{name}');"
            f" return t && t.status === 'live' && t.state && t.state.expression === {json.dumps(sent['expression'])}; }}",
            what=f"{name}'s tile to show {sent['expression']}",
        )
    ann.click('[data-reaction="confused"]')
    wait_for(host, "() => window.__emoarHost.reactions >= 1", what="Ann's reaction")
    assert "confused" in host.inner_text("#tiles")
    # participants of a host-visibility room see nobody else
    assert ann.evaluate("() => Object.keys(window.__emoarJoin.others).length") == 0
    host.screenshot(path=str(ARTIFACTS / "meet_host.png"))
    ann.screenshot(path=str(ARTIFACTS / "meet_participant.png"))
    # pause -> paused; Bo's page closed -> left; Ann reloads -> the same tile comes back live
    ann.check("#pause")
    wait_for(
        host,
        "() => Object.values(window.__emoarHost.tiles).find(t => t.name === 'Ann').status === 'paused'",
        what="paused",
    )
    bctx.close()
    wait_for(
        host,
        "() => Object.values(window.__emoarHost.tiles).find(t => t.name === 'Bo').status === 'left'",
        what="left",
    )
    ann.reload()
    ann.click("#agree")
    wait_for(
        host,
        "() => Object.values(window.__emoarHost.tiles).filter(t => t.name === 'Ann').length === 1 && "
        "Object.values(window.__emoarHost.tiles).find(t => t.name === 'Ann').status === 'live' && "
        "Object.values(window.__emoarHost.tiles).find(t => t.name === 'Ann').state.expression !== null",
        timeout_s=120,
        what="Ann back",
    )
    assert len(_tiles(host)) == 3
    host.screenshot(path=str(ARTIFACTS / "meet_host_after.png"))
    assert not host_errs and not ann_errs and not bo_errs and not cy_errs, (
        host_errs,
        ann_errs,
        bo_errs,
        cy_errs,
    )
    cctx.close()
    actx.close()
    hctx.close()


def test_aggregate_room_shows_no_names(browsers: dict[str, Any], meet_server: LiveServer) -> None:
    with httpx.Client(base_url=meet_server.url, timeout=30) as http:
        room = http.post("/v1/rooms", json={"title": "Anonymous", "visibility": "aggregate"}).json()
    hctx = browsers["host"].new_context()
    host = hctx.new_page()
    host.goto(f"{meet_server.url}/meet/{room['room_id']}/host#token={room['host_token']}")
    wait_for(host, "() => window.__emoarHost && window.__emoarHost.ready", what="the host dashboard")
    ctx, page, _ = _join(browsers["ann"], room["join_url"], "Ann")
    wait_for(
        host, "() => window.__emoarHost.mood && window.__emoarHost.mood.active === 1", what="the room's mood"
    )
    assert "Ann" not in host.inner_text("body") and _tiles(host) == {}
    host.screenshot(path=str(ARTIFACTS / "meet_host_aggregate.png"))
    ctx.close()
    hctx.close()


def test_create_page_states_the_rules(browsers: dict[str, Any], meet_server: LiveServer) -> None:
    ctx = browsers["host"].new_context()
    page = ctx.new_page()
    page.goto(f"{meet_server.url}/meet")
    text = page.inner_text("body")
    assert "EU AI Act" in text and "Art. 5(1)(f)" in text and "never a picture" in text
    page.fill("#title", "Seminar")
    page.check('input[value="everyone"]')
    page.click("#create-btn")
    wait_for(page, "() => window.__emoarMeet.created", what="the room")
    created = page.evaluate("() => window.__emoarMeet.created")
    assert created["visibility"] == "everyone" and page.get_attribute("#host-link", "href").startswith(
        f"/meet/{created['room_id']}/host#token="
    )
    page.screenshot(path=str(ARTIFACTS / "meet_create.png"))
    ctx.close()
