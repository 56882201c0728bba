"""Navigation for the base template: what the signed-in user's roles may open."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from hospitals.selectors import primary_membership, user_roles


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_roles": set(), "nav_membership": None}
    return {"nav_roles": user_roles(user), "nav_membership": primary_membership(user)}
