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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from django.db import connections

from referrals.consultation import messages
from referrals.consultation.models import ConsultationMessage

# Connections per event loop: posts beyond this wait for one to come free. A
# room's posts queue on its row lock anyway; this bounds what one server
# process holds of PostgreSQL's max_connections.
CONNECTIONS_PER_LOOP = 4
# Django's OPTIONS that are not libpq parameters.
DJANGO_ONLY_OPTIONS = {"pool", "isolation_level", "assume_role", "server_side_binding"}
TEXT = ConsultationMessage.Kind.TEXT.value
# PostgreSQL's text of an array of the open states (plain words: nothing to quote).
OPEN_STATES_LITERAL = "{" + ",".join(sorted(messages.open_states())) + "}"


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


# One statement for every text waiting when a connection comes free (group commit):
# the numbers of each room taken in its rows' id order (no deadlock between two
# batches), the rows written, one commit for all. A room not open any more is left
# out of ``locked``; its texts come back without a row. The texts travel as one JSON
# parameter and the open states as one array literal: psycopg's dumping of five
# array parameters in Python cost more than the rest of the statement's client side.
BATCH_SQL = """
WITH input AS (
    SELECT * FROM json_to_recordset(%s::json) AS t(
        room_id bigint, client_msg_id text, author_id bigint, body text,
        created_at timestamptz, ord bigint)
),
counts AS (SELECT room_id, count(*)::bigint AS n FROM input GROUP BY room_id),
locked AS (
    SELECT r.id FROM {rooms} r
    WHERE r.id IN (SELECT room_id FROM counts) AND r.state = ANY(%s::text[])
    ORDER BY r.id FOR UPDATE
),
taken AS (
    UPDATE {rooms} r SET last_seq = r.last_seq + c.n FROM counts c, locked l
    WHERE r.id = c.room_id AND l.id = r.id
    RETURNING r.id, r.last_seq - c.n AS base
)
INSERT INTO {messages}
    (consultation_id, seq, client_msg_id, kind, author_id, text, payload, snapshot_key, created_at)
SELECT i.room_id, t.base + row_number() OVER (PARTITION BY i.room_id ORDER BY i.ord),
    i.client_msg_id, %s, i.author_id, i.body, '{{}}', '', i.created_at
FROM input i JOIN taken t ON t.id = i.room_id
RETURNING consultation_id, client_msg_id, id, seq
""".format(rooms=messages.ROOMS_TABLE, messages=messages.MESSAGES_TABLE)  # noqa: S608, UP032
MAX_BATCH = 500


@dataclass
class _Text:
    room_id: int
    author_id: int
    client_msg_id: str
    body: str
    now: datetime
    done: asyncio.Future[tuple[int, int] | None]


class LoopStore:
    """A few autocommit connections of one event loop; each stores what waits, in one go."""

    def __init__(self, size: int = CONNECTIONS_PER_LOOP) -> None:
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.size = size
        self.flushers: set[asyncio.Task[None]] = set()
        self.pending: list[_Text] = []
        self.kwargs = _connect_kwargs()

    async def insert_text(
        self, *, room_id: int, author_id: int, client_msg_id: str, body: str, now: datetime
    ) -> tuple[int, int] | None:
        """Store one text; return (id, seq) once committed, or None for the ordinary path."""
        done: asyncio.Future[tuple[int, int] | None] = asyncio.get_running_loop().create_future()
        self.pending.append(_Text(room_id, author_id, client_msg_id, body, now, done))
        if len(self.flushers) < self.size:
            task = asyncio.ensure_future(self._flush())
            self.flushers.add(task)
            task.add_done_callback(self.flushers.discard)
        return await done

    async def _flush(self) -> None:
        while self.pending:
            batch, self.pending = self.pending[:MAX_BATCH], self.pending[MAX_BATCH:]
            try:
                results = await self._store(batch)
            except Exception as error:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(error)
                continue
            for item, result in zip(batch, results, strict=True):
                if not item.done.done():
                    item.done.set_result(result)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self.idle.pop() if self.idle else None
        if conn is None or conn.closed:
            conn = await psycopg.AsyncConnection.connect(**self.kwargs)
        return conn

    async def _store(self, batch: list[_Text]) -> list[tuple[int, int] | None]:
        conn = await self._connection()
        try:
            try:
                results = await self._grouped(conn, batch)
            except psycopg.errors.UniqueViolation:
                # A resend among them (the whole statement rolled back): one by one.
                results = [await self._single(conn, item) for item in batch]
        except BaseException:
            # Broken or interrupted mid-statement: never lend this connection again.
            await _close_quietly(conn)
            raise
        self.idle.append(conn)
        return results

    async def _grouped(
        self, conn: psycopg.AsyncConnection[Any], batch: list[_Text]
    ) -> list[tuple[int, int] | None]:
        texts = orjson.dumps(
            [
                {
                    "room_id": item.room_id,
                    "client_msg_id": item.client_msg_id,
                    "author_id": item.author_id,
                    "body": item.body,
                    "created_at": item.now,
                    "ord": n,
                }
                for n, item in enumerate(batch)
            ]
        ).decode()
        params = [texts, OPEN_STATES_LITERAL, TEXT]
        cursor = await conn.execute(BATCH_SQL, params, prepare=True)
        stored = {
            (room, cid): (int(pk), int(seq)) for room, cid, pk, seq in await cursor.fetchall()
        }
        return [stored.get((item.room_id, item.client_msg_id)) for item in batch]

    async def _single(
        self, conn: psycopg.AsyncConnection[Any], item: _Text
    ) -> tuple[int, int] | None:
        sql, params = messages.text_insert(
            item.room_id, item.author_id, item.client_msg_id, item.body, item.now
        )
        try:
            cursor = await conn.execute(sql, params, prepare=True)
        except psycopg.errors.UniqueViolation:
            return None  # autocommit: that statement alone rolled back
        row = await cursor.fetchone()
        return (int(row[0]), int(row[1])) if row else None

    async def close(self) -> None:
        for task in list(self.flushers):
            task.cancel()
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
