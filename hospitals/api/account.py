"""``/api/tokens/`` and ``/api/me/``: the caller's own tokens and who the caller is."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hospitals.api.common import UUID_REGEX, IsPerson, validated
from hospitals.models import ApiToken, Membership
from hospitals.selectors import active_memberships, api_tokens_of
from hospitals.services import api_token_create, api_token_revoke


class OwnsToken(permissions.BasePermission):
    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return bool(obj.user_id == request.user.pk)


class ApiTokenOutput(serializers.ModelSerializer[ApiToken]):
    """A token as listed: its name and first characters, never the token."""

    class Meta:
        model = ApiToken
        fields = ["uuid", "name", "token_prefix", "created_at", "last_used_at", "revoked_at"]


class ApiTokenWithSecretOutput(ApiTokenOutput):
    token = serializers.CharField(read_only=True, help_text="Shown once; only its hash is kept.")

    class Meta(ApiTokenOutput.Meta):
        fields = [*ApiTokenOutput.Meta.fields, "token"]


class ApiTokenCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, help_text="What the token is for.")


class ApiTokenViewSet(viewsets.GenericViewSet[ApiToken]):
    """The caller's personal API tokens (``Authorization: Bearer ric_…``)."""

    permission_classes = [IsPerson, OwnsToken]
    serializer_class = ApiTokenOutput
    lookup_field = "uuid"
    lookup_value_regex = UUID_REGEX

    def get_queryset(self) -> QuerySet[ApiToken]:
        return api_tokens_of(self.request.user)

    def list(self, request: Request) -> Response:
        """List your personal API tokens (names and prefixes, never the tokens)."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiTokenOutput(page, many=True).data)

    def retrieve(self, request: Request, uuid: str) -> Response:
        """Show one of your personal API tokens."""
        return Response(ApiTokenOutput(self.get_object()).data)

    @extend_schema(request=ApiTokenCreateInput, responses={201: ApiTokenWithSecretOutput})
    def create(self, request: Request) -> Response:
        """Create a personal API token; the response is the only time it is shown.

        Only from a signed-in session: a token cannot create further tokens."""
        # A leaked token must not be able to mint more tokens that outlive its revocation.
        if request.auth is not None:
            raise PermissionDenied(_("Create tokens from a signed-in session, not with a token."))
        data = validated(ApiTokenCreateInput, request.data)
        api_token, token = api_token_create(user=request.user, name=data["name"])
        body = {**ApiTokenOutput(api_token).data, "token": token}
        return Response(body, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, uuid: str) -> Response:
        """Revoke one of your tokens; it stops working at once."""
        api_token_revoke(api_token=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeMembershipOutput(serializers.ModelSerializer[Membership]):
    institution = serializers.UUIDField(source="institution.uuid", read_only=True)
    institution_name = serializers.CharField(source="institution.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["uuid", "institution", "institution_name", "role"]


class MeOutput(serializers.Serializer[Any]):
    username = serializers.CharField()
    name = serializers.CharField()
    memberships = MeMembershipOutput(many=True)


class MeView(APIView):
    """Who the caller is, and their roles."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=MeOutput)
    def get(self, request: Request) -> Response:
        user = request.user
        body = {
            "username": user.get_username(),
            "name": user.get_full_name() or user.get_username(),  # type: ignore[union-attr]
            "memberships": active_memberships(user).order_by("institution__code", "role"),
        }
        return Response(MeOutput(body).data)
