"""Bearer-token authentication shared by the API and DICOMweb.

``Authorization: Bearer <token>`` (or ``Token <token>``) carries either a
personal API token or an edge node's token; both resolve to a user, so
permissions and the audit trail treat every caller the same way.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from hospitals.models import ApiToken, EdgeNode
from hospitals.tokens import EDGE_PREFIX, token_hash

KEYWORDS = {b"bearer", b"token"}


def user_for_token(token: str) -> tuple[Any, Any] | None:
    """Return ``(user, token_object)`` for a valid token, or ``None``."""
    digest = token_hash(token)
    if token.startswith(EDGE_PREFIX):
        edge = (
            EdgeNode.objects.select_related("service_user", "institution")
            .filter(token_hash=digest, is_active=True, institution__is_active=True)
            .first()
        )
        if edge is None or not edge.service_user.is_active:
            return None
        return edge.service_user, edge
    api_token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=digest, revoked_at__isnull=True)
        .first()
    )
    if api_token is None or not api_token.user.is_active:
        return None
    now = timezone.now()
    # Touch at most once a minute: a busy client must not write on every request.
    if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    return api_token.user, api_token


def token_from_header(header: bytes) -> str | None:
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() not in KEYWORDS:
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


class TokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        keyword = header.split()[0].lower() if header.split() else b""
        if keyword not in KEYWORDS:
            return None
        token = token_from_header(header)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
        found = user_for_token(token)
        if found is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        return found

    def authenticate_header(self, request: Any) -> str:
        return 'Bearer realm="api"'
