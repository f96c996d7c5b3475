"""The desktop participant: ``emoar meeting join URL`` runs the local pipeline on a camera (or a
clip) and shares only the expression with a room — the same protocol as the browser page — and
optionally shows the live emoji avatar as a virtual webcam for Zoom / Meet / Teams.

Nothing but labels, probabilities and "face found" leaves the machine; the avatar frames are
drawn here from the bundled emoji sprites (:func:`render_avatar`).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from emoar.types import FrameResult

__all__ = [
    "JoinLink",
    "MeetingError",
    "create_room",
    "join_room",
    "parse_join_url",
    "render_avatar",
    "state_message",
]

#: Send the state on change, at most this often (seconds), and at least this often as a heartbeat.
MIN_INTERVAL_S = 0.5
HEARTBEAT_S = 5.0


class MeetingError(RuntimeError):
    """A room could not be created or joined (the message says why and what to do)."""


@dataclass(frozen=True)
class JoinLink:
    """A participant link, taken apart: ``http://host:port/meet/<room>?code=<code>``."""

    base: str
    room_id: str
    code: str


def parse_join_url(url: str, code: str | None = None) -> JoinLink:
    """Split a participant link; ``code`` overrides the one in the link.

    Raises:
        MeetingError: not an emoar room link.
    """
    u = urllib.parse.urlsplit(url)
    parts = [p for p in u.path.split("/") if p]
    if u.scheme not in ("http", "https") or len(parts) < 2 or parts[0] != "meet":
        raise MeetingError(f"{url!r} is not a room link (expected http://HOST:PORT/meet/ROOM?code=CODE)")
    found = urllib.parse.parse_qs(u.query).get("code", [""])[0]
    if not (code or found):
        raise MeetingError("the link has no join code: add ?code=... or pass --code")
    return JoinLink(f"{u.scheme}://{u.netloc}", parts[1], code or found)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - the user's own server
            out: dict[str, Any] = json.loads(r.read())
            return out
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("message", str(e))
        except ValueError:
            msg = str(e)
        raise MeetingError(f"{url}: {msg}") from e
    except urllib.error.URLError as e:
        raise MeetingError(f"cannot reach {url} ({e.reason}); is 'emoar serve' running there?") from e


def create_room(
    server: str, title: str, visibility: str = "host", retention_hours: float = 24.0
) -> dict[str, Any]:
    """``POST /v1/rooms`` on ``server``; returns the room (with the host token)."""
    return _post(
        f"{server.rstrip('/')}/v1/rooms",
        {"title": title, "visibility": visibility, "retention_hours": retention_hours},
    )


def state_message(result: FrameResult | None, *, paused: bool = False) -> dict[str, Any]:
    """The ``state`` message for a frame's result: its largest face, or no face; when paused
    only ``paused`` (nothing about the face is sent)."""
    if paused or result is None:
        return {"type": "state", "expression": None, "probs": {}, "face": False, "paused": paused}
    if not result.faces:
        return {"type": "state", "expression": None, "probs": {}, "face": False, "paused": False}
    f = max(result.faces, key=lambda x: (x.box_xyxy[2] - x.box_xyxy[0]) * (x.box_xyxy[3] - x.box_xyxy[1]))
    probs = {k: round(float(v), 4) for k, v in f.probs.items()}
    return {"type": "state", "expression": f.expression, "probs": probs, "face": True, "paused": False}


