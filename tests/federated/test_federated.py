"""emoar federated: partitions, the client functions on hand-built messages, DP clipping, a real
one-round simulation through Flower's engine (and --resume), and the user-facing errors."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("flwr")

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402

from emoar.cli import main  # noqa: E402
from emoar.train.federated.apps import (  # noqa: E402
    FederatedError,
    FLConfig,
    _dp_clip_mod,
    client_evaluate,
    client_train,
    load_arrays,
    read_init,
)
from emoar.train.federated.partition import Partitions, make_partitions  # noqa: E402
from emoar.train.federated.task import pack_state, shared_keys  # noqa: E402
from emoar.train.nets import create_model  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def server_side():  # type: ignore[no-untyped-def]
    """Who builds a Message: Flower reads the sender's run/node/task ids from TaskIdentity, which
    its runtime sets; a hand-built message plays the ServerApp of run 1."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 0, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


# ----------------------------------------------------------------------------- partitions
@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.1])
def test_partitions_deterministic_and_disjoint(fer_splits: dict, alpha: float, tmp_path: Path) -> None:
    labels = fer_splits["Training"].labels[:3000]
    a = make_partitions(labels, 10, alpha, seed=3)
    b = make_partitions(labels, 10, alpha, seed=3)
    rows = np.concatenate([a.rows(i) for i in range(10)])
    assert len(rows) == len(np.unique(rows)) == 3000  # disjoint and complete
    for i in range(10):
        np.testing.assert_array_equal(a.train[i], b.train[i])
        np.testing.assert_array_equal(a.val[i], b.val[i])
        assert not set(a.train[i]) & set(a.val[i])
        assert abs(len(a.val[i]) - 0.1 * len(a.rows(i))) <= 1
    a.save(tmp_path / "p.npz")
    c = Partitions.load(tmp_path / "p.npz")
    assert all(np.array_equal(x, y) for x, y in zip(a.train, c.train, strict=True))
    if alpha == 0.1:  # label skew: some client is far from the global class mix
        glob = np.bincount(labels, minlength=7) / len(labels)
        tv = max(
            0.5 * np.abs(np.bincount(labels[a.rows(i)], minlength=7) / len(a.rows(i)) - glob).sum()
            for i in range(10)
        )
        assert tv > 0.3
    assert make_partitions(labels, 10, alpha, seed=4).train[0].tolist() != a.train[0].tolist()


# ----------------------------------------------------------------------------- client functions
def _settings(tmp_path: Path, fer_csv: Path, fer_splits: dict) -> dict:
    p = make_partitions(fer_splits["Training"].labels[:160], 2, 0.0, seed=0)
    p.save(tmp_path / "parts.npz")
    return {"data": str(fer_csv), "partitions": str(tmp_path / "parts.npz")}


def _message(model: torch.nn.Module, share: str, kind: str, **config: object) -> Message:
    keys = shared_keys(model, share)
    sd = model.state_dict()
    local = {k: v for k, v in sd.items() if k not in keys}
    cfg = ConfigRecord(
        {
            "arch": "cnn_small",
            "mean": 0.5,
            "std": 0.25,
            "local-epochs": 1,
            "lr": 0.05,
            "batch-size": 16,
            "server-round": 1,
            "local-init": pack_state(local) if local else b"",
            **config,
        }
    )
    arrays = ArrayRecord({k: sd[k] for k in keys})  # type: ignore[arg-type]
    return Message(RecordDict({"arrays": arrays, "config": cfg}), dst_node_id=1, message_type=kind)


def _context(cid: int = 0) -> Context:
    return Context(run_id=1, node_id=1, node_config={"partition-id": cid}, state=RecordDict(), run_config={})


