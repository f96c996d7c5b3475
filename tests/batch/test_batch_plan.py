"""The planner without any engine: input expansion, chunking, keys and the resume manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from batch_media import CLIP_FPS, CLIP_FRAMES

from emoar.batch.plan import InputError, Manifest, expand_inputs, media_kind, plan_tasks


def test_expand_folder_is_recursive_and_skips_non_media(media: dict[str, Path]) -> None:
    files = expand_inputs([str(media["root"])])
    names = sorted(Path(f).name for f in files)
    assert names == ["clip.mp4", "corrupt.jpg", "corrupt.mp4", "office_group.jpg", "portrait_2.jpg"]
    assert files == sorted(files) and all(Path(f).is_absolute() for f in files)


def test_expand_glob_dedup_and_explicit_files(media: dict[str, Path]) -> None:
    files = expand_inputs(
        [str(media["root"] / "*.jpg"), str(media["photo"]), str(media["root"] / "notes.txt")]
    )
    assert sorted(Path(f).name for f in files) == ["corrupt.jpg", "notes.txt", "portrait_2.jpg"]
    assert media_kind("a/B.MP4") == "video" and media_kind("x.jpeg") == "image"


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [(["/nope/missing.jpg"], "no such file or folder"), (["/nope/*.mp4"], "matches no files")],
)
def test_expand_unknown_inputs_say_what_to_do(inputs: list[str], needle: str) -> None:
    with pytest.raises(InputError, match=needle) as e:
        expand_inputs(inputs)
    assert "Check the paths" in str(e.value)


def test_expand_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no image or video files"):
        expand_inputs([str(tmp_path)])


def test_chunking_splits_videos_by_frame_index(media: dict[str, Path]) -> None:
    files = [str(media["clip"]), str(media["photo"])]
    whole = plan_tasks(files)
    assert [(t.media, t.chunk, t.start_frame, t.end_frame) for t in whole] == [
        ("video", 0, 0, -1),
        ("image", 0, 0, -1),
    ]
    chunked = plan_tasks(files, chunk_seconds=1.0)
    video = [t for t in chunked if t.media == "video"]
    step = CLIP_FPS  # 1 s
    assert [(t.chunk, t.start_frame, t.end_frame) for t in video] == [
        (0, 0, step),
        (1, step, 2 * step),
        (2, 2 * step, -1),
    ]
    assert all(t.fps == pytest.approx(CLIP_FPS) for t in video)
    assert len({t.key for t in chunked}) == len(chunked)
    # a chunk longer than the clip: one task
    assert len([t for t in plan_tasks(files, chunk_seconds=CLIP_FRAMES) if t.media == "video"]) == 1


def test_keys_are_stable_and_depend_on_settings(media: dict[str, Path]) -> None:
    files = [str(media["clip"])]
    a = plan_tasks(files, chunk_seconds=1.0, settings="s1")
    assert [t.key for t in a] == [t.key for t in plan_tasks(files, chunk_seconds=1.0, settings="s1")]
    assert not {t.key for t in a} & {t.key for t in plan_tasks(files, chunk_seconds=1.0, settings="s2")}


def test_unopenable_video_is_planned_as_an_error_task(media: dict[str, Path]) -> None:
    (t,) = plan_tasks([str(media["corrupt_mp4"])], chunk_seconds=1.0)
    assert t.media == "video" and "VideoOpenError" in t.error


def test_manifest_resume_skips_ok_and_retries_errors(tmp_path: Path, media: dict[str, Path]) -> None:
    tasks = plan_tasks([str(media["clip"]), str(media["photo"])], chunk_seconds=1.0)
    m = Manifest(tmp_path / "state" / "manifest.jsonl")
    assert m.done() == {}
    m.record(tasks[0], "ok", frames=10)
    m.record(tasks[1], "error")
    with open(m.path, "a") as f:
        f.write('{"key": "torn')  # a run killed mid-write
    assert set(m.done()) == {tasks[0].key}
    m.record(tasks[1], "ok")
    m.record(tasks[0], "error")  # a later failure wins
    assert set(m.done()) == {tasks[1].key}
