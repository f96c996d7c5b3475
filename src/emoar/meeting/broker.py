"""Rooms across processes and machines: Redis pub/sub fan-out plus a shared live state.

One process serving rooms needs nothing of this (the embedded default). With
``EMOAR_BROKER_URL=redis://host:6379/0`` every process (uvicorn worker, or server on another
host, all on the same database) runs a :class:`RedisBroker`:

* each op of :class:`~emoar.meeting.rooms.RoomHub` (a participant's state, a socket opening or
  closing, a reaction, a join, the end or deletion of a room) is published on one channel,
  ``<prefix>:rooms``, in batches, and applied by every other process to the rooms it serves; so a
  host on worker A sees participants on worker B;
* the same ops keep one Redis hash per room, ``<prefix>:live:<room>`` (each participant's last
  state and each process's socket count per participant, expiring with the room), from which a
  process that starts or restarts while a room runs loads it: the room looks the same from every
  process at once;
* each process renews ``<prefix>:worker:<id>`` every few seconds (expiring after
  ``worker_ttl_s``); when one stops renewing (killed, host down), the first process to notice
  drops its sockets and publishes that (a ``gone`` op per room), so every process shows its
  participants as *left* at once instead of online for ever.

Every op carries absolute values with their time, so an op applied twice, or one already in the
hash a process loaded, changes nothing. The database stays the record of rooms, tokens and
timelines; Redis holds only what is live. Needs the ``redis`` package (``pip install
'emoar[broker]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoar.meeting.rooms import RoomHub

__all__ = ["BrokerError", "RedisBroker"]

logger = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The broker cannot be used (missing package, unreachable server); the message says why."""


