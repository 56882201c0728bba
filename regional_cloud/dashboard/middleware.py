"""The health bureau sees aggregates only: a bureau-only user gets 403 outside them.

Every endpoint that carries patient data already filters by object
permission, and a bureau analyst holds none; this is the second lock, by
allow-list, so a future endpoint that forgets its filter still shows a
bureau user nothing. A user counts as bureau-only when they hold the
bureau analyst role and no clinical role anywhere (a doctor who also
analyses keeps their clinical pages).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.views.defaults import permission_denied

from hospitals.models import CLINICAL_ROLES, Role
from hospitals.selectors import user_roles

# Paths a bureau-only user may open: the dashboards, their home, their account, the
# network's structure (institutions, no patients), language switching, static files.
BUREAU_ALLOWED_PREFIXES = (
    "/dashboard/",
    "/api/dashboard/",
    "/accounts/",
    "/i18n/",
    "/static/",
    "/network/",
    "/api/me/",
    "/api/institutions/",
    "/api/tokens/",
    "/api/schema/",
    "/api/docs/",
)
BUREAU_ALLOWED_EXACT = frozenset({"/", "/favicon.ico"})


def is_bureau_only(user: Any) -> bool:
    """Return whether ``user`` sees the network only through the bureau's aggregates."""
    if not getattr(user, "is_authenticated", False):
        return False
    roles = user_roles(user)
    return Role.BUREAU_ANALYST in roles and not roles & CLINICAL_ROLES


def bureau_may_open(path: str) -> bool:
    return path in BUREAU_ALLOWED_EXACT or path.startswith(BUREAU_ALLOWED_PREFIXES)


class BureauAggregatesOnlyMiddleware:
    """Answer 403 to a bureau-only user on any path outside the allow-list."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: Any
    ) -> HttpResponse | None:
        # After authentication (session or API token alike): DRF authenticates tokens
        # inside the view, so a token caller is checked again by its own view's filter.
        if bureau_may_open(request.path_info) or not is_bureau_only(request.user):
            return None
        # The site's 403 page, without the traceback a raised exception would log.
        return permission_denied(request, PermissionDenied())
