"""The consultation room's WebSocket, over the real ASGI application and a real Redis layer."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from referrals.consultation.models import ConsultationMessage
from regional_cloud.models import AuditEvent
from tests.consultation_helpers import first_image, make_room

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_layer(settings, redis_url: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }


def session_of(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def socket(
    session: str | None, consultation: Any, *, origin: bytes = b"http://testserver"
) -> WebsocketCommunicator:
    from regional_cloud.asgi import application

    headers = [(b"origin", origin), (b"host", b"testserver")]
    if session is not None:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(
        application, f"/ws/consultations/{consultation.uuid}/", headers=headers
    )


async def next_of(
    communicator: WebsocketCommunicator, type_: str, timeout: float = 5, **match: Any
) -> Any:
    """Return the next message of type ``type_`` (whose ``message`` has ``match``), skip others."""
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        if message["type"] != type_:
            continue
        inner = message.get("message", {})
        if all(inner.get(k) == v for k, v in match.items()):
            return message


async def enter(communicator: WebsocketCommunicator) -> dict[str, Any]:
    connected, code = await communicator.connect(timeout=5)
    assert connected, code
    welcome = await next_of(communicator, "welcome")
    await communicator.send_json_to({"type": "replay", "after": welcome["last_seq"]})
    await next_of(communicator, "replayed")
    return welcome


def test_it_carries_chat_both_ways_and_stores_each_message_before_telling_the_room(
    network, redis_layer
):
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)

    async def scenario() -> None:
        a = socket(doctor, room.consultation)
        b = socket(specialist, room.consultation)
        await enter(a)
        await enter(b)

        await a.send_json_to({"type": "say", "client_msg_id": "a-1", "text": "请看第 12 层"})
        ack = await next_of(a, "ack")
        heard = await next_of(b, "message", kind="text")
        assert heard["message"]["text"] == "请看第 12 层"
        assert heard["message"]["author"]["id"] == room.doctor.pk
        assert heard["message"]["seq"] == ack["seq"]
        # Stored before anyone was told: the row is there the moment the other hears it.
        stored = await sync_to_async(
            ConsultationMessage.objects.filter(
                consultation=room.consultation, seq=heard["message"]["seq"]
            ).first
        )()
        assert stored is not None
        assert stored.text == "请看第 12 层"

        await b.send_json_to({"type": "say", "client_msg_id": "b-1", "text": "同意，考虑良性"})
        back = await next_of(a, "message", client_msg_id="b-1")
        assert back["message"]["text"] == "同意，考虑良性"
        assert back["message"]["seq"] == ack["seq"] + 1
        await a.disconnect()
        await b.disconnect()

    async_to_sync(scenario)()


def test_it_numbers_the_room_s_messages_one_after_another(network, redis_layer):
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)
    expert = session_of(room.expert)

    async def scenario() -> None:
        a = socket(doctor, room.consultation)
        b = socket(specialist, room.consultation)
        observer = socket(expert, room.consultation)
        for s in (a, b, observer):
            await enter(s)
        for i in range(10):
            sender = a if i % 2 else b
            await sender.send_json_to({"type": "say", "client_msg_id": f"m-{i}", "text": str(i)})
            await next_of(sender, "ack")
        seen = [(await next_of(observer, "message", kind="text"))["message"] for _ in range(10)]
        seqs = [m["seq"] for m in seen]
        assert seqs == list(range(seqs[0], seqs[0] + 10))
        assert [m["text"] for m in seen] == [str(i) for i in range(10)]
        for s in (a, b, observer):
            await s.disconnect()

    async_to_sync(scenario)()


def test_it_refuses_non_participants_at_the_handshake(network, redis_layer):
    room = make_room(network, accept=False)
    outsider = session_of(room.people["outsider"])
    invited = session_of(room.expert)  # invited, not accepted
    colleague = session_of(room.people["doctor2"])  # the requester's colleague

    async def scenario() -> None:
        for session in (outsider, invited, colleague, None):
            connected, code = await socket(session, room.consultation).connect(timeout=5)
            assert not connected
            assert code == 4403

    async_to_sync(scenario)()


def test_it_refuses_a_foreign_origin(network, redis_layer):
    room = make_room(network)
    doctor = session_of(room.doctor)

    async def scenario() -> None:
        foreign = socket(doctor, room.consultation, origin=b"https://evil.example")
        connected, _code = await foreign.connect(timeout=5)
        assert not connected
        same = socket(doctor, room.consultation)
        assert (await same.connect(timeout=5))[0]
        await same.disconnect()

    async_to_sync(scenario)()
    # The refused socket never reached the room.
    assert AuditEvent.objects.filter(action="consultation.join").count() == 1


def test_it_audits_joining_and_leaving(network, redis_layer):
    room = make_room(network)
    specialist = session_of(room.specialist)

    async def scenario() -> None:
        b = socket(specialist, room.consultation)
        await enter(b)
        await b.disconnect()

    async_to_sync(scenario)()
    events = list(
        AuditEvent.objects.filter(
            action__in=["consultation.join", "consultation.leave"],
            object_id=str(room.consultation.uuid),
        ).order_by("pk")
    )
    assert [e.action for e in events] == ["consultation.join", "consultation.leave"]
    assert all(e.actor == room.specialist for e in events)
    room.consultation.refresh_from_db()
    assert room.consultation.state == "live"


def test_it_tells_who_is_here_and_who_left(network, redis_layer):
    room = make_room(network)
    doctor, expert = session_of(room.doctor), session_of(room.expert)

    async def scenario() -> None:
        a = socket(doctor, room.consultation)
        welcome_a = await enter(a)
        c = socket(expert, room.consultation)
        connected, _code = await c.connect(timeout=5)
        assert connected
        welcome_c = await next_of(c, "welcome")
        joined = await next_of(a, "presence")
        assert (joined["event"], joined["user"]["id"]) == ("join", room.expert.pk)
        # Those already here answer the newcomer ("here"), unless their own "join" was
        # still on its way when it arrived: either way it learns who is here (the answer
        # may come before the newcomer's replay is done).
        here = await next_of(c, "presence")
        assert here["event"] in {"here", "join"}
        assert here["conn"] == welcome_a["conn"]
        await c.disconnect()
        left = await next_of(a, "presence")
        while left["event"] != "leave":  # (an answer to a late "join" may come first)
            left = await next_of(a, "presence")
        assert left["conn"] == welcome_c["conn"]
        await a.disconnect()

    async_to_sync(scenario)()


def test_it_relays_only_the_presenter_s_view_and_signals_to_their_addressee(network, redis_layer):
    room = make_room(network)
    doctor, specialist, expert = (
        session_of(room.doctor),
        session_of(room.specialist),
        session_of(room.expert),
    )
    view = {"series": "1.2.3", "slice": 7, "voi": {"center": 40, "width": 400}}

    async def scenario() -> None:
        a, b, c = (socket(s, room.consultation) for s in (doctor, specialist, expert))
        await enter(a)
        welcome_b = await enter(b)
        await enter(c)
        # Nobody presents yet: a view goes nowhere.
        await a.send_json_to({"type": "view", "state": {"slice": -1}})
        await a.send_json_to({"type": "present", "client_msg_id": "p-1", "on": True})
        await next_of(b, "message", kind="presenter")
        # The presenter has its own message with the ack, not again from the room.
        assert (await next_of(a, "ack"))["message"]["kind"] == "presenter"
        await a.send_json_to({"type": "view", "state": view})
        # The first view b hears is the presenter's, not the one sent before.
        followed = await next_of(b, "view")
        assert followed["state"] == view
        # WebRTC signalling: to one connection only.
        await c.send_json_to({"type": "signal", "to": welcome_b["conn"], "data": {"kind": "sdp"}})
        signal = await next_of(b, "signal")
        assert signal["data"] == {"kind": "sdp"}
        assert signal["user"]["id"] == room.expert.pk
        for s in (a, b, c):
            await s.disconnect()

    async_to_sync(scenario)()
    # Ephemeral: neither views nor signals are in the transcript.
    kinds = set(
        ConsultationMessage.objects.filter(consultation=room.consultation).values_list(
            "kind", flat=True
        )
    )
    assert kinds == {"system", "presenter"}


def test_it_shares_an_annotation_and_refuses_a_bad_one_to_its_sender_only(network, redis_layer):
    room = make_room(network)
    doctor, specialist = session_of(room.doctor), session_of(room.specialist)
    image = first_image(room.study)

    async def scenario() -> None:
        a = socket(doctor, room.consultation)
        b = socket(specialist, room.consultation)
        await enter(a)
        await enter(b)
        arrow = {"kind": "arrow", "points": [{"x": 5, "y": 5}, {"x": 50, "y": 60}], **image}
        await a.send_json_to({"type": "annotate", "client_msg_id": "n-1", "annotation": arrow})
        seen = await next_of(b, "message", kind="annotation")
        assert seen["message"]["payload"]["sop"] == image["sop"]
        await a.send_json_to(
            {"type": "annotate", "client_msg_id": "n-2", "annotation": {"kind": "circle"}}
        )
        error = await next_of(a, "error")
        assert (error["code"], error["client_msg_id"]) == ("bad_annotation", "n-2")
        await a.send_json_to({"type": "say", "client_msg_id": "n-3", "text": "ok"})
        assert (await next_of(b, "message", kind="text"))["message"]["text"] == "ok"
        await a.disconnect()
        await b.disconnect()

    async_to_sync(scenario)()


@pytest.fixture(autouse=True)
def _close_pool_connections():
    """The room posts from a thread pool; its threads' connections go with the test."""
    yield
    import gc

    gc.collect()


def test_it_keeps_a_resend_once_and_refuses_texts_once_the_room_is_concluded(network, redis_layer):
    """The event loop's own store (loop_store) hands both cases to the ordinary path."""
    from referrals.consultation.services import consultation_conclude

    room = make_room(network, live=True)
    doctor = session_of(room.doctor)

    async def scenario() -> None:
        a = socket(doctor, room.consultation)
        await enter(a)
        say = {"type": "say", "client_msg_id": "once", "text": "只存一次"}
        await a.send_json_to(say)
        first = await next_of(a, "ack")
        await a.send_json_to(say)
        again = await next_of(a, "ack")
        assert again["seq"] == first["seq"]
        await sync_to_async(consultation_conclude)(
            consultation=room.consultation, actor=room.specialist, conclusion="结论"
        )
        await a.send_json_to({"type": "say", "client_msg_id": "late", "text": "太迟了"})
        refused = await next_of(a, "error")
        assert (refused["code"], refused["client_msg_id"]) == ("consultation_closed", "late")
        await a.disconnect()

    async_to_sync(scenario)()
    texts = ConsultationMessage.objects.filter(consultation=room.consultation, kind="text")
    assert list(texts.values_list("text", flat=True)) == ["只存一次"]
