"""``emoar federated`` argument parsing and commands (registered by :mod:`emoar.cli`; imports stay
light: no torch or flwr until a command runs)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emoar.train.federated import OPTIMIZERS, STRATEGIES


def _add_run_args(p: argparse.ArgumentParser, *, data_required: bool) -> None:
    p.add_argument(
        "--data",
        required=data_required,
        help="FER2013 CSV (.csv/.csv.gz): Training rows are partitioned, PublicTest scores the global model",
    )
    p.add_argument("--clients", type=int, default=10, help="number of clients (default %(default)s)")
    p.add_argument("--rounds", type=int, default=10, help="federated rounds (default %(default)s)")
    p.add_argument("--strategy", choices=STRATEGIES, default="fedavg")
    p.add_argument("--local-epochs", type=int, default=1, help="local epochs per round (default %(default)s)")
    p.add_argument("--lr", type=float, default=0.01, help="client learning rate (default %(default)s)")
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd",
        help="client optimizer: sgd (momentum 0.9; fine-tuning a trained model) or adamw "
        "(a fresh state each round; learns a weak starting model faster) (default %(default)s)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--proximal-mu", type=float, default=0.01, help="FedProx mu (default %(default)s)")
    p.add_argument("--server-lr", type=float, default=1e-3, help="FedAdam server learning rate eta")
    p.add_argument(
        "--dp-noise",
        type=float,
        default=0.0,
        help="DP noise multiplier Z (client-side clipping + Gaussian noise)",
    )
    p.add_argument("--dp-clip", type=float, default=0.0, help="DP clipping norm C of each client's update")
    p.add_argument("--dp-delta", type=float, default=1e-5, help="delta at which epsilon is reported")
    p.add_argument("--init", default="", help="starting checkpoint (emoar train's best.pt/last.pt)")
    p.add_argument(
        "--arch", default="", help="architecture (default: the --init checkpoint's, else cnn_small)"
    )
    p.add_argument(
        "--out", default="runs/fl", help="run folder: last.pt, best.pt, history.json (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last round")
    p.add_argument("--threads", type=int, default=1, help="torch threads per client (default %(default)s)")
    p.add_argument("--verbose", action="store_true", help="show Flower's and Ray's logs")
    p.add_argument(
        "--eval-limit", type=int, default=0, help="score each round on the first N PublicTest rows"
    )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``federated`` verb (simulate / server / client) on the main parser's subparsers."""
    f = sub.add_parser("federated", help="federated learning on Flower: simulate, server, client")
    fs = f.add_subparsers(dest="fl_verb", required=True, metavar="ACTION")

    s = fs.add_parser("simulate", help="Flower's simulation engine on this machine, one client per partition")
    _add_run_args(s, data_required=True)
    s.add_argument(
        "--alpha", type=float, default=0.0, help="Dirichlet label skew (0 = IID; 0.1 = strong skew)"
    )
    s.add_argument("--limit", type=int, default=0, help="partition only the first N Training rows")
    s.add_argument(
        "--cpus", type=int, default=0, help="clients training at once (default min(clients, cores))"
    )
    s.set_defaults(func=cmd_simulate)

    v = fs.add_parser(
        "server", help="a Flower SuperLink with the emoar ServerApp (clients: emoar federated client)"
    )
    _add_run_args(v, data_required=False)
    v.add_argument(
        "--listen",
        default="0.0.0.0:9092",
        help="the SuperLink's HTTP(S) API (Fleet + Control), where clients connect (default %(default)s)",
    )
    v.add_argument("--insecure", action="store_true", help="no TLS (tests, trusted networks only)")
    v.add_argument(
        "--certificates", nargs=3, metavar=("CA", "CERT", "KEY"), help="TLS: CA cert, server cert, server key"
    )
    v.add_argument(
        "--auth",
        dest="auth_list",
        action="store_true",
        help="SuperNode authentication: only SuperNodes registered with 'flwr supernode register' may join",
    )
    v.add_argument("--timeout", type=float, default=3600, help="seconds to wait for clients per round")
    v.set_defaults(func=cmd_server)

    c = fs.add_parser("client", help="a Flower SuperNode whose private data is a local <class>/ folder")
    c.add_argument("--superlink", required=True, metavar="HOST:PORT", help="the server's --listen address")
    c.add_argument("--data", required=True, metavar="DIR", help="private faces in <class>/*.png folders")
    c.add_argument("--insecure", action="store_true", help="no TLS (tests, trusted networks only)")
    c.add_argument(
        "--root-certificates", help="TLS: the CA certificate the server's certificate is signed by"
    )
    c.add_argument("--auth-key", help="SuperNode authentication: this node's private key (EC, PEM)")
    c.add_argument(
        "--clientappio",
        default="127.0.0.1:0",
        help="the SuperNode's local runtime API (default: a free port)",
    )
    c.add_argument("--connect-timeout", type=float, default=20.0, help="seconds to reach the SuperLink first")
    c.add_argument("--verbose", action="store_true")
    c.set_defaults(func=cmd_client)
    return f


