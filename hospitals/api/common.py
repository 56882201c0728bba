"""What every network endpoint shares: permission classes, error mapping, look-ups."""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from django.db.models import Model, QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import permissions, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from hospitals.models import EdgeNode
from hospitals.services import NetworkError

M = TypeVar("M", bound=Model)

# Public ids in URLs are UUIDs; the pattern also keeps "heartbeat" from being a lookup.
UUID_REGEX = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def is_edge(request: Any) -> bool:
    return isinstance(getattr(request, "auth", None), EdgeNode)


class IsPerson(permissions.BasePermission):
    """A signed-in person: an edge node's machine identity is refused."""

    message = _("This endpoint is for people, not edge nodes.")

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and not is_edge(request))


class IsEdgeNode(permissions.BasePermission):
    """The caller authenticated with an edge node's own token."""

    message = _("Only an edge node's token may call this endpoint.")

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated and is_edge(request))


class NetworkErrorsAs400:
    """Turn a refusal of the network's rules into 400 with the service's reason."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, NetworkError):
            exc = ValidationError({"detail": str(exc)})
        return super().handle_exception(exc)  # type: ignore[misc]


def get_or_400(queryset: QuerySet[M], field: str, uuid: UUID | None, message: Any) -> M:
    """Return the object of ``queryset`` with ``uuid``, or answer 400 on ``field``.

    The queryset is already filtered to what the caller may use, so "not found"
    and "not yours" read the same: nothing leaks about other institutions.
    """
    found = queryset.filter(uuid=uuid).first() if uuid is not None else None
    if found is None:
        raise ValidationError({field: [message]})
    return found


def validated(
    serializer_class: type[serializers.Serializer[Any]], data: Any, **kwargs: Any
) -> dict[str, Any]:
    """Return the validated input, or answer 400 with each field's reason."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describe hospitals.authentication.TokenAuthentication in the OpenAPI schema."""

    target_class = "hospitals.authentication.TokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (ric_…) or an edge node's token (edge_…).",
        }