@pytest.mark.parametrize("share", ["all", "no_bn"])
def test_client_train_and_evaluate_on_a_hand_built_message(
    tmp_path: Path, fer_csv: Path, fer_splits: dict, share: str, server_side: None
) -> None:
    settings = _settings(tmp_path, fer_csv, fer_splits)
    torch.manual_seed(0)
    model = create_model("cnn_small")
    msg = _message(model, share, "train")
    ctx = _context(1)
    reply = client_train(msg, ctx, settings)
    arrays = reply.content["arrays"]
    metrics = reply.content["metrics"]
    assert list(arrays.keys()) == list(msg.content["arrays"].keys())  # same tensors back, nothing else
    assert metrics["num-examples"] == 72 and metrics["train-loss"] > 0
    assert metrics["bytes-sent"] == sum(v.numpy().nbytes for v in arrays.values())
    before = msg.content["arrays"].to_torch_state_dict()
    after = arrays.to_torch_state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it trained
    if share == "no_bn":  # FedBN: BN tensors never leave the client, they stay in its state
        from emoar.train.federated.task import _bn_keys

        assert not set(after) & _bn_keys(model)[0]
        assert "local" in ctx.state.array_records
        assert any("running_mean" in k for k in ctx.state.array_records["local"].keys())
    ev = client_evaluate(_message(model, share, "evaluate"), ctx, settings).content["metrics"]
    assert ev["num-examples"] == 8 and 0 <= ev["eval-acc"] <= 1


def test_client_optimizer_comes_from_the_run_config(
    tmp_path: Path, fer_csv: Path, fer_splits: dict, server_side: None
) -> None:
    settings = _settings(tmp_path, fer_csv, fer_splits)
    torch.manual_seed(0)
    model = create_model("cnn_small")
    start = model.state_dict()
    updates = {}
    for opt, lr in (("sgd", 0.05), ("adamw", 1e-3)):
        reply = client_train(_message(model, "all", "train", optimizer=opt, lr=lr), _context(), settings)
        after = reply.content["arrays"].to_torch_state_dict()
        updates[opt] = torch.cat(
            [(after[k] - start[k]).flatten().float() for k in after if "running" not in k]
        )
    # AdamW moves each weight by about lr per step whatever its gradient's size; SGD does not
    assert not torch.allclose(updates["sgd"], updates["adamw"])
    steps = 72 // 16
    assert updates["adamw"].abs().max() <= steps * 1e-3 * 1.5
    with pytest.raises(FederatedError, match="--optimizer"):
        FLConfig(data=str(fer_csv), optimizer="lbfgs").validate()


def test_dp_clipping_bound_holds_on_the_sent_update(
    tmp_path: Path, fer_csv: Path, fer_splits: dict, server_side: None
) -> None:
    settings = _settings(tmp_path, fer_csv, fer_splits)
    model = create_model("cnn_small")
    clip = 0.05
    msg = _message(model, "no_bn_stats", "train", clipping_norm=clip, lr=0.2)
    sent = msg.content["arrays"].to_numpy_ndarrays()
    # the unclipped update is larger than the bound
    raw = client_train(_message(model, "no_bn_stats", "train", lr=0.2), _context(), settings)
    raw_norm = np.sqrt(
        sum(
            ((a - b) ** 2).sum() for a, b in zip(raw.content["arrays"].to_numpy_ndarrays(), sent, strict=True)
        )
    )
    assert raw_norm > clip
    reply = _dp_clip_mod(msg, _context(), lambda m, c: client_train(m, c, settings))
    got = reply.content["arrays"].to_numpy_ndarrays()
    norm = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(got, sent, strict=True)))
    assert norm <= clip * (1 + 1e-4)
    assert not any("running" in k for k in reply.content["arrays"].keys())  # BN statistics stay local


def test_another_architecture_is_a_clear_error(tmp_path: Path) -> None:
    model = create_model("cnn_small")
    arrays = ArrayRecord(create_model("resnet_fer").state_dict())  # type: ignore[arg-type]
    with pytest.raises(FederatedError, match="same --arch"):
        load_arrays(model, arrays)
    ck = tmp_path / "resnet.pt"
    torch.save(
        {
            "meta": {"arch": "resnet_fer", "labels": list("abcdefg"), "mean": 0.5, "std": 0.25},
            "model": create_model("resnet_fer").state_dict(),
        },
        ck,
    )
    with pytest.raises(FederatedError, match="pass --arch resnet_fer"):
        read_init(str(ck), "cnn_small")


