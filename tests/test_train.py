"""Training pipeline on real FER2013 rows: a real (short) training run, checkpoint, resume,
export to ONNX with metadata, and evaluation of both the checkpoint and the exported file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emoar.train.augment import AugmentConfig, augment_batch, mix_batch  # noqa: E402
from emoar.train.data import DatasetError, load_dataset, load_fer2013_csv  # noqa: E402
from emoar.train.nets import create_model, list_models  # noqa: E402


def _emoar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "emoar.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_fer_csv_splits_match_official_counts(fer_csv: Path) -> None:
    d = load_fer2013_csv(fer_csv)
    assert {k: len(v) for k, v in d.items()} == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert d["PrivateTest"].class_counts().tolist() == [491, 55, 528, 879, 594, 416, 626]
    tr = d["Training"]
    assert tr.images.dtype == np.uint8 and tr.images.shape[1:] == (48, 48)
    assert tr.soft is not None and np.allclose(tr.soft[tr.soft.sum(1) > 0].sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_forward_backward(arch: str) -> None:
    net = create_model(arch)
    x = torch.randn(4, 1, 48, 48)
    y = net(x)
    assert y.shape == (4, 7)
    assert net.forward_features(x).shape == (4, net.feature_dim)
    y.sum().backward()


def test_unknown_architecture_message() -> None:
    with pytest.raises(ValueError, match="available: .*resnet_fer"):
        create_model("resnet9000")


def test_augmentations_keep_shape_and_range() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 48, 48)
    for mix in ("none", "mixup", "cutmix", "fmix"):
        cfg = AugmentConfig(mix=mix, mix_p=1.0)
        a = augment_batch(x, cfg, g)
        assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
        y = torch.eye(7)[torch.randint(0, 7, (16,), generator=g)]
        m, t = mix_batch(a, y, cfg, g)
        assert m.shape == x.shape and torch.allclose(t.sum(1), torch.ones(16), atol=1e-5)


def test_folder_layouts_and_errors(tmp_path: Path, fer_csv: Path) -> None:
    import cv2

    d = load_fer2013_csv(fer_csv)["PublicTest"]
    for split in ("train", "test"):
        for i in range(14):
            label = d.label_names[d.labels[i]]
            name = {"angry": "Anger", "happy": "happiness", "surprise": "surprised"}.get(label, label)
            (tmp_path / "kaggle" / split / name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "kaggle" / split / name / f"{i}.png"), d.images[i])
    (tmp_path / "kaggle" / "train" / "contempt").mkdir()  # outside the labels: skipped
    splits = load_dataset(tmp_path / "kaggle")
    assert set(splits) == {"Training", "PublicTest", "PrivateTest"}
    assert len(splits["PrivateTest"]) == 14
    assert len(splits["Training"]) + len(splits["PublicTest"]) == 14
    (tmp_path / "wrong" / "cats").mkdir(parents=True)
    with pytest.raises(DatasetError, match="expected class folders"):
        load_dataset(tmp_path / "wrong")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DatasetError, match="emotion,pixels,Usage"):
        load_dataset(bad)


def test_train_export_evaluate_end_to_end(tmp_path: Path, fer_csv: Path) -> None:
    out = tmp_path / "run"
    # a 2-epoch run stopped by its time budget after epoch 1 ...
    r = _emoar(
        "-q",
        "train",
        "--data",
        str(fer_csv),
        "--epochs",
        "2",
        "--limit",
        "1024",
        "--out",
        str(out),
        "--arch",
        "cnn_small",
        "--threads",
        "2",
        "--max-minutes",
        "0.001",
        "--cutout",
        "0.25",
    )
    assert r.returncode == 0, r.stderr
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    import torch

    cfg = torch.load(out / "last.pt", map_location="cpu", weights_only=False)["config"]
    assert cfg["augment"]["cutout_p"] == 0.25
    hist = json.loads((out / "history.json").read_text())
    assert len(hist) == 1 and hist[0]["train_loss"] > 0
    # ... and --resume finishes it
    r = _emoar("-q", "train", "--data", str(fer_csv), "--out", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]

    r = _emoar(
        "evaluate",
        "--data",
        str(fer_csv),
        "--model",
        str(out / "best.pt"),
        "--json",
        "--plots",
        str(tmp_path / "plots"),
        "--limit",
        "600",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n"] == 600 and 0.0 <= rep["accuracy"] <= 1.0
    assert set(rep) >= {"n", "accuracy", "macro_f1", "per_class", "confusion", "labels"}
    assert np.asarray(rep["confusion"]).sum() == 600
    for png in ("confusion.png", "reliability.png", "training_curves.png", "gradcam.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 1000

    onnx_path = tmp_path / "m.onnx"
    r = _emoar("export", "--checkpoint", str(out / "best.pt"), "--format", "onnx", "--out", str(onnx_path))
    assert r.returncode == 0, r.stderr
    from emoar.classify import ExpressionClassifier

    clf = ExpressionClassifier(onnx_path)
    assert clf.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    # parity: PyTorch checkpoint vs ONNX on real faces
    from emoar.train.loop import load_checkpoint, predict_logits

    net, meta = load_checkpoint(out / "best.pt")
    faces = load_fer2013_csv(fer_csv)["PrivateTest"].images[:64]
    ref = torch.softmax(
        torch.from_numpy(np.asarray(predict_logits(net, faces, meta["mean"], meta["std"]))), 1
    ).numpy()
    from emoar.classify import apply_temperature

    # the file carries the temperature export fitted on PublicTest; the top class is the network's
    np.testing.assert_allclose(
        clf.classify(faces).probs, apply_temperature(ref, clf.info.temperature), atol=1e-4
    )

    r = _emoar("evaluate", "--data", str(fer_csv), "--model", str(onnx_path), "--json", "--limit", "600")
    assert r.returncode == 0, r.stderr
    assert abs(json.loads(r.stdout)["accuracy"] - rep["accuracy"]) < 0.01


def test_train_bad_inputs(tmp_path: Path) -> None:
    r = _emoar("train", "--data", str(tmp_path / "nope.csv"), "--epochs", "1", "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "not found" in r.stderr
    r = _emoar(
        "train", "--data", str(tmp_path), "--epochs", "1", "--out", str(tmp_path / "o"), "--arch", "bogus"
    )
    assert r.returncode == 1
    r = _emoar("train", "--data", str(tmp_path), "--cutout", "1.5", "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "--cutout must be in [0, 1]" in r.stderr
    r = _emoar("train", "--data", str(tmp_path), "--resume", "--out", str(tmp_path / "none"))
    assert r.returncode == 1 and "no checkpoint" in r.stderr


REPO = Path(__file__).resolve().parents[1]
TEACHER = REPO / "checkpoints" / "emoar-resnet-fer.pt"
DEFAULT_CKPT = REPO / "checkpoints" / "emoar-vgg-slim.pt"  # the shipped default was exported from it


def test_offline_distillation_targets(tmp_path: Path, fer_csv: Path) -> None:
    from emoar.train.loop import TrainConfig, _targets, load_checkpoint, offline_teacher_probs, predict_logits

    tr = load_fer2013_csv(fer_csv)["Training"].subset(np.arange(256))
    net, meta = load_checkpoint(TEACHER)
    tp = offline_teacher_probs(net, meta, tr.images, temperature=2.0)
    lg = np.asarray(predict_logits(net, tr.images, meta["mean"], meta["std"], tta=True))
    ref = torch.softmax(torch.from_numpy(lg) / 2.0, 1).numpy()
    np.testing.assert_allclose(tp, ref, atol=1e-5)
    # the shipped model, as a teacher, knows the training faces: its targets carry signal
    assert (tp.argmax(1) == tr.labels).mean() > 0.6
    # the loss matches the softened targets at their temperature (Hinton): the student's optimum
    # is T * log(tp), as sharp at T = 1 as the teacher's own logits, not log(tp), as flat as the
    # softened targets (the bug that made offline runs fall 7 points in their first epoch)
    from emoar.train.loop import kd_loss

    idx = np.arange(0, 256, 3)
    y = _targets(tr, idx, TrainConfig(data=str(fer_csv))).float()
    t_p = torch.from_numpy(tp[idx]).float()
    z = torch.randn(len(idx), 7)
    ce = -(y * torch.log_softmax(z, 1)).sum(1).mean()
    torch.testing.assert_close(kd_loss(z, y, t_p, alpha=0.0, temperature=2.0), ce)
    torch.testing.assert_close(kd_loss(z, y, None, alpha=0.7, temperature=2.0), ce)

    def grad_at(logits: torch.Tensor) -> float:
        g = logits.clone().requires_grad_(True)
        kd_loss(g, y, t_p, alpha=1.0, temperature=2.0).backward()
        assert g.grad is not None
        return float(g.grad.abs().max())

    assert grad_at(2.0 * torch.log(t_p)) < 1e-6
    assert grad_at(torch.log(t_p)) > 1e-3
    assert float(torch.softmax(2.0 * torch.log(t_p), 1).max(1).values.mean()) > float(
        t_p.max(1).values.mean()
    )

    out = tmp_path / "kd"
    args = ["-q", "train", "--data", str(fer_csv), "--epochs", "1", "--limit", "256", "--out", str(out)]
    r = _emoar(*args, "--teacher", str(TEACHER), "--kd-offline", "--kd-alpha", "0.7", "--threads", "2")
    assert r.returncode == 0, r.stderr
    cfg_saved = torch.load(out / "last.pt", map_location="cpu", weights_only=False)["config"]
    assert cfg_saved["kd_offline"] is True and cfg_saved["kd_alpha"] == 0.7
    r = _emoar(*args, "--kd-offline")
    assert r.returncode == 1 and "--kd-offline needs --teacher" in r.stderr
    r = _emoar(*args, "--teacher", str(TEACHER), "--kd-alpha", "1.5")
    assert r.returncode == 1 and "--kd-alpha must be in [0, 1]" in r.stderr


def test_offline_distillation_from_an_exported_model(tmp_path: Path, fer_csv: Path) -> None:
    """--kd-offline with a shipped ONNX model as the teacher: onnxruntime gives the targets the
    float checkpoint it was quantized from gives (up to int8 noise), and the run trains; an
    exported teacher is refused online, and one with other labels is refused."""
    from emoar.classify import read_model_info
    from emoar.models import resolve_model
    from emoar.train.loop import load_checkpoint, offline_teacher_probs, onnx_teacher_probs

    tr = load_fer2013_csv(fer_csv)["Training"].subset(np.arange(256))
    ref = offline_teacher_probs(*load_checkpoint(DEFAULT_CKPT), tr.images, temperature=2.0)
    got = onnx_teacher_probs("emoar-vgg-slim", tr.images, 2.0)
    labels = read_model_info(resolve_model("emoar-vgg-slim")).labels
    assert labels == tuple(tr.label_names) and got.shape == ref.shape == (256, 7)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    assert float((got.argmax(1) == ref.argmax(1)).mean()) >= 0.95
    assert float(np.abs(got - ref).mean()) < 0.01
    # softening: a higher temperature flattens the same model's targets
    flat = onnx_teacher_probs("emoar-vgg-slim", tr.images[:32], 4.0)
    assert float(flat.max(1).mean()) < float(got[:32].max(1).mean())

    out = tmp_path / "kd_onnx"
    args = ["-q", "train", "--data", str(fer_csv), "--epochs", "1", "--limit", "256", "--out", str(out)]
    r = _emoar(*args, "--teacher", "emoar-vgg-slim", "--kd-offline", "--threads", "2")
    assert r.returncode == 0, r.stderr
    assert torch.load(out / "last.pt", map_location="cpu", weights_only=False)["config"]["teacher"] == (
        "emoar-vgg-slim"
    )
    r = _emoar(*args, "--teacher", "emoar-vgg-slim")
    assert r.returncode == 1 and "can only teach offline" in r.stderr
    r = _emoar(*args, "--teacher", "emoar-vgg-ferplus", "--kd-offline")
    assert r.returncode == 1 and "differ from" in r.stderr


MEMBER = REPO / "checkpoints" / "members" / "resnet_fer_fmix_s13_c2.pt"


def test_online_ensemble_teacher(tmp_path: Path, fer_csv: Path) -> None:
    """Several online teachers: each sees the student's batch in its own normalisation, their
    softened probabilities are averaged, and no gradient reaches them."""
    from emoar.preprocess import normalize, renormalization, unit_scale
    from emoar.train.loop import _teacher_probs, load_checkpoint

    tr = load_fer2013_csv(fer_csv)["Training"].subset(np.arange(64))
    u = torch.from_numpy(unit_scale(tr.images))
    nets = [load_checkpoint(p) for p in (TEACHER, MEMBER)]
    for net, _ in nets:
        net.float().eval().requires_grad_(False)
    # the student's own statistics differ from both teachers'
    teachers = [(net, *renormalization(0.3, 0.2, meta["mean"], meta["std"])) for net, meta in nets]
    x = normalize(u, 0.3, 0.2)
    got = _teacher_probs(teachers, x, 2.0)
    with torch.no_grad():
        ref = sum(torch.softmax(net(normalize(u, m["mean"], m["std"])) / 2.0, 1) for net, m in nets) / 2
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got.sum(1).numpy(), 1.0, atol=1e-5)
    assert not got.requires_grad
    # the two teachers disagree on some faces, so the average is not either one alone
    one = _teacher_probs(teachers[:1], x, 2.0)
    assert float((got - one).abs().max()) > 0.01

    out = tmp_path / "kd_online"
    r = _emoar(
        "-q", "train", "--data", str(fer_csv), "--epochs", "1", "--limit", "256", "--out", str(out),
        "--teacher", f"{TEACHER},{MEMBER}", "--kd-alpha", "0.8", "--kd-temperature", "2", "--threads", "2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert ck["config"]["teacher"] == f"{TEACHER},{MEMBER}" and ck["config"]["kd_offline"] is False
    assert np.isfinite(ck["history"][-1]["train_loss"])


def test_gradcam_highlights_where_the_evidence_is() -> None:
    """A net that only sees the top-left quadrant: Grad-CAM must put its mass there."""
    from emoar.train.gradcam import gradcam

    torch.manual_seed(0)
    net = create_model("cnn_small")
    with torch.no_grad():
        x = torch.zeros(2, 1, 48, 48)
        x[:, :, :16, :16] = torch.randn(2, 1, 16, 16) * 3
    cam = gradcam(net, x)
    assert cam.shape == (2, 48, 48) and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    assert cam[:, :24, :24].sum() > cam[:, 24:, 24:].sum()


def test_ferplus_task_majority_labels(fer_csv: Path) -> None:
    from emoar.labels import FERPLUS_LABELS

    d = load_dataset(fer_csv, task="ferplus")
    te = d["PrivateTest"]
    assert te.label_names == FERPLUS_LABELS and len(te.label_names) == 8
    # rows whose majority vote is "unknown"/"not a face" are dropped
    assert 3000 < len(te) < 3589
    assert te.soft is not None and np.allclose(te.soft.sum(1), 1, atol=1e-5)
    assert (te.labels == te.soft.argmax(1)).all()
    assert (te.class_counts() > 0).all()  # contempt included
    with pytest.raises(DatasetError, match="Unknown task"):
        load_dataset(fer_csv, task="affectnet")


def test_ferplus_model_trains_exports_and_evaluates(tmp_path: Path, fer_csv: Path) -> None:
    from emoar.classify import ExpressionClassifier
    from emoar.labels import FERPLUS_LABELS

    out = tmp_path / "fp"
    r = _emoar(
        "-q", "train", "--data", str(fer_csv), "--task", "ferplus", "--soft-labels", "1",
        "--epochs", "1", "--limit", "512", "--arch", "cnn_small", "--out", str(out), "--threads", "2",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    onnx_path = tmp_path / "fp.onnx"
    r = _emoar("export", "--checkpoint", str(out / "best.pt"), "--out", str(onnx_path))
    assert r.returncode == 0, r.stderr
    clf = ExpressionClassifier(onnx_path)
    assert clf.labels == FERPLUS_LABELS and clf.info.ood_quantiles
    faces = load_dataset(fer_csv, task="ferplus")["PrivateTest"].images[:16]
    res = clf.classify(faces)
    assert res.probs.shape == (16, 8) and np.allclose(res.probs.sum(1), 1, atol=1e-5)
    r = _emoar("evaluate", "--data", str(fer_csv), "--task", "ferplus", "--model", str(onnx_path),
               "--json", "--limit", "300")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n"] == 300 and rep["labels"] == list(FERPLUS_LABELS)
    # on the 7 FER2013 labels a FER+ model is scored too: a "contempt" answer counts as an error
    r = _emoar("evaluate", "--data", str(fer_csv), "--model", str(onnx_path), "--limit", "50", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    conf = np.asarray(rep["confusion"])
    assert rep["n"] == 50 and conf.shape == (8, 8) and conf[7].sum() == 0  # no true contempt


def test_optimizer_and_schedule_factories() -> None:
    import torch

    from emoar.train.optim import SCHEDULES, create_optimizer, create_scheduler

    model = torch.nn.Linear(4, 2)
    for name in ("adamw", "sgd"):
        assert create_optimizer(model, name, lr=1e-3, weight_decay=0.0).param_groups[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match="Unknown optimizer 'adam'; choose adamw or sgd"):
        create_optimizer(model, "adam", lr=1e-3, weight_decay=0.0)
    for name in SCHEDULES:
        opt = create_optimizer(model, "adamw", lr=1e-2, weight_decay=0.0)
        sched = create_scheduler(opt, name, lr=1e-2, epochs=3, steps_per_epoch=4)
        lrs = []
        for _ in range(12):
            opt.step()
            sched.step(0.5) if name == "plateau" else sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        # budget: the loop sets the rate from the clock (test_budget_schedule_...); constant here
        assert all(lr >= 0 for lr in lrs) and (name in ("plateau", "budget") or lrs[-1] < max(lrs)), (
            name,
            lrs,
        )
    with pytest.raises(ValueError, match="Unknown schedule 'linear'"):
        create_scheduler(opt, "linear", lr=1e-2, epochs=3, steps_per_epoch=4)


def test_budget_schedule_is_time_boxed(tmp_path: Path, fer_csv: Path) -> None:
    """--schedule budget: a cosine over wall-clock time; the run stops when the budget is spent,
    long before its upper bound of epochs, with the rate annealed."""
    from emoar.train.loop import budget_factor

    assert budget_factor(0.0) < 0.05 and budget_factor(0.03) == pytest.approx(0.998, abs=0.01)
    assert budget_factor(0.5) == pytest.approx(0.5, abs=1e-6) and budget_factor(1.0) == 0.0
    assert budget_factor(2.0) == 0.0 and budget_factor(0.2) > budget_factor(0.6) > budget_factor(0.9)

    out = tmp_path / "budget"
    # small epochs (128 faces) in a 12 s budget: several epochs even on a slow, shared CPU
    args = ["-q", "train", "--data", str(fer_csv), "--limit", "128", "--batch-size", "32", "--out", str(out)]
    r = _emoar(*args, "--schedule", "budget")
    assert r.returncode == 1 and "--schedule budget and --budget-minutes" in r.stderr
    r = _emoar(*args, "--schedule", "budget", "--budget-minutes", "0.2", "--epochs", "500", "--threads", "2",
               "--weight-decay", "0.005", "--mix", "fmix")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    hist = ck["history"]
    assert 1 < len(hist) < 500
    assert ck["train_seconds"] == pytest.approx(sum(h["seconds"] for h in hist), rel=0.05)
    assert 12.0 <= ck["train_seconds"] < 12.0 + 2 * max(h["seconds"] for h in hist)
    lrs = [h["lr"] for h in hist]
    assert lrs[-1] < 0.35 * max(lrs) and max(lrs) <= 3e-3
    assert ck["config"]["weight_decay"] == 0.005 and ck["config"]["budget_minutes"] == 0.2


def test_ensemble_export_averages_members(tmp_path: Path, fer_csv: Path) -> None:
    """Two checkpoints of different architectures exported as one ONNX graph: its probabilities
    are the members' averaged softmax on real faces (before the file's temperature)."""
    runs = []
    for arch, seed in (("cnn_small", "1"), ("resnet_fer", "2")):
        out = tmp_path / arch
        r = _emoar("-q", "train", "--data", str(fer_csv), "--epochs", "1", "--limit", "512", "--arch", arch,
                   "--seed", seed, "--threads", "2", "--out", str(out))  # fmt: skip
        assert r.returncode == 0, r.stderr
        runs.append(out / "best.pt")
    onnx_path = tmp_path / "ens.onnx"
    r = _emoar(
        "export", "--checkpoint", ",".join(map(str, runs)), "--weights", "fp16", "--out", str(onnx_path)
    )
    assert r.returncode == 0, r.stderr
    from emoar.classify import ExpressionClassifier, apply_temperature
    from emoar.train.loop import load_checkpoint, predict_logits

    clf = ExpressionClassifier(onnx_path)
    assert clf.info.meta.arch == "ensemble(cnn_small+resnet_fer)"
    faces = load_fer2013_csv(fer_csv)["PrivateTest"].images[:48]
    members = []
    stored = clf.info.metrics["members"]  # each member's selection, not the first's as the whole's
    assert len(stored) == 2 and "publictest_accuracy" not in clf.info.metrics
    for ck, rec in zip(runs, stored, strict=True):
        net, meta = load_checkpoint(ck)
        assert rec == {"publictest_accuracy": pytest.approx(meta["val_acc"]), "epochs": meta["epoch"]}
        lg = torch.from_numpy(np.asarray(predict_logits(net.float(), faces, meta["mean"], meta["std"])))
        members.append(torch.softmax(lg, 1).numpy())
    ref = apply_temperature((members[0] + members[1]) / 2, clf.info.temperature)
    got = clf.classify(faces)
    np.testing.assert_allclose(got.probs, ref, atol=2e-3)  # fp16 weight storage
    assert got.ood_score.shape == (48,)  # the OOD head is the first member's

    # int8: the average of the members' softmax stays float (it was uint8 before session 19)
    q8 = tmp_path / "ens.int8.onnx"
    r = _emoar("export", "--checkpoint", ",".join(map(str, runs)), "--int8", "--out", str(q8))
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort

    from emoar.preprocess import preprocess

    raw = ort.InferenceSession(str(q8)).run(
        ["probs"], {"input": preprocess(faces, clf.info.mean, clf.info.std)}
    )[0]
    assert len(np.unique(raw)) > 256  # a uint8 tensor holds at most 256 values
    q8o = ExpressionClassifier(q8).classify(faces)
    assert float((q8o.probs.argmax(1) == got.probs.argmax(1)).mean()) >= 0.85

    # members that do not fit together are refused with the reason
    six = tmp_path / "six"
    r = _emoar("-q", "train", "--data", str(fer_csv), "--epochs", "1", "--limit", "256", "--arch", "cnn_small",
               "--balance", "merge6", "--threads", "2", "--out", str(six))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = _emoar("export", "--checkpoint", f"{runs[0]},{six / 'best.pt'}", "--out", str(tmp_path / "bad.onnx"))
    assert r.returncode == 1 and "an ensemble needs the same" in r.stderr


def test_soup_averages_one_lineage_and_refuses_mismatches(tmp_path: Path, fer_csv: Path) -> None:
    """`emoar soup`: a run and its warm restart (the shipped FER+ vgg_fer lineage) averaged
    tensor for tensor; the soup classifies real faces as well as its members; checkpoints of
    another architecture or label set are refused with the reason."""
    from emoar.train.checkpoint import read_checkpoint
    from emoar.train.data import load_dataset
    from emoar.train.loop import load_checkpoint, predict_logits

    run, restart = (REPO / "checkpoints" / "members" / f"vgg_fer_gpu_ferplus_s106{s}.pt" for s in ("", "_c2"))
    out = tmp_path / "soup.pt"
    r = _emoar("soup", "--checkpoint", f"{run},{restart}", "--out", str(out))
    assert r.returncode == 0, r.stderr
    a, b, soup = (read_checkpoint(p) for p in (run, restart, out))
    assert soup["meta"]["soup"] == [str(run), str(restart)] and soup["meta"]["arch"] == "vgg_fer"
    for k, v in soup["model"].items():
        assert v.dtype == a["model"][k].dtype
        if v.is_floating_point():
            ref = (a["model"][k].float() + b["model"][k].float()) / 2
            torch.testing.assert_close(v.float(), ref, atol=1e-3, rtol=1e-3)  # stored in fp16
    assert any(not torch.equal(soup["model"][k], a["model"][k]) for k in soup["model"])

    test = load_dataset(fer_csv, "ferplus")["PublicTest"].subset(np.arange(400))
    accs, top = [], []
    for path in (run, restart, out):
        net, meta = load_checkpoint(path)
        lg = np.asarray(predict_logits(net.float(), test.images, meta["mean"], meta["std"]))
        top.append(lg.argmax(1))
        accs.append(float((top[-1] == test.labels).mean()))
    assert accs[2] >= min(accs[:2]) - 0.01 and accs[2] > 0.8, accs

    # the shipped FER+ model is this soup in int8 with 7-bit weights, which computes the same on
    # every CPU: with 8-bit weights an AVX2 CPU without VNNI agreed with the soup on 95.5% of
    # these faces (vpmaddubsw saturates), with 7 on all of them
    import onnx
    from onnx import numpy_helper

    from emoar.classify import ExpressionClassifier
    from emoar.models import resolve_model

    shipped = resolve_model("emoar-vgg-ferplus")
    clf = ExpressionClassifier(shipped)
    assert clf.info.builtin_tta == "flip"  # it averages each face with its mirror image itself
    net, meta = load_checkpoint(out)
    mirrored = np.ascontiguousarray(test.images[:, :, ::-1])
    soup_flip = sum(
        torch.softmax(
            torch.from_numpy(np.asarray(predict_logits(net.float(), x, meta["mean"], meta["std"]))), 1
        )
        for x in (test.images, mirrored)
    ).argmax(1)
    q = clf.classify(test.images).probs.argmax(1)
    assert float((q == soup_flip.numpy()).mean()) >= 0.98
    for init in onnx.load(str(shipped)).graph.initializer:
        if init.name.endswith("weight_quantized"):
            w = numpy_helper.to_array(init)
            assert w.dtype == np.int8 and np.abs(w.astype(int)).max() <= 64, init.name

    r = _emoar("soup", "--checkpoint", f"{run},{TEACHER}", "--out", str(tmp_path / "bad.pt"))
    assert r.returncode == 1 and "arch 'resnet_fer' differs" in r.stderr, r.stderr
    r = _emoar("soup", "--checkpoint", f"{TEACHER},{REPO / 'checkpoints/members/resnet_fer_ferplus_s3.pt'}",
               "--out", str(tmp_path / "bad.pt"))  # fmt: skip
    assert r.returncode == 1 and "labels" in r.stderr, r.stderr
    r = _emoar("soup", "--checkpoint", str(run), "--out", str(tmp_path / "one.pt"))
    assert r.returncode == 1 and "at least two checkpoints" in r.stderr
    assert not (tmp_path / "bad.pt").exists() and not (tmp_path / "one.pt").exists()


def test_prune_keeps_the_function_of_what_it_keeps_and_refuses_the_impossible(
    tmp_path: Path, fer_csv: Path
) -> None:
    """`emoar prune` (vgg_fer -> vgg_fer_slim): channels that are dead (zero BN scale and shift,
    so nothing after the ReLU) score zero and are the ones cut, and the cut network computes the
    same logits as the full one on real faces; on the real GPU-trained vgg_fer the pruned net,
    before any fine-tuning, still classifies real PublicTest faces far above chance; a resnet, a
    wider target or an unknown name is refused with the reason."""
    from emoar.train.checkpoint import read_checkpoint
    from emoar.train.loop import load_checkpoint, predict_logits
    from emoar.train.prune import prune_vgg

    vgg = REPO / "checkpoints" / "members" / "vgg_fer_gpu_fmix_s101_c2.pt"
    src, meta = load_checkpoint(vgg)
    src = src.float()
    test = load_fer2013_csv(fer_csv)["PublicTest"].subset(np.arange(400))
    x = (torch.from_numpy(test.images).float()[:, None] / 255 - meta["mean"]) / meta["std"]

    slim = create_model("vgg_fer_slim")
    blocks = [m for m in src.body if isinstance(m, torch.nn.Sequential)]
    kept = [m[0].out_channels for m in slim.body if isinstance(m, torch.nn.Sequential)]
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for b, k in zip(blocks, kept, strict=True):
            dead = torch.from_numpy(rng.choice(b[0].out_channels, b[0].out_channels - k, replace=False))
            b[1].weight[dead] = 0
            b[1].bias[dead] = 0
        ref = src(x)
        # scored on the faces it is checked on: a live channel silent on all of them may be cut
        # instead of a dead one (both score 0), and it changes nothing there either
        cut = prune_vgg(src, slim, x, recalibrate=False)
        torch.testing.assert_close(cut(x), ref, atol=1e-4, rtol=1e-4)
    assert sum(p.numel() for p in cut.parameters()) < 0.4 * sum(p.numel() for p in src.parameters())

    out = tmp_path / "slim.pt"
    r = _emoar("prune", "--checkpoint", str(vgg), "--data", str(fer_csv), "--faces", "800", "--out", str(out))
    assert r.returncode == 0, r.stderr
    ck = read_checkpoint(out)
    assert ck["meta"]["arch"] == "vgg_fer_slim" and ck["meta"]["pruned_channels"] == [
        40,
        40,
        80,
        80,
        160,
        160,
        320,
        320,
    ]
    net, m2 = load_checkpoint(out)
    acc = float(
        (np.asarray(predict_logits(net, test.images, m2["mean"], m2["std"])).argmax(1) == test.labels).mean()
    )
    assert acc > 0.4, acc  # 0.54 on all of PublicTest (chance: 0.25 for the majority class)

    for args, why in (
        (["--checkpoint", str(REPO / "checkpoints" / "emoar-resnet-fer.pt")], "VGG-style"),
        (["--checkpoint", str(out), "--arch", "vgg_fer"], "can only narrow"),
        (["--checkpoint", str(vgg), "--arch", "nope"], "Unknown architecture"),
    ):
        r = _emoar("prune", *args, "--data", str(fer_csv), "--out", str(tmp_path / "x.pt"))
        assert r.returncode != 0 and why in r.stderr, r.stderr
    assert not (tmp_path / "x.pt").exists()
