"""Nothing said is lost: replay after a dropped line, idempotent resends, Redis going away.

``RoomClient`` does what the browser's room.js does: it asks for a replay
from its last sequence number on every (re)connect, hands messages on in
sequence order and drops duplicates, and resends unacknowledged messages under
their first id.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import Client

from referrals.consultation.models import ConsultationMessage
from tests.consultation_helpers import make_room
from tests.fixtures import free_port

pytestmark = pytest.mark.django_db(transaction=True)


PUBSUB = "channels_redis.pubsub.RedisPubSubChannelLayer"
LISTS = "channels_redis.core.RedisChannelLayer"


def layer_at(settings: Any, url: str, backend: str = PUBSUB) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend, "CONFIG": {"hosts": [url]}}}


@pytest.fixture
def redis_layer(settings, redis_url: str) -> None:
    layer_at(settings, redis_url)


@pytest.fixture(autouse=True)
def _close_pool_connections():
    yield
    gc.collect()


def new_application() -> Any:
    """A fresh ASGI application, as a restarted server builds it."""
    from channels.auth import AuthMiddlewareStack
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import AllowedHostsOriginValidator

    from regional_cloud.routing import websocket_urlpatterns

    return ProtocolTypeRouter(
        {
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            )
        }
    )


def session_of(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class RoomClient:
    def __init__(self, session: str, consultation: Any, application: Any) -> None:
        self.session = session
        self.path = f"/ws/consultations/{consultation.uuid}/"
        self.application = application
        self.socket: WebsocketCommunicator | None = None
        self.last_seq = 0
        self.buffer: dict[int, dict[str, Any]] = {}
        self.delivered: list[dict[str, Any]] = []
        self.duplicates = 0
        self.outbox: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, int] = {}

    async def connect(self) -> bool:
        socket = WebsocketCommunicator(
            self.application,
            self.path,
            headers=[
                (b"origin", b"http://testserver"),
                (b"host", b"testserver"),
                (b"cookie", f"sessionid={self.session}".encode()),
            ],
        )
        try:
            connected, _code = await socket.connect(timeout=5)
        except Exception:
            connected = False
        if not connected:
            return False
        self.socket = socket
        await socket.send_json_to({"type": "replay", "after": self.last_seq})
        for payload in self.outbox.values():
            await socket.send_json_to(payload)
        return True

    async def drop(self) -> None:
        if self.socket is not None:
            # The application may already have died with its layer.
            with contextlib.suppress(Exception):
                await self.socket.disconnect(timeout=5)
            self.socket = None

    async def send(self, client_msg_id: str, text: str) -> None:
        payload = {"type": "say", "client_msg_id": client_msg_id, "text": text}
        self.outbox[client_msg_id] = payload
        assert self.socket is not None
        await self.socket.send_json_to(payload)

    async def read(self, timeout: float = 0.2) -> bool:
        """Handle one frame from the hub; return False when none came (or the line died)."""
        if self.socket is None:
            return False
        try:
            # (A timed-out receive would cancel the application: look before reading.)
            if await self.socket.receive_nothing(timeout=timeout, interval=0.01):
                return False
            data = await self.socket.receive_json_from(timeout=5)
        except Exception:
            # The server side failed: a dropped line. What it sent before had left
            # already (the communicator keeps it queued, a real server had written it).
            queue, self.socket = self.socket.output_queue, None
            while not queue.empty():
                frame = queue.get_nowait()
                if frame.get("type") == "websocket.send" and frame.get("text"):
                    self.handle(json.loads(frame["text"]))
            return False
        self.handle(data)
        return True

    def handle(self, data: dict[str, Any]) -> None:
        if data["type"] == "ack":
            self.outbox.pop(data["client_msg_id"], None)
            self.acks[data["client_msg_id"]] = data["seq"]
            # As the browser: the stored message comes with its ack, not by the room's push.
            self.accept(data["message"])
        elif data["type"] == "message":
            self.accept(data["message"])

    def accept(self, message: dict[str, Any]) -> None:
        if message["seq"] <= self.last_seq or message["seq"] in self.buffer:
            self.duplicates += 1
            return
        self.buffer[message["seq"]] = message
        while self.last_seq + 1 in self.buffer:
            self.last_seq += 1
            self.delivered.append(self.buffer.pop(self.last_seq))

    async def until_acked(self, client_msg_id: str, timeout: float = 10) -> int:
        deadline = time.monotonic() + timeout
        while client_msg_id not in self.acks:
            assert time.monotonic() < deadline, f"no ack for {client_msg_id}"
            await self.read()
        return self.acks[client_msg_id]

    async def until_seq(self, seq: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.last_seq < seq:
            assert time.monotonic() < deadline, f"stuck at {self.last_seq}, waiting for {seq}"
            if not await self.read() and self.buffer:
                # A gap that does not fill: ask again, as the browser does.
                assert self.socket is not None
                await self.socket.send_json_to({"type": "replay", "after": self.last_seq})

    def texts(self) -> list[str]:
        return [m["text"] for m in self.delivered if m["kind"] == "text"]


def test_it_replays_what_a_dropped_client_missed_in_order_without_duplicates(network, redis_layer):
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)

    async def scenario() -> None:
        from regional_cloud.asgi import application

        a = RoomClient(doctor, room.consultation, application)
        b = RoomClient(specialist, room.consultation, application)
        assert await a.connect()
        assert await b.connect()
        last = 0

        async def sender() -> None:
            nonlocal last
            for i in range(1, 51):
                await a.send(f"a-{i}", str(i))
                last = await a.until_acked(f"a-{i}")
                await asyncio.sleep(0.005)

        async def receiver() -> None:
            while last < 1 or len(b.texts()) < 15:
                await b.read(timeout=0.05)
            await b.drop()  # the line drops after 15...
            while len(a.acks) < 35:
                await asyncio.sleep(0.01)
            assert await b.connect()  # ...and comes back while a is still talking

        await asyncio.gather(sender(), receiver())
        await b.until_seq(last)
        assert b.texts() == [str(i) for i in range(1, 51)]
        seqs = [m["seq"] for m in b.delivered]
        assert seqs == list(range(1, len(seqs) + 1))
        await a.drop()
        await b.drop()

    async_to_sync(scenario)()
    assert (
        ConsultationMessage.objects.filter(consultation=room.consultation, kind="text").count()
        == 50
    )


def test_it_keeps_a_resent_message_once(network, redis_layer):
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)

    async def scenario() -> None:
        from regional_cloud.asgi import application

        a = RoomClient(doctor, room.consultation, application)
        b = RoomClient(specialist, room.consultation, application)
        assert await a.connect()
        assert await b.connect()
        await a.send("once", "只说一次")
        await a.drop()  # gone before reading the ack: the browser cannot know it was kept
        assert "once" in a.outbox
        assert await a.connect()  # resends the outbox under the same id
        seq = await a.until_acked("once")
        await b.until_seq(seq)
        await asyncio.sleep(0.3)
        while await b.read():
            pass
        assert b.texts() == ["只说一次"]
        await a.drop()
        await b.drop()

    async_to_sync(scenario)()
    assert ConsultationMessage.objects.filter(client_msg_id="once").count() == 1


class PrivateRedis:
    """A redis-server of this test's own, to stop and start (never the shared one)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("backend", [PUBSUB, LISTS], ids=["pubsub", "lists"])
