"""Meeting rooms served by several processes through a real Redis (``EMOAR_BROKER_URL``).

Three real ``emoar serve`` processes on loopback share one SQLite file and one ``redis-server``
that this module starts: the host on server A sees a participant connected to server B; a server
started while the room runs shows everyone at once (from the shared state); a server that is
killed has its participants shown as *left* once its heartbeat expires; ending the room on one
server closes it on the others.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis", reason="the broker extra (redis) is not installed")
websockets = pytest.importorskip("websockets", reason="the web extra is not installed")

from websockets.asyncio.client import connect  # noqa: E402

REDIS = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{what} did not come up within {timeout:.0f} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if REDIS is None:
        pytest.skip(
            "redis-server is not installed (Debian: apt-get install redis-server; scripts/setup.sh does it as root)"
        )
    port = _port()
    proc = subprocess.Popen(
        [
            REDIS,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path_factory.mktemp("redis")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    _wait(up, "redis-server", 20)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


class Servers:
    """``emoar serve`` processes on one database and one broker."""

    def __init__(self, redis_url: str, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "EMOAR_DATA_DIR": str(data_dir),
            "EMOAR_BROKER_URL": redis_url,
            "EMOAR_BROKER_WORKER_TTL_S": "3",
            "EMOAR_RATE_LIMIT_BURST": "200",
            "OMP_NUM_THREADS": "1",
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> str:
        port = _port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "emoar.cli", "serve", "--port", str(port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: urllib.request.urlopen(f"{url}/v1/models", timeout=2).status == 200, "emoar serve")  # noqa: S310
        return url

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            p.wait(timeout=30)


def _call(url: str, method: str = "GET", body: dict | None = None, token: str | None = None) -> Any:
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
        text = r.read()
        return json.loads(text) if text else None


def _state(expr: str) -> str:
    probs = {k: 0.05 for k in LABELS}
    probs[expr] = 0.7
    return json.dumps({"type": "state", "expression": expr, "probs": probs, "face": True, "paused": False})


async def _until(ws: Any, pred: Any, timeout: float = 15.0) -> dict:
    """The first message from ``ws`` that satisfies ``pred`` (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "expected message did not arrive"
        msg = json.loads(await asyncio.wait_for(ws.recv(), left))
        if pred(msg):
            return msg


def test_one_room_across_three_servers(redis_url: str, tmp_path: Path) -> None:
    servers = Servers(redis_url, tmp_path)
    try:
        a, b = servers.start(), servers.start()
        room = _call(f"{a}/v1/rooms", "POST", {"title": "across", "visibility": "everyone"})
        rid, host_token = room["room_id"], room["host_token"]
        ann = _call(f"{b}/v1/rooms/{rid}/join", "POST", {"code": room["join_code"], "display_name": "Ann"})
        bob = _call(f"{a}/v1/rooms/{rid}/join", "POST", {"code": room["join_code"], "display_name": "Bob"})

        def ws(base: str, token: str) -> str:
            return base.replace("http://", "ws://") + f"/v1/rooms/{rid}/ws?token={token}"

        async def scenario() -> None:
            async with (
                connect(ws(a, host_token)) as host,
                connect(ws(b, ann["participant_token"])) as ann_ws,
                connect(ws(a, bob["participant_token"])) as bob_ws,
            ):
                for s in (host, ann_ws, bob_ws):
                    assert json.loads(await s.recv())["type"] == "snapshot"
                # Ann (server B) appears on the host's dashboard (server A) as online, then happy
                await _until(
                    host, lambda m: m["type"] == "presence" and m["name"] == "Ann" and m["status"] == "online"
                )
                await ann_ws.send(_state("happy"))
                msg = await _until(host, lambda m: m["type"] == "state" and m["name"] == "Ann")
                assert msg["state"]["expression"] == "happy"
                # ... and to Bob on server A ("everyone" room); Bob's state reaches server B
                await _until(bob_ws, lambda m: m["type"] == "state" and m.get("name") == "Ann")
                await bob_ws.send(_state("sad"))
                msg = await _until(ann_ws, lambda m: m["type"] == "state" and m.get("name") == "Bob")
                assert msg["state"]["expression"] == "sad"
                await _until(
                    host,
                    lambda m: m["type"] == "mood" and m["counts"]["happy"] == 1 and m["counts"]["sad"] == 1,
                )
                await ann_ws.send(json.dumps({"type": "reaction", "reaction": "confused"}))
                msg = await _until(host, lambda m: m["type"] == "reaction")
                assert (msg["name"], msg["reaction"]) == ("Ann", "confused")

                # A server started now shows the room as it is, from the shared state
                c = servers.start()
                view = _call(f"{c}/v1/rooms/{rid}", token=host_token)
                tiles = {t["name"]: t for t in view["participants"]}
                assert tiles["Ann"]["status"] == "live" and tiles["Ann"]["state"]["expression"] == "happy"
                assert tiles["Bob"]["status"] == "live" and tiles["Bob"]["state"]["expression"] == "sad"
                assert view["mood"]["participants"] == 2 and view["mood"]["counts"]["happy"] == 1

                # Server B dies without a word: once its heartbeat expires Ann is shown as left
                servers.procs[1].send_signal(signal.SIGKILL)
                servers.procs[1].wait(timeout=10)
                t0 = time.monotonic()
                await _until(
                    host,
                    lambda m: m["type"] == "presence" and m["name"] == "Ann" and m["status"] == "left",
                    20,
                )
                assert time.monotonic() - t0 < 10
                # server C hears it from A's published op (or its own next beat): within moments,
                # not at once, since the host's socket on A is told before the op is published

                def c_shows_ann_left() -> bool:
                    view = _call(f"{c}/v1/rooms/{rid}", token=host_token)
                    return {t["name"]: t["status"] for t in view["participants"]} == {
                        "Ann": "left",
                        "Bob": "live",
                    }

                _wait(c_shows_ann_left, "server C showing Ann as left", timeout=3.0)

                # Ending the room on server C closes it for Bob on server A
                _call(f"{c}/v1/rooms/{rid}/end", "POST", token=host_token)
                await _until(bob_ws, lambda m: m["type"] == "ended")

        asyncio.run(scenario())
        # every process wrote to one timeline: both participants' states are in the export
        events = _call(f"{a}/v1/rooms/{rid}/timeline", token=host_token)["events"]
        got = {(e["name"], e.get("expression")) for e in events if e["kind"] == "state"}
        assert {("Ann", "happy"), ("Bob", "sad")} <= got
        assert any(e["kind"] == "reaction" and e["name"] == "Ann" for e in events)
        _call(f"{a}/v1/rooms/{rid}", "DELETE", token=host_token)
    finally:
        servers.stop()


def test_unreachable_broker_is_a_clear_503(tmp_path: Path) -> None:
    port = _port()  # nothing listens there
    servers = Servers(f"redis://127.0.0.1:{port}/0", tmp_path)
    try:
        url = servers.start()
        req = urllib.request.Request(
            f"{url}/v1/rooms",
            method="POST",
            data=b'{"title": "x"}',
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)  # noqa: S310
        assert e.value.code == 503
        body = json.loads(e.value.read())
        assert body["error"] == "broker_unavailable" and f"127.0.0.1:{port}" in body["message"]
        # the rest of the server is unaffected
        assert urllib.request.urlopen(f"{url}/v1/models", timeout=10).status == 200  # noqa: S310
    finally:
        servers.stop()
