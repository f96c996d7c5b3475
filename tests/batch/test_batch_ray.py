"""The Ray engine gives the local engine's rows: in-process, and on a real two-node cluster on
this machine (``ray.cluster_utils.Cluster``: a head and a second node, one CPU each, so the two
actors must run on different nodes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from emoar.batch.job import BatchConfig, run_batch
from emoar.batch.plan import expand_inputs
from emoar.pipeline import PipelineOptions

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


def _run(media: dict[str, Path], out: Path, **kw: Any) -> BatchConfig:
    cfg = BatchConfig(
        files=expand_inputs([str(media["root"])]),
        out=str(out),
        options=PipelineOptions(),
        chunk_seconds=1.0,
        **kw,
    )
    run_batch(cfg)
    return cfg


def _tables(out: Path) -> tuple[Any, Any, Any]:
    return (
        pq.read_table(out),
        pq.read_table(out.with_name(out.stem + ".summary.parquet")),
        pq.read_table(out.with_name(out.stem + ".errors.parquet")),
    )


@pytest.fixture(scope="module")
def local_tables(media: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    out = tmp_path_factory.mktemp("local") / "res.parquet"
    _run(media, out, engine="local", workers=2)
    return _tables(out)


def test_ray_in_process_matches_local(media: dict[str, Path], tmp_path: Path, local_tables: Any) -> None:
    out = tmp_path / "res.parquet"
    _run(media, out, engine="ray", workers=2)
    assert not ray.is_initialized()  # started here, shut down afterwards
    got = _tables(out)
    for a, b in zip(local_tables, got, strict=True):
        assert a.schema == b.schema
        assert a.to_pylist() == b.to_pylist()
    assert got[0].num_rows > 30 and got[2].num_rows == 2


def test_two_node_cluster_runs_the_job(media: dict[str, Path], tmp_path: Path, local_tables: Any) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out = tmp_path / "res.parquet"
        _run(media, out, engine="ray", workers=2, address=cluster.address)
        assert _tables(out)[0].to_pylist() == local_tables[0].to_pylist()
        assert _tables(out)[1].to_pylist() == local_tables[1].to_pylist()
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_ray_writes_a_file_uri_folder_with_clean_stderr_and_resume(
    media: dict[str, Path], tmp_path: Path, local_tables: Any, capfd: Any, monkeypatch: Any
) -> None:
    """``--out file://...`` with ``--engine ray``: Ray Data writes a folder of part files that reads
    back (pyarrow.dataset) as the local engine's single file; the summary and errors tables sit
    beside it; stderr shows only emoar's lines; ``--resume`` works on file:// URIs."""
    import re

    import pyarrow.dataset as pds

    from emoar.batch import job
    from emoar.batch.engines import ray as ray_engine
    from emoar.cli import main

    out = tmp_path / "uri" / "res.parquet"
    argv = ["batch", str(media["root"]), "--engine", "ray", "--workers", "2", "--chunk-seconds", "1"]
    argv += ["--out", out.as_uri()]
    with ray_engine.session(workers=2):  # one Ray start-up for both runs
        assert main(argv) == 1  # the two corrupt files
        err = capfd.readouterr().err
        # FFmpeg's own complaint about corrupt.mp4 (from OpenCV, engine-independent) may show
        lines = [ln for ln in re.split(r"[\r\n]+", err) if ln.strip() and not re.match(r"\[[\w,]+ @ 0x", ln)]
        assert lines and all(ln.startswith("emoar batch") for ln in lines), err
        assert "part files written by Ray" in lines[-1]
        assert out.is_dir() and list(out.glob("*.parquet"))
        got = pds.dataset(out).to_table()
        assert got.schema == local_tables[0].schema
        assert got.to_pylist() == local_tables[0].to_pylist()
        assert pq.read_table(out.with_name("res.summary.parquet")).to_pylist() == local_tables[1].to_pylist()
        assert pq.read_table(out.with_name("res.errors.parquet")).to_pylist() == local_tables[2].to_pylist()
        assert (out.with_name("res.parquet.batch") / "manifest.jsonl").exists()
        # resume: nothing analysed again; small blocks give several part files, still in order
        small = job._arrow_tables
        monkeypatch.setattr(job, "_arrow_tables", lambda rows, cols: small(rows, cols, block_rows=7))
        assert main(["-q", *argv, "--resume", "--json"]) == 1
        rep = capfd.readouterr()
        assert '"skipped": 5' in rep.out and "(5 reused from the manifest)" in rep.err
        assert len(list(out.glob("*.parquet"))) > 3
        assert pds.dataset(out).to_table().to_pylist() == local_tables[0].to_pylist()
