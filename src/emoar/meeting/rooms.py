"""Meeting rooms: tokens, roles, visibility, live state and fan-out.

A room has one host (the token returned at creation) and participants who join with the room's
join code. What each side receives is decided here, in one place (:meth:`RoomHub.visible_to`):

============  ===================================  ==========================================
visibility    host                                 participants
============  ===================================  ==========================================
host          every participant's tile + mood      their own state
everyone      every tile + mood                    every tile + mood
aggregate     the room's mood only (no tiles,      their own state
              no names, no individual rows)
============  ===================================  ==========================================

Tokens come from :func:`secrets.token_urlsafe` (256 bits), are stored hashed, compared in
constant time and scoped to one room and one role.

Every change of a room's live state is one *op* (``join``, ``online``, ``state``, ``react``,
``end``, ``delete``) that :meth:`RoomHub._emit` applies here and hands to the broker, if any
(:mod:`emoar.meeting.broker`), which publishes it to the other processes serving rooms; they
apply it with :meth:`RoomHub.apply`. Ops carry absolute values (a worker's socket count
for a participant, a participant's whole state, with its time), so applying one twice, or one
already contained in the shared state a process loads a room from, changes nothing. Without a
broker the hub is the single process's in-memory state.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hmac
import io
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from emoar.meeting.protocol import PROTOCOL_VERSION, VISIBILITIES, ClientState
from emoar.meeting.store import RoomRow, RoomStore, token_hash

__all__ = ["Connection", "Principal", "RoomError", "RoomHub"]

_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L


class RoomError(Exception):
    """A room operation that cannot be done; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Principal:
    """Who a token belongs to.

    Attributes:
        room_id: the one room the token opens.
        role: ``host`` or ``participant``.
        participant: the participant's id (None for the host).
    """

    room_id: str
    role: str
    participant: int | None = None


@dataclass(eq=False)
class Connection:
    """One websocket of a room; ``queue`` holds the JSON texts still to send to it, and
    ``finished`` says the room is over for it (nothing follows what is queued)."""

    principal: Principal
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(maxsize=256))
    dropped: int = 0
    finished: bool = False

    def send(self, msg: dict[str, Any]) -> None:
        """Queue a message; a client too slow to keep up loses its oldest messages, not others."""
        text = json.dumps(msg)
        while True:
            try:
                self.queue.put_nowait(text)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.dropped += 1

    def finish(self, msg: dict[str, Any]) -> None:
        """Queue the last message of the room (``ended``)."""
        self.send(msg)
        self.finished = True


@dataclass
class _Live:
    row: RoomRow
    labels: tuple[str, ...]
    conns: set[Connection] = field(default_factory=set)  # this process's sockets of the room
    states: dict[int, dict[str, Any]] = field(default_factory=dict)  # participant -> last state
    seen: dict[int, float] = field(default_factory=dict)  # participant -> last message time
    # worker -> participant -> open sockets on that worker, and when each count was set
    online: dict[str, Counter[int]] = field(default_factory=dict)
    online_t: dict[tuple[str, int], float] = field(default_factory=dict)
    total: Counter[int] = field(default_factory=Counter)  # participant -> sockets, all workers
    n_online: int = 0  # participants with at least one socket
    mood_due: bool = False  # a mood message is scheduled
    names: dict[int, tuple[int, str | None]] = field(default_factory=dict)  # id -> (number, name)
    connected: set[int] = field(default_factory=set)  # participants who ever opened a socket

    def sockets(self, pid: int) -> int:
        """Open sockets of a participant, over every worker."""
        return self.total.get(pid, 0)


class Broker(Protocol):
    """What the hub needs of a fan-out between processes (:class:`emoar.meeting.broker.RedisBroker`)."""

    def publish(self, op: dict[str, Any]) -> None:
        """Send one op to the other processes (must not block)."""

    async def load(self, room_id: str) -> dict[str, Any]:
        """A room's shared state: ``states`` (pid -> (state, t)), ``online`` ((worker, pid) ->
        (sockets, t))."""
        ...


