"""``emoar federated simulate``: the emoar ServerApp and ClientApp in Flower's simulation engine
(Ray backend), one virtual SuperNode per partition, on this machine."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from emoar.train.federated.apps import FederatedError, FLConfig, make_client_app, make_server_app, prepare

__all__ = ["simulate"]

logger = logging.getLogger(__name__)


def simulate(cfg: FLConfig, *, resume: bool = False, verbose: bool = False, cpus: int = 0) -> Path:
    """Run ``cfg.rounds`` rounds (continuing ``cfg.out/last.pt`` with ``resume``); returns the
    final global checkpoint (``last.pt``; ``best.pt`` is the best on PublicTest). ``cpus``: how
    many clients train at once (one CPU each; 0 = min(clients, cores)).

    Raises:
        FederatedError / DatasetError: the run cannot start (message says what to change).
    """
    if not cfg.data:
        raise FederatedError("--data is required: the FER2013 CSV whose Training rows are partitioned")
    prep = prepare(cfg, resume=resume, simulate=True)
    cfg = prep.cfg
    from flwr.simulation import run_simulation

    if not verbose:
        logging.getLogger("flwr").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    errors: list[BaseException] = []
    settings = {"data": str(Path(cfg.data).resolve()), "partitions": str(Path(prep.partitions).resolve())}
    cpus = cpus or max(1, min(cfg.clients, os.cpu_count() or 1))
    # Flower's Ray backend sets os.environ["PYTHONPATH"] to this process's whole sys.path (for its
    # workers) and leaves it set: every later subprocess of the caller would inherit this venv's
    # packages. Restore it when the simulation ends.
    saved_pythonpath = os.environ.get("PYTHONPATH")
    try:
        run_simulation(
            server_app=make_server_app(prep, errors),
            client_app=make_client_app(settings),
            num_supernodes=cfg.clients,
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {
                    # a Ray instance of its own, never a cluster another program runs on this machine
                    "address": "local",
                    "num_cpus": cpus,
                    "num_gpus": 0,
                    "include_dashboard": False,
                    "log_to_driver": verbose,
                },
            },
            verbose_logging=verbose,
        )
    finally:
        if saved_pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_pythonpath
    if errors:
        e = errors[0]
        raise e if isinstance(e, ValueError) else FederatedError(f"the federated run failed: {e}")
    last = Path(cfg.out) / "last.pt"
    if not last.is_file() or len(prep.history) < cfg.rounds - prep.start_round:
        raise FederatedError(
            f"the simulation ended after {len(prep.history)} of {cfg.rounds} rounds (a client failed; "
            "rerun with --verbose to see its error, then --resume)"
        )
    return last
