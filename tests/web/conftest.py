"""Fixtures for the web tests: one loaded engine shared by every app, TestClient apps with any
settings, a real uvicorn server on a free loopback port, and real images/clips made from the
shared test photos."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi", reason="the web extra is not installed: pip install -e '.[web]'")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from web_helpers import ARTIFACTS, CHROMIUM, LiveServer, chromium_args, letterbox_640x480, y4m_bytes  # noqa: E402

from emoar.web.app import create_app  # noqa: E402
from emoar.web.engine import Engine  # noqa: E402
from emoar.web.settings import Settings  # noqa: E402


def _test_model() -> str:
    """The model the tests serve: $EMOAR_TEST_MODEL, else the shipped default."""
    env = os.environ.get("EMOAR_TEST_MODEL")
    if env:
        return env
    from emoar.models import list_models

    try:
        if list_models():
            return "default"
    except FileNotFoundError:
        pass
    pytest.skip(
        "no shipped model is registered (src/emoar/models/registry.json); set EMOAR_TEST_MODEL=PATH.onnx"
    )


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """The models, loaded once for every app of the session."""
    eng = Engine.load(Settings(model=_test_model()))
    yield eng
    eng.close()


@pytest.fixture(scope="session")
def make_app(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., FastAPI]:
    """Build an app with the shared engine and any settings (``make_app(max_upload_bytes=1000)``).
    Meeting rooms go to a temporary folder unless ``data_dir`` is given (tests never touch HOME)."""
    rooms = tmp_path_factory.mktemp("rooms")

    def make(**settings: Any) -> FastAPI:
        settings.setdefault("data_dir", str(rooms))
        return create_app(Settings(**settings), engine=engine)

    return make


@pytest.fixture()
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """A TestClient on an app with the default settings."""
    with TestClient(make_app()) as c:
        yield c


@pytest.fixture(scope="session")
def portrait_jpg(photos_dir: Path) -> bytes:
    """A real photo with one face (JPEG bytes)."""
    return (photos_dir / "portrait.jpg").read_bytes()


@pytest.fixture(scope="session")
def frame_640x480(photos_dir: Path) -> np.ndarray:
    """portrait.jpg letterboxed to 640x480 (BGR), like a webcam frame."""
    import cv2

    return letterbox_640x480(cv2.imread(str(photos_dir / "portrait.jpg")))


@pytest.fixture(scope="session")
def jpeg_640x480(frame_640x480: np.ndarray) -> bytes:
    """The 640x480 frame as JPEG bytes."""
    import cv2

    ok, buf = cv2.imencode(".jpg", frame_640x480, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def clip_mp4(frame_640x480: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 1-second 10 fps MP4 of the face drifting right (bytes)."""
    import cv2

    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (640, 480))
    for i in range(10):
        w.write(np.roll(frame_640x480, 4 * i, axis=1))
    w.release()
    return path.read_bytes()


@pytest.fixture(scope="session")
def png_50mp() -> bytes:
    """An 8000x6250 (50 megapixel) flat-colour PNG: small to send, too big to decode."""
    import cv2

    img = np.full((6250, 8000, 3), (40, 120, 200), np.uint8)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def live_server(make_app: Callable[..., FastAPI]) -> Iterator[LiveServer]:
    """One real uvicorn server for the session (small upload limit so 413 is cheap to test)."""
    server = LiveServer(
        make_app(max_upload_bytes=1_000_000, rate_limit_per_minute=6000, rate_limit_burst=200)
    )
    server.start()
    yield server
    server.stop()
    assert not server.thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def browser(frame_640x480: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium through Playwright for one test module, its fake camera playing the
    shared portrait (640x480). Skips, with the reason, without Playwright or Chromium."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
    )
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium; scripts/setup.sh does it as root)")
    y4m = tmp_path_factory.mktemp("camera") / "portrait.y4m"
    y4m.write_bytes(y4m_bytes(frame_640x480, n_frames=3))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=chromium_args(y4m))
        yield b
        b.close()
