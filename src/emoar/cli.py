"""``emoar`` command line: one thin function per verb (parse -> options -> library call).

Exit codes: 0 ok; 2 usage error; 1 an input could not be processed (message on stderr).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoar.cliargs import comma_list

__all__ = ["main", "build_parser"]

logger = logging.getLogger("emoar")


class CliError(Exception):
    """A user-facing error: printed to stderr, exit code 1."""


def _err(msg: str) -> None:
    print(f"emoar: error: {msg}", file=sys.stderr)


# ----------------------------------------------------------------------------- helpers
def _pipeline_specs() -> dict[str, Any]:
    """How each stage's options appear as flags (names kept from earlier releases)."""
    from emoar.classify import ClassifierOptions
    from emoar.cliargs import OptionsSpec
    from emoar.detect.base import DetectorOptions
    from emoar.overlay.options import OverlayOptions
    from emoar.smooth import SmootherOptions
    from emoar.track import TrackerOptions

    return {
        "classifier": OptionsSpec(
            ClassifierOptions,
            names={"num_threads": "threads"},
            aliases={"num_threads": ["num-threads"]},
            group="classifier (ClassifierOptions)",
            special={"tta": {"nargs": "?", "const": "flip"}},
        ),
        "detector": OptionsSpec(
            DetectorOptions,
            names={"name": "detector"},
            skip=("num_threads",),
            group="face detector (DetectorOptions; --threads applies too)",
        ),
        "tracker": OptionsSpec(TrackerOptions, prefix="track", group="tracking (TrackerOptions)"),
        "smoother": OptionsSpec(SmootherOptions, prefix="smooth", group="smoothing (SmootherOptions)"),
        "overlay": OptionsSpec(
            OverlayOptions,
            bool_names={
                "show_emoji": "emoji",
                "show_label": "label",
                "show_confidence": "confidence",
                "show_bars": "bars",
                "show_quote": "quote",
                "show_box": "box",
                "tilt_with_landmarks": "tilt",
            },
            group="overlay (OverlayOptions)",
        ),
    }


def _pipeline_options(args: argparse.Namespace) -> Any:
    """The PipelineOptions the flags describe (each stage's dataclass validates its values)."""
    from emoar.pipeline import PipelineOptions

    specs = _pipeline_specs()
    classifier = specs["classifier"].build(args)
    return PipelineOptions(
        classifier=classifier,
        detector=specs["detector"].build(args, num_threads=classifier.num_threads),
        tracker=specs["tracker"].build(args),
        smoother=specs["smoother"].build(args),
        overlay=specs["overlay"].build(args),
    )


def _add_tta(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default=None,
        choices=["flip", "crops"],
        help="test-time augmentation: --tta (= flip) averages each face with its mirror image "
        "(2x classifier time); --tta crops averages ten views (five shifted crops and mirrors, 10x)",
    )


def _load_pipeline(args: argparse.Namespace) -> Any:
    from emoar.classify import ModelMetadataError
    from emoar.models import UnknownModelError
    from emoar.pipeline import Pipeline

    try:
        return Pipeline.from_options(_pipeline_options(args))
    except (UnknownModelError, ModelMetadataError, ValueError) as e:
        raise CliError(str(e)) from e


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """Every stage option as a flag (derived from the dataclasses; see emoar.cliargs)."""
    for spec in _pipeline_specs().values():
        spec.add_to(p)


def _progress(total: int | None, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, file=sys.stderr, leave=False)


# ----------------------------------------------------------------------------- verbs
def cmd_analyze(args: argparse.Namespace) -> int:
    import cv2

    from emoar.io import MediaError, read_image

    pipe = _load_pipeline(args)
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    failed = 0
    with pipe:
        for path in args.images:
            try:
                frame = read_image(path)
                res = pipe.process(frame, image=os.path.basename(path))
            except (MediaError, ValueError) as e:
                _err(f"{path}: {e}" if str(path) not in str(e) else str(e))
                failed += 1
                continue
            d = res.to_dict()
            results.append(d)
            if out_dir:
                stem = Path(path).stem
                annotated = pipe.render(frame, res)
                cv2.imwrite(str(out_dir / f"{stem}_emoar.jpg"), annotated, [cv2.IMWRITE_JPEG_QUALITY, 92])
                (out_dir / f"{stem}.json").write_text(json.dumps(d, indent=1))
            if not args.json:
                faces = (
                    ", ".join(
                        f"#{i + 1} {'uncertain' if f['uncertain'] else f['expression']} "
                        f"({max(f['probs'].values()):.0%})"
                        for i, f in enumerate(d["faces"])
                    )
                    or "no face found"
                )
                print(f"{path}: {len(d['faces'])} face(s): {faces}")
    if args.json:
        print(json.dumps(results[0] if len(args.images) == 1 and results else results, indent=1))
    if out_dir and not args.json:
        print(f"annotated images and JSON written to {out_dir}/", file=sys.stderr)
    return 1 if failed else 0


