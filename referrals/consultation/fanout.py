"""A room's live fan-out: each server process hands a room's events straight to its own sockets.

Through the channel layer every socket of a room got every event in a queue of
its own, awaited by a task of its own and dispatched by type: per message and
per recipient, the largest part of a busy server's CPU (benchmarks/README.md).
Here each event loop keeps the rooms it has sockets in (``RoomHub``). An event —
a stored message's browser frame, encoded once — is handed to those sockets
directly, and published once on Redis for the other server processes: each
subscribes to the rooms it has sockets in and ignores its own publications.

Best effort, like any live push: the database is the truth, and a browser
replays what it missed. But a socket that cannot hear the room must not look
live: when the subscription breaks (Redis away), every socket of the process is
closed (4503, the page says so and reconnects) and new ones are refused until
Redis answers again. Without Redis (the embedded demo: one process, the
in-memory channel layer) the fan-out stays in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
import weakref
from typing import Any, Protocol

import orjson
import redis
import redis.asyncio
from django.conf import settings
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)
# A publication from outside any hub (``publish_from_sync``): every process delivers it.
NO_ORIGIN = b"-"


class Member(Protocol):
    """A socket of a room: ``conn`` names it, ``hear`` takes a room event, ``lost`` closes it."""

    conn: str

    async def hear(self, event: dict[str, Any]) -> None: ...

    async def lost(self) -> None: ...


class RoomAway(Exception):
    """The room cannot be heard: Redis does not answer."""


def redis_url() -> str | None:
    """Return the Redis of the rooms' channel layer (its first host), or None for none."""
    from referrals.consultation.events import layer_alias

    config: dict[str, Any] = settings.CHANNEL_LAYERS.get(layer_alias(), {})
    if "redis" not in str(config.get("BACKEND", "")).lower():
        return None
    host = (config.get("CONFIG", {}).get("hosts") or [None])[0]
    if isinstance(host, dict):
        host = host.get("address")
    return str(host) if host else None


def encode(origin: bytes, event: dict[str, Any]) -> bytes:
    """Return the publication of ``event``: the publishing hub, a newline, the event's JSON."""
    return origin + b"\n" + orjson.dumps(event)


