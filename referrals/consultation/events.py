"""Telling a consultation room what happened: the group name and a best-effort push.

The database is the source of truth; a push (``fanout``) may be lost (Redis
away) and the browsers fill any gap by asking for a replay from their last
sequence number.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from django.conf import settings

from referrals.consultation import fanout

logger = logging.getLogger(__name__)


def layer_alias() -> str:
    """Return the channel layer of the rooms: ``consultation`` when configured, else the default.

    Settings give the rooms a Redis configuration of their own and leave the default
    layer to the worklists and notifications; ``fanout`` publishes on the Redis it names.
    """
    return "consultation" if "consultation" in settings.CHANNEL_LAYERS else "default"


def room_group(consultation_uuid: Any) -> str:
    """Return the Channels group of one consultation's room."""
    return f"consult.{getattr(consultation_uuid, 'hex', str(consultation_uuid).replace('-', ''))}"


def push(consultation_uuid: Any, event: dict[str, Any]) -> None:
    """Send ``event`` to everyone in the room now; log and go on if the layer is away."""
    try:
        fanout.publish_from_sync(room_group(consultation_uuid), event)
    except Exception:
        logger.warning(
            "live push to consultation %s failed; replay will fill the gap",
            consultation_uuid,
            exc_info=True,
        )


def message_event(message: dict[str, Any], *, conn: str = "") -> dict[str, Any]:
    """Return the room event of one stored message, its browser frame encoded once.

    Every connection of the room sends the same text, so it is serialized here
    rather than once per recipient; the consumer reads only the presenter fields.
    ``conn``: the sending connection, which had the message with its ack already.
    """
    payload = message.get("payload") or {}
    return {
        "type": "room.message",
        "frame": orjson.dumps({"type": "message", "message": message}).decode(),
        "kind": message["kind"],
        "author": message["author"]["id"] if message.get("author") else None,
        "on": bool(payload.get("on")),
        "conn": conn,
    }
