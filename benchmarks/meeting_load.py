"""Load test of meeting mode: many simulated participants sending states to one or many rooms.

Starts ``emoar serve`` (the real CLI) on a free loopback port with its meeting database in a
temporary folder (with ``--servers N``: N servers on one database and a ``redis-server`` this
script starts, ``EMOAR_BROKER_URL``; hosts on the first server, participants spread over all),
creates ``--rooms`` rooms, joins ``--participants`` participants over REST (spread over the
rooms), opens one host websocket per room (pinging every 10 s, as the pages do) and one
websocket per participant (asyncio clients), and has every participant send a state at ``--rate``
Hz for ``--seconds``, cycling through the labels so every message is a change. Measures
participant -> host latency (send to the host's receipt of that state), messages/s, errors, the
servers' RSS (summed) at the start, after the first minute and at the end, and lost updates: each
host's final REST view must show every participant's last state. Loopback only; bounded.

Usage:
    python benchmarks/meeting_load.py [--participants 500] [--rate 1] [--seconds 60]
        [--rooms 1] [--servers 1]
    python benchmarks/meeting_load.py --seconds 600        # the 10-minute soak
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, percentiles, start_emoar_serve, table  # noqa: E402
from soak import rss_mb  # noqa: E402
from web_load import free_port, stop_server  # noqa: E402

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _probs(top: str) -> dict[str, float]:
    rest = round(0.3 / (len(LABELS) - 1), 4)
    p = {k: rest for k in LABELS}
    p[top] = round(1.0 - rest * (len(LABELS) - 1), 4)
    return p


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("--servers > 1 needs redis-server (Debian: apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def start_servers(
    data_dir: str, participants: int, count: int, broker_url: str
) -> list[tuple[subprocess.Popen[bytes], str]]:
    env = {"EMOAR_DATA_DIR": data_dir, "EMOAR_ROOM_MAX_PARTICIPANTS": str(participants + 10)}
    if broker_url:
        env["EMOAR_BROKER_URL"] = broker_url
    out = []
    for _ in range(count):
        port = free_port()
        out.append((start_emoar_serve(port, env), f"http://127.0.0.1:{port}"))
    return out


async def run(urls: list[str], pids: list[int], n: int, rate: float, seconds: float, n_rooms: int) -> dict:
    from websockets.asyncio.client import connect

    rooms = []
    members: list[tuple[int, str, str]] = []  # (room index, server url, token) per participant
    async with httpx.AsyncClient(base_url=urls[0], timeout=60) as http:
        for _ in range(n_rooms):
            rooms.append((await http.post("/v1/rooms", json={"title": "load", "visibility": "host"})).json())
        for i in range(n):
            room, url = rooms[i % n_rooms], urls[i % len(urls)]
            r = await http.post(
                f"{url}/v1/rooms/{room['room_id']}/join",
                json={"code": room["join_code"], "display_name": f"p{i}"},
            )
            members.append((i % n_rooms, url, r.json()["participant_token"]))

    def ws_url(url: str, room: dict, token: str) -> str:
        return url.replace("http://", "ws://") + f"/v1/rooms/{room['room_id']}/ws?token={token}"

    sent_at: dict[tuple[str, str], float] = {}
    last_sent: dict[str, str] = {}
    latencies: list[float] = []
    errors = {"participant": 0, "host": 0}
    received = 0
    sent = 0

    def rss_now() -> float:
        return sum(rss_mb(p) for p in pids)

    rss = [(0.0, rss_now())]
    stop = asyncio.Event()

    async def host(room: dict) -> None:
        nonlocal received
        async with connect(
            ws_url(urls[0], room, room["host_token"]), max_size=None, open_timeout=60, ping_interval=None
        ) as ws:
            last_ping = time.perf_counter()
            while not stop.is_set():
                if time.perf_counter() - last_ping > 10:  # the application heartbeat
                    await ws.send(json.dumps({"type": "ping", "t": 0}))
                    last_ping = time.perf_counter()
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=1.0))
                except TimeoutError:
                    continue
                if msg["type"] == "state":
                    t = sent_at.get((msg["name"], msg["state"]["expression"]))
                    if t is not None:
                        latencies.append((time.perf_counter() - t) * 1000)
                        received += 1
                elif msg["type"] == "error":
                    errors["host"] += 1

    async def participant(i: int, room: dict, url: str, token: str) -> None:
        nonlocal sent
        name = f"p{i}"
        async with connect(ws_url(url, room, token), open_timeout=60, ping_interval=None) as ws:
            await ws.recv()  # snapshot

            async def drain() -> None:  # read what the server sends (own echoes, errors)
                try:
                    async for raw in ws:
                        if json.loads(raw)["type"] == "error":
                            errors["participant"] += 1
                except Exception:
                    pass

            reader = asyncio.create_task(drain())
            await asyncio.sleep(random.random() / rate)  # spread the sends over the period
            k = i
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                expr = LABELS[k % len(LABELS)]
                k += 1
                sent_at[(name, expr)] = time.perf_counter()
                last_sent[name] = expr
                sent += 1
                msg = {
                    "type": "state",
                    "expression": expr,
                    "probs": _probs(expr),
                    "face": True,
                    "paused": False,
                }
                await ws.send(json.dumps(msg))
                await asyncio.sleep(1.0 / rate)
            await asyncio.sleep(0.5)
            reader.cancel()

    host_tasks = [asyncio.create_task(host(room)) for room in rooms]
    await asyncio.sleep(1.0)
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(participant(i, rooms[r], url, tok)) for i, (r, url, tok) in enumerate(members)
    ]

    async def sample() -> None:
        while not stop.is_set():
            await asyncio.sleep(10)
            rss.append((time.perf_counter() - t0, rss_now()))

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    await asyncio.sleep(2.0)
    stop.set()
    await asyncio.gather(*host_tasks)
    sampler.cancel()
    rss.append((time.perf_counter() - t0, rss_now()))
    final: dict[str, str | None] = {}
    async with httpx.AsyncClient(base_url=urls[0], timeout=60) as http:
        for room in rooms:
            view = (
                await http.get(
                    f"/v1/rooms/{room['room_id']}", headers={"Authorization": f"Bearer {room['host_token']}"}
                )
            ).json()
            final.update({t["name"]: (t["state"] or {}).get("expression") for t in view["participants"]})
    lost = sum(1 for name, expr in last_sent.items() if final.get(name) != expr)
    return {
        "sent": sent,
        "wall": wall,
        "latencies": latencies,
        "received": received,
        "errors": errors,
        "rss": rss,
        "lost": lost,
        "final": len(final),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--participants", type=int, default=500)
    ap.add_argument("--rate", type=float, default=1.0, help="states per second per participant")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rooms", type=int, default=1, help="rooms the participants are spread over")
    ap.add_argument(
        "--servers", type=int, default=1, help="emoar serve processes (> 1: through a redis-server)"
    )
    a = ap.parse_args()
    redis = None
    with tempfile.TemporaryDirectory() as data_dir:
        broker = ""
        if a.servers > 1:
            redis, broker = start_redis()
        servers = start_servers(data_dir, a.participants, a.servers, broker)
        try:
            r = asyncio.run(
                run(
                    [u for _, u in servers],
                    [p.pid for p, _ in servers],
                    a.participants,
                    a.rate,
                    a.seconds,
                    a.rooms,
                )
            )
        finally:
            for proc, _ in servers:
                stop_server(proc)
            if redis is not None:
                redis.terminate()
    p50, p95 = percentiles(r["latencies"])
    where = "one room" if a.rooms == 1 else f"{a.rooms} rooms"
    how = "one emoar serve" if a.servers == 1 else f"{a.servers} emoar serve processes through redis-server"
    print(
        f"\n{machine()}; {how} on loopback; {where}, {a.participants} participants at {a.rate:g} Hz "
        f"for {a.seconds:g} s; every message a change\n"
    )
    minute = min(r["rss"], key=lambda x: abs(x[0] - 60.0))[1]
    print(
        table(
            [
                "participants",
                "states sent",
                "host received",
                "msgs/s",
                "p50 ms",
                "p95 ms",
                "errors",
                "lost updates",
                "server RSS MB start / 1 min / end",
            ],
            [
                [
                    a.participants,
                    r["sent"],
                    r["received"],
                    f"{r['received'] / r['wall']:.0f}",
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    r["errors"]["participant"] + r["errors"]["host"],
                    f"{r['lost']} of {r['final']}",
                    f"{r['rss'][0][1]:.0f} / {minute:.0f} / {r['rss'][-1][1]:.0f}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