def cmd_video(args: argparse.Namespace) -> int:
    from emoar.io import ThreadedSink, VideoOpenError, VideoSink, VideoSource, prefetch
    from emoar.types import csv_header

    out = args.out
    jsonl_path = args.jsonl
    if args.json not in (None, "-"):  # the old form: --json FRAMES.jsonl
        print(
            "emoar: warning: '--json FILE' is now '--jsonl FILE' (--json prints to stdout)", file=sys.stderr
        )
        jsonl_path = jsonl_path or args.json
    to_stdout = args.json == "-"
    if not (args.out or args.csv or jsonl_path or to_stdout or args.plot):
        out = f"{Path(args.input).stem}_emoar.mp4"
    pipe = _load_pipeline(args)
    labels = pipe.labels
    try:
        src = VideoSource(args.input)
    except VideoOpenError as e:
        raise CliError(str(e)) from e
    tracks: dict[int, list[tuple[float, list[float]]]] = {}
    n_frames = 0
    full = 0
    with pipe, src:
        stream = pipe.new_stream()
        # decode, analyse and encode overlap: a reader and a writer thread around this one
        sink = ThreadedSink(VideoSink(out, fps=src.fps, resolution_wh=src.resolution_wh)) if out else None
        csv_f = open(args.csv, "w", newline="") if args.csv else None  # noqa: SIM115
        json_f = sys.stdout if to_stdout else (open(jsonl_path, "w") if jsonl_path else None)  # noqa: SIM115
        writer = csv.writer(csv_f) if csv_f else None
        if writer:
            writer.writerow(csv_header(labels))
        bar = _progress(src.frame_count or None, Path(args.input).name, not args.quiet)
        try:
            for idx, ts, frame in prefetch(src):
                res = pipe.process(frame, stream=stream, frame_index=idx, timestamp_ms=ts)
                n_frames += 1
                if sink is not None:
                    sink.write(pipe.render(frame, res, stream=stream))
                if writer:
                    writer.writerows(res.csv_rows(labels))
                for f in res.faces:
                    if f.track_id is not None:
                        tracks.setdefault(f.track_id, []).append((ts / 1000.0, [f.probs[n] for n in labels]))
                if json_f:
                    json_f.write(json.dumps(res.frame_dict()) + "\n")
                bar.update(1)
        finally:
            full = stream.full_detections
            bar.close()
            if sink is not None:
                sink.close()
            if csv_f:
                csv_f.close()
            if json_f is not None and json_f is not sys.stdout:
                json_f.close()
    if n_frames == 0:
        raise CliError(f"{args.input}: no frames could be read")
    if args.plot:
        from emoar.plots import plot_tracks

        plot_tracks(tracks, labels, args.plot)
    print(
        f"{args.input}: {n_frames} frames, {len(tracks)} track(s)"
        + (f"; faces detected in full on {full} of {n_frames} frames" if full < n_frames else "")
        + (f"; annotated video -> {out}" if out else ""),
        file=sys.stderr,
    )
    return 0


def cmd_webcam(args: argparse.Namespace) -> int:
    from emoar.io import VideoOpenError, VideoSink, VideoSource

    try:
        src = VideoSource(int(args.camera) if str(args.camera).isdigit() else args.camera)
    except VideoOpenError as e:
        raise CliError(
            f"{e}. Use 'emoar video FILE' for a recorded clip, or 'emoar serve' for the browser page."
        ) from e
    display = _open_display()
    if display is None and not args.out:
        src.close()
        raise CliError(
            "No display to show the live window (headless session or no GUI toolkit); "
            "pass --out FILE.mp4 to record the annotated stream, or run 'emoar serve' and open the page"
        )
    pipe = _load_pipeline(args)
    sink = VideoSink(args.out, fps=src.fps or 15, resolution_wh=src.resolution_wh) if args.out else None
    with pipe, src:
        stream = pipe.new_stream()
        try:
            for idx, ts, frame in src:
                res = pipe.process(frame, stream=stream, frame_index=idx, timestamp_ms=ts)
                img = pipe.render(frame, res, stream=stream)
                if sink is not None:
                    sink.write(img)
                if display is not None and not display(img):
                    break
                if args.max_frames and idx + 1 >= args.max_frames:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            if sink is not None:
                sink.close()
    return 0