def test_it_loses_nothing_when_redis_goes_away_and_the_server_restarts(
    network, settings, private_redis, backend
):
    layer_at(settings, private_redis.url, backend)
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)

    async def scenario() -> None:
        first = new_application()
        a = RoomClient(doctor, room.consultation, first)
        b = RoomClient(specialist, room.consultation, first)
        assert await a.connect()
        assert await b.connect()
        for i in range(1, 11):
            await a.send(f"r-{i}", str(i))
            await a.until_acked(f"r-{i}")
        await b.until_seq(a.acks["r-10"])

        private_redis.stop()  # Redis goes away mid-session
        # Stored (the database is the truth) and acknowledged, unless the socket closed
        # first: then it stays in the outbox and is sent again after the reconnect.
        await a.send("r-11", "11")
        for _ in range(50):
            if "r-11" in a.acks or (not await a.read(timeout=0.1) and a.socket is None):
                break
        for client in (a, b):  # ...but the room's sockets die with the layer
            for _ in range(50):
                await client.read(timeout=0.1)
                if client.socket is None:
                    break
            await client.drop()
        assert not await b.connect()  # no layer, no room: the page shows its banner

        private_redis.start()  # Redis is back (empty), and so is a fresh server
        await asyncio.to_thread(channel_layers._reset_backends, "CHANNEL_LAYERS")
        second = new_application()
        a.application = b.application = second
        assert await a.connect()
        assert await b.connect()
        for i in range(12, 21):
            await a.send(f"r-{i}", str(i))
            await a.until_acked(f"r-{i}")
        await b.until_seq(a.acks["r-20"])
        assert b.texts() == [str(i) for i in range(1, 21)]
        await a.drop()
        await b.drop()

    async_to_sync(scenario)()
