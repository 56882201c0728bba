"""Under ASGI (daphne, the demo) a synchronous streaming body is sent as it is produced."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from asgiref.sync import ThreadSensitiveContext, async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.http import StreamingHttpResponse

from regional_cloud.streaming import BATCH_BYTES, StreamingASGIHandler

MB = 1024 * 1024


def test_the_first_bytes_leave_before_the_last_are_read() -> None:
    produced = []
    threads = set()
    at_send: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index in range(8):
            threads.add(threading.get_ident())
            produced.append(index)
            yield bytes(MB)

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            at_send.append(len(produced))
        messages.append(message)

    async def run() -> None:
        async with ThreadSensitiveContext():
            await StreamingASGIHandler().send_response(StreamingHttpResponse(chunks()), send)

    async_to_sync(run)()

    bodies = [m for m in messages if m["type"] == "http.response.body"]
    assert b"".join(m.get("body", b"") for m in bodies) == bytes(8 * MB)
    assert at_send[0] < 8  # Django's own handler reads all eight before the first send
    assert len(threads) == 1  # one thread advances the iterator: the request's
    assert all(len(m.get("body", b"")) <= BATCH_BYTES for m in bodies)


def test_djangos_own_handler_gathers_the_whole_body_first() -> None:
    """The behaviour the handler exists to avoid: if Django fixes it, this test says so."""
    produced = []
    at_send: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index in range(4):
            produced.append(index)
            yield bytes(1024)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            at_send.append(len(produced))

    async def run() -> None:
        async with ThreadSensitiveContext():
            await ASGIHandler().send_response(StreamingHttpResponse(chunks()), send)

    async_to_sync(run)()

    assert at_send[0] == 4


def test_closing_early_closes_the_synchronous_iterator() -> None:
    closed = threading.Event()

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                yield bytes(MB)
        finally:
            closed.set()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            raise OSError("the client went away")

    async def run() -> None:
        async with ThreadSensitiveContext():
            with contextlib.suppress(OSError):
                await StreamingASGIHandler().send_response(StreamingHttpResponse(chunks()), send)

    async_to_sync(run)()

    assert closed.is_set()
