"""The Ray engine: Ray Data streams tasks through an actor pool whose actors load the models
once (``pip install "emoar[ray]"``). ``address``: ``None`` starts Ray in-process, ``"auto"`` or
``"ray://HOST:PORT"`` joins an existing cluster.

:func:`session` starts (or joins) Ray for a whole job, :func:`run` analyses the tasks and
:func:`write` has Ray Data write the results table (``Dataset.write_parquet`` / ``write_csv``: a
folder of part files, on a local path or any pyarrow filesystem URI).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from emoar.batch.analyse import TaskResult, analyse_task
from emoar.batch.engines import WorkerSpec
from emoar.batch.plan import Task

__all__ = ["RayUnavailableError", "quiet_ray_logs", "run", "session", "write"]


class RayUnavailableError(RuntimeError):
    """Ray (Ray Data) is not installed, or the cluster cannot be joined."""


class _Analyser:
    """A Ray Data actor: loads the pipeline once, analyses one task per batch."""

    def __init__(self, spec: WorkerSpec) -> None:
        import cv2

        from emoar.pipeline import Pipeline

        cv2.setNumThreads(1)
        self.spec = spec
        self.pipe = Pipeline.from_options(spec.options)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = []
        for task_json in batch["task"]:
            task = Task.from_dict(json.loads(task_json))
            res = analyse_task(self.pipe, task, self.spec.sampling, save_annotated=self.spec.save_annotated)
            out.append(json.dumps(res.to_dict()))
        return {"result": out}


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: never phone home
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # CPU-only; silences a FutureWarning
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RayUnavailableError(
            'the Ray engine needs Ray Data: pip install "emoar[ray]" (or use --engine local)'
        ) from e
    return ray


def quiet_ray_logs(quiet: bool = True) -> None:
    """Keep Ray Data's own log lines (execution plans, "Progress bars disabled", object store
    advice, ...) off the console: its console handlers show errors only. They still go to the
    session's ``logs/ray-data/`` files. ``quiet=False`` puts Ray's defaults back (``-v``).

    Ray Data configures the ``ray.data`` logger when it is imported, so this runs after import.
    """
    level = logging.ERROR if quiet else logging.INFO
    for name in ("ray.data", "ray"):
        for h in logging.getLogger(name).handlers:
            if not isinstance(h, logging.FileHandler):
                h.setLevel(level)
    # Ray's own logger (ray.init, autoscaler) has no handler with configure_logging=False; the
    # last-resort handler would print its warnings
    logging.getLogger("ray").setLevel(logging.ERROR if quiet else logging.NOTSET)


@contextlib.contextmanager
def session(*, workers: int = 1, address: str | None = None, quiet: bool = True) -> Iterator[Any]:
    """Ray for one job: started in-process (``workers`` + 1 CPUs) when ``address`` is None and
    shut down afterwards; a cluster joined by address is left running. Yields the ``ray``
    module. Reuses an already initialised Ray (and leaves it running).

    Raises:
        RayUnavailableError: Ray is not installed, or the cluster at ``address`` cannot be joined.
    """
    ray = _import_ray()
    quiet_ray_logs(quiet)
    started = False
    if not ray.is_initialized():
        kw: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": not quiet,
            "configure_logging": False,
        }
        if address:
            try:
                ray.init(address=address, **kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise RayUnavailableError(
                    f"could not join the Ray cluster at '{address}' ({e}). Start one with `ray start --head` "
                    "(and `ray start --address HEAD:6379` on other machines), or leave out --address to "
                    "run Ray in this process"
                ) from e
        else:  # "local": always a fresh in-process instance, never a cluster someone else started
            ray.init(address="local", num_cpus=max(workers, 1) + 1, **kw)
        started = True
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # emoar draws its own bar
    ctx.print_on_execution_start = False
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def run(
    tasks: Sequence[Task],
    spec: WorkerSpec,
    *,
    workers: int = 1,
    address: str | None = None,
    quiet: bool = True,
) -> Iterator[TaskResult]:
    """Analyse ``tasks`` on ``workers`` Ray actors (1 CPU each); yield results as they stream in.

    Ray Data's streaming executor keeps only a bounded number of tasks in flight and results
    are consumed as they come, so memory stays flat. Runs in the current :func:`session`, or in
    one of its own.
    """
    if not tasks:
        return
    with session(workers=workers, address=address, quiet=quiet) as ray:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = False
        items = [{"task": json.dumps(t.to_dict())} for t in tasks]
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 200))
        remote_args: dict[str, Any] = {}
        if address is None and not _joined(ray):
            # one machine: an actor that dies takes the job with it (``--resume`` continues);
            # restarts would also make Ray warn that the actor's arguments live in the object store
            remote_args["max_restarts"] = 0
        ds = ds.map_batches(
            _Analyser,
            fn_constructor_args=(spec,),
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
            batch_format="numpy",
            **remote_args,
        )
        for batch in ds.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
            for r in batch["result"]:
                yield TaskResult.from_dict(json.loads(str(r)))


def _joined(ray: Any) -> bool:
    """Whether the current Ray is a cluster of more than one node."""
    try:
        return len(ray.nodes()) > 1
    except Exception:  # noqa: BLE001
        return True


def write(tables: Iterable[Any], path: str, *, fmt: str, filesystem: Any = None) -> int:
    """Have Ray Data write ``tables`` (pyarrow tables, in order) as a folder of part files at
    ``path`` (replacing what is there). Runs in the current :func:`session`.

    The tables are handed to the object store one by one (it spills to disk when full), and the
    blocks keep their order: part files are named ``<uuid>_<index>_...``, so reading the folder
    back (``pyarrow.dataset.dataset(path)``, which lists files in name order) gives the rows in
    the order given. Returns the number of rows.
    """
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    refs: list[Any] = []
    schema, n = None, 0
    for t in tables:
        schema = t.schema
        n += t.num_rows
        if t.num_rows:
            refs.append(ray.put(t))
    if not refs and schema is not None:  # no rows at all: one empty part keeps the schema
        refs.append(ray.put(schema.empty_table()))
    ds = ray.data.from_arrow_refs(refs)
    kw: dict[str, Any] = {"filesystem": filesystem, "mode": "overwrite"}
    if fmt == "parquet":
        ds.write_parquet(path, **kw)
    else:
        ds.write_csv(path, **kw)
    return n
