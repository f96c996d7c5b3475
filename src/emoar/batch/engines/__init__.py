"""Engines run :func:`emoar.batch.analyse.analyse_task` over many tasks and yield the results as
they finish: :mod:`~emoar.batch.engines.local` (a process pool, the default) and
:mod:`~emoar.batch.engines.ray` (Ray Data with an actor pool; needs ``emoar[ray]``).

Both have the same shape: ``run(tasks, spec, workers=...) -> Iterator[TaskResult]``. The Ray
engine can also write the results table itself (``ray.write``: a folder of part files on a local
path or a pyarrow filesystem URI), inside one ``ray.session`` with the analysis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emoar.batch.analyse import Sampling

__all__ = ["WorkerSpec"]


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker needs to analyse tasks (pickled to each worker once).

    Attributes:
        options: the :class:`emoar.pipeline.PipelineOptions` (models load once per worker).
        sampling: which video frames to analyse.
        save_annotated: folder for annotated copies, or None (no frames stored).
    """

    options: Any
    sampling: Sampling = Sampling()
    save_annotated: str | None = None
