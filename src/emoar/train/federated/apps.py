"""Flower ``ServerApp`` and ``ClientApp`` for emoar (Flower 1.42 Message API).

The same two apps run in the simulation engine (``emoar federated simulate``) and across
machines (``emoar federated server`` / ``client``): the server samples every client each round,
sends the shared tensors in an ``ArrayRecord`` plus a ``ConfigRecord`` (architecture,
normalisation, local epochs, learning rate, FedProx mu, DP clipping norm), clients train on
their private rows and answer with their new tensors and a ``MetricRecord``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideFixedClipping,
    FedAdam,
    FedAvg,
    FedProx,
    Strategy,
)
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from emoar.train.data import DatasetError, FaceDataset, load_dataset
from emoar.train.federated import OPTIMIZERS, STRATEGIES
from emoar.train.federated.partition import Partitions
from emoar.train.federated.task import (
    evaluate_model,
    pack_state,
    shared_keys,
    train_local,
    unpack_state,
)
from emoar.train.nets import FerNet, create_model

__all__ = ["FLConfig", "FederatedError", "client_app", "make_client_app", "make_server_app", "prepare"]

logger = logging.getLogger(__name__)

# FER2013 Training pixel statistics (used when no --init checkpoint gives its own)
_FER_MEAN, _FER_STD = 0.5077, 0.2550


class FederatedError(ValueError):
    """A federated run that cannot start or continue; the message says what to do."""


@dataclass(frozen=True)
class FLConfig:
    """Everything that defines a federated run; stored in every checkpoint (``--resume``)."""

    data: str = ""  # FER2013 CSV (simulation: partitioned; server: PublicTest for evaluation)
    out: str = "runs/fl"
    clients: int = 10
    alpha: float = 0.0  # 0 = IID, else Dirichlet(alpha) label skew
    rounds: int = 10
    strategy: str = "fedavg"
    local_epochs: int = 1
    lr: float = 0.01
    batch_size: int = 64
    optimizer: str = "sgd"  # client optimizer: sgd | adamw
    proximal_mu: float = 0.01
    server_lr: float = 1e-3  # FedAdam eta
    dp_noise: float = 0.0
    dp_clip: float = 0.0
    dp_delta: float = 1e-5
    init: str = ""
    arch: str = "cnn_small"
    seed: int = 0
    limit: int = 0  # use only the first N Training rows (smoke tests)
    rows: str = ""  # .npy of Training row indices to partition (the benchmark's private 80 %)
    eval_limit: int = 0  # evaluate the server model on the first N PublicTest rows (0 = all)
    threads: int = 1

    @property
    def dp(self) -> bool:
        return self.dp_noise > 0 or self.dp_clip > 0

    @property
    def share(self) -> str:
        if self.strategy == "fedbn":
            return "no_bn"
        return "no_bn_stats" if self.dp else "all"

    def to_run_config(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> FLConfig:
        known = {f.name: f.type for f in fields(FLConfig)}
        kw: dict[str, Any] = {}
        for k, v in d.items():
            key = k.replace("-", "_")
            if key in known:
                default = getattr(FLConfig(), key)
                kw[key] = type(default)(v)
        return FLConfig(**kw)

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise FederatedError(f"Unknown --strategy {self.strategy!r}; choose {', '.join(STRATEGIES)}")
        if self.optimizer not in OPTIMIZERS:
            raise FederatedError(f"Unknown --optimizer {self.optimizer!r}; choose {', '.join(OPTIMIZERS)}")
        if self.rounds < 1 or self.clients < 1 or self.local_epochs < 1:
            raise FederatedError("--rounds, --clients and --local-epochs must be >= 1")
        if self.dp and not (self.dp_noise > 0 and self.dp_clip > 0):
            raise FederatedError("differential privacy needs both --dp-noise Z > 0 and --dp-clip C > 0")
        if self.dp and self.strategy == "fedadam":
            raise FederatedError(
                "DP accounting in Flower needs FedAvg aggregation: use --strategy fedavg, fedprox or "
                "fedbn with --dp-noise"
            )
        if not 0 < self.dp_delta < 1:
            raise FederatedError(f"--dp-delta must be in (0, 1), got {self.dp_delta}")


# ----------------------------------------------------------------------------- models
def _model_state(model: FerNet, keys: list[str]) -> OrderedDict[str, torch.Tensor]:
    sd = model.state_dict()
    return OrderedDict((k, sd[k].detach().cpu()) for k in keys)


def load_arrays(model: FerNet, arrays: ArrayRecord) -> None:
    """Copy the tensors of ``arrays`` into ``model`` (names and shapes must match).

    Raises:
        FederatedError: a tensor the model does not have or of another shape (another architecture).
    """
    incoming = arrays.to_torch_state_dict()
    own = model.state_dict()
    bad = [k for k, v in incoming.items() if k not in own or tuple(own[k].shape) != tuple(v.shape)]
    if bad:
        raise FederatedError(
            f"the server's model does not fit this {getattr(model, 'arch', '') or 'model'} "
            f"(mismatched tensors: {', '.join(bad[:4])}{'...' if len(bad) > 4 else ''}); "
            "client and server must use the same --arch"
        )
    model.load_state_dict(incoming, strict=False)


def read_init(path: str, arch: str) -> tuple[FerNet, dict[str, Any]]:
    """The model and metadata of an ``--init``/``--resume`` checkpoint, checked against ``arch``."""
    from emoar.train.checkpoint import model_from_checkpoint, read_checkpoint

    try:
        ck = read_checkpoint(path)
    except ValueError as e:
        raise FederatedError(str(e)) from e
    meta = ck["meta"]
    if arch and meta.get("arch") != arch:
        raise FederatedError(
            f"{path} is a {meta.get('arch')} checkpoint but the run uses --arch {arch}; "
            f"pass --arch {meta.get('arch')} or a {arch} checkpoint"
        )
    try:
        model = model_from_checkpoint(ck)
    except (RuntimeError, KeyError) as e:
        raise FederatedError(f"{path}: weights do not load into {meta.get('arch')}: {e}") from e
    return model, {**meta, "_ck": ck}


# ----------------------------------------------------------------------------- client
_DATA_CACHE: dict[tuple[str, str, int, int], tuple[FaceDataset, FaceDataset]] = {}


def _client_data(ctx: Context, settings: dict[str, Any]) -> tuple[FaceDataset, FaceDataset]:
    """(train, val) of this node: a FER2013 partition in simulation, a ``<class>/`` folder when deployed."""
    node = dict(ctx.node_config)
    data_dir = str(node.get("data-dir") or settings.get("data-dir") or "")
    if data_dir:
        key = (data_dir, "", 0, 0)
        if key not in _DATA_CACHE:
            from emoar.train.data import load_folder

            ds = load_folder(data_dir)  # DatasetError names the expected layout
            rng = np.random.default_rng(0)
            perm = rng.permutation(len(ds))
            n_val = max(1, round(0.1 * len(ds)))
            _DATA_CACHE[key] = (ds.subset(np.sort(perm[n_val:])), ds.subset(np.sort(perm[:n_val])))
        return _DATA_CACHE[key]
    cid = int(node["partition-id"])  # type: ignore[call-overload]
    key = (str(settings["data"]), str(settings["partitions"]), cid, int(settings.get("limit", 0)))
    if key not in _DATA_CACHE:
        tr = load_dataset(settings["data"])["Training"]
        parts = Partitions.load(settings["partitions"])
        _DATA_CACHE[key] = (tr.subset(parts.train[cid]), tr.subset(parts.val[cid]))
    return _DATA_CACHE[key]


def _client_model(ctx: Context, cfg: ConfigRecord) -> FerNet:
    """The model for this round: architecture from the server, local-only tensors from ``Context.state``."""
    torch.set_num_threads(int(cfg.get("threads", 1)))  # type: ignore[arg-type]
    model = create_model(str(cfg["arch"]))
    local = ctx.state.array_records.get("local")
    if local is not None:
        model.load_state_dict(local.to_torch_state_dict(), strict=False)
    elif "local-init" in cfg:
        model.load_state_dict(unpack_state(cfg["local-init"]), strict=False)  # type: ignore[arg-type]
    return model


def _keep_local(ctx: Context, model: FerNet, sent: list[str]) -> None:
    sd = model.state_dict()
    ctx.state.array_records["local"] = ArrayRecord(
        OrderedDict((k, v.detach().cpu()) for k, v in sd.items() if k not in set(sent))
    )


def client_train(msg: Message, ctx: Context, settings: dict[str, Any] | None = None) -> Message:
    """One round of local training on this node's private rows (the ClientApp's ``train``)."""
    settings = settings or {}
    cfg: ConfigRecord = msg.content["config"]  # type: ignore[assignment]
    arrays: ArrayRecord = msg.content["arrays"]  # type: ignore[assignment]
    tr, _ = _client_data(ctx, settings)
    model = _client_model(ctx, cfg)
    load_arrays(model, arrays)
    rnd = int(cfg.get("server-round", 1)) + int(cfg.get("round-offset", 0))  # type: ignore[arg-type]
    cid = int(dict(ctx.node_config).get("partition-id", 0))  # type: ignore[call-overload]
    t0 = time.time()
    loss = train_local(
        model,
        tr,
        float(cfg["mean"]),  # type: ignore[arg-type]
        float(cfg["std"]),  # type: ignore[arg-type]
        epochs=int(cfg.get("local-epochs", 1)),  # type: ignore[arg-type]
        lr=float(cfg.get("lr", 0.01)),  # type: ignore[arg-type]
        batch_size=int(cfg.get("batch-size", 64)),  # type: ignore[arg-type]
        optimizer=str(cfg.get("optimizer", "sgd")),
        proximal_mu=float(cfg.get("proximal-mu", 0.0)),  # type: ignore[arg-type]
        seed=int(cfg.get("seed", 0)) + 1000 * rnd + cid,  # type: ignore[arg-type]
    )
    sent = list(arrays.keys())
    _keep_local(ctx, model, sent)
    out = ArrayRecord(_model_state(model, sent))
    nbytes = sum(int(np.asarray(a.numpy()).nbytes) for a in out.values())
    metrics = MetricRecord(
        {
            "train-loss": loss,
            "num-examples": len(tr),
            "dp-weight": 1,  # DP accounting needs equal client weights
            "bytes-sent": nbytes,
            "seconds": time.time() - t0,
        }
    )
    return Message(RecordDict({"arrays": out, "metrics": metrics}), reply_to=msg)


def client_evaluate(msg: Message, ctx: Context, settings: dict[str, Any] | None = None) -> Message:
    """The global model on this node's own validation rows (the ClientApp's ``evaluate``)."""
    settings = settings or {}
    cfg: ConfigRecord = msg.content["config"]  # type: ignore[assignment]
    _, va = _client_data(ctx, settings)
    model = _client_model(ctx, cfg)
    load_arrays(model, msg.content["arrays"])  # type: ignore[arg-type]
    m = evaluate_model(model, va, float(cfg["mean"]), float(cfg["std"]))  # type: ignore[arg-type]
    metrics = MetricRecord(
        {"eval-loss": m["loss"], "eval-acc": m["accuracy"], "num-examples": len(va), "dp-weight": 1}
    )
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


def _dp_clip_mod(msg: Message, ctx: Context, call_next: Any) -> Message:
    """Flower's ``fixedclipping_mod`` on train messages that carry a clipping norm (DP runs)."""
    from flwr.clientapp.mod import fixedclipping_mod

    cfg = msg.content.config_records.get("config")
    if str(msg.metadata.message_type).startswith("train") and cfg is not None and KEY_CLIPPING_NORM in cfg:
        return fixedclipping_mod(msg, ctx, call_next)  # type: ignore[no-any-return]
    return call_next(msg, ctx)  # type: ignore[no-any-return]