class RedisBroker:
    """Fan-out of room ops through Redis (see the module docstring).

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path.sock``.
        prefix: prefix of every key and channel (several deployments can share one Redis).
        worker_ttl_s: a process whose heartbeat is older than this is taken as gone.
        max_pending: ops queued for publishing at most; beyond it the oldest are dropped (and
            counted), so a Redis outage cannot grow memory without bound.
    """

    def __init__(
        self, url: str, *, prefix: str = "emoar", worker_ttl_s: float = 15.0, max_pending: int = 50_000
    ) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError as e:  # pragma: no cover - the broker extra is part of the setup
            raise BrokerError(
                f"EMOAR_BROKER_URL needs the redis package: pip install 'emoar[broker]' ({e})"
            ) from e
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise BrokerError(f"broker URL must start with redis://, rediss:// or unix://, got {url!r}")
        self.url = url
        self.prefix = prefix
        self.worker_ttl_s = float(worker_ttl_s)
        self.channel = f"{prefix}:rooms"
        self.redis = aioredis.from_url(url, decode_responses=True, health_check_interval=10)
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.max_pending = max_pending
        self.dropped = 0
        self.published = 0
        self.received = 0
        self._hub: RoomHub | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()

    def _key(self, room_id: str) -> str:
        return f"{self.prefix}:live:{room_id}"

    def _worker_key(self, worker: str) -> str:
        return f"{self.prefix}:worker:{worker}"

    # ------------------------------------------------------------------ lifecycle
    async def start(self, hub: RoomHub) -> None:
        """Connect, announce this process and start publishing and listening.

        Raises:
            BrokerError: Redis cannot be reached (the message names the URL).
        """
        self._hub = hub
        try:
            await self.redis.ping()
            await self._beat()
        except Exception as e:
            raise BrokerError(f"cannot reach the broker at {self.url}: {e}") from e
        self._tasks = [
            asyncio.create_task(self._publisher(), name="emoar-broker-publish"),
            asyncio.create_task(self._subscriber(), name="emoar-broker-subscribe"),
            asyncio.create_task(self._heartbeat(), name="emoar-broker-heartbeat"),
        ]
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def close(self) -> None:
        """Publish what is queued, retract this process's sockets and stop."""
        hub = self._hub
        if hub is not None:  # others show this process's participants as left at once
            for op in hub.socket_ops(gone=True):
                self.publish(op)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained(), 3)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        if hub is not None:
            with contextlib.suppress(Exception):
                await self.redis.delete(self._worker_key(hub.worker_id))
        with contextlib.suppress(Exception):
            await self.redis.aclose()

    async def _drained(self) -> None:
        while not self.queue.empty():
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)  # the batch in flight

    # ------------------------------------------------------------------ publishing
    def publish(self, op: dict[str, Any]) -> None:
        """Queue one op (never blocks; the oldest are dropped past ``max_pending``)."""
        while self.queue.qsize() >= self.max_pending:
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(op)

    async def _publisher(self) -> None:
        assert self._hub is not None
        worker = self._hub.worker_id
        while True:
            batch = [await self.queue.get()]
            while not self.queue.empty() and len(batch) < 1000:
                batch.append(self.queue.get_nowait())
            pipe = self.redis.pipeline(transaction=False)
            for op in batch:
                self._mirror(pipe, op)
            pipe.publish(self.channel, json.dumps({"w": worker, "ops": batch}))
            try:
                await pipe.execute()
                self.published += len(batch)
            except Exception as e:
                self.dropped += len(batch)
                logger.warning("broker: %d room ops not published (%s)", len(batch), e)
                await asyncio.sleep(0.5)

    def _mirror(self, pipe: Any, op: dict[str, Any]) -> None:
        """The op's effect on the room's shared state."""
        key, kind = self._key(op["room"]), op["op"]
        if kind == "delete":
            pipe.delete(key)
            return
        if kind == "state":
            pipe.hset(key, f"s:{op['pid']}", json.dumps([op["state"], op["t"]]))
        elif kind == "online":
            pipe.hset(key, f"o:{op['w']}:{op['pid']}", json.dumps([op["n"], op["t"]]))
        else:
            return
        pipe.expireat(key, int(op["exp"]) + 60)

    # ------------------------------------------------------------------ listening
    async def _subscriber(self) -> None:
        assert self._hub is not None
        hub, delay, first = self._hub, 0.5, True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                if not first:  # ops may have been missed while away: merge the shared state,
                    for room_id in hub.loaded_rooms():  # and restate this process's sockets
                        await hub.reload(room_id)
                    for op in hub.socket_ops(gone=False):
                        self.publish(op)
                first, delay = False, 0.5
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.warning("broker: subscription lost (%s); retrying in %.1f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(10.0, delay * 2)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _dispatch(self, data: str) -> None:
        assert self._hub is not None
        try:
            msg = json.loads(data)
            if msg.get("w") == self._hub.worker_id:
                return  # this process's own ops are applied already
            for op in msg.get("ops", []):
                self.received += 1
                self._hub.apply(op)
        except Exception:  # a bad message must not stop the subscription
            logger.exception("broker: could not apply a published op")

    # ------------------------------------------------------------------ shared state
    async def load(self, room_id: str) -> dict[str, Any]:
        """A room's shared state: ``states`` (pid -> (state, t)) and ``online``
        ((worker, pid) -> (sockets, t)) of processes that are still alive."""
        fields: dict[str, str] = await self.redis.hgetall(self._key(room_id))  # type: ignore[assignment]  # decode_responses=True
        states: dict[int, tuple[dict[str, Any], float]] = {}
        online: dict[tuple[str, int], tuple[int, float]] = {}
        for name, value in fields.items():
            kind, _, rest = name.partition(":")
            if kind == "s":
                state, t = json.loads(value)
                states[int(rest)] = (state, float(t))
            elif kind == "o":
                worker, _, pid = rest.rpartition(":")
                n, t = json.loads(value)
                online[(worker, int(pid))] = (int(n), float(t))
        dead = await self._dead({w for w, _ in online})
        online = {k: v for k, v in online.items() if k[0] not in dead}
        return {"states": states, "online": online}

    async def _dead(self, workers: set[str]) -> set[str]:
        """The processes among ``workers`` whose heartbeat key has expired."""
        if not workers:
            return set()
        names = sorted(workers)
        alive = await self.redis.mget([self._worker_key(w) for w in names])
        return {w for w, a in zip(names, alive, strict=True) if a is None}

    async def _beat(self) -> None:
        assert self._hub is not None
        await self.redis.set(
            self._worker_key(self._hub.worker_id), str(time.time()), px=int(self.worker_ttl_s * 1000)
        )

    async def _heartbeat(self) -> None:
        """Renew this process's key; drop the sockets of processes whose key expired."""
        assert self._hub is not None
        hub = self._hub
        while True:
            await asyncio.sleep(self.worker_ttl_s / 3)
            try:
                await self._beat()
                for worker in await self._dead(hub.remote_workers()):
                    logger.info("broker: process %s stopped; its sockets are dropped", worker)
                    for room_id in hub.worker_gone(worker):
                        # tell the others now rather than at their own next beat (up to a third of
                        # the TTL later), so every process shows the participants as left at once
                        self.publish({"op": "gone", "room": room_id, "w": worker})
                        keys: list[str] = await self.redis.hkeys(self._key(room_id))  # type: ignore[assignment]  # decode_responses=True
                        fields = [f for f in keys if f.startswith(f"o:{worker}:")]
                        if fields:
                            await self.redis.hdel(self._key(room_id), *fields)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                logger.warning("broker: heartbeat failed (%s)", e)
