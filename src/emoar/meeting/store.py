"""Meeting mode's persistence on SQLAlchemy 2: rooms, participants and the timeline of events.

SQLite by default (one file under the server's data folder, WAL journal), any SQLAlchemy URL
otherwise (``EMOAR_DATABASE_URL=postgresql+psycopg://...``). Tokens are stored as SHA-256 hashes
only, so a copy of the database opens no room. Events (state changes, reactions, joins, leaves)
are buffered and written in batches (:meth:`RoomStore.flush`), one transaction per batch, so a
room of hundreds of participants costs a few commits a second; :meth:`RoomStore.timeline` flushes
first, so what was sent is what is exported.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, create_engine, delete, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

__all__ = ["EventRow", "ParticipantRow", "RoomRow", "RoomStore", "token_hash"]


def token_hash(token: str) -> str:
    """The stored form of a token (SHA-256, hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class _Base(DeclarativeBase):
    pass


class RoomRow(_Base):
    """One room."""

    __tablename__ = "rooms"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    host_token_hash: Mapped[str] = mapped_column(String(64), index=True)
    join_code: Mapped[str] = mapped_column(String(16), index=True)
    max_participants: Mapped[int] = mapped_column(Integer)
    labels: Mapped[str] = mapped_column(Text)  # JSON list


class ParticipantRow(_Base):
    """One participant of one room (``number`` is their anonymous number in the room)."""

    __tablename__ = "participants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    display_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_hash: Mapped[str] = mapped_column(String(64), index=True)
    joined_at: Mapped[float] = mapped_column(Float)


class EventRow(_Base):
    """One timeline entry: ``kind`` is join, leave, state, reaction, pause or end."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    participant: Mapped[int | None] = mapped_column(Integer, nullable=True)
    t: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(16))
    data: Mapped[str] = mapped_column(Text)  # JSON


@dataclass(frozen=True)
class Event:
    """A timeline entry as read back."""

    t: float
    participant: int | None
    kind: str
    data: dict[str, Any]


class RoomStore:
    """Rooms, participants and timelines in one database.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.sqlite3``), or a folder for the default SQLite
            file ``emoar-meetings.sqlite3`` in it.
    """

    def __init__(self, url: str | Path) -> None:
        text = str(url)
        if "://" not in text:
            folder = Path(text).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            text = f"sqlite:///{folder / 'emoar-meetings.sqlite3'}"
        self.url = text
        self.engine: Engine = create_engine(text, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ rooms
    def add_room(self, row: RoomRow) -> None:
        """Store a new room."""
        with self._session.begin() as s:
            s.add(row)

    def room(self, room_id: str) -> RoomRow | None:
        """The room, or None (unknown or deleted)."""
        with self._session() as s:
            return s.get(RoomRow, room_id)

    def end_room(self, room_id: str, t: float) -> None:
        """Mark a room ended (it stays readable until deleted or expired)."""
        self.flush()
        with self._session.begin() as s:
            row = s.get(RoomRow, room_id)
            if row is not None and row.ended_at is None:
                row.ended_at = t

    def delete_room(self, room_id: str) -> bool:
        """Delete a room with its participants and timeline. Returns whether it existed."""
        self.flush()
        with self._session.begin() as s:
            s.execute(delete(EventRow).where(EventRow.room_id == room_id))
            s.execute(delete(ParticipantRow).where(ParticipantRow.room_id == room_id))
            return s.execute(delete(RoomRow).where(RoomRow.id == room_id)).rowcount > 0  # type: ignore[attr-defined]

    def purge_expired(self, now: float | None = None) -> list[str]:
        """Delete every room past its retention; returns their ids."""
        now = time.time() if now is None else now
        with self._session() as s:
            ids = [r for (r,) in s.execute(select(RoomRow.id).where(RoomRow.expires_at < now))]
        for room_id in ids:
            self.delete_room(room_id)
        return ids

    # ------------------------------------------------------------------ participants
    def participant_count(self, room_id: str) -> int:
        """How many participants ever joined the room."""
        with self._session() as s:
            return self._count(s, room_id)

    @staticmethod
    def _count(s: Session, room_id: str) -> int:
        q = select(func.count()).select_from(ParticipantRow).where(ParticipantRow.room_id == room_id)
        return int(s.execute(q).scalar_one())

    def add_participant(self, room_id: str, display_name: str | None, token: str, t: float) -> ParticipantRow:
        """A new participant with the next anonymous number of the room."""
        with self._session.begin() as s:
            n = self._count(s, room_id)
            row = ParticipantRow(
                room_id=room_id,
                number=n + 1,
                display_name=display_name,
                token_hash=token_hash(token),
                joined_at=t,
            )
            s.add(row)
        return row

    def participants(self, room_id: str) -> list[ParticipantRow]:
        """Every participant who joined the room, by number."""
        with self._session() as s:
            q = (
                select(ParticipantRow)
                .where(ParticipantRow.room_id == room_id)
                .order_by(ParticipantRow.number)
            )
            return list(s.scalars(q))

    def find_token(self, token: str) -> tuple[str, str, int | None] | None:
        """``(room_id, role, participant_id)`` of a token (role ``host`` or ``participant``)."""
        h = token_hash(token)
        with self._session() as s:
            room = s.scalars(select(RoomRow).where(RoomRow.host_token_hash == h)).first()
            if room is not None:
                return room.id, "host", None
            p = s.scalars(select(ParticipantRow).where(ParticipantRow.token_hash == h)).first()
            if p is not None:
                return p.room_id, "participant", p.id
        return None

    # ------------------------------------------------------------------ timeline
    def record(
        self, room_id: str, participant: int | None, kind: str, data: dict[str, Any], t: float
    ) -> None:
        """Queue one timeline entry (written by the next :meth:`flush`)."""
        with self._lock:
            self._pending.append(
                {
                    "room_id": room_id,
                    "participant": participant,
                    "t": t,
                    "kind": kind,
                    "data": json.dumps(data),
                }
            )

    def flush(self) -> int:
        """Write the queued entries in one transaction; returns how many."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return 0
        with self._session.begin() as s:
            live = {
                r
                for (r,) in s.execute(select(RoomRow.id).where(RoomRow.id.in_({b["room_id"] for b in batch})))
            }
            rows = [EventRow(**b) for b in batch if b["room_id"] in live]  # deleted rooms stay deleted
            s.add_all(rows)
        return len(rows)

    def timeline(self, room_id: str) -> list[Event]:
        """Every entry of the room, oldest first (after writing what is queued)."""
        self.flush()
        with self._session() as s:
            q = select(EventRow).where(EventRow.room_id == room_id).order_by(EventRow.t, EventRow.id)
            return [Event(r.t, r.participant, r.kind, json.loads(r.data)) for r in s.scalars(q)]

    def close(self) -> None:
        """Write what is queued and release the connections."""
        self.flush()
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
