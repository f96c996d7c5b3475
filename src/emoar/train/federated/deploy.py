"""Real deployment: ``emoar federated server`` (a Flower SuperLink + the emoar ServerApp submitted
as a Flower App) and ``emoar federated client`` (a Flower SuperNode whose private data is a
local ``<class>/`` folder). Both wrap Flower's own ``flower-superlink`` / ``flower-supernode`` /
``flwr run`` executables; nothing here reimplements the protocol.

Flower 1.42 serves the Fleet, Control and runtime APIs of a SuperLink on one HTTP(S) port
(``--host``/``--port``); clients connect to it and ``flwr run`` submits the app to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from emoar.train.federated.apps import FederatedError, FLConfig, prepare

__all__ = ["run_client", "serve", "write_flower_app"]

logger = logging.getLogger(__name__)

_SHIM = '''"""emoar's Flower App components (the code lives in the installed emoar package)."""
from emoar.train.federated.apps import client_app, server_app

__all__ = ["client_app", "server_app"]
'''


def _bin(name: str) -> str:
    cand = Path(sys.executable).with_name(name)
    found = str(cand) if cand.is_file() else shutil.which(name)
    if not found:
        raise FederatedError(f"{name} not found next to {sys.executable}; pip install 'flwr[simulation]'")
    return found


def _env(**extra: str) -> dict[str, str]:
    """The environment of Flower's processes: this interpreter's bin first (they spawn each other by name)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, **extra}


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise FederatedError(f"expected HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_flower_app(app_dir: Path, cfg: FLConfig, *, resume: bool = False) -> Path:
    """A Flower App folder (pyproject.toml + a two-line module) whose run config is ``cfg``."""
    app_dir.mkdir(parents=True, exist_ok=True)
    run_cfg = {k.replace("_", "-"): v for k, v in asdict(cfg).items()}
    run_cfg["resume"] = resume
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        'name = "emoarfl"',
        'version = "1.0.0"',
        'description = "emoar federated facial-expression training"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.hatch.build.targets.wheel]",
        'packages = ["."]',
        "",
        "[tool.flwr.app]",
        'publisher = "emoar"',
        "",
        "[tool.flwr.app.components]",
        'serverapp = "emoar_flower_app:server_app"',
        'clientapp = "emoar_flower_app:client_app"',
        "",
        "[tool.flwr.app.config]",
        *[f"{k} = {_toml(v)}" for k, v in run_cfg.items()],
        "",
    ]
    (app_dir / "pyproject.toml").write_text("\n".join(lines))
    (app_dir / "emoar_flower_app.py").write_text(_SHIM)
    return app_dir


def _wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise FederatedError(
                f"{what} exited with code {proc.returncode} while starting (see its log above)"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise FederatedError(f"{what} did not open {host}:{port} within {timeout:.0f}s")


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (Linux /proc; empty elsewhere): Flower's SuperExec, ServerApp
    and ClientApp processes, which it starts in sessions of their own."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    below = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait(5)
    time.sleep(1)
    for pid in below:  # what Flower did not stop itself
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def _exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the Flower processes started here are stopped too."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def serve(cfg: FLConfig, args: argparse.Namespace) -> int:
    """Start a SuperLink on ``args.listen``, submit the emoar app with ``cfg`` and wait for the run.

    Raises:
        FederatedError: bad configuration, the SuperLink failed, or the run failed.
    """
    out = Path(cfg.out).resolve()
    cfg = replace(
        cfg,
        out=str(out),
        data=str(Path(cfg.data).resolve()) if cfg.data else "",
        init=str(Path(cfg.init).resolve()) if cfg.init else "",
    )
    prepare(cfg, resume=args.resume, simulate=False)  # fail here, with a clear message, not in the app
    host, port = _split(args.listen)
    secure = not args.insecure
    if secure and not args.certificates:
        raise FederatedError(
            "the server uses TLS unless --insecure: pass --certificates CA CERT KEY "
            "(see README 'Federated learning' for how to make them)"
        )
    home = out / "flwr-home"
    home.mkdir(parents=True, exist_ok=True)
    app_dir = write_flower_app(out / "flower-app", cfg, resume=args.resume)
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    conn = [
        "[superlink]",
        'default = "emoar"',
        "",
        "[superlink.emoar]",
        f'address = "{connect_host}:{port}"',
    ]
    conn.append(
        "insecure = true" if not secure else f'root-certificates = "{Path(args.certificates[0]).resolve()}"'
    )
    (home / "config.toml").write_text("\n".join(conn) + "\n")
    env = _env(FLWR_HOME=str(home))
    cmd = [
        _bin("flower-superlink"),
        "--host",
        host,
        "--port",
        str(port),
        "--disable-runtime-dependency-installation",
        "--database",
        str(out / "superlink.db"),
    ]
    if secure:
        ca, cert, key = args.certificates
        cmd += ["--ssl-ca-certfile", ca, "--ssl-certfile", cert, "--ssl-keyfile", key]
    else:
        cmd.append("--insecure")
    if args.auth_list:
        cmd += ["--enable-supernode-auth"]
    _exit_on_sigterm()
    link = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        _wait_port(connect_host, port, link, 60, "flower-superlink")
        print(
            f"SuperLink listening on {host}:{port}; waiting for {cfg.clients} clients "
            f"(emoar federated client --superlink THIS_HOST:{port} --data DIR)",
            flush=True,
        )
        run = subprocess.run(
            [_bin("flwr"), "run", str(app_dir), "emoar", "--stream"],
            env=env,
            cwd=str(out),
            check=False,
        )
        if run.returncode != 0:
            raise FederatedError(f"flwr run failed with code {run.returncode} (see its output above)")
    finally:
        _stop(link)
    last = out / "last.pt"
    if not last.is_file():
        raise FederatedError(f"the run ended without a checkpoint in {out} (see the log above)")
    print(f"global model: {last}", flush=True)
    return 0


def run_client(args: argparse.Namespace) -> int:
    """Check the data folder and the SuperLink, then run a SuperNode until the server stops.

    Raises:
        FederatedError / DatasetError: wrong folder layout or an unreachable SuperLink.
    """
    from emoar.train.data import load_folder

    data = Path(args.data).resolve()
    ds = load_folder(data)  # DatasetError says which layout was expected
    if len(ds) < 2:
        raise FederatedError(f"{data}: {len(ds)} image(s); a client needs at least 2 to train and validate")
    host, port = _split(args.superlink)
    t0, err = time.time(), None
    while True:  # the server may still be starting: retry until --connect-timeout
        try:
            with socket.create_connection((host, port), timeout=max(1.0, args.connect_timeout)):
                break
        except OSError as e:
            err = e
        if time.time() - t0 >= args.connect_timeout:
            raise FederatedError(
                f"cannot reach the SuperLink at {host}:{port} ({err}) within {args.connect_timeout:g}s; "
                "is 'emoar federated server' running there, and is the port open in its firewall?"
            ) from err
        time.sleep(0.5)
    if not args.insecure and not args.root_certificates:
        raise FederatedError(
            "pass --root-certificates CA.crt (the server's CA) or --insecure for a test network"
        )
    clientappio = args.clientappio
    if clientappio.endswith(":0"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            clientappio = f"127.0.0.1:{s.getsockname()[1]}"
    ch, cp = _split(clientappio)
    cmd = [
        _bin("flower-supernode"),
        "--superlink",
        f"{host}:{port}",
        "--node-config",
        f'data-dir="{data}"',
        "--host",
        ch,
        "--port",
        str(cp),
        "--max-retries",
        "5",
    ]
    cmd += ["--insecure"] if args.insecure else ["--root-certificates", args.root_certificates]
    if args.auth_key:
        cmd += ["--auth-supernode-private-key", args.auth_key]
    print(f"SuperNode: {len(ds)} private faces from {data}; connecting to {host}:{port}", flush=True)
    _exit_on_sigterm()
    proc = subprocess.Popen(cmd, env=_env(), start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        _stop(proc)
