"""``emoar batch`` argument parsing and command (registered by :mod:`emoar.cli`; imports stay light)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``batch`` verb on the main parser's subparsers."""
    from emoar.cli import _add_pipeline_args

    b = sub.add_parser(
        "batch",
        help="analyse whole archives of images and videos (local pool or Ray)",
        description="One row per face per analysed frame (the `emoar video --csv` columns plus source, "
        "media, chunk, frame_pts_ms), a per-file summary and an errors table beside it.",
    )
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="image/video files, folders (recursive), globs")
    b.add_argument(
        "--out",
        required=True,
        metavar="RESULTS.parquet|.csv",
        help="the results table: a local path, or with --engine ray a URI (s3://, gs://, file://, any "
        "pyarrow filesystem) that Ray writes as a folder of part files",
    )
    s = b.add_mutually_exclusive_group()
    s.add_argument(
        "--every-n-frames", type=int, default=1, metavar="K", help="videos: analyse every K-th frame"
    )
    s.add_argument(
        "--fps", type=float, default=None, metavar="F", help="videos: analyse about F frames per second"
    )
    b.add_argument(
        "--chunk-seconds",
        type=float,
        default=None,
        metavar="S",
        help="split videos into ranges of S seconds so one file spreads over workers (track ids restart per range)",
    )
    b.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="local process pool or Ray Data"
    )
    b.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes (local) or actors (ray); default: CPUs",
    )
    b.add_argument(
        "--address",
        default=None,
        metavar="auto|ray://HOST:PORT",
        help="join a Ray cluster (default: start Ray here)",
    )
    b.add_argument(
        "--ray-write",
        action="store_true",
        help="with --engine ray: Ray Data writes --out as a folder of part files (always so for a URI --out); "
        "default for a local path: one sorted file written here",
    )
    b.add_argument("--resume", action="store_true", help="skip files and chunks finished by an earlier run")
    b.add_argument(
        "--save-annotated", metavar="DIR", default=None, help="also write annotated images/videos here"
    )
    b.add_argument("--json", action="store_true", help="print the run report as JSON on stdout")
    _add_pipeline_args(b)
    b.set_defaults(func=cmd_batch)
    return b


def cmd_batch(args: argparse.Namespace) -> int:
    """Run ``emoar batch``. Exit 0 when every file was analysed, 1 when some failed (the others
    are still in the tables), 2 for usage errors."""
    import json

    from emoar.batch.analyse import Sampling
    from emoar.batch.job import BatchConfig, run_batch
    from emoar.batch.plan import InputError, expand_inputs
    from emoar.batch.sinks import OutputError, ParquetUnavailableError, is_uri, resolve_out, table_format
    from emoar.cli import CliError, _load_pipeline, _pipeline_options

    def usage(msg: str) -> int:
        print(f"emoar batch: error: {msg}", file=sys.stderr)
        return 2

    try:
        table_format(args.out)
        sampling = Sampling(every_n_frames=args.every_n_frames, fps=args.fps)
        options = _pipeline_options(args)
        files = expand_inputs(args.inputs)
        _load_pipeline(args).close()  # an unknown model/detector fails here, not in every worker
    except (InputError, CliError, ValueError) as e:
        return usage(str(e))
    if table_format(args.out) == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            return usage(
                f"writing Parquet needs pyarrow: pip install pyarrow (or write --out {Path(args.out).with_suffix('.csv')})"
            )
    if args.chunk_seconds is not None and args.chunk_seconds <= 0:
        return usage(f"--chunk-seconds must be > 0, got {args.chunk_seconds}")
    if args.address and args.engine != "ray":
        return usage("--address needs --engine ray")
    if args.engine != "ray" and (args.ray_write or is_uri(args.out)):
        return usage(
            f"--out '{args.out}' is a URI, which Ray writes: add --engine ray (or give a local path)"
            if is_uri(args.out)
            else "--ray-write needs --engine ray"
        )
    workers = args.workers or max(1, min(os.cpu_count() or 1, len(files)))
    if workers < 1:
        return usage(f"--workers must be >= 1, got {workers}")
    if args.engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            return usage('--engine ray needs Ray Data: pip install "emoar[ray]" (or use --engine local)')
    if is_uri(args.out):  # an unknown scheme, missing credentials: fail before any analysis
        try:
            dest = resolve_out(args.out)
        except (OutputError, ParquetUnavailableError) as e:
            return usage(str(e))
        if args.resume and not dest.local:
            return usage(
                f"--resume needs --out on a local path or a file:// URI (the manifest lives beside the "
                f"results), not '{args.out}'"
            )
    cfg = BatchConfig(
        files=files,
        out=args.out,
        options=options,
        sampling=sampling,
        chunk_seconds=args.chunk_seconds,
        engine=args.engine,
        workers=workers,
        address=args.address,
        resume=args.resume,
        save_annotated=args.save_annotated,
        progress=not args.quiet,
        ray_write=args.ray_write,
        verbose=bool(args.verbose),
    )
    from emoar.batch.engines.ray import RayUnavailableError

    try:
        rep = run_batch(cfg)
    except (ParquetUnavailableError, RayUnavailableError, OutputError) as e:
        return usage(str(e))
    except OSError as e:  # the filesystem failed mid-run (credentials expired, disk full, ...)
        # Ray wraps a worker's error with its traceback: the last line is the error itself
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        print(
            f"emoar batch: error: writing the results failed: {lines[-1] if lines else type(e).__name__}"
            " (finished tasks are in the manifest: --resume continues where a local or file:// --out left off)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(rep.__dict__, indent=1))
    rate = rep.frames / rep.seconds if rep.seconds else 0.0
    print(
        f"emoar batch: {rep.files} file(s), {rep.tasks} task(s)"
        + (f" ({rep.skipped} reused from the manifest)" if rep.skipped else "")
        + f"; {rep.frames} frames analysed ({rate:.1f} frames/s), {rep.faces} face rows"
        + (f"; {rep.failed_files} file(s) failed, see {rep.outputs[2]}" if rep.failed_files else "")
        + f" -> {rep.outputs[0]}"
        + (
            " (a folder of part files written by Ray; + summary, errors)"
            if cfg.engine == "ray" and (cfg.ray_write or is_uri(cfg.out))
            else " (+ summary, errors)"
        ),
        file=sys.stderr,
    )
    return 1 if rep.failed_files else 0
