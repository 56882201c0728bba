"""Telling a consultation room what happened: the group name and a best-effort push.

The database is the source of truth; a push through the channel layer may be
lost (Redis away, a group over capacity) and the browsers fill any gap by
asking for a replay from their last sequence number.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)


def room_group(consultation_uuid: Any) -> str:
    """Return the Channels group of one consultation's room."""
    return f"consult.{getattr(consultation_uuid, 'hex', str(consultation_uuid).replace('-', ''))}"


def push(consultation_uuid: Any, event: dict[str, Any]) -> None:
    """Send ``event`` to everyone in the room now; log and go on if the layer is away."""
    try:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(room_group(consultation_uuid), event)
    except Exception:
        logger.warning(
            "live push to consultation %s failed; replay will fill the gap",
            consultation_uuid,
            exc_info=True,
        )
