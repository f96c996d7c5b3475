"""The batch job: plan -> (skip what the manifest says is done) -> engine -> parts on disk ->
final sorted tables. Engine-independent; :func:`run_batch` is what ``emoar batch`` calls.

Files beside ``--out results.parquet``:

- ``results.parquet``: one row per face per analysed frame (:func:`~emoar.batch.analyse.batch_columns`);
- ``results.summary.parquet``: one row per input file (:data:`~emoar.batch.sinks.SUMMARY_COLUMNS`);
- ``results.errors.parquet``: one row per failed file or chunk;
- ``results.parquet.batch/``: ``manifest.jsonl`` and one ``parts/<key>.json`` per finished task
  (what ``--resume`` reuses).

With the Ray engine and a URI ``--out`` (``s3://``, ``gs://``, ``file://``, any pyarrow
filesystem) or ``ray_write``, Ray Data writes ``results.parquet`` itself, as a folder of part
files (:func:`emoar.batch.engines.ray.write`); the summary and errors tables are single files
beside it, written through the same filesystem. The manifest lives beside the results for local
paths and ``file://`` URIs; for other URIs it lives in a temporary folder for the run only, so
``--resume`` needs a local path or ``file://``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from emoar.batch.analyse import Sampling, TaskResult, batch_columns
from emoar.batch.engines import WorkerSpec
from emoar.batch.plan import Manifest, Task, plan_tasks
from emoar.batch.sinks import (
    ERROR_COLUMNS,
    SUMMARY_COLUMNS,
    OutputError,
    ResolvedOut,
    TableWriter,
    arrow_schema,
    is_uri,
    resolve_out,
    sibling,
    sibling_uri,
    table_format,
    write_table,
)

__all__ = ["BatchConfig", "BatchReport", "run_batch", "state_dir"]


@dataclass(frozen=True)
class BatchConfig:
    """One batch job.

    Attributes:
        files: absolute paths (from :func:`emoar.batch.plan.expand_inputs`).
        out: the results table, ``.parquet`` or ``.csv``.
        options: :class:`emoar.pipeline.PipelineOptions`.
        sampling: which video frames to analyse.
        chunk_seconds: split videos into ranges this long (seconds); None: one task per video.
        engine: ``"local"`` or ``"ray"``.
        workers: processes (local) or actors (ray).
        address: Ray cluster address (``auto``, ``ray://HOST:PORT``); None starts Ray in-process.
        resume: skip tasks the manifest records as finished.
        save_annotated: folder for annotated copies; None stores no frames.
        progress: show a progress bar on stderr.
        ray_write: with the Ray engine, have Ray Data write ``out`` (a folder of part files);
            always on for a URI ``out``.
        verbose: let Ray's own log lines through to the console.
    """

    files: Sequence[str]
    out: str
    options: Any
    sampling: Sampling = Sampling()
    chunk_seconds: float | None = None
    engine: str = "local"
    workers: int = 1
    address: str | None = None
    resume: bool = False
    save_annotated: str | None = None
    progress: bool = False
    ray_write: bool = False
    verbose: bool = False


@dataclass
class BatchReport:
    """What a job did.

    Attributes:
        files: input files; tasks: tasks planned; skipped: tasks reused from the manifest.
        frames: frames analysed in this run; faces: rows in the results table (all runs).
        failed_files: files with at least one error; seconds: wall time of this run.
        task_seconds: summed analysis time of this run's tasks (worker-seconds, without the
            engine's start-up and transfer overhead).
        outputs: paths written.
    """

    files: int = 0
    tasks: int = 0
    skipped: int = 0
    frames: int = 0
    faces: int = 0
    failed_files: int = 0
    seconds: float = 0.0
    task_seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)


def state_dir(out: str | os.PathLike[str]) -> Path:
    """The manifest/parts folder of a results path (``results.parquet.batch``)."""
    p = Path(out)
    return p.with_name(p.name + ".batch")


def _settings(cfg: BatchConfig) -> str:
    return json.dumps(
        {"options": repr(cfg.options), "sampling": repr(cfg.sampling), "chunk": cfg.chunk_seconds},
        sort_keys=True,
    )


def _engine(cfg: BatchConfig) -> Callable[[Sequence[Task], WorkerSpec], Iterator[TaskResult]]:
    spec_workers = max(cfg.workers, 1)
    if cfg.engine == "ray":
        from emoar.batch.engines import ray as ray_engine

        return lambda t, s: ray_engine.run(
            t, s, workers=spec_workers, address=cfg.address, quiet=not cfg.verbose
        )
    if cfg.engine == "local":
        from emoar.batch.engines import local

        return lambda t, s: local.run(t, s, workers=spec_workers)
    raise ValueError(f"unknown engine '{cfg.engine}'; available: local, ray")


def _sort_key(row: list[Any]) -> tuple[Any, ...]:
    # source, chunk, frame, track id (None first), then the box
    return (row[0], row[2], row[3], -1 if row[6] is None else row[6], row[7], row[8])


def _certain_expressions(rows: list[list[Any]], cols: list[str]) -> list[str]:
    ie, iu = cols.index("expression"), cols.index("uncertain")
    return [r[ie] for r in rows if not r[iu]]


def _dominant(c: Counter[str], labels: tuple[str, ...]) -> str:
    """The most frequent expression (ties: the model's label order); "" when none."""
    if not c:
        return ""
    best = max(c.values())
    return next((lab for lab in labels if c.get(lab) == best), c.most_common(1)[0][0])


def ray_writes(cfg: BatchConfig) -> bool:
    """Whether Ray Data writes the results (a folder of part files) rather than the driver
    (one sorted file).

    Raises:
        ValueError: a URI ``out`` or ``ray_write`` without the Ray engine.
    """
    if cfg.engine != "ray":
        if is_uri(cfg.out):
            raise ValueError(
                f"--out '{cfg.out}' is a URI, which Ray writes: add --engine ray (or give a local path)"
            )
        if cfg.ray_write:
            raise ValueError("--ray-write needs --engine ray")
        return False
    return cfg.ray_write or is_uri(cfg.out)


def _resolve(cfg: BatchConfig) -> ResolvedOut:
    res = resolve_out(cfg.out) if is_uri(cfg.out) else ResolvedOut(cfg.out, None, cfg.out, True)
    if cfg.resume and not res.local:
        raise OutputError(
            f"--resume needs --out on a local path or a file:// URI (the manifest lives beside the "
            f"results), not '{cfg.out}'; run without --resume, or write locally and copy"
        )
    return res


def _check_part_folder(path: Path) -> None:
    """Refuse to overwrite a folder that does not look like a results folder."""
    if path.is_file():
        path.unlink()  # a single-file table of an earlier --engine local run
    elif path.is_dir():
        other = [p.name for p in path.iterdir() if p.suffix.lower() not in (".parquet", ".pq", ".csv")]
        if other:
            raise OutputError(
                f"--out '{path}' is a folder holding other files ({', '.join(sorted(other)[:3])}); "
                "Ray writes the results as a folder of part files there, replacing it: choose another --out"
            )


def _arrow_tables(
    rows: Iterator[list[list[Any]]], cols: list[str], *, block_rows: int = 65536
) -> Iterator[Any]:
    """Rows (lists in ``cols`` order) -> pyarrow tables of about ``block_rows`` rows, in order."""
    import pyarrow as pa

    schema = arrow_schema(cols)
    buf: list[list[Any]] = []

    def table() -> Any:
        cs = list(zip(*buf, strict=True)) if buf else [() for _ in cols]
        arrays = [pa.array(list(v), type=schema.field(c).type) for c, v in zip(cols, cs, strict=True)]
        return pa.Table.from_arrays(arrays, schema=schema)

    for r in rows:
        buf.extend(r)
        if len(buf) >= block_rows:
            yield table()
            buf = []
    yield table()  # the last (maybe empty) block: the schema even without rows


def run_batch(cfg: BatchConfig) -> BatchReport:
    """Run the job and write the three tables.

    Never raises for a bad input file (it becomes a row of the errors table); raises
    ``ValueError`` (:class:`~emoar.batch.sinks.OutputError` for filesystems) for a bad output
    path or engine, and the engine's own errors (Ray missing).
    """
    t0 = time.perf_counter()
    table_format(cfg.out)  # fail on a bad --out before any work
    by_ray = ray_writes(cfg)
    res = _resolve(cfg)
    tmp_state: str | None = None
    if res.local:
        out_path = Path(res.path).absolute()
        out_path.parent.mkdir(parents=True, exist_ok=True)
        if by_ray:
            _check_part_folder(out_path)
        elif out_path.is_dir():
            raise OutputError(
                f"--out '{cfg.out}' is a folder (the part files of a Ray run?); delete it or choose another --out"
            )
        state = state_dir(out_path)
    else:
        tmp_state = tempfile.mkdtemp(prefix="emoar-batch-")
        state = Path(tmp_state)
        parent = res.path.rstrip("/").rpartition("/")[0]
        if "/" in parent:  # below a bucket; object stores need no folders, so failing here is fine
            with contextlib.suppress(Exception):
                res.filesystem.create_dir(parent, recursive=True)
    try:
        with contextlib.ExitStack() as stack:
            if by_ray:  # one Ray session for the analysis and the write
                from emoar.batch.engines import ray as ray_engine

                stack.enter_context(
                    ray_engine.session(
                        workers=max(cfg.workers, 1), address=cfg.address, quiet=not cfg.verbose
                    )
                )
            return _run(cfg, res, state, by_ray, t0)
    finally:
        if tmp_state is not None:
            shutil.rmtree(tmp_state, ignore_errors=True)


def _run(cfg: BatchConfig, dest: ResolvedOut, state: Path, by_ray: bool, t0: float) -> BatchReport:
    if not cfg.resume and state.exists():
        shutil.rmtree(state)
    parts = state / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(state / "manifest.jsonl")
    if cfg.save_annotated:
        Path(cfg.save_annotated).mkdir(parents=True, exist_ok=True)

    tasks = plan_tasks(cfg.files, chunk_seconds=cfg.chunk_seconds, settings=_settings(cfg))
    done = manifest.done() if cfg.resume else {}
    todo = [t for t in tasks if not (t.key in done and (parts / f"{t.key}.json").exists())]
    report = BatchReport(files=len(cfg.files), tasks=len(tasks), skipped=len(tasks) - len(todo))

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), initial=report.skipped, unit="task", desc="emoar batch", file=sys.stderr)
    files_left = Counter(t.source for t in todo)
    files_done = len(cfg.files) - len(files_left)
    spec = WorkerSpec(cfg.options, cfg.sampling, cfg.save_annotated)
    by_key = {t.key: t for t in todo}
    t_run = time.perf_counter()
    for res in _engine(cfg)(todo, spec) if todo else iter(()):
        tmp = parts / f"{res.key}.json.tmp"
        tmp.write_text(json.dumps(res.to_dict()))
        os.replace(tmp, parts / f"{res.key}.json")
        task = by_key[res.key]
        manifest.record(task, "error" if res.error else "ok", frames=res.frames, faces=len(res.rows))
        report.frames += res.frames
        report.task_seconds += res.seconds
        files_left[res.source] -= 1
        if files_left[res.source] == 0:
            files_done += 1
        if bar is not None:
            rate = report.frames / max(time.perf_counter() - t_run, 1e-9)
            bar.set_postfix_str(f"files {files_done}/{len(cfg.files)}, {rate:.1f} frames/s", refresh=False)
            bar.update(1)
    if bar is not None:
        bar.close()

    # final tables, streamed: tasks in (source, chunk) order, each task's rows sorted, so the
    # output is globally sorted while only one task's rows are in memory
    labels: tuple[str, ...] = ()
    for t in tasks:
        labels = tuple(json.loads((parts / f"{t.key}.json").read_text()).get("labels", ()))
        if labels:
            break
    if not labels:
        from emoar.pipeline import Pipeline

        with Pipeline.from_options(cfg.options) as p:
            labels = tuple(p.labels)
    cols = batch_columns(labels)
    summary: list[list[Any]] = []
    errors: list[list[Any]] = []

    def sorted_rows() -> Iterator[list[list[Any]]]:
        """Each task's sorted rows, tasks in (source, chunk) order; fills summary and errors."""
        for src, group in groupby(sorted(tasks, key=lambda t: (t.source, t.chunk)), key=lambda t: t.source):
            chunks = frames = faces = 0
            media = ""
            expressions: Counter[str] = Counter()
            errs: list[tuple[int, str]] = []
            for t in group:
                r = TaskResult.from_dict(json.loads((parts / f"{t.key}.json").read_text()))
                rows = sorted(r.rows, key=_sort_key)
                yield rows
                chunks += 1
                frames += r.frames
                faces += len(rows)
                media = r.media
                expressions.update(_certain_expressions(rows, cols))
                if r.error:
                    errs.append((r.chunk, r.error))
            errors.extend([src, c, e] for c, e in errs)
            summary.append(
                [
                    src,
                    media,
                    chunks,
                    frames,
                    faces,
                    _dominant(expressions, labels),
                    len(errs),
                    "; ".join(e for _, e in errs),
                ]
            )

    n_rows = 0
    if by_ray:
        from emoar.batch.engines import ray as ray_engine

        out = dest.path if not dest.local else str(Path(dest.path).absolute())
        n_rows = ray_engine.write(
            _arrow_tables(sorted_rows(), cols),
            out,
            fmt=table_format(cfg.out),
            filesystem=dest.filesystem,
        )
    else:
        writer = TableWriter(dest.path, cols)
        try:
            for rows in sorted_rows():
                writer.write(rows)
                n_rows += len(rows)
        finally:
            writer.close()
    fs = None if dest.local else dest.filesystem
    write_table(sibling(dest.path, "summary"), SUMMARY_COLUMNS, summary, filesystem=fs)
    write_table(sibling(dest.path, "errors"), ERROR_COLUMNS, errors, filesystem=fs)
    report.faces = n_rows
    report.failed_files = sum(1 for s in summary if s[6])
    report.outputs = [
        str(cfg.out),
        sibling_uri(cfg.out, "summary"),
        sibling_uri(cfg.out, "errors"),
        str(state) if dest.local else "",
    ]
    report.seconds = time.perf_counter() - t0
    return report