def cmd_meeting_create(args: argparse.Namespace) -> int:
    from emoar.meeting.client import MeetingError, create_room

    try:
        room = create_room(args.server, args.title, args.visibility, args.retention_hours)
    except MeetingError as e:
        raise CliError(str(e)) from e
    host = f"{args.server.rstrip('/')}/meet/{room['room_id']}/host#token={room['host_token']}"
    if args.json:
        print(json.dumps({**room, "host_dashboard": host}))
    else:
        print(f"room {room['room_id']} ({room['visibility']}), join code {room['join_code']}")
        print(f"participants: {room['join_url']}")
        print(f"host dashboard (keep it private, it holds the host key): {host}")
    return 0


def cmd_meeting_join(args: argparse.Namespace) -> int:
    from emoar.io import VideoOpenError, VideoSource
    from emoar.meeting.client import (
        MeetingError,
        join_room,
        open_virtual_camera,
        parse_join_url,
        render_avatar,
    )

    try:
        link = parse_join_url(args.url, args.code)
    except MeetingError as e:
        raise CliError(str(e)) from e
    try:
        src = VideoSource(int(args.camera) if str(args.camera).isdigit() else args.camera)
    except VideoOpenError as e:
        raise CliError(f"{e}. Pass --camera N for another camera, or a video file") from e
    cam = None
    if args.virtual_camera:
        try:
            cam = open_virtual_camera(640, 480, 15)
        except MeetingError as e:
            src.close()
            raise CliError(str(e)) from e
    pipe = _load_pipeline(args)

    def show(msg: dict[str, Any]) -> None:
        if not args.quiet:
            print(f"sent: {json.dumps(msg)}", file=sys.stderr)

    def avatar(msg: dict[str, Any]) -> None:
        if cam is not None:
            cam.send(render_avatar(msg["expression"], face=msg["face"], paused=msg["paused"]))
            cam.sleep_until_next_frame()

    print(
        "Only the expression label, its probabilities and 'face found' are sent; no image leaves this "
        "machine. Ctrl-C leaves the room.",
        file=sys.stderr,
    )
    with pipe, src:
        stream = pipe.new_stream()
        try:
            out = join_room(
                link,
                src,
                lambda frame, i, ts: pipe.process(frame, stream=stream, frame_index=i, timestamp_ms=ts),
                display_name=args.name,
                on_send=show,
                on_frame=avatar,
                max_frames=args.max_frames,
            )
        except MeetingError as e:
            raise CliError(str(e)) from e
        except KeyboardInterrupt:
            return 0
        finally:
            if cam is not None:
                cam.close()
    print(
        f"left the room after {out['frames']} frames ({out['sent']} messages sent)"
        + ("; the host ended the room" if out.get("ended") else ""),
        file=sys.stderr,
    )
    return 0


