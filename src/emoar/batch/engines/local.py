"""The local engine: a process pool on this machine; each worker loads the models once."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from emoar.batch.analyse import TaskResult, analyse_task
from emoar.batch.engines import WorkerSpec
from emoar.batch.plan import Task

__all__ = ["run"]

_worker: dict[str, Any] = {}


def _init(spec: WorkerSpec) -> None:
    # one ONNX thread per worker: the pool is the parallelism
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import cv2

    from emoar.pipeline import Pipeline

    cv2.setNumThreads(1)
    _worker["pipe"] = Pipeline.from_options(spec.options)
    _worker["spec"] = spec


def _analyse(task: Task) -> TaskResult:
    spec: WorkerSpec = _worker["spec"]
    return analyse_task(_worker["pipe"], task, spec.sampling, save_annotated=spec.save_annotated)


def run(tasks: Sequence[Task], spec: WorkerSpec, *, workers: int = 1) -> Iterator[TaskResult]:
    """Analyse ``tasks`` in ``workers`` processes; yield each result when it finishes.

    At most ``2 * workers`` tasks are in flight (backpressure: results are written before more
    work is handed out, so memory stays flat however many files there are).
    """
    if not tasks:
        return
    ctx = mp.get_context("spawn")  # no fork of a process that may hold ONNX/OpenCV threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init, initargs=(spec,)) as ex:
        pending: set[Future[TaskResult]] = set()
        todo = iter(tasks)
        for t in todo:
            pending.add(ex.submit(_analyse, t))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.add(ex.submit(_analyse, nxt))
