"""The batch job on the local engine and the ``emoar batch`` command: tables, schema, resume,
exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from batch_media import CLIP_FRAMES

from emoar.batch.job import BatchConfig, run_batch, state_dir
from emoar.batch.plan import expand_inputs
from emoar.cli import main
from emoar.pipeline import PipelineOptions


def _cfg(media: dict[str, Path], out: Path, **kw: Any) -> BatchConfig:
    return BatchConfig(
        files=expand_inputs([str(media["root"])]),
        out=str(out),
        options=PipelineOptions(),
        chunk_seconds=1.0,
        **kw,
    )


def test_local_engine_tables_and_parquet_schema(media: dict[str, Path], tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "res.parquet"
    rep = run_batch(_cfg(media, out, workers=2))
    assert rep.files == 5 and rep.tasks == 7 and rep.failed_files == 2
    t = pq.read_table(out)
    schema = t.schema
    assert schema.field("source").type == pa.string() and schema.field("frame").type == pa.int64()
    assert schema.field("track_id").type == pa.int64() and schema.field("p_neutral").type == pa.float64()
    assert schema.names[:6] == ["source", "media", "chunk", "frame", "timestamp_ms", "frame_pts_ms"]
    rows = t.to_pylist()
    clip = [r for r in rows if r["source"].endswith("clip.mp4")]
    assert len(clip) == CLIP_FRAMES and {r["media"] for r in clip} == {"video"}
    assert len([r for r in rows if r["source"].endswith("office_group.jpg")]) == 8
    keys = [(r["source"], r["chunk"], r["frame"]) for r in rows]
    assert keys == sorted(keys)  # deterministic order
    summary = {
        r["source"].rsplit("/", 1)[-1]: r for r in pq.read_table(tmp_path / "res.summary.parquet").to_pylist()
    }
    assert summary["clip.mp4"]["frames_analysed"] == CLIP_FRAMES and summary["clip.mp4"]["chunks"] == 3
    assert (
        summary["clip.mp4"]["dominant_expression"] == "neutral"
        and summary["clip.mp4"]["faces"] == CLIP_FRAMES
    )
    assert summary["corrupt.jpg"]["errors"] == 1 and "ImageReadError" in summary["corrupt.jpg"]["error"]
    errors = pq.read_table(tmp_path / "res.errors.parquet").to_pylist()
    assert sorted(Path(e["source"]).name for e in errors) == ["corrupt.jpg", "corrupt.mp4"]
    assert (state_dir(out) / "manifest.jsonl").exists()


def test_resume_skips_finished_tasks_and_gives_the_same_tables(
    media: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "res.csv"
    first = run_batch(_cfg(media, out))
    before = out.read_text()
    # lose one finished chunk (as if the run had been killed before it): only it runs again
    manifest = state_dir(out) / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    keep = [ln for ln in lines if not (json.loads(ln)["chunk"] == 2)]
    manifest.write_text("".join(ln + "\n" for ln in keep))
    again = run_batch(_cfg(media, out, resume=True))
    failed = 2  # the corrupt files are tried again on every resume
    assert again.skipped == first.tasks - failed - 1
    assert again.frames == CLIP_FRAMES - 20
    assert out.read_text() == before
    # without --resume everything runs again
    assert run_batch(_cfg(media, out)).skipped == 0


def test_cli_csv_exit_codes_and_messages(media: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "r.csv"
    rc = main(
        ["-q", "batch", str(media["photo"]), str(media["clip"]), "--out", str(out), "--every-n-frames", "10"]
    )
    assert rc == 0
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [r["frame"] for r in rows if r["media"] == "video"] == ["0", "10", "20"]
    assert rows[0]["track_id"] in ("", "1")
    assert "face rows" in capsys.readouterr().err
    # a corrupt file: the others are still analysed, exit 1
    rc = main(["-q", "batch", str(media["photo"]), str(media["corrupt_jpg"]), "--out", str(out)])
    assert rc == 1 and "1 file(s) failed" in capsys.readouterr().err
    # usage errors: exit 2 with what to do
    assert main(["-q", "batch", str(tmp_path / "missing.jpg"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["-q", "batch", str(media["photo"]), "--out", str(tmp_path / "r.xlsx")]) == 2
    assert ".parquet or .csv" in capsys.readouterr().err
    assert main(["-q", "batch", str(media["photo"]), "--out", str(out), "--address", "auto"]) == 2


def test_cli_shares_the_pipeline_flags(media: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "r.csv"
    rc = main(
        ["-q", "batch", str(media["photo"]), "--out", str(out), "--tta", "--detector", "yunet", "--json"]
    )
    assert rc == 0 and json.loads(capsys.readouterr().out)["faces"] == 1
    assert main(["-q", "batch", str(media["photo"]), "--out", str(out), "--model", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


_BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "pyarrow"):
            raise ImportError(f"{name} blocked for this test")
sys.meta_path.insert(0, _Block())
from emoar.cli import main
rc = main(sys.argv[1:])
assert "ray" not in sys.modules and "torch" not in sys.modules
sys.exit(rc)
"""


@pytest.mark.parametrize(
    ("suffix", "rc", "needle"), [(".csv", 0, "face rows"), (".parquet", 2, "pip install pyarrow")]
)
def test_local_engine_and_csv_work_without_ray_or_pyarrow(
    media: dict[str, Path], tmp_path: Path, suffix: str, rc: int, needle: str
) -> None:
    import subprocess
    import sys

    out = tmp_path / f"r{suffix}"
    p = subprocess.run(
        [sys.executable, "-c", _BLOCK, "-q", "batch", str(media["photo"]), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == rc, p.stderr
    assert needle in p.stderr


def test_uri_outputs_need_ray_and_a_known_scheme(media: dict[str, Path], tmp_path: Path, capsys: Any) -> None:
    from emoar.batch.sinks import sibling_uri, table_format

    photo = str(media["photo"])
    assert main(["-q", "batch", photo, "--out", (tmp_path / "r.parquet").as_uri()]) == 2
    assert "add --engine ray" in capsys.readouterr().err
    assert main(["-q", "batch", photo, "--out", str(tmp_path / "r.parquet"), "--ray-write"]) == 2
    assert "--ray-write needs --engine ray" in capsys.readouterr().err
    pytest.importorskip("pyarrow")
    assert main(["-q", "batch", photo, "--engine", "ray", "--out", "foo://bucket/r.parquet"]) == 2
    err = capsys.readouterr().err
    assert "unknown filesystem 'foo://'" in err and "Traceback" not in err
    assert table_format("s3://b/r.parquet?region=eu-west-1") == "parquet"
    assert sibling_uri("s3://b/d/r.parquet?region=x", "summary") == "s3://b/d/r.summary.parquet?region=x"
