"""The event loop's store: texts waiting together are numbered per room in one statement."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from referrals.consultation import loop_store
from referrals.consultation.models import Consultation, ConsultationMessage
from referrals.consultation.services import consultation_cancel
from tests.consultation_helpers import make_room

pytestmark = pytest.mark.django_db(transaction=True)


def stored_texts(consultation: Consultation) -> list[tuple[int, str]]:
    return list(
        ConsultationMessage.objects.filter(consultation=consultation, kind="text")
        .order_by("seq")
        .values_list("seq", "client_msg_id")
    )


def test_it_numbers_each_room_s_texts_in_arrival_order_in_one_batch(network):
    first, second, closed = make_room(network), make_room(network), make_room(network)
    consultation_cancel(consultation=closed.consultation, actor=closed.doctor, reason="改期")
    start = {r.consultation.pk: r.consultation.last_seq for r in (first, second)}
    # Arrival order: the two rooms interleaved, a closed room, and a resend inside the batch.
    arrivals = [
        (first, "f-0"),
        (second, "s-0"),
        (first, "f-1"),
        (closed, "c-0"),
        (second, "s-1"),
        (first, "f-2"),
        (first, "f-1"),  # the browser sent f-1 again before its ack came
    ]

    async def scenario() -> list[tuple[int, int] | None]:
        store = loop_store.LoopStore(size=1)
        now = timezone.now()
        try:
            return await asyncio.gather(
                *(
                    store.insert_text(
                        room_id=room.consultation.pk,
                        author_id=room.doctor.pk,
                        client_msg_id=cid,
                        body=f"text {cid}",
                        now=now,
                    )
                    for room, cid in arrivals
                )
            )
        finally:
            await store.close()

    results = async_to_sync(scenario)()

    seqs = [row[1] if row else None for row in results]
    f, s = start[first.consultation.pk], start[second.consultation.pk]
    assert seqs == [f + 1, s + 1, f + 2, None, s + 2, f + 3, None]
    assert stored_texts(first.consultation) == [(f + 1, "f-0"), (f + 2, "f-1"), (f + 3, "f-2")]
    assert stored_texts(second.consultation) == [(s + 1, "s-0"), (s + 2, "s-1")]
    assert stored_texts(closed.consultation) == []
    # No number taken and lost: the room's counter is its last message.
    for room, last in ((first, f + 3), (second, s + 2)):
        room.consultation.refresh_from_db()
        assert room.consultation.last_seq == last


def test_it_stores_a_batch_in_one_statement_when_nothing_is_unusual(network):
    room = make_room(network)
    statements: list[str] = []

    async def scenario() -> None:
        store = loop_store.LoopStore(size=1)
        now = timezone.now()
        conn = await store._connection()
        store.idle.append(conn)
        original = conn.execute

        async def counting(query, *args, **kwargs):
            statements.append(str(query))
            return await original(query, *args, **kwargs)

        conn.execute = counting  # type: ignore[method-assign]
        try:
            await asyncio.gather(
                *(
                    store.insert_text(
                        room_id=room.consultation.pk,
                        author_id=room.doctor.pk,
                        client_msg_id=f"m-{i}",
                        body=str(i),
                        now=now,
                    )
                    for i in range(20)
                )
            )
        finally:
            await store.close()

    async_to_sync(scenario)()
    assert statements == [loop_store.BATCH_SQL]
    assert [cid for _seq, cid in stored_texts(room.consultation)] == [f"m-{i}" for i in range(20)]