class RoomHub:
    """Every room of this server: creation, joining, authentication, live state and fan-out.

    Args:
        store: the persistence.
        labels: the expression labels rooms accept (the served model's).
        stale_after_s: a connected participant with no message for this long shows as ``stale``.
        max_participants: default limit of participants per room.
        base_url: prefix for the links returned at creation (``""``: paths only).
        broker: fan-out to the other processes serving rooms (None: this process only).
        mood_interval_s: mood messages are sent at most this often per room.
        loop: the event loop that owns the rooms' sockets; ops from REST calls run in worker
            threads and are handed to it (None: whatever thread calls, e.g. direct use).
    """

    def __init__(
        self,
        store: RoomStore,
        labels: tuple[str, ...],
        *,
        stale_after_s: float = 15.0,
        max_participants: int = 500,
        base_url: str = "",
        broker: Broker | None = None,
        mood_interval_s: float = 0.2,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.store = store
        self.labels = tuple(labels)
        self.stale_after_s = stale_after_s
        self.mood_interval_s = mood_interval_s
        self.max_participants = max_participants
        self.base_url = base_url.rstrip("/")
        self._live: dict[str, _Live] = {}
        self.broker = broker
        self.loop = loop
        self.worker_id = secrets.token_hex(6)  # names this process in ops and shared state
        self._loading: dict[str, asyncio.Future[None]] = {}

    # ------------------------------------------------------------------ REST side
    def create(self, title: str, visibility: str = "host", retention_hours: float = 24.0) -> dict[str, Any]:
        """A new room; returns its id, the host token (shown once), the join code and links.

        Raises:
            RoomError: 422 invalid title, visibility or retention.
        """
        title = (title or "").strip()
        if not 1 <= len(title) <= 200:
            raise RoomError(422, "invalid_title", "title must be 1-200 characters")
        if visibility not in VISIBILITIES:
            raise RoomError(422, "invalid_visibility", f"visibility must be one of {', '.join(VISIBILITIES)}")
        if not 0 < float(retention_hours) <= 24 * 90:
            raise RoomError(422, "invalid_retention", "retention_hours must be in (0, 2160] (90 days)")
        now = time.time()
        room_id = secrets.token_urlsafe(9)
        host_token = secrets.token_urlsafe(32)
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(6))
        row = RoomRow(
            id=room_id,
            title=title,
            visibility=visibility,
            created_at=now,
            expires_at=now + float(retention_hours) * 3600.0,
            ended_at=None,
            host_token_hash=token_hash(host_token),
            join_code=code,
            max_participants=self.max_participants,
            labels=json.dumps(list(self.labels)),
        )
        self.store.add_room(row)
        return {
            "room_id": room_id,
            "host_token": host_token,
            "join_code": code,
            "host_url": f"{self.base_url}/meet/{room_id}/host",
            "join_url": f"{self.base_url}/meet/{room_id}?code={code}",
            "visibility": visibility,
            "expires_at": row.expires_at,
            "protocol": PROTOCOL_VERSION,
        }

    def _room(self, room_id: str, *, open_only: bool = False) -> RoomRow:
        row = self.store.room(room_id)
        if row is None or row.expires_at < time.time():
            raise RoomError(
                404, "unknown_room", "No such room (it may have ended its retention or been deleted)"
            )
        if open_only and row.ended_at is not None:
            raise RoomError(410, "room_ended", "The host has ended this room")
        return row

    def authenticate(self, room_id: str, token: str | None) -> Principal:
        """The principal of a token for this room.

        Raises:
            RoomError: 401 missing or wrong token, or a token of another room (nothing else is
                said, so a token's validity elsewhere does not leak).
        """
        if not token:
            raise RoomError(401, "unauthorized", "A room token is required (Authorization: Bearer <token>)")
        found = self.store.find_token(token)
        if found is None or not hmac.compare_digest(found[0].encode(), str(room_id).encode()):
            raise RoomError(401, "unauthorized", "This token does not open this room")
        self._room(room_id)
        return Principal(found[0], found[1], found[2])

    def join(self, room_id: str, code: str, display_name: str | None = None) -> dict[str, Any]:
        """Join with the room's code; returns the participant token (shown once) and number.

        Raises:
            RoomError: 404 unknown room, 410 ended, 403 wrong code, 409 room full, 422 name.
        """
        row = self._room(room_id, open_only=True)
        if not hmac.compare_digest(str(code or "").strip().upper().encode(), row.join_code.encode()):
            raise RoomError(403, "wrong_code", "Wrong join code")
        name = (display_name or "").strip() or None
        if name is not None and len(name) > 64:
            raise RoomError(422, "invalid_name", "display_name must be at most 64 characters")
        if row.visibility == "aggregate":
            name = None  # the anonymous mode keeps no names at all
        if self.store.participant_count(room_id) >= row.max_participants:
            raise RoomError(409, "room_full", f"The room is full ({row.max_participants} participants)")
        token = secrets.token_urlsafe(32)
        p = self.store.add_participant(room_id, name, token, time.time())
        self.store.record(room_id, p.id, "join", {"number": p.number, "name": name}, p.joined_at)
        self._emit(self._live_room(row), {"op": "join", "pid": p.id, "number": p.number, "name": name})
        return {
            "participant_token": token,
            "number": p.number,
            "display_name": name,
            "room": self._room_info(row),
        }

    def end(self, principal: Principal) -> None:
        """End the room for everyone (host only); it stays exportable until deleted/expired."""
        self._require_host(principal)
        now = time.time()
        self.store.record(principal.room_id, None, "end", {}, now)
        self.store.end_room(principal.room_id, now)
        self._emit(self._live_room(self._room(principal.room_id)), {"op": "end", "t": now})

    def delete(self, principal: Principal) -> None:
        """Delete the room and all its data (host only)."""
        self._require_host(principal)
        self.store.delete_room(principal.room_id)
        self._on_loop(self._apply_and_publish, {"op": "delete", "room": principal.room_id, "exp": 0.0})

    def _require_host(self, principal: Principal) -> None:
        if principal.role != "host":
            raise RoomError(403, "forbidden", "Only the room's host can do this")

    # ------------------------------------------------------------------ views
    def _room_info(self, row: RoomRow) -> dict[str, Any]:
        return {
            "room_id": row.id,
            "title": row.title,
            "visibility": row.visibility,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
            "ended": row.ended_at is not None,
            "labels": json.loads(row.labels),
            "protocol": PROTOCOL_VERSION,
        }

    def _live_room(self, row: RoomRow) -> _Live:
        live = self._live.get(row.id)
        if live is None:
            live = _Live(row, tuple(json.loads(row.labels)))
            for p in self.store.participants(row.id):
                live.names[p.id] = (p.number, p.display_name)
            self._live[row.id] = live
        return live

    def _tile(self, live: _Live, pid: int, now: float) -> dict[str, Any]:
        number, name = live.names.get(pid, (0, None))
        state = live.states.get(pid)
        if live.sockets(pid) == 0:
            status = "left" if pid in live.connected else "invited"
        elif state is None:
            status = "waiting"
        elif now - live.seen.get(pid, 0.0) > self.stale_after_s:
            status = "stale"
        elif state["paused"]:
            status = "paused"
        elif not state["face"]:
            status = "no_face"
        else:
            status = "live"
        return {"participant": number, "name": name, "status": status, "state": state}

    def mood(self, live: _Live, now: float | None = None) -> dict[str, Any]:
        """The room's distribution now: count of live participants per expression."""
        now = time.time() if now is None else now
        counts = {label: 0 for label in live.labels}
        active = 0
        total, seen, since = live.total, live.seen, now - self.stale_after_s
        for pid, state in live.states.items():
            expr = state["expression"]
            if expr and total.get(pid) and seen.get(pid, 0.0) >= since:
                counts[expr] += 1
                active += 1
        return {
            "counts": counts,
            "participants": live.n_online,
            "active": active,
        }

    def visible_to(self, principal: Principal, live: _Live) -> str:
        """What a principal may see of the others: ``tiles``, ``mood`` or ``own``."""
        vis = live.row.visibility
        if principal.role == "host":
            return "mood" if vis == "aggregate" else "tiles"
        return "tiles" if vis == "everyone" else "own"

    def snapshot(self, principal: Principal) -> dict[str, Any]:
        """Everything the principal may see now (REST ``GET`` and the websocket's first message)."""
        row = self._room(principal.room_id)
        live = self._live_room(row)
        now = time.time()
        scope = self.visible_to(principal, live)
        out: dict[str, Any] = {"type": "snapshot", "room": self._room_info(row), "scope": scope}
        if principal.role == "host":
            out["room"]["join_code"] = row.join_code  # the host shares it
        if scope in ("tiles", "mood"):
            out["mood"] = self.mood(live, now)
        if scope == "tiles":
            out["participants"] = [
                self._tile(live, pid, now) for pid in sorted(live.names, key=lambda p: live.names[p][0])
            ]
        if principal.participant is not None:
            out["you"] = self._tile(live, principal.participant, now)
        return out

    # ------------------------------------------------------------------ live side
    def connect(self, principal: Principal) -> Connection:
        """Register a websocket of ``principal``; it receives a snapshot first.

        Raises:
            RoomError: 404/410 the room is gone or ended (for participants).
        """
        row = self._room(principal.room_id, open_only=principal.role == "participant")
        live = self._live_room(row)
        # the host hears every participant: room for a burst from all of them at once
        depth = 256 if principal.role == "participant" else max(256, 8 * live.row.max_participants)
        conn = Connection(principal, asyncio.Queue(maxsize=depth))
        live.conns.add(conn)
        conn.send(self.snapshot(principal))
        if principal.participant is not None:
            pid = principal.participant
            mine = live.online.setdefault(self.worker_id, Counter())
            self._emit(
                live, {"op": "online", "w": self.worker_id, "pid": pid, "n": mine[pid] + 1, "t": time.time()}
            )
        return conn

    def disconnect(self, conn: Connection) -> None:
        """Unregister a websocket; a participant's last socket leaving shows them ``left``."""
        live = self._live.get(conn.principal.room_id)
        if live is None:
            return
        live.conns.discard(conn)
        pid = conn.principal.participant
        if pid is not None:
            n = max(0, live.online.setdefault(self.worker_id, Counter())[pid] - 1)
            if n == 0 and live.sockets(pid) <= 1:
                self.store.record(live.row.id, pid, "leave", {}, time.time())
            self._emit(live, {"op": "online", "w": self.worker_id, "pid": pid, "n": n, "t": time.time()})

    def update_state(self, principal: Principal, state: ClientState) -> None:
        """A participant's new state: stored when it changed, fanned out as visibility allows."""
        if principal.participant is None:
            raise RoomError(403, "forbidden", "Only participants send states")
        live = self._live_room(self._room(principal.room_id, open_only=True))
        pid, now = principal.participant, time.time()
        new = state.to_dict()
        old = live.states.get(pid)
        changed = old is None or (old["expression"], old["face"], old["paused"]) != (
            new["expression"],
            new["face"],
            new["paused"],
        )
        if changed:
            self.store.record(live.row.id, pid, "state", new, now)
        self._emit(live, {"op": "state", "pid": pid, "state": new, "t": now, "changed": changed})

    def react(self, principal: Principal, reaction: str) -> None:
        """A participant's manual reaction (shown to whoever sees tiles; counted for mood views)."""
        if principal.participant is None:
            raise RoomError(403, "forbidden", "Only participants send reactions")
        live = self._live_room(self._room(principal.room_id, open_only=True))
        pid, now = principal.participant, time.time()
        self.store.record(live.row.id, pid, "reaction", {"reaction": reaction}, now)
        self._emit(live, {"op": "react", "pid": pid, "reaction": reaction, "t": now})

    # ------------------------------------------------------------------ ops (one process or many)
    def _emit(self, live: _Live, op: dict[str, Any]) -> None:
        """Apply an op of this process and publish it to the others (on the rooms' loop)."""
        op["room"], op["exp"] = live.row.id, live.row.expires_at
        self._on_loop(self._apply_and_publish, op)

    def _on_loop(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the rooms' event loop: sockets' queues and the broker's are asyncio
        queues, which only that loop may touch (REST handlers call the hub in worker threads)."""
        loop = self.loop
        if loop is None or _running_loop() is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _apply_and_publish(self, op: dict[str, Any]) -> None:
        self.apply(op)
        if self.broker is not None:
            self.broker.publish(op)

    def apply(self, op: dict[str, Any]) -> None:
        """Apply an op of this process or one another process published (rooms not loaded
        here are skipped: loading one reads the shared state)."""
        if op.get("op") == "delete":
            gone = self._live.pop(op["room"], None)
            for c in list(gone.conns) if gone is not None else []:
                c.finish({"type": "ended", "deleted": True})
            return
        live = self._live.get(op.get("room", ""))
        if live is not None:
            self._apply(live, op)

    def _apply(self, live: _Live, op: dict[str, Any]) -> None:
        kind = op["op"]
        if kind == "join":
            live.names[op["pid"]] = (op["number"], op["name"])
        elif kind == "online":
            self._set_online(live, op["w"], op["pid"], op["n"], op["t"])
        elif kind == "state":
            self._state(live, op["pid"], op["state"], op["t"], op["changed"])
        elif kind == "react":
            self._reaction(live, op["pid"], op["reaction"], op["t"])
        elif kind == "gone":  # another process found that one dead first
            self._drop_worker(live, op["w"])
        elif kind == "end":
            live.row.ended_at = op["t"]
            for c in list(live.conns):
                c.finish({"type": "ended"})

    def _set_online(self, live: _Live, worker: str, pid: int, n: int, t: float) -> None:
        if live.online_t.get((worker, pid), 0.0) > t:
            return  # an older count than the one applied
        counts = live.online.setdefault(worker, Counter())
        before = live.sockets(pid)
        after = before - counts[pid] + n
        counts[pid] = n
        live.online_t[(worker, pid)] = t
        live.total[pid] = after
        live.n_online += (after > 0) - (before > 0)
        if after:
            live.connected.add(pid)
        if bool(before) != bool(after):
            self._presence(live, pid, "online" if after else "left")

    def _presence(self, live: _Live, pid: int, status: str) -> None:
        number, name = live.names.get(pid, (0, None))
        for c in list(live.conns):
            if self.visible_to(c.principal, live) == "tiles":
                c.send({"type": "presence", "participant": number, "name": name, "status": status})
        self._mood_soon(live)

    def _mood_soon(self, live: _Live) -> None:
        """Send the room's mood to whoever sees it, at most every ``mood_interval_s`` (a room of
        hundreds changing every second gets a few mood messages a second, not one per change)."""
        if live.mood_due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in an event loop (direct use): send now
            self._send_mood(live)
            return
        live.mood_due = True
        loop.call_later(self.mood_interval_s, self._send_mood, live)

    def _send_mood(self, live: _Live) -> None:
        live.mood_due = False
        viewers = [c for c in live.conns if self.visible_to(c.principal, live) in ("tiles", "mood")]
        if viewers:
            msg = {"type": "mood", **self.mood(live)}
            for c in viewers:
                c.send(msg)

    def _state(self, live: _Live, pid: int, new: dict[str, Any], now: float, changed: bool) -> None:
        if live.seen.get(pid, 0.0) > now:
            return  # older than what is shown
        live.seen[pid] = now
        live.states[pid] = new
        number, name = live.names.get(pid, (0, None))
        for c in list(live.conns):
            scope = self.visible_to(c.principal, live)
            if scope == "tiles":
                c.send({"type": "state", "participant": number, "name": name, "state": new, "t": now})
            elif c.principal.participant == pid:
                c.send({"type": "state", "participant": number, "state": new, "t": now, "you": True})
        if changed:
            self._mood_soon(live)

    def _reaction(self, live: _Live, pid: int, reaction: str, now: float) -> None:
        live.seen[pid] = max(now, live.seen.get(pid, 0.0))
        number, name = live.names.get(pid, (0, None))
        for c in list(live.conns):
            scope = self.visible_to(c.principal, live)
            if scope == "tiles":
                c.send(
                    {"type": "reaction", "participant": number, "name": name, "reaction": reaction, "t": now}
                )
            elif scope == "mood":
                c.send({"type": "reaction", "reaction": reaction, "t": now})  # anonymous

    async def ensure(self, room_id: str) -> None:
        """Load a room's live state before serving it (with a broker: from the shared state, so a
        process that starts, or restarts, while a room is running shows everyone at once)."""
        if self.broker is None:
            return
        pending = self._loading.get(room_id)
        if pending is None:
            if room_id in self._live:
                return
            pending = asyncio.ensure_future(self._load(room_id))
            self._loading[room_id] = pending
            pending.add_done_callback(lambda _f: self._loading.pop(room_id, None))
        await asyncio.shield(pending)

    async def _load(self, room_id: str) -> None:
        row = await asyncio.to_thread(self.store.room, room_id)
        if row is None or self.broker is None:
            return
        live = self._live_room(row)  # ops apply from here on; the shared state fills in the rest
        await self.reload(live.row.id)

    async def reload(self, room_id: str) -> None:
        """Merge the shared state of a loaded room (after loading it, or a broker reconnect)."""
        live = self._live.get(room_id)
        if live is None or self.broker is None:
            return
        shared = await self.broker.load(room_id)
        for pid, (state, t) in shared["states"].items():
            if t > live.seen.get(pid, 0.0):
                live.seen[pid], live.states[pid] = t, state
        for (worker, pid), (n, t) in shared["online"].items():
            if worker != self.worker_id:
                self._set_online(live, worker, pid, n, t)

    def worker_gone(self, worker: str) -> list[str]:
        """Drop the sockets of a process that stopped (its heartbeat expired); returns the rooms
        it had sockets in."""
        return [live.row.id for live in list(self._live.values()) if self._drop_worker(live, worker)]

    def _drop_worker(self, live: _Live, worker: str) -> bool:
        """Set every socket count of ``worker`` in ``live`` to 0 (its participants there show as
        left); False when it held none (already dropped: applying this twice changes nothing)."""
        counts = live.online.get(worker)
        if not counts:
            return False
        for pid in [p for p, n in counts.items() if n]:
            self._set_online(live, worker, pid, 0, time.time())
        live.online.pop(worker, None)
        return True

    def loaded_rooms(self) -> list[str]:
        """The rooms this process holds live state of."""
        return list(self._live)

    def socket_ops(self, *, gone: bool) -> list[dict[str, Any]]:
        """``online`` ops restating this process's socket count of every participant (0 for all
        when ``gone``: the process is stopping), for the broker to publish."""
        now = time.time()
        return [
            {
                "op": "online",
                "room": live.row.id,
                "exp": live.row.expires_at,
                "w": self.worker_id,
                "pid": pid,
                "n": 0 if gone else n,
                "t": now,
            }
            for live in self._live.values()
            for pid, n in live.online.get(self.worker_id, {}).items()
            if n or not gone
        ]

    def remote_workers(self) -> set[str]:
        """The other processes this one knows hold sockets of its rooms."""
        return {
            w
            for live in self._live.values()
            for w, c in live.online.items()
            if w != self.worker_id and any(c.values())
        }

    # ------------------------------------------------------------------ export
    def timeline(self, principal: Principal, fmt: str = "json") -> str:
        """The room's history for the host: every entry (JSON) or one row per entry (CSV); in an
        ``aggregate`` room only the room's counts over time, never individual rows.

        Raises:
            RoomError: 403 not the host; 422 unknown format.
        """
        self._require_host(principal)
        if fmt not in ("json", "csv"):
            raise RoomError(422, "invalid_format", "format must be json or csv")
        row = self._room(principal.room_id)
        labels = tuple(json.loads(row.labels))
        events = self.store.timeline(row.id)
        numbers = {p.id: (p.number, p.display_name) for p in self.store.participants(row.id)}
        if row.visibility == "aggregate":
            current: dict[int, str | None] = {}
            rows: list[dict[str, Any]] = []
            for e in events:
                if e.kind == "state":
                    current[e.participant or 0] = e.data.get("expression")
                elif e.kind == "leave":
                    current.pop(e.participant or 0, None)
                else:
                    continue
                counts = Counter(v for v in current.values() if v)
                rows.append({"t": round(e.t, 3), **{label: counts.get(label, 0) for label in labels}})
            if fmt == "json":
                return json.dumps({"room": self._room_info(row), "aggregate": rows})
            return _csv(["t", *labels], [[r["t"], *(r[label] for label in labels)] for r in rows])
        entries = [
            {
                "t": round(e.t, 3),
                "participant": numbers.get(e.participant or -1, (None, None))[0],
                "name": numbers.get(e.participant or -1, (None, None))[1],
                "kind": e.kind,
                **e.data,
            }
            for e in events
        ]
        if fmt == "json":
            return json.dumps({"room": self._room_info(row), "events": entries})
        header = [
            "t",
            "participant",
            "name",
            "kind",
            "expression",
            "face",
            "paused",
            "reaction",
            *(f"p_{x}" for x in labels),
        ]
        body = [
            [
                e["t"],
                e["participant"],
                e["name"],
                e["kind"],
                e.get("expression"),
                e.get("face"),
                e.get("paused"),
                e.get("reaction"),
                *((e.get("probs") or {}).get(x) for x in labels),
            ]
            for e in entries
        ]
        return _csv(header, body)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    w.writerows(["" if v is None else v for v in r] for r in rows)
    return out.getvalue()