def make_client_app(settings: dict[str, Any] | None = None) -> ClientApp:
    """The emoar ClientApp. ``settings`` (simulation): ``data`` CSV and ``partitions`` file;
    deployed nodes read ``data-dir`` from their ``--node-config`` instead."""
    s = dict(settings or {})
    app = ClientApp(mods=[_dp_clip_mod])

    @app.train()
    def _train(msg: Message, context: Context) -> Message:
        return client_train(msg, context, s)

    @app.evaluate()
    def _evaluate(msg: Message, context: Context) -> Message:
        return client_evaluate(msg, context, s)

    return app


# the ClientApp a SuperNode loads (``emoar.train.federated.apps:client_app``)
client_app = make_client_app()


# ----------------------------------------------------------------------------- server
@dataclass
class Prepared:
    """What the server needs, checked before any engine starts."""

    cfg: FLConfig
    model: FerNet
    mean: float
    std: float
    start_round: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    accountant_state: dict[str, Any] | None = None
    best_acc: float = -1.0
    public: FaceDataset | None = None
    partitions: str = ""
    train_source: str = ""


def _last_checkpoint(out: Path) -> Path:
    return out / "last.pt"


def prepare(cfg: FLConfig, *, resume: bool = False, simulate: bool = True) -> Prepared:
    """Validate the run, load or resume the model, build and save the partitions.

    Raises:
        FederatedError / DatasetError: with what to change.
    """
    out = Path(cfg.out)
    history: list[dict[str, Any]] = []
    start, acc_state, best = 0, None, -1.0
    if resume:
        last = _last_checkpoint(out)
        if not last.is_file():
            raise FederatedError(f"--resume: no checkpoint at {last}; start without --resume")
        from emoar.train.checkpoint import read_checkpoint

        ck = read_checkpoint(last)
        if "fl" not in ck:
            raise FederatedError(f"{last} is not a federated checkpoint (written by emoar train?)")
        saved = FLConfig.from_dict(ck["fl"]["config"])
        cfg = replace(saved, rounds=cfg.rounds, out=cfg.out)
        start = int(ck["fl"]["round"])
        history = list(ck.get("history", []))
        acc_state = ck["fl"].get("accountant")
        best = float(ck["fl"].get("best_acc", -1.0))
        if start >= cfg.rounds:
            raise FederatedError(f"{last} already has {start} rounds; pass --rounds N with N > {start}")
    cfg.validate()
    if cfg.init:
        model, meta = read_init(cfg.init, cfg.arch)
        mean, std = float(meta["mean"]), float(meta["std"])
    else:
        model = create_model(cfg.arch)
        mean, std = _FER_MEAN, _FER_STD
    if resume:
        model, meta = read_init(str(_last_checkpoint(out)), cfg.arch)
        mean, std = float(meta["mean"]), float(meta["std"])
    public = None
    source = ""
    parts_path = ""
    if cfg.data:
        splits = load_dataset(cfg.data)
        public = splits.get("PublicTest")
        if public is not None and cfg.eval_limit:
            public = public.subset(np.arange(min(cfg.eval_limit, len(public))))
        if simulate:
            if "Training" not in splits:
                raise DatasetError(f"{cfg.data}: no Training rows to partition")
            tr = splits["Training"]
            rows = np.arange(len(tr))
            if cfg.rows:
                rows = np.load(cfg.rows).astype(np.int64)
            if cfg.limit:
                rows = rows[: cfg.limit]
            from emoar.train.federated.partition import make_partitions

            parts_path = str(out / "partitions.npz")
            if not (resume and Path(parts_path).is_file()):
                p = make_partitions(tr.labels[rows], cfg.clients, cfg.alpha, cfg.seed)
                # store indices into the full Training split
                Partitions(
                    tuple(rows[t] for t in p.train), tuple(rows[v] for v in p.val), p.alpha, p.seed
                ).save(parts_path)
            source = f"{Path(cfg.data).name}:Training (federated, {cfg.clients} clients)"
    out.mkdir(parents=True, exist_ok=True)
    return Prepared(cfg, model, mean, std, start, history, acc_state, best, public, parts_path, source)


