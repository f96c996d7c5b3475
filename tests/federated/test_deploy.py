"""Real deployment on loopback: ``emoar federated server`` (a Flower SuperLink + our ServerApp)
and two ``emoar federated client`` SuperNodes whose data are ``<class>/`` folders; two rounds.

Slow (about 2.5 min on 2 shared cores): each Flower message starts a fresh ``flwr-clientapp``
process that imports torch, and the SuperNodes poll the SuperLink.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")
torch = pytest.importorskip("torch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_superlink_and_two_supernodes_complete_two_rounds(
    tmp_path: Path, fer_csv: Path, client_folders: list[Path]
) -> None:
    emoar = str(Path(sys.executable).with_name("emoar"))
    port = _free_port()
    out = tmp_path / "run"
    procs: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / n for n in ("server.log", "c0.log", "c1.log")]
    try:
        with logs[0].open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [
                        emoar,
                        "federated",
                        "server",
                        "--insecure",
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--clients",
                        "2",
                        "--rounds",
                        "2",
                        "--data",
                        str(fer_csv),
                        "--eval-limit",
                        "64",
                        "--batch-size",
                        "16",
                        "--out",
                        str(out),
                    ],  # fmt: skip
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        t0 = time.time()
        while True:  # the SuperLink is up (clients retry anyway; this keeps their logs short)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert procs[0].poll() is None, logs[0].read_text(errors="replace")[-3000:]
                assert time.time() - t0 < 90, "the SuperLink did not start in 90 s"
                time.sleep(0.5)
        for i, folder in enumerate(client_folders):
            with logs[i + 1].open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [
                            emoar,
                            "federated",
                            "client",
                            "--insecure",
                            "--superlink",
                            f"127.0.0.1:{port}",
                            "--data",
                            str(folder),
                            "--connect-timeout",
                            "60",
                        ],  # fmt: skip
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        rc = procs[0].wait(timeout=400)
        text = logs[0].read_text(errors="replace")
        assert rc == 0, text[-3000:] + "".join(p.read_text(errors="replace")[-1500:] for p in logs[1:])
        assert "round 2/2  PublicTest loss" in text
        from emoar.train.checkpoint import read_checkpoint

        ck = read_checkpoint(out / "last.pt")
        assert ck["fl"]["round"] == 2 and ck["history"][-1]["client_val_acc"] is not None
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
