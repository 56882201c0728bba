"""The rooms' fan-out: sockets of this process directly, other server processes through Redis.

Each event loop has a hub of its own, as each daphne process has: two hubs (or
two loops in two threads) stand for two server processes sharing one Redis.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections

from referrals.consultation import fanout
from tests.consultation_helpers import make_room
from tests.test_consultation_consumer import enter, next_of, session_of, socket


@pytest.fixture
def redis_layer(settings, redis_url: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }


@dataclass
class Listener:
    conn: str
    heard: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    async def hear(self, event: dict[str, Any]) -> None:
        self.heard.append(event)

    async def lost(self) -> None:
        self.closed = True


async def until(condition: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_it_hands_each_event_once_to_every_member_here_and_in_the_other_process(redis_url):
    async def scenario() -> None:
        here, there = fanout.RoomHub(redis_url), fanout.RoomHub(redis_url)
        a, b, c = Listener("a"), Listener("b"), Listener("c")
        await here.join("consult.room1", a)
        await here.join("consult.room1", b)
        await there.join("consult.room1", c)
        outsider = Listener("d")
        await there.join("consult.room2", outsider)

        for n in range(5):
            await here.send("consult.room1", {"type": "room.message", "n": n})
        await there.send("consult.room1", {"type": "room.message", "n": 5})
        await until(lambda: len(c.heard) == 6 and len(a.heard) == 6)
        await asyncio.sleep(0.2)  # anything echoed or doubled would have come by now

        for member in (a, b, c):
            heard = [e["n"] for e in member.heard]
            # Each process's events in the order it sent them; two processes' events
            # have no order between them (the browsers order messages by number).
            assert sorted(heard) == [0, 1, 2, 3, 4, 5]
            assert [n for n in heard if n < 5] == [0, 1, 2, 3, 4]
        assert outsider.heard == []

        await there.leave("consult.room1", c)
        await here.send("consult.room1", {"type": "room.message", "n": 6})
        await until(lambda: len(b.heard) == 7)
        await asyncio.sleep(0.2)
        assert len(c.heard) == 6
        await here.close()
        await there.close()

    async_to_sync(scenario)()


def test_a_room_in_one_process_publishes_nothing_but_its_hello(redis_url):
    """No other process has sockets in the room: its messages stay in the process."""
    import redis.asyncio

    async def scenario() -> None:
        watcher = redis.asyncio.Redis.from_url(redis_url).pubsub()
        await watcher.subscribe("consult.room5")
        await watcher.get_message(timeout=1)  # the subscription's confirmation
        hub = fanout.RoomHub(redis_url)
        a, b = Listener("a"), Listener("b")
        # The watcher counts as a receiver that never answers: the join waits it out.
        await hub.join("consult.room5", a)
        await hub.join("consult.room5", b)
        for n in range(3):
            await hub.send("consult.room5", {"type": "room.message", "n": n})
        assert [e["n"] for e in b.heard] == [0, 1, 2]
        seen = []
        while (message := await watcher.get_message(timeout=0.5)) is not None:
            seen.append(message["data"].partition(b"\n")[2])
        assert [orjson.loads(data)["type"] for data in seen] == ["hub.hello"]
        await hub.close()
        await watcher.aclose()

    async_to_sync(scenario)()


def test_a_service_s_push_reaches_every_process_once(redis_layer, redis_url):
    async def scenario() -> None:
        here, there = fanout.RoomHub(redis_url), fanout.RoomHub(redis_url)
        a, b = Listener("a"), Listener("b")
        await here.join("consult.room3", a)
        await there.join("consult.room3", b)
        await asyncio.to_thread(
            fanout.publish_from_sync, "consult.room3", {"type": "room.state", "state": "live"}
        )
        await until(lambda: a.heard and b.heard)
        await asyncio.sleep(0.2)
        assert a.heard == b.heard == [{"type": "room.state", "state": "live"}]
        await here.close()
        await there.close()

    async_to_sync(scenario)()


def test_it_closes_every_member_when_redis_goes_away(redis_url):
    async def scenario() -> None:
        hub = fanout.RoomHub(redis_url)
        a = Listener("a")
        await hub.join("consult.room4", a)
        assert hub.redis is not None
        assert hub.pubsub is not None
        assert hub.pubsub.connection is not None
        # Redis drops this hub's subscription (as when it restarts); only this one:
        # others share this Redis.
        host, port = hub.pubsub.connection._writer.get_extra_info("sockname")[:2]
        await hub.redis.client_kill_filter(addr=f"{host}:{port}")
        await until(lambda: a.closed)
        assert hub.broken
        with pytest.raises(fanout.RoomAway):
            await hub.join("consult.room4", Listener("b"))
        await hub.close()

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_sockets_served_by_two_processes_hear_each_other_once(network, redis_layer):
    """The specialist's socket runs on a loop of its own: another server process."""
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)
    ready, said = threading.Event(), threading.Event()
    heard_there: list[dict[str, Any]] = []
    failures: list[BaseException] = []

    async def other_process() -> None:
        b = socket(specialist, room.consultation)
        await enter(b)
        ready.set()
        heard_there.append(await next_of(b, "message", client_msg_id="a-1", timeout=10))
        await b.send_json_to({"type": "say", "client_msg_id": "b-1", "text": "收到"})
        await next_of(b, "ack")
        await asyncio.to_thread(said.wait, 10)
        # Nothing more comes: the doctor's message arrived once.
        assert await b.receive_nothing(timeout=0.5) or all(
            m.get("message", {}).get("client_msg_id") != "a-1"
            for m in [await b.receive_json_from()]
        )
        await b.disconnect()
        # This "process" ends: its database connections with it (the test database is dropped).
        await sync_to_async(connections.close_all)()

    def run_other() -> None:
        try:
            asyncio.run(other_process())
        except BaseException as error:
            failures.append(error)
            ready.set()

    async def scenario() -> None:
        a = socket(doctor, room.consultation)
        await enter(a)
        thread = threading.Thread(target=run_other)
        thread.start()
        assert await asyncio.to_thread(ready.wait, 20)
        await a.send_json_to({"type": "say", "client_msg_id": "a-1", "text": "请看第 3 层"})
        ack = await next_of(a, "ack")
        back = await next_of(a, "message", client_msg_id="b-1", timeout=10)
        said.set()
        assert back["message"]["text"] == "收到"
        assert back["message"]["seq"] == ack["seq"] + 1
        await a.disconnect()
        await asyncio.to_thread(thread.join, 20)

    async_to_sync(scenario)()
    assert not failures, failures
    assert [m["message"]["text"] for m in heard_there] == ["请看第 3 层"]


@pytest.mark.django_db(transaction=True)
def test_without_redis_the_room_lives_in_its_one_process(network, settings):
    """The embedded demo: the in-memory channel layer, no Redis, one server process."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)

    async def scenario() -> None:
        a = socket(doctor, room.consultation)
        b = socket(specialist, room.consultation)
        await enter(a)
        await enter(b)
        await a.send_json_to({"type": "say", "client_msg_id": "a-1", "text": "无 Redis"})
        heard = await next_of(b, "message", client_msg_id="a-1")
        assert heard["message"]["text"] == "无 Redis"
        # A service's push from a worker thread reaches the sockets on the loop.
        group = f"consult.{room.consultation.uuid.hex}"
        await asyncio.to_thread(
            fanout.publish_from_sync, group, {"type": "room.state", "state": "live"}
        )
        assert (await next_of(b, "state"))["state"] == "live"
        await a.disconnect()
        await b.disconnect()

    async_to_sync(scenario)()
