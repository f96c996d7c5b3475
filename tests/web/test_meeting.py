"""Meeting mode over a real server on loopback: rooms, tokens, visibility, the room websocket,
floods, persistence across a restart, export and deletion (SQLite file in a temp folder)."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_helpers import LiveServer, assert_error

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _probs(top: str) -> dict[str, float]:
    rest = (1.0 - 0.7) / (len(LABELS) - 1)
    return {k: (0.7 if k == top else rest) for k in LABELS}


def _state(expr: str | None, *, face: bool = True, paused: bool = False) -> str:
    return json.dumps(
        {
            "type": "state",
            "expression": expr,
            "probs": _probs(expr) if expr else {},
            "face": face,
            "paused": paused,
        }
    )


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "meetings"


@pytest.fixture()
def server(make_app: Callable[..., Any], data_dir: Path) -> Iterator[LiveServer]:
    s = LiveServer(
        make_app(data_dir=str(data_dir), rate_limit_burst=500, room_rate_per_s=20, room_burst=20)
    ).start()
    yield s
    s.stop()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _room(http: httpx.Client, visibility: str = "host") -> dict[str, Any]:
    r = http.post("/v1/rooms", json={"title": "Lecture 7", "visibility": visibility})
    assert r.status_code == 201, r.text
    return r.json()


def _join(http: httpx.Client, room: dict[str, Any], name: str | None) -> dict[str, Any]:
    r = http.post(f"/v1/rooms/{room['room_id']}/join", json={"code": room["join_code"], "display_name": name})
    assert r.status_code == 200, r.text
    return r.json()


def _ws(server: LiveServer, room: dict[str, Any], token: str) -> Any:
    from websockets.sync.client import connect

    return connect(f"{server.ws_url}/v1/rooms/{room['room_id']}/ws?token={token}", open_timeout=10)


def _recv_until(
    ws: Any, kind: str, timeout: float = 10.0, where: Callable[[dict[str, Any]], bool] = lambda m: True
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if msg["type"] == kind and where(msg):
            return msg


def test_create_join_and_tokens(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        room = _room(http)
        assert set(room) >= {"room_id", "host_token", "join_code", "host_url", "join_url"}
        assert room["join_url"].startswith(server.url) and room["join_code"] in room["join_url"]
        assert len(room["host_token"]) >= 40
        assert_error(
            http.post(f"/v1/rooms/{room['room_id']}/join", json={"code": "WRONG1"}), 403, "wrong_code"
        )
        alice = _join(http, room, "Alice")
        assert alice["number"] == 1 and alice["display_name"] == "Alice"
        host_view = http.get(f"/v1/rooms/{room['room_id']}", headers=_auth(room["host_token"])).json()
        assert host_view["scope"] == "tiles" and [p["name"] for p in host_view["participants"]] == ["Alice"]
        me = http.get(f"/v1/rooms/{room['room_id']}", headers=_auth(alice["participant_token"])).json()
        assert me["scope"] == "own" and "participants" not in me and me["you"]["name"] == "Alice"
        # no token, a wrong one, another room's: 401 and nothing else
        other = _room(http)
        for headers in ({}, _auth("nope"), _auth(other["host_token"])):
            body = assert_error(
                http.get(f"/v1/rooms/{room['room_id']}", headers=headers), 401, "unauthorized"
            )
            assert "Lecture" not in json.dumps(body)
        # a participant cannot read the host's data
        assert_error(
            http.get(f"/v1/rooms/{room['room_id']}/timeline", headers=_auth(alice["participant_token"])),
            403,
            "forbidden",
        )
        assert_error(http.post("/v1/rooms", json={"title": "", "visibility": "host"}), 422)
        assert_error(http.post("/v1/rooms", json={"title": "x", "visibility": "secret"}), 422)


def test_live_states_reach_the_host_never_other_participants(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        room = _room(http, "host")
        a, b = _join(http, room, "Ann"), _join(http, room, "Bo")
    with (
        _ws(server, room, room["host_token"]) as host,
        _ws(server, room, a["participant_token"]) as wa,
        _ws(server, room, b["participant_token"]) as wb,
    ):
        assert json.loads(host.recv(timeout=10))["type"] == "snapshot"
        assert json.loads(wa.recv(timeout=10))["scope"] == "own"
        assert json.loads(wb.recv(timeout=10))["scope"] == "own"
        wa.send(_state("happy"))
        got = _recv_until(host, "state")
        assert got["name"] == "Ann" and got["state"]["expression"] == "happy" and got["state"]["face"] is True
        mood = _recv_until(host, "mood", where=lambda m: m["active"] == 1)
        assert mood["counts"]["happy"] == 1
        echo = _recv_until(wa, "state")
        assert echo.get("you") is True
        wb.send(_state(None, paused=True))
        assert _recv_until(host, "state")["state"]["paused"] is True
        # Bo received nothing about Ann: only presence-free own echoes
        msgs = []
        with pytest.raises(TimeoutError):
            while True:
                msgs.append(json.loads(wb.recv(timeout=1.0)))
        assert all(m.get("you") or m["type"] in ("pong",) for m in msgs), msgs
        assert "Ann" not in json.dumps(msgs)
        wa.send(json.dumps({"type": "reaction", "reaction": "confused"}))
        assert _recv_until(host, "reaction")["reaction"] == "confused"


def test_everyone_and_aggregate_visibility(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        open_room, anon_room = _room(http, "everyone"), _room(http, "aggregate")
        a = _join(http, open_room, "Ann")
        b = _join(http, open_room, "Bo")
        c = _join(http, anon_room, "Cy")
        assert c["display_name"] is None  # aggregate rooms keep no names
    with (
        _ws(server, open_room, a["participant_token"]) as wa,
        _ws(server, open_room, b["participant_token"]) as wb,
    ):
        wa.recv(timeout=10)
        assert json.loads(wb.recv(timeout=10))["scope"] == "tiles"
        wa.send(_state("surprise"))
        seen = _recv_until(wb, "state")
        assert seen["name"] == "Ann" and seen["state"]["expression"] == "surprise"
    with (
        _ws(server, anon_room, anon_room["host_token"]) as host,
        _ws(server, anon_room, c["participant_token"]) as wc,
    ):
        snap = json.loads(host.recv(timeout=10))
        assert snap["scope"] == "mood" and "participants" not in snap
        wc.recv(timeout=10)
        wc.send(_state("sad"))
        mood = _recv_until(host, "mood", where=lambda m: m["counts"]["sad"] == 1)
        assert mood["active"] == 1 and "name" not in mood
        time.sleep(0.5)
        with httpx.Client(base_url=server.url, timeout=30) as http:
            view = http.get(
                f"/v1/rooms/{anon_room['room_id']}", headers=_auth(anon_room["host_token"])
            ).json()
            assert "participants" not in view and view["mood"]["counts"]["sad"] == 1
            export = http.get(
                f"/v1/rooms/{anon_room['room_id']}/timeline", headers=_auth(anon_room["host_token"])
            ).json()
            assert "events" not in export and export["aggregate"][-1]["sad"] == 1
            assert "participant" not in json.dumps(export["aggregate"])


def test_bad_sockets_messages_and_floods(server: LiveServer) -> None:
    from websockets.exceptions import ConnectionClosed

    with httpx.Client(base_url=server.url, timeout=30) as http:
        room = _room(http)
        a, b = _join(http, room, "Ann"), _join(http, room, "Bo")
        other = _room(http)
    for token in ("nope", other["host_token"]):
        with _ws(server, room, token) as ws:
            assert json.loads(ws.recv(timeout=10))["status"] == 401
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=10)
            assert info.value.rcvd.code == 1008
    with (
        _ws(server, room, room["host_token"]) as host,
        _ws(server, room, a["participant_token"]) as wa,
        _ws(server, room, b["participant_token"]) as wb,
    ):
        host.recv(timeout=10), wa.recv(timeout=10), wb.recv(timeout=10)
        for bad, status in (
            ("not json", 400),
            ('{"type": "selfie", "jpeg": "..."}', 400),
            ('{"type": "state", "expression": "smug", "probs": {}}', 400),
            (json.dumps({"type": "state", "expression": "happy", "probs": {"happy": 2.0}}), 400),
            ("x" * 5000, 413),
        ):
            wa.send(bad)
            err = _recv_until(wa, "error")
            assert err["status"] == status, (bad[:40], err)
        # a flood from Ann is cut off; Bo's state still reaches the host
        for _ in range(60):
            wa.send(_state("angry"))
        limited = _recv_until(wa, "error")
        assert limited["status"] == 429
        wb.send(_state("neutral"))
        deadline = time.monotonic() + 10
        while True:
            msg = json.loads(host.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg["type"] == "state" and msg["name"] == "Bo":
                break
        time.sleep(1.5)  # the bucket refills: Ann is served again
        wa.send(json.dumps({"type": "ping", "t": 7}))
        assert _recv_until(wa, "pong")["t"] == 7


def test_presence_end_and_join_after_end(server: LiveServer) -> None:
    from websockets.exceptions import ConnectionClosed

    with httpx.Client(base_url=server.url, timeout=30) as http:
        room = _room(http)
        a = _join(http, room, "Ann")
        with _ws(server, room, room["host_token"]) as host:
            host.recv(timeout=10)
            with _ws(server, room, a["participant_token"]) as wa:
                wa.recv(timeout=10)
                assert _recv_until(host, "presence")["status"] == "online"
            assert _recv_until(host, "presence")["status"] == "left"
            view = http.get(f"/v1/rooms/{room['room_id']}", headers=_auth(room["host_token"])).json()
            assert view["participants"][0]["status"] == "left"
            with _ws(server, room, a["participant_token"]) as wa:  # back: the same tile
                wa.recv(timeout=10)
                assert _recv_until(host, "presence")["status"] == "online"
                assert (
                    http.post(
                        f"/v1/rooms/{room['room_id']}/end", headers=_auth(room["host_token"])
                    ).status_code
                    == 204
                )
                assert _recv_until(wa, "ended")["type"] == "ended"
                with pytest.raises(ConnectionClosed):
                    for _ in range(10):
                        wa.recv(timeout=10)
        assert_error(
            http.post(f"/v1/rooms/{room['room_id']}/join", json={"code": room["join_code"]}),
            410,
            "room_ended",
        )


def test_history_survives_a_restart_exports_and_deletes(
    make_app: Callable[..., Any], data_dir: Path, server: LiveServer
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        room = _room(http)
        a = _join(http, room, "Ann")
    sent = ["happy", "sad", "surprise"]
    with _ws(server, room, a["participant_token"]) as wa:
        wa.recv(timeout=10)
        for expr in sent:
            wa.send(_state(expr))
            _recv_until(wa, "state")
        wa.send(json.dumps({"type": "reaction", "reaction": "thumbs_up"}))
        time.sleep(0.3)
    server.stop()  # the store writes what is queued on shutdown
    again = LiveServer(make_app(data_dir=str(data_dir), rate_limit_burst=500)).start()
    try:
        with httpx.Client(base_url=again.url, timeout=30) as http:
            h = _auth(room["host_token"])
            events = http.get(f"/v1/rooms/{room['room_id']}/timeline", headers=h).json()["events"]
            states = [e["expression"] for e in events if e["kind"] == "state"]
            assert states == sent
            assert [e["kind"] for e in events][0] == "join" and any(
                e.get("reaction") == "thumbs_up" for e in events
            )
            assert all(e["name"] == "Ann" for e in events if e["participant"] == 1)
            text = http.get(f"/v1/rooms/{room['room_id']}/timeline", params={"format": "csv"}, headers=h).text
            rows = list(csv.DictReader(io.StringIO(text)))
            assert [r["expression"] for r in rows if r["kind"] == "state"] == sent
            assert float(rows[1]["p_happy"]) == pytest.approx(0.7) and set(rows[0]) >= {
                f"p_{x}" for x in LABELS
            }
            assert http.delete(f"/v1/rooms/{room['room_id']}", headers=h).status_code == 204
            assert_error(http.get(f"/v1/rooms/{room['room_id']}", headers=h), 401)
        import sqlite3

        db = sqlite3.connect(data_dir / "emoar-meetings.sqlite3")
        counts = [
            db.execute(f"select count(*) from {t} where room_id = ?", (room["room_id"],)).fetchone()[0]
            for t in ("events", "participants")
        ]
        counts.append(db.execute("select count(*) from rooms where id = ?", (room["room_id"],)).fetchone()[0])
        assert counts == [0, 0, 0]
    finally:
        again.stop()


def test_retention_deletes_expired_rooms(tmp_path: Path) -> None:
    from emoar.meeting.rooms import RoomError, RoomHub
    from emoar.meeting.store import RoomStore

    store = RoomStore(tmp_path / "db")
    hub = RoomHub(store, tuple(LABELS))
    short = hub.create("Short", retention_hours=1)
    long = hub.create("Long", retention_hours=48)
    joined = hub.join(short["room_id"], short["join_code"], "Ann")
    store.flush()
    assert store.purge_expired(now=time.time() + 2 * 3600) == [short["room_id"]]
    assert store.room(short["room_id"]) is None and store.room(long["room_id"]) is not None
    assert store.find_token(joined["participant_token"]) is None and store.timeline(short["room_id"]) == []
    with pytest.raises(RoomError) as info:
        hub.authenticate(short["room_id"], short["host_token"])
    assert info.value.status == 401
    store.close()


def test_a_dead_process_reported_by_another_shows_its_participants_left_once(tmp_path: Path) -> None:
    """The ``gone`` op (published by the first process to find another one's heartbeat expired):
    the participants whose sockets were on that process show as left, the host hears it once,
    and the op applied again (or for a process that held nothing) changes nothing."""
    from emoar.meeting.rooms import RoomHub
    from emoar.meeting.store import RoomStore

    store = RoomStore(tmp_path / "db")
    hub = RoomHub(store, tuple(LABELS))
    room = hub.create("Across", visibility="host")
    rid = room["room_id"]
    ann = hub.join(rid, room["join_code"], "Ann")
    bob = hub.join(rid, room["join_code"], "Bob")
    host = hub.connect(hub.authenticate(rid, room["host_token"]))
    pids = {
        name: hub.authenticate(rid, j["participant_token"]).participant
        for name, j in (("Ann", ann), ("Bob", bob))
    }
    now = time.time()
    hub.apply({"op": "online", "room": rid, "w": "B", "pid": pids["Ann"], "n": 1, "t": now})
    hub.apply({"op": "online", "room": rid, "w": "C", "pid": pids["Bob"], "n": 1, "t": now})

    def drain() -> list[dict[str, Any]]:
        out = []
        while not host.queue.empty():
            out.append(json.loads(host.queue.get_nowait()))
        return out

    def statuses() -> dict[str, str]:
        view = hub.snapshot(hub.authenticate(rid, room["host_token"]))
        return {t["name"]: t["status"] for t in view["participants"]}

    drain()
    assert statuses() == {"Ann": "waiting", "Bob": "waiting"}  # online, no state sent yet
    hub.apply({"op": "gone", "room": rid, "w": "B"})
    assert statuses() == {"Ann": "left", "Bob": "waiting"}
    left = [m for m in drain() if m["type"] == "presence"]
    assert [(m["name"], m["status"]) for m in left] == [("Ann", "left")]
    hub.apply({"op": "gone", "room": rid, "w": "B"})
    hub.apply({"op": "gone", "room": rid, "w": "nobody"})
    assert statuses() == {"Ann": "left", "Bob": "waiting"}
    assert [m for m in drain() if m["type"] == "presence"] == []
    store.close()


def test_idle_sockets_are_closed_and_pings_keep_them(make_app: Callable[..., Any], data_dir: Path) -> None:
    from websockets.exceptions import ConnectionClosed

    s = LiveServer(make_app(data_dir=str(data_dir), room_idle_timeout_s=1.0)).start()
    try:
        with httpx.Client(base_url=s.url) as http:
            room = _room(http)
            joined = _join(http, room, "Ann")
        with _ws(s, room, room["host_token"]) as quiet, _ws(s, room, joined["participant_token"]) as pinging:
            t0 = time.monotonic()
            for _ in range(8):  # 2.4 s of pings every 0.3 s: the application heartbeat
                pinging.send(json.dumps({"type": "ping", "t": 1}))
                time.sleep(0.3)
            # the host sent nothing for > 1 s: the server closed it ("going away": reconnect)
            with pytest.raises(ConnectionClosed) as e:
                while True:
                    quiet.recv(timeout=5)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1001
            assert time.monotonic() - t0 < 4
            pinging.send(_state("happy"))
            assert _recv_until(pinging, "pong")["t"] == 1
            assert _recv_until(pinging, "state")["state"]["expression"] == "happy"
    finally:
        s.stop()


def test_several_workers_without_a_broker_refuse_rooms_clearly(
    make_app: Callable[..., Any], data_dir: Path
) -> None:
    s = LiveServer(make_app(data_dir=str(data_dir), workers=2)).start()
    try:
        with httpx.Client(base_url=s.url) as http:
            r = http.post("/v1/rooms", json={"title": "split"})
            assert_error(r, 503, "broker_required")
            assert "EMOAR_BROKER_URL" in r.json()["message"]
            assert http.get("/v1/models").status_code == 200  # the rest of the app serves on
        assert not data_dir.exists()  # nothing was written
    finally:
        s.stop()