def build_strategy(cfg: FLConfig) -> tuple[Strategy, Any]:
    """The Flower strategy of ``cfg`` (wrapped for DP) and its privacy accountant (or None)."""
    n = cfg.clients
    weight_key = "dp-weight" if cfg.dp else "num-examples"

    def by_examples(records: list[RecordDict], _key: str) -> MetricRecord:
        return aggregate_metricrecords(records, "num-examples")

    common: dict[str, Any] = dict(
        fraction_train=1.0,
        fraction_evaluate=1.0,
        min_train_nodes=n,
        min_evaluate_nodes=n,
        min_available_nodes=n,
        weighted_by_key=weight_key,
        train_metrics_aggr_fn=by_examples,
        evaluate_metrics_aggr_fn=by_examples,
    )
    base: Strategy
    if cfg.strategy == "fedprox":
        base = FedProx(proximal_mu=cfg.proximal_mu, **common)
    elif cfg.strategy == "fedadam":
        base = FedAdam(eta=cfg.server_lr, eta_l=cfg.lr, tau=1e-6, **common)
    else:  # fedavg, fedbn (FedAvg over the non-BN tensors)
        base = FedAvg(**common)
    if not cfg.dp:
        return base, None
    from flwr.supercore.privacy_accounting import NeighboringRelation, PrivacyConfig, SamplingMethod
    from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

    accountant = RdpAccountant(
        PrivacyConfig(
            target_delta=cfg.dp_delta,
            population_size=n,
            neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
            sampling_method=SamplingMethod.NO_AMPLIFICATION,
        )
    )
    dp = DifferentialPrivacyClientSideFixedClipping(
        base, cfg.dp_noise, cfg.dp_clip, num_sampled_clients=n, accountant=accountant
    )
    return dp, accountant


