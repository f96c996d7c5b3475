"""The chunk analyser without any engine, on real media."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from batch_media import CLIP_FRAMES

from emoar.batch.analyse import Sampling, analyse_task, batch_columns, selected
from emoar.batch.plan import plan_tasks
from emoar.types import csv_header


def test_columns_are_the_video_csv_contract_plus_batch_fields(pipe: Any) -> None:
    cols = batch_columns(pipe.labels)
    assert cols[:3] == ["source", "media", "chunk"]
    assert [c for c in cols if c not in ("source", "media", "chunk", "frame_pts_ms")] == csv_header(
        pipe.labels
    )
    assert cols.index("frame_pts_ms") == cols.index("timestamp_ms") + 1


def test_image_rows(pipe: Any, media: dict[str, Path]) -> None:
    (task,) = plan_tasks([str(media["group"])])
    res = analyse_task(pipe, task)
    assert not res.error and res.frames == 1
    assert len(res.rows) == 8  # office_group.jpg: eight people
    cols = batch_columns(pipe.labels)
    row = dict(zip(cols, res.rows[0], strict=True))
    assert row["media"] == "image" and row["track_id"] is None and row["frame"] == 0
    assert sum(row[f"p_{n}"] for n in pipe.labels) == pytest.approx(1.0, abs=1e-3)


def test_chunks_cover_the_same_frames_as_the_whole_video(pipe: Any, media: dict[str, Path]) -> None:
    whole = [analyse_task(pipe, t) for t in plan_tasks([str(media["clip"])])]
    chunks = [analyse_task(pipe, t) for t in plan_tasks([str(media["clip"])], chunk_seconds=1.0)]
    assert len(whole) == 1 and len(chunks) == 3
    assert not any(r.error for r in whole + chunks)
    frames = lambda rs: [row[3] for r in rs for row in r.rows]  # noqa: E731
    assert frames(whole) == frames(chunks) == list(range(CLIP_FRAMES))  # one face per frame
    assert sum(r.frames for r in chunks) == CLIP_FRAMES
    # timestamps are the video contract's frame * 1000 / fps; pts come from the container
    assert [row[4] for row in whole[0].rows][:3] == [0.0, 100.0, 200.0]
    assert [row[5] for row in whole[0].rows][:3] == pytest.approx([0.0, 100.0, 200.0], abs=1.0)


def test_sampling_is_by_global_frame_index(pipe: Any, media: dict[str, Path]) -> None:
    assert [i for i in range(10) if selected(i, 10.0, Sampling(every_n_frames=3))] == [0, 3, 6, 9]
    assert [i for i in range(30) if selected(i, 10.0, Sampling(fps=2.0))] == [0, 5, 10, 15, 20, 25]
    with pytest.raises(ValueError, match="every-n-frames"):
        Sampling(every_n_frames=0)
    s = Sampling(every_n_frames=4)
    chunks = [analyse_task(pipe, t, s) for t in plan_tasks([str(media["clip"])], chunk_seconds=1.0)]
    assert [row[3] for r in chunks for row in r.rows] == list(range(0, CLIP_FRAMES, 4))


@pytest.mark.parametrize("name", ["corrupt_jpg", "corrupt_mp4"])
def test_corrupt_files_become_errors_not_crashes(pipe: Any, media: dict[str, Path], name: str) -> None:
    (task,) = plan_tasks([str(media[name])])
    res = analyse_task(pipe, task)
    assert res.error and not res.rows and res.frames == 0
    assert str(media[name]) in res.error


def test_no_frames_stored_unless_asked(pipe: Any, media: dict[str, Path], tmp_path: Path) -> None:
    tasks = plan_tasks([str(media["photo"]), str(media["clip"])], chunk_seconds=2.0)
    for t in tasks:
        analyse_task(pipe, t, Sampling(every_n_frames=5))
    assert list(tmp_path.iterdir()) == []
    for t in tasks:
        analyse_task(pipe, t, Sampling(every_n_frames=5), save_annotated=str(tmp_path))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0].startswith("clip_") and names[-1].endswith("_emoar.jpg")
