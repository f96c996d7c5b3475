"""`emoar meeting create|join` against a real `emoar serve` on loopback: the desktop participant
shares only its expression; the avatar frames it would show as a virtual webcam."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
pytest.importorskip("websockets", reason="the web extra is not installed")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _port()
    env = {
        **os.environ,
        "EMOAR_DATA_DIR": str(tmp_path_factory.mktemp("rooms")),
        "EMOAR_RATE_LIMIT_BURST": "200",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "emoar.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/v1/models", timeout=2)  # noqa: S310
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def emoar(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emoar.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
        return json.loads(r.read())


def test_create_and_join_from_the_command_line(server: str, photos_dir: Path, tmp_path: Path) -> None:
    from emoar.samples import make_demo_video

    created = emoar("meeting", "create", "--server", server, "--title", "CLI room", "--json")
    assert created.returncode == 0, created.stderr
    room = json.loads(created.stdout)
    assert room["host_dashboard"].startswith(f"{server}/meet/{room['room_id']}/host#token=")
    plain = emoar("meeting", "create", "--server", server, "--title", "Other")
    assert plain.returncode == 0 and "join code" in plain.stdout and "/meet/" in plain.stdout
    clip = make_demo_video(
        tmp_path / "me.mp4", images=[cv2.imread(str(photos_dir / "portrait.jpg"))], seconds=2, fps=10
    ).path
    joined = emoar(
        "meeting", "join", room["join_url"], "--camera", str(clip), "--name", "Zed", "--max-frames", "20"
    )
    assert joined.returncode == 0, joined.stderr
    sent = [
        json.loads(line[len("sent: ") :]) for line in joined.stderr.splitlines() if line.startswith("sent: ")
    ]
    assert sent and all(
        set(m) == {"type", "expression", "probs", "face", "paused"} for m in sent
    )  # no pixels
    assert "no image leaves this machine" in joined.stderr
    view = _get(f"{server}/v1/rooms/{room['room_id']}", room["host_token"])
    (tile,) = view["participants"]
    assert tile["name"] == "Zed" and tile["state"]["face"] is True
    assert tile["state"]["expression"] == sent[-1]["expression"]
    timeline = _get(f"{server}/v1/rooms/{room['room_id']}/timeline", room["host_token"])
    assert [e["expression"] for e in timeline["events"] if e["kind"] == "state"][-1] == sent[-1]["expression"]


def test_join_errors_are_clear(server: str, tmp_path: Path) -> None:
    bad = emoar("meeting", "join", "http://127.0.0.1:1/not-a-room")
    assert bad.returncode == 1 and "not a room link" in bad.stderr
    created = json.loads(emoar("meeting", "create", "--server", server, "--title", "X", "--json").stdout)
    wrong = emoar(
        "meeting", "join", created["join_url"], "--code", "WRONG9", "--camera", str(tmp_path / "none.mp4")
    )
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr


def test_virtual_camera_needs_its_device(server: str, photos_dir: Path, tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("pyvirtualcam") is not None:
        pytest.skip("pyvirtualcam is installed here; the missing-device message is tested where it is not")
    from emoar.samples import make_demo_video

    created = json.loads(emoar("meeting", "create", "--server", server, "--title", "V", "--json").stdout)
    clip = make_demo_video(
        tmp_path / "v.mp4", images=[cv2.imread(str(photos_dir / "portrait.jpg"))], seconds=1, fps=5
    ).path
    r = emoar("meeting", "join", created["join_url"], "--camera", str(clip), "--virtual-camera")
    assert r.returncode == 1 and "pyvirtualcam" in r.stderr and "v4l2loopback" in r.stderr


def test_avatar_frames(tmp_path: Path) -> None:
    from emoar.meeting.client import render_avatar, state_message

    happy, sad = render_avatar("happy"), render_avatar("sad")
    paused, none = render_avatar("happy", paused=True), render_avatar(None, face=False)
    for f in (happy, sad, paused, none):
        assert f.shape == (480, 640, 3) and f.dtype == np.uint8
    centre = happy[120:300, 220:420].astype(int)
    yellow = (centre[:, :, 2] > 180) & (centre[:, :, 1] > 140) & (centre[:, :, 0] < 120)
    assert yellow.mean() > 0.3, "the emoji is not in the middle of the frame"
    assert np.abs(happy.astype(int) - sad.astype(int)).mean() > 1.0  # different faces
    assert paused[120:300, 220:420].mean() < happy[120:300, 220:420].mean()  # dimmed when paused
    assert render_avatar("happy", size=(320, 240)).shape == (240, 320, 3)
    out = REPO / "artifacts" / "meeting"
    out.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out / "avatar_row.png"), np.hstack([happy, sad, paused, none]))
    assert state_message(None, paused=True) == {
        "type": "state",
        "expression": None,
        "probs": {},
        "face": False,
        "paused": True,
    }
