"""A room's live fan-out: each server process hands a room's events straight to its own sockets.

Through the channel layer every socket of a room got every event in a queue of
its own, awaited by a task of its own and dispatched by type: per message and
per recipient, the largest part of a busy server's CPU (benchmarks/README.md).
Here each event loop keeps the rooms it has sockets in (``RoomHub``). An event —
a stored message's browser frame, encoded once — is handed to those sockets
directly, and published once on Redis for the other server processes that have
sockets in the room: each subscribes to the rooms it has sockets in and ignores
its own publications.

A room whose sockets are all in one process (a balancer spreading rooms) needs
no publication at all, and publishing one anyway costs a round trip and its own
echo per message. So the processes of a room know each other (``peers``): the
first socket of a room in a process announces it (``hub.hello``) and waits for
the answer of every other process subscribed (``hub.here``, as many as Redis
counted receivers) before the socket is welcomed. A process that decided not to
publish a message had not read the hello yet, so the message was stored before
the newcomer's welcome, and its replay brings it. The last socket of a room in
a process says ``hub.bye``.

Best effort, like any live push: the database is the truth, and a browser
replays what it missed. Each process's events arrive in the order it sent
them; those of two processes have no order between them (a browser orders the
messages by their numbers). But a socket that cannot hear the room must not look
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
# How long a newcomer waits for the answers of the room's other processes.
MEETING_SECONDS = 2.0


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
        self.outgoing: list[tuple[str, bytes, asyncio.Future[int]]] = []
        self.publisher: asyncio.Task[None] | None = None
        self.publishing: redis.asyncio.Connection | None = None
        # group -> the other processes with sockets in it (their origins).
        self.peers: dict[str, set[bytes]] = {}
        # group -> (the processes that answered our hello, set once all did).
        self.meetings: dict[str, tuple[set[bytes], asyncio.Future[None]]] = {}
        self.subscribed: dict[str, asyncio.Future[None]] = {}
        self.background: set[asyncio.Future[None]] = set()
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
                self.ready[group] = asyncio.get_running_loop().create_future()
                try:
                    await self._subscribe(group)
                    await self._meet(group)
                    self._settle(group)
                except BaseException:
                    self.rooms.pop(group, None)
                    self._settle(group, RoomAway(group))
                    raise
        waiting = self.ready.get(group)
        if waiting is not None:  # another socket's subscription of the room, on its way
            await asyncio.shield(waiting)
        self.rooms.setdefault(group, members)[member.conn] = member

    async def _subscribe(self, group: str) -> None:
        assert self.pubsub is not None
        confirmed = self.subscribed[group] = asyncio.get_running_loop().create_future()
        try:
            await self.pubsub.subscribe(group)
        except (redis.RedisError, OSError) as error:
            raise RoomAway(group) from error
        if self.listener is None:
            self.listener = asyncio.ensure_future(self._listen())
        # The subscription counts from Redis's confirmation, which the listener reads.
        await asyncio.wait_for(confirmed, timeout=10)

    async def _meet(self, group: str) -> None:
        """Announce this process in ``group``; return once every other one there answered."""
        answered: set[bytes] = set()
        everyone = asyncio.get_running_loop().create_future()
        self.meetings[group] = (answered, everyone)
        try:
            receivers = await self._publish(group, self._control("hub.hello"))
            others = max(0, receivers - 1)
            if len(answered) < others:
                with contextlib.suppress(TimeoutError):
                    # One that never answers (it just died) only delays the welcome.
                    async with asyncio.timeout(MEETING_SECONDS):
                        while len(answered) < others:
                            await asyncio.shield(everyone)
                            everyone = asyncio.get_running_loop().create_future()
                            self.meetings[group] = (answered, everyone)
        finally:
            self.meetings.pop(group, None)

    def _soon(self, work: Any) -> None:
        """Run ``work`` beside the listener, which must not wait on a publish's reply."""
        task = asyncio.ensure_future(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def _control(self, kind: str, **fields: Any) -> bytes:
        return encode(self.origin, {"type": kind, **fields})

    async def _on_control(self, group: str, origin: bytes, event: dict[str, Any]) -> None:
        kind = event["type"]
        here = bool(self.rooms.get(group)) or group in self.ready
        if kind == "hub.hello":
            if here:  # (else this process is leaving the room: it answers all the same)
                self.peers.setdefault(group, set()).add(origin)
            with contextlib.suppress(RoomAway):  # the listener will see Redis gone too
                await self._publish(group, self._control("hub.here", members=here))
        elif kind == "hub.here":
            if event.get("members"):
                self.peers.setdefault(group, set()).add(origin)
            meeting = self.meetings.get(group)
            if meeting is not None:
                meeting[0].add(origin)
                if not meeting[1].done():
                    meeting[1].set_result(None)
        elif kind == "hub.bye":
            self.peers.get(group, set()).discard(origin)

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
            self.peers.pop(group, None)
            if self.pubsub is not None and not self.broken:
                with contextlib.suppress(RoomAway, redis.RedisError, OSError):
                    await self._publish(group, self._control("hub.bye"))
                    await self.pubsub.unsubscribe(group)

    # --- events ------------------------------------------------------------------------------

    async def send(self, group: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to the room's sockets here, then publish it once for the others.

        Raise ``RoomAway`` when Redis does not take it (the sockets here had it).
        """
        # Encoded first: a socket here may note things in the event (its ASGI frame).
        data = encode(self.origin, event) if self.peers.get(group) else b""
        await self.deliver(group, event)
        if data:
            await self._publish(group, data)

    async def _publish(self, group: str, data: bytes) -> int:
        """Publish with whatever else this loop publishes now: one write, one round trip.

        A group commit wakes many senders at once; each publish alone would cost a
        system call and a reply of its own. Return how many subscribers received it.
        """
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.outgoing.append((group, data, done))
        if self.publisher is None or self.publisher.done():
            self.publisher = asyncio.ensure_future(self._publish_waiting())
        return await done

    async def _publish_waiting(self) -> None:
        while self.outgoing:
            batch, self.outgoing = self.outgoing, []
            try:
                replies = await self._publish_batch(batch)
            except (redis.RedisError, OSError) as error:
                if self.publishing is not None:
                    await self.publishing.disconnect()
                    self.publishing = None
                for group, _data, done in batch:
                    if not done.done():
                        done.set_exception(RoomAway(group))
                        done.exception()  # its sender may be gone: no warning
                logger.info("consultation rooms: publishing failed: %s", error)
                continue
            for (_group, _data, done), reply in zip(batch, replies, strict=True):
                if not done.done():
                    done.set_result(int(reply))

    async def _publish_batch(
        self, batch: list[tuple[str, bytes, asyncio.Future[int]]]
    ) -> list[Any]:
        """Write the batch's PUBLISH commands at once on this hub's own connection.

        One connection, not redis-py's pipeline: its bookkeeping per command cost
        more than the commands (py-spy); the replies are read in order.
        """
        assert self.redis is not None
        conn = self.publishing
        if conn is None:
            conn = self.redis.connection_pool.make_connection()
            await conn.connect()
            self.publishing = conn
        await conn.send_packed_command(
            conn.pack_commands([("PUBLISH", group, data) for group, data, _done in batch]),
            check_health=False,
        )
        replies = []
        for _ in batch:
            reply = await conn.read_response()
            if isinstance(reply, redis.ResponseError):
                raise reply
            replies.append(reply)
        return replies

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
                        group, event = message["channel"].decode(), orjson.loads(body)
                        if event["type"].startswith("hub."):
                            self._soon(self._on_control(group, origin, event))
                        else:
                            await self.deliver(group, event)
                elif kind == "subscribe":
                    confirmed = self.subscribed.pop(message["channel"].decode(), None)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
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
        for confirmed in self.subscribed.values():
            if not confirmed.done():
                confirmed.set_exception(RoomAway("subscription"))
                confirmed.exception()
        self.subscribed.clear()
        self.peers.clear()
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
            if self.publishing is not None:
                await self.publishing.disconnect()
        with contextlib.suppress(Exception):
            if self.pubsub is not None:
                await self.pubsub.aclose()
        with contextlib.suppress(Exception):
            if self.redis is not None:
                await self.redis.aclose()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RoomHub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def hub() -> RoomHub:
    """Return the running loop's hub; a new one after the last broke."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None or found.broken:
        found = RoomHub(redis_url())
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