def _checkpoint(
    prep: Prepared, model: FerNet, rnd: int, val: dict[str, Any], acc_state: Any
) -> dict[str, Any]:
    cfg = prep.cfg
    return {
        "meta": {
            "arch": cfg.arch,
            "labels": list(_labels()),
            "input_size": [48, 48],
            "mean": prep.mean,
            "std": prep.std,
            "train_source": prep.train_source or "federated",
            "train_n": 0,
            "val_acc": val.get("accuracy", float("nan")),
            "epoch": rnd,
        },
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "ema": None,
        "history": prep.history,
        # what emoar export reads (data to fit OOD statistics on, task, slice)
        "config": {"data": cfg.data, "task": "fer2013", "limit": 0, "arch": cfg.arch, "federated": True},
        "fl": {"config": asdict(cfg), "round": rnd, "accountant": acc_state, "best_acc": prep.best_acc},
    }


def _labels() -> tuple[str, ...]:
    from emoar.labels import FER2013_LABELS

    return FER2013_LABELS


def _fmt(x: Any, spec: str = ".4f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def run_server(grid: Grid, prep: Prepared, *, progress: bool = True) -> None:
    """The ServerApp's main: the strategy over ``cfg.rounds`` rounds with server-side evaluation,
    a checkpoint (``last.pt``, ``best.pt``, ``history.json``) and a progress line per round."""
    cfg = prep.cfg
    out = Path(cfg.out)
    model = prep.model
    keys = shared_keys(model, cfg.share)
    local = {k: v for k, v in model.state_dict().items() if k not in set(keys)}
    strategy, accountant = build_strategy(cfg)
    if accountant is not None and prep.accountant_state:
        accountant.load_state_dict(prep.accountant_state)
    train_cfg = ConfigRecord(
        {
            "arch": cfg.arch,
            "mean": prep.mean,
            "std": prep.std,
            "local-epochs": cfg.local_epochs,
            "lr": cfg.lr,
            "batch-size": cfg.batch_size,
            "optimizer": cfg.optimizer,
            "seed": cfg.seed,
            "threads": cfg.threads,
            "round-offset": prep.start_round,
            "local-init": pack_state(local) if local else b"",
        }
    )
    eval_cfg = ConfigRecord(
        {k: train_cfg[k] for k in ("arch", "mean", "std", "threads", "local-init", "round-offset")}
    )
    last_train: dict[str, Any] = {}
    t_start = time.time()

    # client metrics are aggregated by Flower; keep the last ones for the progress line
    orig_train = strategy.aggregate_train
    orig_eval = strategy.aggregate_evaluate

    def agg_train(server_round: int, replies: Any) -> Any:
        arrays, metrics = orig_train(server_round, replies)
        last_train["train"] = dict(metrics) if metrics is not None else {}
        return arrays, metrics

    def agg_eval(server_round: int, replies: Any) -> Any:
        metrics = orig_eval(server_round, replies)
        last_train["eval"] = dict(metrics) if metrics is not None else {}
        return metrics

    strategy.aggregate_train = agg_train  # type: ignore[method-assign]
    strategy.aggregate_evaluate = agg_eval  # type: ignore[method-assign]

    def evaluate_fn(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        rnd = server_round + prep.start_round
        load_arrays(model, arrays)
        m = (
            evaluate_model(model, prep.public, prep.mean, prep.std)
            if prep.public is not None
            else {"loss": float("nan"), "accuracy": float("nan"), "macro_f1": float("nan")}
        )
        eps = None
        if accountant is not None and accountant.num_releases > 0:
            eps = float(accountant.get_privacy_spent().epsilon)
        tr = last_train.get("train", {}) if server_round > 0 else {}
        ev = last_train.get("eval", {}) if server_round > 0 else {}
        rec = {
            "round": rnd,
            "server_loss": m["loss"],
            "server_acc": m["accuracy"],
            "server_macro_f1": m["macro_f1"],
            "client_train_loss": tr.get("train-loss"),
            "client_val_loss": ev.get("eval-loss"),
            "client_val_acc": ev.get("eval-acc"),
            "bytes_sent_per_client": tr.get("bytes-sent"),
            "epsilon": eps,
            "delta": cfg.dp_delta if cfg.dp else None,
            "seconds": time.time() - t_start,
        }
        if progress:
            print(
                f"round {rnd}/{cfg.rounds}  PublicTest loss {_fmt(m['loss'])} acc {_fmt(m['accuracy'])} "
                f"F1 {_fmt(m['macro_f1'])}  clients: train loss {_fmt(rec['client_train_loss'])} "
                f"val acc {_fmt(rec['client_val_acc'])}  "
                + (f"epsilon {_fmt(eps, '.2f')} (delta {cfg.dp_delta:g})  " if cfg.dp else "")
                + f"{rec['seconds']:.0f}s",
                flush=True,
            )
        if server_round == 0:
            return MetricRecord({"accuracy": m["accuracy"], "loss": m["loss"]})
        prep.history.append(rec)
        improved = not math.isnan(m["accuracy"]) and m["accuracy"] > prep.best_acc
        if improved:
            prep.best_acc = m["accuracy"]
        ck = _checkpoint(prep, model, rnd, m, accountant.state_dict() if accountant is not None else None)
        tmp = out / "last.pt.tmp"
        torch.save(ck, tmp)
        tmp.replace(out / "last.pt")
        if improved or math.isnan(m["accuracy"]):
            torch.save({k: ck[k] for k in ("meta", "model", "ema", "history", "config")}, out / "best.pt")
        (out / "history.json").write_text(json.dumps(prep.history, indent=1))
        return MetricRecord({"accuracy": m["accuracy"], "loss": m["loss"]})

    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(_model_state(model, keys)),
        num_rounds=cfg.rounds - prep.start_round,
        train_config=train_cfg,
        evaluate_config=eval_cfg,
        evaluate_fn=evaluate_fn,
    )


def make_server_app(prep: Prepared | None = None, errors: list[BaseException] | None = None) -> ServerApp:
    """The emoar ServerApp; with ``prep`` (simulation) the run is already prepared, else (deployed)
    it is built from the run config (``flwr run --run-config``)."""
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context) -> None:
        try:
            p = prep
            if p is None:
                cfg = FLConfig.from_dict(dict(context.run_config))
                p = prepare(cfg, resume=bool(context.run_config.get("resume", False)), simulate=False)
            run_server(grid, p)
        except BaseException as e:  # surfaced by the caller (the engine only logs it)
            if errors is not None:
                errors.append(e)
            raise

    return app


# the ServerApp a SuperLink runs (``emoar.train.federated.apps:server_app``)
server_app = make_server_app()
