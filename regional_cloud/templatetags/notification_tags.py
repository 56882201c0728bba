"""``{% unread_notifications as n %}``: the signed-in user's unseen notifications, for the badge."""

from __future__ import annotations

from typing import Any

from django import template

from regional_cloud.notifications import unread_count

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notifications(context: dict[str, Any]) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return 0
    return unread_count(user)
