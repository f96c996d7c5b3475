"""Assertions shared by the web tests (imported by the test modules in this folder)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

#: Screenshots of the browser tests (gitignored).
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "web"


def assert_error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Check an error response: the status, a JSON body ``{"error", "message", "status"}``, the code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status and isinstance(body["message"], str) and body["message"], body
    if code is not None:
        assert body["error"] == code, body
    return body


def y4m_bytes(frame_bgr: np.ndarray, n_frames: int = 3, fps: int = 15) -> bytes:
    """A YUV4MPEG2 clip (what Chromium's fake camera reads): text header + raw I420 frames."""
    import cv2

    h, w = frame_bgr.shape[:2]
    i420 = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    out = io.BytesIO()
    out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode("ascii"))
    for _ in range(n_frames):
        out.write(b"FRAME\n")
        out.write(i420)
    return out.getvalue()
