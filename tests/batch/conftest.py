"""Real media for the batch tests: the shared photos, a short clip made from one of them, and
corrupt files (valid-looking names, broken content)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from batch_media import PHOTOS, make_clip

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A mixed input folder: two photos (one in a subfolder), a 3 s clip, a corrupt JPEG and a
    corrupt MP4."""
    if not (PHOTOS / "portrait.jpg").exists():
        pytest.skip(f"shared photos not found at {PHOTOS}")
    root = tmp_path_factory.mktemp("batch_media")
    (root / "sub").mkdir()
    (root / "portrait_2.jpg").symlink_to(PHOTOS / "portrait_2.jpg")
    (root / "sub" / "office_group.jpg").symlink_to(PHOTOS / "office_group.jpg")
    make_clip(root / "clip.mp4", PHOTOS / "portrait.jpg")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not a jpeg" * 20)
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 100)
    (root / "notes.txt").write_text("ignored: not media")
    return {
        "root": root,
        "clip": root / "clip.mp4",
        "photo": root / "portrait_2.jpg",
        "group": root / "sub" / "office_group.jpg",
        "corrupt_jpg": root / "corrupt.jpg",
        "corrupt_mp4": root / "corrupt.mp4",
    }


@pytest.fixture(scope="session")
def pipe():  # type: ignore[no-untyped-def]
    """The default pipeline, loaded once."""
    from emoar.pipeline import Pipeline, PipelineOptions

    with Pipeline.from_options(PipelineOptions()) as p:
        yield p
