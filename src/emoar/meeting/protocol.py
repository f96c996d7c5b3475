"""Meeting mode's wire protocol (version :data:`PROTOCOL_VERSION`): every message, validated.

Participants never send pixels: a ``state`` message carries the label their own browser (or
``emoar meeting join``) inferred, its probabilities and whether a face was found. All messages
are JSON objects with a ``type``; anything else is refused with an ``error`` message.

Client -> server:

* ``{"type": "state", "expression": "happy" | null, "probs": {label: p}, "face": bool,
  "paused": bool}`` — the participant's current expression (``expression``/``probs`` null or
  empty when no face or paused);
* ``{"type": "reaction", "reaction": one of REACTIONS}`` — a manual reaction;
* ``{"type": "ping", "t": any}`` — answered by ``{"type": "pong", "t": ...}``.

Server -> client: ``snapshot`` (on connect: the room and every state the receiver may see),
``state`` and ``reaction`` (another participant's, as visibility allows), ``presence``
(joined / left / stale), ``mood`` (the room's distribution), ``pong``, ``error``, ``ended``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "REACTIONS",
    "VISIBILITIES",
    "ClientState",
    "ProtocolError",
    "parse_client_message",
]

PROTOCOL_VERSION = 1
#: Who sees individual participants: ``host`` (only the host; default), ``everyone`` (all see
#: all), ``aggregate`` (nobody: only the room's distribution and timeline).
VISIBILITIES = ("host", "everyone", "aggregate")
#: Manual reactions a participant can send beside the inferred expression.
REACTIONS = ("thumbs_up", "confused", "slow_down", "speed_up", "raise_hand", "clap")
#: Largest message accepted from a client, in bytes.
MAX_MESSAGE_BYTES = 4096
_MAX_LABELS = 16


class ProtocolError(ValueError):
    """A client message that is not valid protocol; the message says what is wrong."""


@dataclass(frozen=True)
class ClientState:
    """A participant's state as they sent it (validated).

    Attributes:
        expression: the top label, or None (no face, or paused).
        probs: label -> probability (empty when there is no expression).
        face: whether a face was found.
        paused: the participant paused sharing.
    """

    expression: str | None
    probs: dict[str, float]
    face: bool
    paused: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (probabilities rounded to 4 digits)."""
        return {
            "expression": self.expression,
            "probs": {k: round(v, 4) for k, v in self.probs.items()},
            "face": self.face,
            "paused": self.paused,
        }


def parse_client_message(raw: str | bytes, labels: tuple[str, ...]) -> dict[str, Any]:
    """Validate one client message.

    Args:
        raw: the websocket text (or bytes).
        labels: expression labels the room accepts.

    Returns:
        ``{"type": "state", "state": ClientState}``, ``{"type": "reaction", "reaction": str}``
        or ``{"type": "ping", "t": value}``.

    Raises:
        ProtocolError: too large, not JSON, unknown type or invalid fields.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(f"not JSON ({e})") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError('messages are JSON objects with a "type"')
    kind = msg["type"]
    if kind == "ping":
        t = msg.get("t")
        return {"type": "ping", "t": t if isinstance(t, int | float | str) else None}
    if kind == "reaction":
        reaction = msg.get("reaction")
        if reaction not in REACTIONS:
            raise ProtocolError(f"unknown reaction {reaction!r}; available: {', '.join(REACTIONS)}")
        return {"type": "reaction", "reaction": reaction}
    if kind == "state":
        return {"type": "state", "state": _state(msg, labels)}
    raise ProtocolError(f"unknown message type {kind!r}; send state, reaction or ping")


def _state(msg: dict[str, Any], labels: tuple[str, ...]) -> ClientState:
    face, paused = msg.get("face", True), msg.get("paused", False)
    if not isinstance(face, bool) or not isinstance(paused, bool):
        raise ProtocolError('"face" and "paused" must be true or false')
    expression = msg.get("expression")
    probs_in = msg.get("probs") or {}
    if not isinstance(probs_in, dict) or len(probs_in) > _MAX_LABELS:
        raise ProtocolError('"probs" must be an object of label -> probability')
    probs: dict[str, float] = {}
    for k, v in probs_in.items():
        if k not in labels:
            raise ProtocolError(f"unknown label {k!r} in probs; labels: {', '.join(labels)}")
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or not 0 <= v <= 1:
            raise ProtocolError(f"probability of {k!r} must be a number in [0, 1], got {v!r}")
        probs[k] = float(v)
    if probs and abs(sum(probs.values()) - 1.0) > 0.02:
        raise ProtocolError(f"probabilities must sum to 1, got {sum(probs.values()):.3f}")
    if paused or not face:
        return ClientState(None, {}, face, paused)
    if expression not in labels:
        raise ProtocolError(f"unknown expression {expression!r}; labels: {', '.join(labels)}")
    return ClientState(expression, probs, True, False)