def _open_display() -> Any:
    """A callable showing a BGR frame in a window (False when closed), or None if impossible."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return None
    import cv2

    try:
        cv2.namedWindow("emoar", cv2.WINDOW_NORMAL)
    except cv2.error:
        pass
    else:

        def show_cv(img: Any) -> bool:
            cv2.imshow("emoar", img)
            return (cv2.waitKey(1) & 0xFF) not in (27, ord("q"))

        return show_cv
    try:
        import tkinter as tk

        from PIL import Image, ImageTk
    except ImportError:
        return None
    try:
        root = tk.Tk()
    except tk.TclError:
        return None
    root.title("emoar (press q to quit)")
    label = tk.Label(root)
    label.pack()
    state = {"open": True}
    root.bind("q", lambda e: state.update(open=False))
    root.protocol("WM_DELETE_WINDOW", lambda: state.update(open=False))

    def show_tk(img: Any) -> bool:
        photo = ImageTk.PhotoImage(Image.fromarray(img[:, :, ::-1]))
        label.configure(image=photo)
        label.image = photo  # type: ignore[attr-defined]
        root.update()
        return state["open"]

    return show_tk


def cmd_models(args: argparse.Namespace) -> int:
    from emoar.classify import read_model_info
    from emoar.models import default_model_name, list_models

    rows: list[dict[str, Any]] = []
    for m in list_models():
        info = read_model_info(m.path)
        rows.append(
            {
                "name": m.name,
                "default": m.name == default_model_name(),
                "file": m.file,
                "size_mb": round(m.path.stat().st_size / 1e6, 2),
                "labels": list(info.labels),
                "input_size": list(info.input_size),
                "description": m.description,
                "metrics": m.metrics,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'name':24} {'acc':>6} {'mF1':>6} {'MB':>6} {'ms/face':>8}  description")

    def fmt(metrics: dict[str, Any], k: str, spec: str) -> str:
        v = metrics.get(k)
        return format(v, spec) if isinstance(v, (int, float)) else "-"

    for r in rows:
        mt: dict[str, Any] = r["metrics"]
        print(
            f"{r['name'] + (' *' if r['default'] else ''):24} {fmt(mt, 'privatetest_accuracy', '.3f'):>6} "
            f"{fmt(mt, 'privatetest_macro_f1', '.3f'):>6} {r['size_mb']:>6.2f} {fmt(mt, 'latency_ms_1thread', '.2f'):>8}  {r['description']}"
        )
    print(
        "* default. accuracy/macro-F1: PrivateTest (FER2013 labels; 8-class FER+ models: FER+ majority "
        "labels), measured by 'python benchmarks/accuracy.py'; "
        "latency: 'python benchmarks/speed.py'"
    )
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from emoar.modelmeta import ModelMetadataError
    from emoar.models import UnknownModelError
    from emoar.train.calibrate import calibrate_model
    from emoar.train.data import DatasetError

    if not args.out and not args.dry_run:
        raise CliError(
            "say where to write the calibrated model: --out FILE.onnx (or --dry-run to only measure)"
        )
    try:
        r = calibrate_model(
            args.model,
            args.data,
            split=args.split,
            report_split=args.report_split or None,
            out=None if args.dry_run else args.out,
            task=args.task,
            limit=args.limit,
        )
    except (DatasetError, UnknownModelError, ModelMetadataError, ValueError) as e:
        raise CliError(str(e)) from e
    except ImportError as e:
        raise CliError(f"emoar calibrate needs the onnx package: pip install 'emoar[train]' ({e})") from e
    if args.json:
        print(json.dumps(r.to_dict()))
        return 0
    print(
        f"{r.split} ({r.n} faces, accuracy {r.accuracy:.4f}): temperature {r.previous_temperature:.3f} -> "
        f"{r.temperature:.3f}; ECE {r.ece_before:.4f} -> {r.ece_after:.4f}, NLL {r.nll_before:.4f} -> {r.nll_after:.4f}"
    )
    if r.report:
        q = r.report
        print(
            f"{q['split']} ({q['n']} faces, not used for fitting): ECE {q['ece_before']:.4f} -> "
            f"{q['ece_after']:.4f}, NLL {q['nll_before']:.4f} -> {q['nll_after']:.4f}"
        )
    print(f"wrote {r.out}" if r.out else "nothing written (--dry-run)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from emoar.train.data import DatasetError
    from emoar.train.evaluate import evaluate

    try:
        rep = evaluate(
            args.data,
            split=args.split,
            model=args.model,
            tta=args.tta or "none",
            plots_dir=args.plots,
            limit=args.limit,
            task=args.task,
        )
    except DatasetError as e:
        raise CliError(str(e)) from e
    if args.json:
        print(json.dumps(rep))
        return 0
    views = []
    if rep["builtin_tta"] != "none":
        views.append(f"{rep['builtin_tta']} built into the graph")
    if rep["tta_mode"] not in ("none", rep["builtin_tta"]):
        views.append(f"--tta {rep['tta_mode']}")
    print(
        f"{args.split} ({rep['n']} faces), model {rep['model']}"
        + (f" ({'; '.join(views)})" if views else "")
        + f": accuracy {rep['accuracy']:.4f}, macro-F1 {rep['macro_f1']:.4f}, ECE {rep['ece']:.4f}"
    )
    print(f"{'class':10} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>6}")
    for name, r in rep["per_class"].items():
        print(f"{name:10} {r['precision']:9.3f} {r['recall']:7.3f} {r['f1']:6.3f} {r['n']:6d}")
    if args.plots:
        print(f"plots written to {args.plots}/", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from emoar.train.augment import AugmentConfig
        from emoar.train.data import DatasetError
        from emoar.train.loop import TrainConfig, train
    except ImportError as e:
        raise CliError(f"training needs PyTorch: pip install 'emoar[train]' ({e})") from e
    if not 0.0 <= args.cutout <= 1.0:
        raise CliError(f"--cutout must be in [0, 1], got {args.cutout}")
    if not 0.0 <= args.kd_alpha <= 1.0:
        raise CliError(f"--kd-alpha must be in [0, 1], got {args.kd_alpha}")
    if args.kd_temperature <= 0:
        raise CliError(f"--kd-temperature must be > 0, got {args.kd_temperature}")
    if args.kd_offline and not args.teacher:
        raise CliError("--kd-offline needs --teacher CHECKPOINT")
    if (args.schedule == "budget") != (args.budget_minutes > 0):
        raise CliError("--schedule budget and --budget-minutes M (> 0) go together")
    if args.weight_decay < 0:
        raise CliError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        budget_minutes=args.budget_minutes,
        label_smoothing=args.label_smoothing,
        balance=args.balance,
        soft_labels=args.soft_labels,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        limit=args.limit,
        teacher=args.teacher or "",
        kd_alpha=args.kd_alpha,
        kd_temperature=args.kd_temperature,
        kd_offline=args.kd_offline,
        init=args.init or "",
        task=args.task,
        ema_decay=args.ema,
        extra=args.extra or "",
        augment=AugmentConfig(mix=args.mix, cutout_p=args.cutout),
    )
    try:
        best = train(cfg, resume=args.resume, progress=not args.quiet, max_minutes=args.max_minutes)
    except (DatasetError, ValueError) as e:
        raise CliError(str(e)) from e
    print(f"best checkpoint: {best}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from emoar.train.export_cli import run_export
    except ImportError as e:
        raise CliError(f"export needs PyTorch and onnx: pip install 'emoar[train]' ({e})") from e
    try:
        path = run_export(
            args.checkpoint,
            fmt=args.format,
            out=args.out,
            int8=args.int8,
            data=args.data,
            name=args.name,
            weights=args.weights,
            calibrate=not args.no_calibrate,
            flip=args.flip,
        )
    except ValueError as e:
        raise CliError(str(e)) from e
    print(path)
    return 0


def cmd_soup(args: argparse.Namespace) -> int:
    try:
        from emoar.train.checkpoint import average_checkpoints
    except ImportError as e:
        raise CliError(f"soup needs PyTorch: pip install 'emoar[train]' ({e})") from e
    paths = comma_list(args.checkpoint)
    try:
        print(average_checkpoints(paths, args.out))
    except ValueError as e:
        raise CliError(str(e)) from e
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    try:
        from emoar.train.prune import prune_checkpoint
    except ImportError as e:
        raise CliError(f"prune needs PyTorch: pip install 'emoar[train]' ({e})") from e
    try:
        print(prune_checkpoint(args.checkpoint, args.arch, args.data, args.out, faces=args.faces))
    except ValueError as e:
        raise CliError(str(e)) from e
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from emoar.web.app import SERVE_SETTINGS_ENV, create_app, uvicorn_options
        from emoar.web.settings import Settings, SettingsError
    except ImportError as e:
        raise CliError(f"the web app needs its extra: pip install 'emoar[web]' ({e})") from e
    try:
        specs = _pipeline_specs()
        cls_given, det_given = specs["classifier"].given(args), specs["detector"].given(args)
        top = {
            "host": args.host,
            "port": args.port,
            "model": cls_given.get("model"),
            "detector": det_given.get("name"),
            "num_threads": cls_given.get("num_threads"),
            "workers": args.workers,
        }
        settings = Settings.from_env(**top)
        # Pipeline flags win over EMOAR_PIPELINE__... values, field by field.
        changes = {}
        for part, spec in specs.items():
            given = {k: v for k, v in spec.given(args).items() if k not in ("model", "name", "num_threads")}
            if given:
                changes[part] = dataclasses.replace(getattr(settings.pipeline, part), **given)
        if changes:
            settings = Settings.from_env(**top, pipeline=settings.pipeline.replace(**changes))
    except (SettingsError, ValueError) as e:
        raise CliError(str(e)) from e
    print(f"emoar serving on http://{settings.host}:{settings.port}/  (API docs: /docs)", flush=True)
    if settings.workers > 1:
        if not settings.broker_url:
            print(
                "note: meeting rooms are off with several workers unless EMOAR_BROKER_URL=redis://... "
                "is set (a room's sockets would land on different processes)",
                file=sys.stderr,
                flush=True,
            )
        # each worker process rebuilds exactly these settings (flags included)
        os.environ[SERVE_SETTINGS_ENV] = settings.model_dump_json()
        uvicorn.run(
            "emoar.web.app:app_from_serve",
            factory=True,
            workers=settings.workers,
            **uvicorn_options(settings),
        )
        return 0
    uvicorn.run(create_app(settings), **uvicorn_options(settings))
    return 0


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (also used to document the CLI)."""
    from emoar import __version__

    p = argparse.ArgumentParser(
        prog="emoar", description="Facial expression recognition with AR overlays, offline."
    )
    p.add_argument("--version", action="version", version=f"emoar {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    a = sub.add_parser("analyze", help="faces and expressions in images")
    a.add_argument("images", nargs="+", metavar="IMAGE")
    a.add_argument(
        "--json", action="store_true", help="print JSON (one object per image; a list when several)"
    )
    a.add_argument("--out", metavar="DIR", help="write annotated images and per-image JSON here")
    _add_pipeline_args(a)
    a.set_defaults(func=cmd_analyze)

    v = sub.add_parser("video", help="annotate a video file; per-frame CSV/JSONL and a plot")
    v.add_argument("input", metavar="INPUT")
    v.add_argument(
        "--out", metavar="OUT.mp4", help="annotated video (default: INPUT_emoar.mp4 when no other output)"
    )
    v.add_argument("--csv", metavar="FRAMES.csv", help="one row per face per frame")
    v.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="print the per-frame JSON (one line per frame) to stdout (as --json does on every verb)",
    )
    v.add_argument("--jsonl", metavar="FRAMES.jsonl", help="write the per-frame JSON Lines to this file")
    v.add_argument("--plot", metavar="PLOT.png", help="expressions over time per track")
    _add_pipeline_args(v)
    v.set_defaults(func=cmd_video)

    w = sub.add_parser("webcam", help="live camera with overlays in a window")
    w.add_argument("--camera", default="0", help="camera index or device path (default 0)")
    w.add_argument("--out", metavar="OUT.mp4", help="also record the annotated stream")
    w.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = until q/Esc)")
    _add_pipeline_args(w)
    w.set_defaults(func=cmd_webcam)

    s = sub.add_parser(
        "serve",
        help="web app + REST API",
        description="Every setting is also an EMOAR_* environment variable (see SECURITY.md and "
        "src/emoar/web/settings.py); the flags below win over the environment.",
    )
    s.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1; EMOAR_HOST)")
    s.add_argument("--port", type=int, default=None, help="TCP port (default 8000; EMOAR_PORT)")
    s.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes (default 1; EMOAR_WORKERS); with more than one, meeting rooms "
        "need EMOAR_BROKER_URL=redis://...",
    )
    _add_pipeline_args(s)
    s.set_defaults(func=cmd_serve)

    t = sub.add_parser("train", help="train a model (needs the 'train' extra)")
    t.add_argument(
        "--data", required=True, help="fer2013.csv(.gz), a train/+test/ folder, or <class>/ folders"
    )
    t.add_argument(
        "--arch",
        default="resnet_fer",
        help="architecture (resnet_fer, resnet_fer_m, vgg_fer, vgg_fer_slim, mobilenetv2_fer, vit_tiny_fer, vit_small_fer, cnn_small)",
    )
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--out", default="runs/train", help="output folder (checkpoints, history)")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT from OUT/last.pt (with its stored settings)",
    )
    t.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="stop cleanly after the epoch that exceeds this wall time",
    )
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument(
        "--schedule",
        default="onecycle",
        choices=["onecycle", "cosine", "step", "plateau", "budget"],
        help="budget: cosine over --budget-minutes of wall-clock time, then stop (--epochs is an upper bound)",
    )
    t.add_argument(
        "--budget-minutes",
        type=float,
        default=0,
        help="wall-clock training time of the budget schedule (a time-boxed run, e.g. on a borrowed GPU)",
    )
    t.add_argument(
        "--weight-decay", type=float, default=5e-4, help="AdamW's decoupled / SGD's L2 weight decay"
    )
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--balance", default="none", choices=["none", "weighted", "sampler", "merge6"])
    t.add_argument(
        "--soft-labels", type=float, default=0.0, help="weight of FER+ vote distributions in the target (0-1)"
    )
    t.add_argument("--mix", default="none", choices=["none", "mixup", "cutmix", "fmix"])
    t.add_argument(
        "--cutout", type=float, default=0.4, help="share of faces with a random square cut out (0-1)"
    )
    t.add_argument("--ema", type=float, default=0.999, help="EMA decay of weights (0 = off)")
    t.add_argument("--patience", type=int, default=0, help="early stopping patience in epochs (0 = off)")
    t.add_argument(
        "--teacher",
        help="checkpoint of a stronger model to distil from; several, comma-separated, distil "
        "their averaged probabilities (an ensemble); online, each teacher sees the student's "
        "augmented batch in its own normalisation; with --kd-offline also an exported model "
        "(.onnx or a shipped name such as emoar-ensemble), run by onnxruntime",
    )
    t.add_argument(
        "--kd-alpha", type=float, default=0.5, help="weight of the teacher in the loss/targets (0-1)"
    )
    t.add_argument("--kd-temperature", type=float, default=4.0, help="distillation temperature")
    t.add_argument(
        "--kd-offline",
        action="store_true",
        help="compute the teacher's (flip-averaged) probabilities once and mix them into the "
        "targets instead of running the teacher every step (about half the epoch time on a CPU)",
    )
    t.add_argument("--init", help="start from the weights of this checkpoint (fine-tuning)")
    t.add_argument(
        "--extra",
        help="extra labelled training faces: .npz with 'images' (N, 48, 48) uint8 and 'labels' (N,) "
        "class names, e.g. from 'emoar gan synth'; several, comma-separated",
    )
    t.add_argument(
        "--task",
        default="fer2013",
        choices=["fer2013", "ferplus"],
        help="label set (ferplus: 8-class FER+ majority votes)",
    )
    t.add_argument("--limit", type=int, default=0, help="use only the first N training images")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy, macro-F1, confusion matrix on a labelled dataset")
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="PrivateTest")
    e.add_argument("--model", default="default", help="shipped name, .onnx file or training checkpoint (.pt)")
    e.add_argument("--json", action="store_true")
    e.add_argument("--plots", metavar="DIR", help="write confusion/reliability/curves PNGs here")
    _add_tta(e)
    e.add_argument(
        "--limit", type=int, default=0, help="evaluate only the first N faces of the split (quick checks)"
    )
    e.add_argument(
        "--task",
        default="fer2013",
        choices=["fer2013", "ferplus"],
        help="label set (ferplus: 8-class FER+ majority votes)",
    )
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser(
        "calibrate",
        help="fit a model's temperature on a held-out split (ECE down, same top class) and store it in the file",
    )
    c.add_argument("--data", required=True, help="fer2013.csv(.gz) (or a layout 'emoar evaluate' reads)")
    c.add_argument("--model", default="default", help="shipped name or .onnx file")
    c.add_argument(
        "--split", default="PublicTest", help="split to fit on (PublicTest; report on PrivateTest)"
    )
    c.add_argument(
        "--report-split", default="PrivateTest", help="split measured before/after, not fitted on ('' = none)"
    )
    c.add_argument("--out", help="the calibrated .onnx to write (the model's own path to update it in place)")
    c.add_argument("--dry-run", action="store_true", help="measure and print; write nothing")
    c.add_argument(
        "--task",
        default=None,
        choices=["fer2013", "ferplus"],
        help="label set (default: from the model's labels)",
    )
    c.add_argument("--limit", type=int, default=0, help="use only the first N faces of each split")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_calibrate)

    x = sub.add_parser("export", help="export a checkpoint to ONNX (+int8) or TF Lite")
    x.add_argument(
        "--checkpoint",
        required=True,
        help="a checkpoint; several, comma-separated, export an ensemble (probabilities averaged in one graph)",
    )
    x.add_argument("--format", default="onnx", choices=["onnx", "tflite"])
    x.add_argument("--int8", action="store_true", help="post-training static int8 quantization (ONNX only)")
    x.add_argument(
        "--weights",
        default="fp32",
        choices=["fp32", "fp16"],
        help="ONNX weight storage: fp16 halves the file, the graph still computes in float32",
    )
    x.add_argument(
        "--flip",
        action="store_true",
        help="build flip test-time augmentation into the graph (ONNX): probabilities averaged over "
        "each face and its mirror image, about 2x the time per face; --tta flip is then a no-op",
    )
    x.add_argument("--out", help="output file")
    x.add_argument(
        "--data", help="training data to fit OOD statistics / calibrate (default: the checkpoint's)"
    )
    x.add_argument("--name", help="model name stored in the file")
    x.add_argument(
        "--no-calibrate",
        action="store_true",
        help="skip the temperature fit on PublicTest (ONNX; see 'emoar calibrate')",
    )
    x.set_defaults(func=cmd_export)

    sp = sub.add_parser(
        "soup", help="average the weights of checkpoints of one lineage (a run and its warm restarts)"
    )
    sp.add_argument("--checkpoint", required=True, help="two or more checkpoints, comma-separated")
    sp.add_argument("--out", required=True, help="the averaged checkpoint to write")
    sp.set_defaults(func=cmd_soup)

    pr = sub.add_parser(
        "prune",
        help="cut a trained vgg_fer down to a narrower one (e.g. vgg_fer_slim), keeping its most "
        "useful channels, to fine-tune with 'emoar train --init'",
    )
    pr.add_argument("--checkpoint", required=True, help="the trained checkpoint (a vgg_fer)")
    pr.add_argument("--arch", default="vgg_fer_slim", help="the narrower architecture (default: %(default)s)")
    pr.add_argument(
        "--data", required=True, help="training data (FER2013 CSV or folder) to score channels on"
    )
    pr.add_argument(
        "--faces", type=int, default=3000, help="training faces to score channels on (default: %(default)s)"
    )
    pr.add_argument("--out", required=True, help="the pruned checkpoint to write")
    pr.set_defaults(func=cmd_prune)

    mt = sub.add_parser("meeting", help="meeting mode from the command line: create a room, join one")
    msub = mt.add_subparsers(dest="meeting_verb", required=True, metavar="ACTION")
    mc = msub.add_parser("create", help="create a room on a running 'emoar serve' and print its links")
    mc.add_argument("--title", required=True)
    mc.add_argument("--visibility", default="host", choices=["host", "everyone", "aggregate"])
    mc.add_argument("--retention-hours", type=float, default=24.0, help="how long the room's history is kept")
    mc.add_argument(
        "--server", default="http://127.0.0.1:8000", help="the emoar server (default %(default)s)"
    )
    mc.add_argument("--json", action="store_true", help="print the room as JSON")
    mc.set_defaults(func=cmd_meeting_create)
    mj = msub.add_parser(
        "join", help="join a room as a participant with this machine's camera (only the expression is sent)"
    )
    mj.add_argument("url", metavar="URL", help="the participant link (http://HOST:PORT/meet/ROOM?code=CODE)")
    mj.add_argument("--code", help="the join code, if the link has none")
    mj.add_argument("--name", help="display name (default: anonymous)")
    mj.add_argument("--camera", default="0", help="camera index, device path or a video file (default 0)")
    mj.add_argument(
        "--virtual-camera",
        action="store_true",
        help="also show your live emoji avatar as a virtual webcam (pyvirtualcam; v4l2loopback on Linux, OBS elsewhere)",
    )
    mj.add_argument("--max-frames", type=int, default=0, help="leave after N frames (0 = until Ctrl-C)")
    _add_pipeline_args(mj)
    mj.set_defaults(func=cmd_meeting_join)

    from emoar.batch.cli import add_parser as add_batch_parser
    from emoar.train.federated.cli import add_parser as add_federated_parser
    from emoar.train.stargan_cli import add_parser as add_gan_parser

    add_batch_parser(sub)
    add_federated_parser(sub)
    add_gan_parser(sub)

    m = sub.add_parser("models", help="list shipped models with their measured accuracy")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emoar`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except CliError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
