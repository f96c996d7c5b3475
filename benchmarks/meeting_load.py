"""Load test of meeting mode: many simulated participants sending states to one room.

Starts ``emoar serve`` (the real CLI) on a free loopback port with its meeting database in a
temporary folder, creates a room, joins ``--participants`` participants over REST, opens one
host websocket and one websocket per participant (asyncio clients), and has every participant
send a state at ``--rate`` Hz for ``--seconds``, cycling through the labels so every message is
a change. Measures participant -> host latency (send to the host's receipt of that state),
messages/s, errors, the server's RSS at start and end, and lost updates: the host's final REST
view must show every participant's last state. Loopback only; bounded in count and time.

Usage:
    python benchmarks/meeting_load.py [--participants 500] [--rate 1] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
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


def start_server(data_dir: str, participants: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {"EMOAR_DATA_DIR": data_dir, "EMOAR_ROOM_MAX_PARTICIPANTS": str(participants + 10)}
    return start_emoar_serve(port, env), f"http://127.0.0.1:{port}"


async def run(url: str, pid: int, n: int, rate: float, seconds: float) -> dict:
    from websockets.asyncio.client import connect

    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        room = (await http.post("/v1/rooms", json={"title": "load", "visibility": "host"})).json()
        tokens = []
        for i in range(n):
            r = await http.post(
                f"/v1/rooms/{room['room_id']}/join", json={"code": room["join_code"], "display_name": f"p{i}"}
            )
            tokens.append(r.json()["participant_token"])
    ws_base = url.replace("http://", "ws://") + f"/v1/rooms/{room['room_id']}/ws?token="
    sent_at: dict[tuple[str, str], float] = {}
    last_sent: dict[str, str] = {}
    latencies: list[float] = []
    errors = {"participant": 0, "host": 0}
    received = 0
    sent = 0
    rss = [rss_mb(pid)]
    stop = asyncio.Event()

    async def host() -> None:
        nonlocal received
        async with connect(
            ws_base + room["host_token"], max_size=None, open_timeout=60, ping_interval=None
        ) as ws:
            while not stop.is_set():
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

    async def participant(i: int, token: str) -> None:
        nonlocal sent
        name = f"p{i}"
        async with connect(ws_base + token, open_timeout=60, ping_interval=None) as ws:
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

    host_task = asyncio.create_task(host())
    await asyncio.sleep(1.0)
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(participant(i, tok)) for i, tok in enumerate(tokens)]

    async def sample() -> None:
        while not stop.is_set():
            await asyncio.sleep(10)
            rss.append(rss_mb(pid))

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    await asyncio.sleep(2.0)
    stop.set()
    await host_task
    sampler.cancel()
    rss.append(rss_mb(pid))
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        view = (
            await http.get(
                f"/v1/rooms/{room['room_id']}", headers={"Authorization": f"Bearer {room['host_token']}"}
            )
        ).json()
    final = {t["name"]: (t["state"] or {}).get("expression") for t in view["participants"]}
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
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        proc, url = start_server(data_dir, a.participants)
        try:
            r = asyncio.run(run(url, proc.pid, a.participants, a.rate, a.seconds))
        finally:
            stop_server(proc)
    p50, p95 = percentiles(r["latencies"])
    print(
        f"\n{machine()}; emoar serve on loopback; one room, {a.participants} participants at {a.rate:g} Hz "
        f"for {a.seconds:g} s; every message a change\n"
    )
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
                "server RSS MB start / end",
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
                    f"{r['rss'][0]:.0f} / {r['rss'][-1]:.0f}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
