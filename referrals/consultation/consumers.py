"""``/ws/consultations/<uuid>/``: one consultation's live room.

Only an accepted participant holding ``view_consultation`` gets past the
handshake (else it is closed with 4403); the Origin was already checked by
``AllowedHostsOriginValidator`` in ``regional_cloud.asgi``. Joining and leaving
are audited.

Nothing said is lost: a message (text, snapshot, annotation, presenter change)
is stored with the room's next sequence number *before* anyone is told; the
sender gets ``ack`` with that number, the room gets ``message``. The live
fan-out (``fanout``: this process's sockets directly, the other server
processes through Redis pub/sub) is best effort: a browser that reconnects,
or notices a gap, sends ``{"type": "replay", "after": <last seq seen>}`` and
gets what it missed, in order, then ``replayed``. Presence, the presenter's
view (slice, window, zoom) and WebRTC signalling are ephemeral, never stored.

Client → hub: ``replay``, ``say``, ``snapshot``, ``annotate``, ``present``,
``view``, ``view_request``, ``signal``, ``ping``. Hub → client: ``welcome``,
``message``, ``ack``, ``replayed``, ``presence``, ``view``, ``view_request``,
``signal``, ``state``, ``error``, ``pong``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from referrals.consultation import fanout, loop_store, messages, services
from referrals.consultation.events import message_event, room_group
from referrals.consultation.models import ConsultationMessage
from referrals.consultation.selectors import (
    RoomSeat,
    ice_servers,
    message_out,
    messages_after,
    room_participant,
    text_out,
)

logger = logging.getLogger(__name__)
Kind = ConsultationMessage.Kind
FORBIDDEN = 4403
LAYER_AWAY = 4503
MAX_SIGNAL_BYTES = 64 * 1024
# What a browser may send, and the method that takes it.
FROM_BROWSER = {
    name: f"on_{name}"
    for name in (
        "replay",
        "say",
        "snapshot",
        "annotate",
        "present",
        "view",
        "view_request",
        "signal",
        "ping",
    )
}


def _post_in_thread(**kwargs: Any) -> messages.Posted:
    """Post from a pool thread that keeps its database connection between messages.

    ``database_sync_to_async`` would check (and, with CONN_MAX_AGE 0, close and
    reopen) the connection around every message; here each thread of the pool —
    a fixed number per process, ASGI_THREADS or the CPU count + 4 — keeps one
    connection, dropped only after it failed (the next message opens a new one).
    """
    try:
        return messages.message_post(**kwargs)
    except DatabaseError:
        close_old_connections()
        raise


# Posting runs in the event loop's thread pool (ASGI_THREADS sizes it), each thread
# with its own database connection: one room's slow commit does not hold up the others.
_post = sync_to_async(_post_in_thread, thread_sensitive=False)
_replay = database_sync_to_async(messages_after, thread_sensitive=False)


def _unwrapped(send: Any) -> Any:
    """Return the server's own ``send`` under Channels' session middleware, else ``send``.

    The middleware's wrapper looks at the (lazy) session on every message, to save
    it with an ``http.response.start``; a WebSocket never sends one, and a busy
    room sends thousands of frames a second.
    """
    wrapper = getattr(send, "__self__", None)
    if isinstance(wrapper, InstanceSessionWrapper):
        return wrapper.real_send
    return send


class ConsultationConsumer(AsyncJsonWebsocketConsumer):
    seat: RoomSeat | None = None
    group: str = ""
    conn: str = ""
    presenter_id: int | None = None
    poster: asyncio.Task[None] | None = None
    outbox: asyncio.Queue[tuple[dict[str, Any], str, dict[str, Any]]]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve the socket: its frames one after another, without a channel layer.

        The room's events come through ``fanout`` (``hear``), not a channel of this
        consumer: Channels' loop would otherwise wait on two receivers with a task
        per frame.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = _unwrapped(send)
        with contextlib.suppress(StopConsumer):
            while True:
                await self.dispatch(await receive())

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return orjson.loads(text_data)
        except orjson.JSONDecodeError:
            return None  # not JSON: ignored like any frame that is not an object

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return orjson.dumps(content).decode()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Hand a message to its handler, without channels' connection sweep per message.

        ``AsyncConsumer.dispatch`` first runs ``close_old_connections`` through the one
        thread-sensitive thread, for every frame and every room event: with hundreds of
        sockets that thread becomes the queue every message waits in. Every database
        call here already looks after its connection (``database_sync_to_async``, the
        posting threads), so the sweep is skipped.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        uuid = self.scope["url_route"]["kwargs"]["uuid"]
        self.seat = await database_sync_to_async(room_participant)(self.scope.get("user"), uuid)
        if self.seat is None:
            await self.close(code=FORBIDDEN)
            return
        consultation = self.seat.consultation
        self.group = room_group(consultation.uuid)
        self.conn = secrets.token_hex(8)
        try:
            await fanout.hub().join(self.group, self)
        except fanout.RoomAway:
            # Redis is away: a room that cannot hear the others is not entered.
            logger.warning("consultation room %s: no live fan-out", self.group, exc_info=True)
            self.seat = None
            await self.close(code=LAYER_AWAY)
            return
        await self.accept()
        await database_sync_to_async(services.consultation_join)(
            consultation=consultation, actor=self.user, ip=self.ip
        )
        await database_sync_to_async(consultation.refresh_from_db)(
            fields=["state", "presenter", "last_seq"]
        )
        self.presenter_id = consultation.presenter_id
        await self.send_json(
            {
                "type": "welcome",
                "conn": self.conn,
                "me": self.seat.me,
                "state": consultation.state,
                "presenter": self.presenter_id,
                "last_seq": consultation.last_seq,
                "ice_servers": ice_servers(),
            }
        )
        await self.room({"type": "room.presence", "event": "join", **self.who()})

    async def disconnect(self, code: int) -> None:
        if self.poster is not None:
            # What is not acknowledged yet, the browser sends again under the same id.
            self.poster.cancel()
        if self.seat is None or not self.group:
            return
        hub = fanout.hub()
        try:
            # Before leaving: the last socket of this process still has the room's peers.
            await hub.send(self.group, {"type": "room.presence", "event": "leave", **self.who()})
        except fanout.RoomAway:
            logger.info("consultation room %s: leaving without Redis", self.group)
        await hub.leave(self.group, self)
        await database_sync_to_async(services.consultation_leave)(
            consultation=self.seat.consultation, actor=self.user, ip=self.ip
        )

    @property
    def user(self) -> Any:
        return self.scope["user"]

    @property
    def ip(self) -> str | None:
        client = self.scope.get("client")
        return client[0] if client else None

    def who(self) -> dict[str, Any]:
        assert self.seat is not None
        return {"conn": self.conn, "user": self.seat.me}

    async def room(self, event: dict[str, Any]) -> None:
        """Tell the room (this socket too); ``fanout.RoomAway`` when Redis is away."""
        await fanout.hub().send(self.group, event)

    async def hear(self, event: dict[str, Any]) -> None:
        """Take a room event from ``fanout``: ``room.message`` goes to ``room_message``."""
        handler = getattr(self, get_handler_name(event), None)
        if handler is not None:
            await handler(event)

    async def lost(self) -> None:
        """The room's fan-out broke (Redis away): close, so the browser reconnects and replays."""
        await self.close(code=LAYER_AWAY)

    # --- from the browser ---------------------------------------------------------------

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if self.seat is None or not isinstance(content, dict):
            return
        name = FROM_BROWSER.get(str(content.get("type")))
        if name is not None:
            await getattr(self, name)(content)

    async def on_ping(self, content: dict[str, Any]) -> None:
        await self.send_json({"type": "pong", "t": content.get("t")})

    async def on_replay(self, content: dict[str, Any]) -> None:
        """Send every stored message after ``after``, in order, then ``replayed``."""
        assert self.seat is not None
        try:
            after = max(0, int(content.get("after") or 0))
        except (TypeError, ValueError):
            after = 0
        while True:
            batch = await _replay(self.seat.consultation, after)
            for message in batch:
                await self.send_json(
                    {
                        "type": "message",
                        "message": message_out(message, self.seat.consultation.uuid),
                    }
                )
                after = message.seq
            if len(batch) < 500:
                break
        await self.send_json({"type": "replayed", "last_seq": after})

    async def on_say(self, content: dict[str, Any]) -> None:
        await self.queue(content, Kind.TEXT, text=str(content.get("text") or ""))

    async def on_snapshot(self, content: dict[str, Any]) -> None:
        await self.queue(
            content,
            Kind.SNAPSHOT,
            text=str(content.get("text") or ""),
            snapshot_data_url=str(content.get("data_url") or ""),
        )

    async def on_annotate(self, content: dict[str, Any]) -> None:
        annotation = content.get("annotation")
        await self.queue(
            content, Kind.ANNOTATION, annotation=annotation if isinstance(annotation, dict) else {}
        )

    async def on_present(self, content: dict[str, Any]) -> None:
        await self.queue(content, Kind.PRESENTER, payload={"on": bool(content.get("on", True))})

    async def queue(self, content: dict[str, Any], kind: str, **fields: Any) -> None:
        """Hand a message to this connection's poster, in the order the browser sent them.

        Storing takes a database round trip; the consumer keeps handing the room's
        messages to the browser meanwhile instead of waiting for it.
        """
        if self.poster is None:
            self.outbox = asyncio.Queue()
            self.poster = asyncio.create_task(self.post_each())
        await self.outbox.put((content, kind, fields))

    async def post_each(self) -> None:
        while True:
            content, kind, fields = await self.outbox.get()
            try:
                await self.post(content, kind, **fields)
            except Exception:
                logger.exception("consultation room %s: posting failed", self.group)
                await self.close(code=LAYER_AWAY)
                return

    async def post(self, content: dict[str, Any], kind: str, **fields: Any) -> None:
        """Store, acknowledge to the sender, then tell the room (in that order)."""
        assert self.seat is not None
        client_msg_id = str(content.get("client_msg_id") or "")
        try:
            out = None
            if kind == Kind.TEXT and loop_store.enabled():
                out = await self.post_text_here(client_msg_id, fields["text"])
            if out is None:
                posted = await _post(
                    consultation=self.seat.consultation,
                    actor=self.user,
                    client_msg_id=client_msg_id,
                    kind=kind,
                    **fields,
                )
                out = message_out(posted.message, self.seat.consultation.uuid)
        except messages.ConsultationError as error:
            await self.send_json(
                {
                    "type": "error",
                    "code": error.code,
                    "detail": error.message,
                    "client_msg_id": client_msg_id,
                }
            )
            return
        event = message_event(out, conn=self.conn)
        if event["kind"] == Kind.PRESENTER:
            # Before the ack: the sender's next message (its view, say) may be read before
            # this socket's own copy of the room event arrives to change the presenter.
            self.follow_presenter(event)
        # The acknowledgement carries the stored message: the room's push skips this socket.
        await self.send_json(
            {"type": "ack", "client_msg_id": client_msg_id, "seq": out["seq"], "message": out}
        )
        # A resend is pushed again too: the first push may be what the line dropped.
        try:
            await self.room(event)
        except fanout.RoomAway:
            # The layer (Redis) is away: the message is stored and acknowledged; the
            # others get it by replay. Close, so this browser reconnects too.
            logger.warning(
                "consultation room %s: channel layer unreachable", self.group, exc_info=True
            )
            await self.close(code=LAYER_AWAY)

    async def post_text_here(self, client_msg_id: str, text: str) -> dict[str, Any] | None:
        """Store a text from the event loop (``loop_store``); return what the room is told.

        None: a resend or a closed room, which the ordinary path explains.
        """
        assert self.seat is not None
        client_msg_id = messages.clean_client_id(client_msg_id)
        body = messages.text_body(text)
        now = timezone.now()
        row = await loop_store.store().insert_text(
            room_id=self.seat.consultation.pk,
            author_id=self.user.pk,
            client_msg_id=client_msg_id,
            body=body,
            now=now,
        )
        if row is None:
            return None
        author = {"id": self.seat.me["id"], "name": self.seat.me["name"]}
        return text_out(
            seq=row[1], client_msg_id=client_msg_id, author=author, text=body, created_at=now
        )

    async def on_view(self, content: dict[str, Any]) -> None:
        if self.presenter_id != self.user.pk or not isinstance(content.get("state"), dict):
            return
        await self.room({"type": "room.view", "state": content["state"], **self.who()})

    async def on_view_request(self, content: dict[str, Any]) -> None:
        await self.room({"type": "room.view_request", **self.who()})

    async def on_signal(self, content: dict[str, Any]) -> None:
        data = content.get("data")
        if not isinstance(data, dict) or len(str(data)) > MAX_SIGNAL_BYTES:
            return
        await self.room(
            {"type": "room.signal", "to": str(content.get("to") or ""), "data": data, **self.who()}
        )

    # --- from the room (``fanout`` events) ---------------------------------------------------

    def follow_presenter(self, event: dict[str, Any]) -> None:
        """Apply a presenter message's change: its author takes or gives up the role."""
        if event["on"]:
            self.presenter_id = event["author"]
        elif self.presenter_id == event["author"]:
            self.presenter_id = None

    async def room_message(self, event: dict[str, Any]) -> None:
        if event["kind"] == Kind.PRESENTER:
            self.follow_presenter(event)
        if event.get("conn") != self.conn:  # the sender had it with its ack
            frame = event.get("asgi")
            if frame is None:
                # Built once per process for all its sockets of the room: daphne only reads it.
                frame = event["asgi"] = {"type": "websocket.send", "text": event["frame"]}
            await self.base_send(frame)

    async def room_state(self, event: dict[str, Any]) -> None:
        if event["state"] in {"concluded", "cancelled"}:
            self.presenter_id = None
        await self.send_json({"type": "state", "state": event["state"]})

    async def room_presence(self, event: dict[str, Any]) -> None:
        if event["conn"] == self.conn or event.get("to", self.conn) != self.conn:
            return
        await self.send_json(
            {
                "type": "presence",
                "event": event["event"],
                "conn": event["conn"],
                "user": event["user"],
            }
        )
        if event["event"] == "join":
            # Tell the newcomer who is already here (only it takes a "here" addressed to it).
            await self.room(
                {"type": "room.presence", "event": "here", "to": event["conn"], **self.who()}
            )

    async def room_view(self, event: dict[str, Any]) -> None:
        if event["conn"] != self.conn:
            await self.send_json(
                {
                    "type": "view",
                    "conn": event["conn"],
                    "user": event["user"],
                    "state": event["state"],
                }
            )

    async def room_view_request(self, event: dict[str, Any]) -> None:
        if event["conn"] != self.conn and self.presenter_id == self.user.pk:
            await self.send_json({"type": "view_request", "conn": event["conn"]})

    async def room_signal(self, event: dict[str, Any]) -> None:
        # "*": a call starting, told to everyone else in the room.
        if event["to"] in {self.conn, "*"} and event["conn"] != self.conn:
            await self.send_json(
                {
                    "type": "signal",
                    "conn": event["conn"],
                    "user": event["user"],
                    "data": event["data"],
                }
            )
