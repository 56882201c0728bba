"""Bearer-token authentication shared by the API and DICOMweb.

``Authorization: Bearer <token>`` (or ``Token <token>``) carries either a
personal API token or an edge node's token; both resolve to a user, so
permissions and the audit trail treat every caller the same way.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from hospitals.models import ApiToken, EdgeNode, Institution, Membership, Role
from hospitals.tokens import EDGE_PREFIX, token_hash
from regional_cloud import sql_rows

KEYWORDS = {b"bearer", b"token"}


def user_for_token(token: str) -> tuple[Any, Any] | None:
    """Return ``(user, token_object)`` for a valid token, or ``None``.

    Looked up in the database on every request, never cached: revoking a
    token, rotating it, deactivating the edge, its institution or the user
    takes effect on the very next request, in every server process. One
    written-out statement each (``regional_cloud.sql_rows``) keeps that cheap.
    """
    digest = token_hash(token)
    if token.startswith(EDGE_PREFIX):
        return _edge_for(digest)
    return _api_token_for(digest)


@functools.cache
def _edge_sql() -> str:
    user_model = get_user_model()
    return (
        f"SELECT {sql_rows.columns(EdgeNode, 'e')}, {sql_rows.columns(user_model, 'u')}, "  # noqa: S608 - names from the models
        f"{sql_rows.columns(Institution, 'i')}, "
        # Whether the edge's service identity may send for the edge's institution
        # (studies.senders reads it instead of asking again on every STOW-RS).
        f"EXISTS (SELECT 1 FROM {Membership._meta.db_table} m WHERE m.user_id = u.id "
        "AND m.institution_id = e.institution_id AND m.role = %s AND m.is_active) "
        f"FROM {EdgeNode._meta.db_table} e "
        f"JOIN {user_model._meta.db_table} u ON u.id = e.service_user_id "
        f"JOIN {Institution._meta.db_table} i ON i.id = e.institution_id "
        "WHERE e.token_hash = %s AND e.is_active AND i.is_active AND u.is_active"
    )


@functools.cache
def _api_token_sql() -> str:
    user_model = get_user_model()
    return (
        f"SELECT {sql_rows.columns(ApiToken, 't')}, {sql_rows.columns(user_model, 'u')} "  # noqa: S608 - names from the models
        f"FROM {ApiToken._meta.db_table} t "
        f"JOIN {user_model._meta.db_table} u ON u.id = t.user_id "
        "WHERE t.token_hash = %s AND t.revoked_at IS NULL AND u.is_active"
    )


def _edge_for(digest: str) -> tuple[Any, EdgeNode] | None:
    user_model = get_user_model()
    with sql_rows.planned_cursor() as cursor:
        cursor.execute(_edge_sql(), [str(Role.EDGE), digest])
        row = cursor.fetchone()
    if row is None:
        return None
    edge = sql_rows.from_row(EdgeNode, row)
    edge.sends_for_institution = bool(row[-1])
    user = sql_rows.from_row(user_model, row, sql_rows.width(EdgeNode))
    edge.service_user = user
    edge.institution = sql_rows.from_row(
        Institution, row, sql_rows.width(EdgeNode) + sql_rows.width(user_model)
    )
    return user, edge


def _api_token_for(digest: str) -> tuple[Any, ApiToken] | None:
    user_model = get_user_model()
    with sql_rows.planned_cursor() as cursor:
        cursor.execute(_api_token_sql(), [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    api_token = sql_rows.from_row(ApiToken, row)
    api_token.user = sql_rows.from_row(user_model, row, sql_rows.width(ApiToken))
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