# ----------------------------------------------------------------------------- CLI errors
def test_client_folder_with_the_wrong_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "x.png").write_bytes(b"")
    rc = main(["federated", "client", "--insecure", "--superlink", "127.0.0.1:9", "--data", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "expected class folders named like angry, disgust" in err and "Traceback" not in err


def test_unreachable_superlink(client_folders: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nobody listens there
    rc = main(
        [
            "federated",
            "client",
            "--insecure",
            "--superlink",
            f"127.0.0.1:{port}",
            "--data",
            str(client_folders[0]),
            "--connect-timeout",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "cannot reach the SuperLink" in err and "emoar federated server" in err


def test_simulate_with_a_checkpoint_of_another_architecture(
    tmp_path: Path, fer_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck = tmp_path / "resnet.pt"
    torch.save({"meta": {"arch": "resnet_fer", "labels": [], "mean": 0.5, "std": 0.25}, "model": {}}, ck)
    rc = main(
        [
            "federated",
            "simulate",
            "--data",
            str(fer_csv),
            "--init",
            str(ck),
            "--arch",
            "cnn_small",
            "--out",
            str(tmp_path / "fl"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "is a resnet_fer checkpoint" in err
    rc = main(
        ["federated", "simulate", "--data", str(fer_csv), "--dp-noise", "1.0", "--out", str(tmp_path / "fl")]
    )
    assert rc == 1 and "--dp-clip" in capsys.readouterr().err


def test_resume_without_a_run(tmp_path: Path, fer_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["federated", "simulate", "--data", str(fer_csv), "--resume", "--out", str(tmp_path / "none")])
    assert rc == 1 and "no checkpoint" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the real engine
def _sim_args(fer_csv: Path, out: Path) -> list[str]:
    return ["federated", "simulate", "--data", str(fer_csv), "--clients", "2", "--limit", "160", "--eval-limit", "64",
            "--batch-size", "32", "--out", str(out), "--cpus", "1"]  # fmt: skip


def test_one_round_simulation_two_clients(
    tmp_path: Path, fer_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fl"
    pythonpath = os.environ.get("PYTHONPATH")
    assert main([*_sim_args(fer_csv, out), "--rounds", "1"]) == 0
    assert "round 1/1  PublicTest loss" in capsys.readouterr().out
    # Flower's Ray backend sets PYTHONPATH for its workers; the caller's environment is restored
    assert os.environ.get("PYTHONPATH") == pythonpath
    assert (out / "partitions.npz").is_file() and (out / "best.pt").is_file()
    from emoar.train.checkpoint import read_checkpoint
    from emoar.train.evaluate import predict_probs

    ck = read_checkpoint(out / "last.pt")
    assert ck["meta"]["epoch"] == 1 and ck["history"][0]["client_val_acc"] is not None
    assert FLConfig.from_dict(ck["fl"]["config"]).clients == 2
    probs, labels, _ = predict_probs(str(out / "last.pt"), np.zeros((3, 48, 48), np.uint8))
    assert probs.shape == (3, 7) and len(labels) == 7


@pytest.mark.slow
def test_simulation_resume_continues_from_the_last_round(
    tmp_path: Path, fer_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fl"
    assert main([*_sim_args(fer_csv, out), "--rounds", "1", "--dp-noise", "0.5", "--dp-clip", "1.0"]) == 0
    assert "epsilon" in capsys.readouterr().out
    first = Partitions.load(out / "partitions.npz")
    assert main([*_sim_args(fer_csv, out), "--rounds", "2", "--resume"]) == 0
    assert "round 2/2" in capsys.readouterr().out
    np.testing.assert_array_equal(Partitions.load(out / "partitions.npz").train[0], first.train[0])
    from emoar.train.checkpoint import read_checkpoint

    ck = read_checkpoint(out / "last.pt")
    assert [h["round"] for h in ck["history"]] == [1, 2]
    eps = [h["epsilon"] for h in ck["history"]]
    assert 0 < eps[0] < eps[1]  # the accountant's state was resumed, not restarted
