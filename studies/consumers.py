"""``/ws/worklist/``: tell a specialist's open worklist that a row changed.

The socket joins the worklist group of every institution where the user is a
specialist, plus the user's own group (studies shared with them alone). A
message is ``{"type": "changed", "task": <uuid>, "event": ...}`` — no patient
data: the page fetches the row through the API, where the permission filter
decides what the user may see. Anyone else's socket is closed.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from studies.reading.events import worklist_group, worklist_user_group
from studies.reading.selectors import specialist_institution_uuids


class WorklistConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close()
            return
        institutions = await database_sync_to_async(specialist_institution_uuids)(user)
        if not institutions:
            await self.close()
            return
        self.groups_joined = [worklist_group(u) for u in institutions]
        self.groups_joined.append(worklist_user_group(user.pk))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The socket only listens; claims and reports go over HTTP."""

    async def worklist_changed(self, event: dict[str, Any]) -> None:
        await self.send_json({"type": "changed", "task": event["task"], "event": event["event"]})