class RoomHub:
    """One event loop's rooms: their local sockets and, with Redis, one subscription each."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.origin = secrets.token_hex(8).encode()
        self.rooms: dict[str, dict[str, Member]] = {}
        self.ready: dict[str, asyncio.Future[None]] = {}
        self.broken = False
        self.redis: redis.asyncio.Redis | None = None
        self.pubsub: PubSub | None = None
        self.listener: asyncio.Task[None] | None = None
        self.outgoing: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self.publisher: asyncio.Task[None] | None = None
        if url:
            # No silent reconnect: a subscription that broke has missed messages, and
            # its sockets must be told (``fail``), not quietly resubscribed.
            self.redis = redis.asyncio.Redis.from_url(
                url, retry=Retry(NoBackoff(), 0), max_connections=1000
            )
            self.pubsub = self.redis.pubsub()

    # --- membership ------------------------------------------------------------------------

    async def join(self, group: str, member: Member) -> None:
        """Add ``member`` to ``group``; return once the room's publications reach it."""
        if self.broken:
            raise RoomAway(group)
        members = self.rooms.get(group)
        if members is None:
            members = self.rooms[group] = {}
            if self.pubsub is not None:
                ready = self.ready[group] = asyncio.get_running_loop().create_future()
                try:
                    await self._subscribe(group, ready)
                except BaseException:
                    self.rooms.pop(group, None)
                    self._settle(group, RoomAway(group))
                    raise
        waiting = self.ready.get(group)
        if waiting is not None:  # another socket's subscription of the room, on its way
            await asyncio.shield(waiting)
        self.rooms.setdefault(group, members)[member.conn] = member

    async def _subscribe(self, group: str, ready: asyncio.Future[None]) -> None:
        assert self.pubsub is not None
        try:
            await self.pubsub.subscribe(group)
        except (redis.RedisError, OSError) as error:
            raise RoomAway(group) from error
        if self.listener is None:
            self.listener = asyncio.ensure_future(self._listen())
        # The subscription counts from Redis's confirmation, which the listener reads.
        await asyncio.wait_for(asyncio.shield(ready), timeout=10)

    def _settle(self, group: str, error: BaseException | None = None) -> None:
        waiting = self.ready.pop(group, None)
        if waiting is not None and not waiting.done():
            if error is None:
                waiting.set_result(None)
            else:
                waiting.set_exception(error)
                waiting.exception()  # retrieved: no "never retrieved" warning

    async def leave(self, group: str, member: Member) -> None:
        members = self.rooms.get(group)
        if members is None or members.get(member.conn) is not member:
            return
        del members[member.conn]
        if not members and group not in self.ready:
            del self.rooms[group]
            if self.pubsub is not None and not self.broken:
                with contextlib.suppress(redis.RedisError, OSError):
                    await self.pubsub.unsubscribe(group)

    # --- events ------------------------------------------------------------------------------

    async def send(self, group: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to the room's sockets here, then publish it once for the others.

        Raise ``RoomAway`` when Redis does not take it (the sockets here had it).
        """
        # Encoded first: a socket here may note things in the event (its ASGI frame).
        data = encode(self.origin, event) if self.redis is not None else b""
        await self.deliver(group, event)
        if self.redis is not None:
            await self._publish(group, data)

    async def _publish(self, group: str, data: bytes) -> None:
        """Publish with whatever else this loop publishes now: one write, one round trip.

        A group commit wakes many senders at once; each publish alone would cost a
        system call and a reply of its own.
        """
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.outgoing.append((group, data, done))
        if self.publisher is None or self.publisher.done():
            self.publisher = asyncio.ensure_future(self._publish_waiting())
        await done

    async def _publish_waiting(self) -> None:
        assert self.redis is not None
        while self.outgoing:
            batch, self.outgoing = self.outgoing, []
            pipe = self.redis.pipeline(transaction=False)
            for group, data, _done in batch:
                pipe.publish(group, data)
            try:
                await pipe.execute()
            except (redis.RedisError, OSError) as error:
                for group, _data, done in batch:
                    if not done.done():
                        done.set_exception(RoomAway(group))
                        done.exception()  # its sender may be gone: no warning
                logger.info("consultation rooms: publishing failed: %s", error)
                continue
            for _group, _data, done in batch:
                if not done.done():
                    done.set_result(None)

    async def deliver(self, group: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to this process's sockets of ``group``; one failing spares the rest."""
        members = self.rooms.get(group)
        if not members:
            return
        for member in list(members.values()):
            try:
                await member.hear(event)
            except Exception:
                logger.exception("consultation room %s: a socket failed an event", group)

    async def _listen(self) -> None:
        assert self.pubsub is not None
        own = self.origin
        try:
            while True:
                message = await self.pubsub.get_message(timeout=None)
                if message is None:
                    continue
                kind = message["type"]
                if kind == "message":
                    origin, _, body = message["data"].partition(b"\n")
                    if origin != own:
                        await self.deliver(message["channel"].decode(), orjson.loads(body))
                elif kind == "subscribe":
                    self._settle(message["channel"].decode())
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("consultation rooms: the Redis subscription broke", exc_info=True)
            await self.fail()

    async def fail(self) -> None:
        """Close every socket of this hub (they reconnect and replay) and stop serving."""
        self.broken = True
        _forget(self)
        for group in list(self.ready):
            self._settle(group, RoomAway(group))
        members = [m for room in self.rooms.values() for m in room.values()]
        self.rooms.clear()
        for member in members:
            with contextlib.suppress(Exception):
                await member.lost()
        await self._disconnect()

    async def close(self) -> None:
        self.broken = True
        if self.listener is not None and asyncio.current_task() is not self.listener:
            self.listener.cancel()
            with contextlib.suppress(BaseException):
                await self.listener
        await self._disconnect()

    async def _disconnect(self) -> None:
        with contextlib.suppress(Exception):
            if self.pubsub is not None:
                await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            if self.redis is not None:
                await self.redis.aclose()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoomHub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub() -> RoomHub:
    """Return the running loop's hub; a new one after the last broke or Redis changed."""
    loop = asyncio.get_running_loop()
    url = redis_url()
    found = _hubs.get(loop)
    if found is None or found.broken or found.url != url:
        found = RoomHub(url)
        with _hubs_lock:
            first = loop not in _hubs
            _hubs[loop] = found
        if first:
            _close_with(loop)
    return found


def _forget(broken: RoomHub) -> None:
    with _hubs_lock:
        for loop, found in list(_hubs.items()):
            if found is broken:
                del _hubs[loop]


def _close_with(loop: asyncio.AbstractEventLoop) -> None:
    """Close the loop's hub before ``loop`` closes (each test runs its own loop)."""
    original = loop.close

    def close() -> None:
        found = _hubs.pop(loop, None)
        if found is not None and not loop.is_running() and not loop.is_closed():
            loop.run_until_complete(found.close())
        original()

    loop.close = close  # type: ignore[method-assign]


_sync_clients: dict[str, redis.Redis] = {}


def publish_from_sync(group: str, event: dict[str, Any]) -> None:
    """Tell ``group`` from synchronous code (a service's ``on_commit``), in any process.

    With Redis every hub hears it, this process's too; without, the event goes to
    this process's hubs on their own loops.
    """
    url = redis_url()
    if url:
        client = _sync_clients.get(url)
        if client is None:
            client = _sync_clients[url] = redis.Redis.from_url(url)
        client.publish(group, encode(NO_ORIGIN, event))
        return
    with _hubs_lock:
        found = list(_hubs.items())
    for loop, local in found:
        if not loop.is_closed():
            loop.call_soon_threadsafe(_deliver_soon, local, group, event)


def _deliver_soon(local: RoomHub, group: str, event: dict[str, Any]) -> None:
    task = asyncio.ensure_future(local.deliver(group, event))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


_pending: set[asyncio.Future[None]] = set()
