"""Real media for the batch tests (made on the fly; the shared photos are never copied)."""

from __future__ import annotations

from pathlib import Path

PHOTOS = Path(__file__).resolve().parents[3] / "shared" / "data" / "photos"
CLIP_FRAMES = 30  # one face in every frame (portrait.jpg shifted a pixel per frame)
CLIP_FPS = 10


def make_clip(path: Path, photo: Path, frames: int = CLIP_FRAMES, fps: int = CLIP_FPS) -> Path:
    """An mp4 of ``frames`` frames of ``photo`` shifted one pixel per frame."""
    import cv2
    import numpy as np

    im = cv2.imread(str(photo))
    assert im is not None, photo
    h, w = im.shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
    for i in range(frames):
        vw.write(np.roll(im, i, axis=1))
    vw.release()
    return path
