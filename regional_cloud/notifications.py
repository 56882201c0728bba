"""Notifications to users: stored, pushed live to the browser, and handed to outside channels.

``notify`` stores one ``Notification`` per recipient; after commit each is
pushed to the recipient's Channels group (``user.<id>``, joined by
``NotificationConsumer`` at ``/ws/notifications/``) and given to every callable
in ``CHANNELS`` — the hook for an SMS or WeChat gateway, which a deployment
appends at start-up. A channel gets the notification object and decides what
leaves the hub: an SMS should carry the title and the link, never the body.
Nothing here logs titles or bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from regional_cloud.models import Notification

logger = logging.getLogger(__name__)

# Outside delivery (SMS, WeChat...): callables taking a Notification, called after commit.
CHANNELS: list[Callable[[Notification], None]] = []


def user_group(user_id: object) -> str:
    """Return the Channels group of one user's notifications."""
    return f"user.{user_id}"


@transaction.atomic
def notify(
    *, recipients: Iterable[Any], kind: str, title: str, body: str = "", url: str = ""
) -> list[Notification]:
    """Store a notification for each recipient (once each); deliver them after commit."""
    created = []
    seen: set[int] = set()
    for user in recipients:
        if user is None or user.pk in seen or not user.is_active:
            continue
        seen.add(user.pk)
        created.append(
            Notification.objects.create(
                recipient=user, kind=kind, title=title[:200], body=body, url=url[:300]
            )
        )
    ids = [n.pk for n in created]
    if ids:
        transaction.on_commit(lambda: deliver(ids))
    return created


def deliver(notification_ids: list[int]) -> None:
    """Push stored notifications to their recipients' browsers and to every outside channel."""
    for notification in Notification.objects.filter(pk__in=notification_ids).select_related(
        "recipient"
    ):
        _push(notification)
        for channel in list(CHANNELS):
            try:
                channel(notification)
            except Exception:
                logger.exception(
                    "notification channel %s failed for notification %s",
                    getattr(channel, "__name__", channel),
                    notification.uuid,
                )


def as_message(notification: Notification) -> dict[str, Any]:
    """Return what the recipient's browser is told (it is their own notification)."""
    return {
        "id": str(notification.uuid),
        "kind": notification.kind,
        "title": notification.title,
        "url": notification.url,
        "created_at": notification.created_at.isoformat(),
        "seen": notification.seen_at is not None,
    }


def _push(notification: Notification) -> None:
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        async_to_sync(layer.group_send)(
            user_group(notification.recipient_id),
            {
                "type": "notification.created",
                "notification": as_message(notification),
                "unread": unread_count(notification.recipient),
            },
        )
    except Exception:
        # The notification is stored; the badge catches up on the next page.
        logger.exception("live push of notification %s failed", notification.uuid)


def inbox(user: Any) -> QuerySet[Notification]:
    """Return ``user``'s notifications, newest first."""
    if not getattr(user, "is_authenticated", False):
        return Notification.objects.none()
    return Notification.objects.filter(recipient=user)


def unread_count(user: Any) -> int:
    return inbox(user).filter(seen_at__isnull=True).count()


def notification_mark_seen(*, notification: Notification, user: Any) -> bool:
    """Mark one of ``user``'s notifications seen; return whether it was unseen."""
    if notification.recipient_id != user.pk or notification.seen_at is not None:
        return False
    notification.seen_at = timezone.now()
    notification.save(update_fields=["seen_at"])
    return True


def notifications_mark_seen_for_url(*, user: Any, url: str) -> int:
    """Mark seen ``user``'s unseen notifications that point at ``url``; return how many."""
    return inbox(user).filter(seen_at__isnull=True, url=url).update(seen_at=timezone.now())


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/notifications/``: the signed-in user's own notifications, live."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close()
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        count = await database_sync_to_async(unread_count)(user)
        await self.send_json({"type": "unread", "unread": count})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The socket only listens; clients mark notifications seen over HTTP."""

    async def notification_created(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                "type": "notification",
                "notification": event["notification"],
                "unread": event["unread"],
            }
        )
