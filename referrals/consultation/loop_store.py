"""Storing a room's texts from the event loop itself: no thread hop per message.

Texts are nearly all a room says. ``messages.message_post`` runs in a thread
(Django's ORM is synchronous): every message then pays the executor hand-off
and a fight for the GIL with the event loop that serves every socket — about a
quarter of a busy server's CPU per message (py-spy, benchmarks/README.md). Here
the same single statement (``messages.TEXT_INSERT_SQL``: the number taken and
the row written in one commit) runs on psycopg's asynchronous connections, a
few per event loop, awaited like any socket.

Only on PostgreSQL. Anything unusual — a resend (the unique client id refuses
it), a room that closed meanwhile — returns ``None`` and the caller takes the
ordinary path, which explains it. A broken connection is dropped; the error
goes up, the room closes the socket, and the browser sends again under the
same id.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from datetime import datetime
from typing import Any

import psycopg
from django.db import connections

from referrals.consultation import messages

# Connections per event loop: posts beyond this wait for one to come free. A
# room's posts queue on its row lock anyway; this bounds what one server
# process holds of PostgreSQL's max_connections.
CONNECTIONS_PER_LOOP = 4
# Django's OPTIONS that are not libpq parameters.
DJANGO_ONLY_OPTIONS = {"pool", "isolation_level", "assume_role", "server_side_binding"}


def enabled() -> bool:
    """True on PostgreSQL (the embedded SQLite keeps the ordinary path)."""
    global _enabled
    if _enabled is None:
        _enabled = connections["default"].vendor == "postgresql"
    return _enabled


_enabled: bool | None = None


def _connect_kwargs() -> dict[str, Any]:
    settings = connections["default"].settings_dict
    options = {k: v for k, v in settings["OPTIONS"].items() if k not in DJANGO_ONLY_OPTIONS}
    given = {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "password": settings["PASSWORD"],
        "host": settings["HOST"],
        "port": settings["PORT"],
    }
    return {k: v for k, v in given.items() if v} | options | {"autocommit": True}


class LoopStore:
    """A few autocommit connections of one event loop, lent to one statement at a time."""

    def __init__(self, size: int = CONNECTIONS_PER_LOOP) -> None:
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(size)
        self.kwargs = _connect_kwargs()

    async def insert_text(
        self, *, room_id: int, author_id: int, client_msg_id: str, body: str, now: datetime
    ) -> tuple[int, int] | None:
        """Store one text; return (id, seq), or None when the ordinary path must decide."""
        sql, params = messages.text_insert(room_id, author_id, client_msg_id, body, now)
        async with self.slots:
            conn = self.idle.pop() if self.idle else None
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(**self.kwargs)
            try:
                cursor = await conn.execute(sql, params, prepare=True)
                row = await cursor.fetchone()
            except psycopg.errors.UniqueViolation:
                self.idle.append(conn)  # autocommit: the statement is rolled back, no more
                return None
            except BaseException:
                # Broken or interrupted mid-statement: never lend this connection again.
                await _close_quietly(conn)
                raise
            self.idle.append(conn)
        return (int(row[0]), int(row[1])) if row else None

    async def close(self) -> None:
        while self.idle:
            await _close_quietly(self.idle.pop())


async def _close_quietly(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):  # closing what is already broken
        await conn.close()


_stores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopStore] = (
    weakref.WeakKeyDictionary()
)


def store() -> LoopStore:
    """Return the running loop's store; its connections close when the loop closes."""
    loop = asyncio.get_running_loop()
    found = _stores.get(loop)
    if found is None:
        found = _stores[loop] = LoopStore()
        _close_with(loop, found)
    return found


def _close_with(loop: asyncio.AbstractEventLoop, found: LoopStore) -> None:
    """Close the store's connections before ``loop`` closes (each test runs its own loop)."""
    original = loop.close

    def close() -> None:
        if not loop.is_running() and not loop.is_closed():
            loop.run_until_complete(found.close())
        _stores.pop(loop, None)
        original()

    loop.close = close  # type: ignore[method-assign]