def render_avatar(
    expression: str | None, *, face: bool = True, paused: bool = False, size: tuple[int, int] = (640, 480)
) -> npt.NDArray[np.uint8]:
    """One frame of the emoji avatar (BGR uint8, ``size`` = (width, height)): the expression's
    sprite centred on a dark background, dimmed with a caption when paused or no face is seen."""
    from emoar.overlay import SPRITE_NAMES, load_sprite

    w, h = size
    frame = np.full((h, w, 3), (40, 33, 29), np.uint8)
    name = expression if expression in SPRITE_NAMES and face and not paused else "neutral"
    sprite = load_sprite(name)
    side = int(min(w, h) * 0.6)
    rgba = cv2.resize(sprite, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = rgba[:, :, 3:4] / 255.0 * (0.35 if paused or not face else 1.0)
    y0, x0 = (h - side) // 2 - h // 16, (w - side) // 2
    roi = frame[y0 : y0 + side, x0 : x0 + side].astype(np.float32)
    frame[y0 : y0 + side, x0 : x0 + side] = (rgba[:, :, :3] * alpha + roi * (1 - alpha)).astype(np.uint8)
    caption = "paused" if paused else (expression or "") if face else "no face"
    if caption:
        scale = h / 480 * 1.1
        (tw, th), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        cv2.putText(
            frame,
            caption,
            ((w - tw) // 2, y0 + side + th + h // 24),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (230, 230, 230),
            2,
            cv2.LINE_AA,
        )
    return frame


def open_virtual_camera(width: int, height: int, fps: float) -> Any:
    """A pyvirtualcam camera, or a :class:`MeetingError` naming what to install."""
    try:
        import pyvirtualcam
    except ImportError as e:
        raise MeetingError(
            "--virtual-camera needs pyvirtualcam (pip install pyvirtualcam) and a virtual camera device: "
            "on Linux v4l2loopback (sudo apt install v4l2loopback-dkms && sudo modprobe v4l2loopback), "
            "on Windows/macOS OBS Studio's virtual camera"
        ) from e
    try:
        return pyvirtualcam.Camera(width=width, height=height, fps=fps, fmt=pyvirtualcam.PixelFormat.BGR)
    except RuntimeError as e:
        raise MeetingError(
            f"no virtual camera device ({e}); on Linux: sudo apt install v4l2loopback-dkms && sudo modprobe "
            "v4l2loopback; on Windows/macOS: install OBS Studio and start its virtual camera once"
        ) from e


def join_room(
    link: JoinLink,
    frames: Any,
    process: Callable[[Any, int, float], FrameResult],
    *,
    display_name: str | None = None,
    token: str | None = None,
    on_send: Callable[[dict[str, Any]], None] | None = None,
    on_frame: Callable[[dict[str, Any]], None] | None = None,
    max_frames: int = 0,
) -> dict[str, Any]:
    """Join a room and share the expression of every frame until the source ends, the room ends
    or ``max_frames`` frames were analysed.

    Args:
        link: the room link.
        frames: an iterable of ``(index, timestamp_ms, frame_bgr)`` (a :class:`emoar.io.VideoSource`).
        process: runs the pipeline on one frame (``Pipeline.process`` with a stream).
        display_name: the name others see (None: anonymous).
        token: a participant token from an earlier join (rejoins as the same participant).
        on_send: called with every message sent (the CLI prints them).
        on_frame: called with every frame's state message (the avatar / virtual camera).
        max_frames: stop after this many frames (0: no limit).

    Returns:
        ``{"token", "number", "frames", "sent"}``.

    Raises:
        MeetingError: the room cannot be joined or the server is unreachable.
    """
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    number = None
    if token is None:
        joined = _post(
            f"{link.base}/v1/rooms/{link.room_id}/join", {"code": link.code, "display_name": display_name}
        )
        token, number = joined["participant_token"], joined["number"]
    ws_url = (
        link.base.replace("http", "ws", 1) + f"/v1/rooms/{link.room_id}/ws?token={urllib.parse.quote(token)}"
    )
    n_frames, sent = 0, 0
    try:
        with connect(ws_url, open_timeout=30) as ws:
            first = json.loads(ws.recv(timeout=30))
            if first.get("type") == "error":
                raise MeetingError(f"the room refused this participant: {first.get('message')}")
            last_sig, last_at = None, 0.0
            for index, ts, frame in frames:
                msg = state_message(process(frame, index, ts))
                if on_frame is not None:
                    on_frame(msg)
                sig = (msg["expression"], msg["face"], msg["paused"])
                now = time.monotonic()
                if (sig != last_sig and now - last_at >= MIN_INTERVAL_S) or now - last_at >= HEARTBEAT_S:
                    ws.send(json.dumps(msg))
                    sent += 1
                    last_sig, last_at = sig, now
                    if on_send is not None:
                        on_send(msg)
                n_frames += 1
                while True:  # read what arrived (own echoes; "ended" stops)
                    try:
                        incoming = json.loads(ws.recv(timeout=0))
                    except TimeoutError:
                        break
                    if incoming.get("type") == "ended":
                        return {
                            "token": token,
                            "number": number,
                            "frames": n_frames,
                            "sent": sent,
                            "ended": True,
                        }
                if max_frames and n_frames >= max_frames:
                    break
    except InvalidStatus as e:
        raise MeetingError(f"the server refused the room connection ({e})") from e
    except (ConnectionClosed, OSError) as e:
        raise MeetingError(f"lost the room connection ({e})") from e
    return {"token": token, "number": number, "frames": n_frames, "sent": sent, "ended": False}