def _config(args: argparse.Namespace, **extra: Any) -> Any:
    from emoar.train.federated.apps import FLConfig

    arch = args.arch
    if not arch and args.init:
        from emoar.train.federated.apps import FederatedError

        try:
            from emoar.train.checkpoint import read_checkpoint

            arch = str(read_checkpoint(args.init)["meta"]["arch"])
        except ValueError as e:
            raise FederatedError(str(e)) from e
    return FLConfig(
        data=args.data or "",
        out=args.out,
        clients=args.clients,
        rounds=args.rounds,
        strategy=args.strategy,
        local_epochs=args.local_epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        proximal_mu=args.proximal_mu,
        server_lr=args.server_lr,
        dp_noise=args.dp_noise,
        dp_clip=args.dp_clip,
        dp_delta=args.dp_delta,
        init=args.init,
        arch=arch or "cnn_small",
        seed=args.seed,
        threads=args.threads,
        eval_limit=args.eval_limit,
        **extra,
    )


def _user_errors() -> tuple[type[BaseException], ...]:
    from emoar.train.data import DatasetError
    from emoar.train.federated.apps import FederatedError

    return (FederatedError, DatasetError, ValueError, OSError)


def cmd_simulate(args: argparse.Namespace) -> int:
    from emoar.cli import CliError

    try:
        import torch

        from emoar.train.federated.simulate import simulate
    except ImportError as e:
        raise CliError(
            f"federated learning needs PyTorch and flwr: pip install 'emoar[train]' flwr[simulation] ({e})"
        ) from e
    torch.set_num_threads(args.threads)
    try:
        cfg = _config(args, alpha=args.alpha, limit=args.limit)
        last = simulate(cfg, resume=args.resume, verbose=args.verbose, cpus=args.cpus)
    except _user_errors() as e:
        raise CliError(str(e)) from e
    print(
        f"global model: {last} (best on PublicTest: {last.with_name('best.pt')}); "
        f"emoar evaluate --model {last} / emoar export --checkpoint {last}",
        file=sys.stderr,
    )
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from emoar.cli import CliError

    try:
        from emoar.train.federated.deploy import serve
    except ImportError as e:
        raise CliError(f"federated learning needs flwr: pip install 'flwr[simulation]' ({e})") from e
    try:
        cfg = _config(args)
        return serve(cfg, args)
    except _user_errors() as e:
        raise CliError(str(e)) from e


def cmd_client(args: argparse.Namespace) -> int:
    from emoar.cli import CliError

    try:
        from emoar.train.federated.deploy import run_client
    except ImportError as e:
        raise CliError(f"federated learning needs flwr: pip install 'flwr[simulation]' ({e})") from e
    try:
        return run_client(args)
    except _user_errors() as e:
        raise CliError(str(e)) from e
