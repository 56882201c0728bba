"""``/api/memberships/``: who holds which role where, managed by the institution's admins."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from hospitals.api.common import (
    UUID_REGEX,
    IsPerson,
    NetworkErrorsAs400,
    get_or_400,
    validated,
)
from hospitals.models import EdgeNode, Membership, Role
from hospitals.selectors import administered_institutions, grantable_roles
from hospitals.services import membership_grant, membership_revoke, user_create_for_institution


class IsInstitutionAdmin(permissions.BasePermission):
    """The caller administers the membership's institution (or its region)."""

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return administered_institutions(request.user).filter(pk=obj.institution_id).exists()


class MembershipUserOutput(serializers.Serializer[Any]):
    username = serializers.CharField()
    name = serializers.CharField(source="get_full_name")


class MembershipOutput(serializers.ModelSerializer[Membership]):
    institution = serializers.UUIDField(source="institution.uuid", read_only=True)
    institution_name = serializers.CharField(source="institution.name", read_only=True)
    user = MembershipUserOutput(read_only=True)

    class Meta:
        model = Membership
        fields = ["uuid", "institution", "institution_name", "user", "role", "is_active"]


class MembershipCreateInput(serializers.Serializer[Any]):
    """Give a role to an existing account, or create the account with it.

    With ``password`` a new account is created (``display_name`` required);
    without it, ``username`` must name an existing, active account.
    """

    institution = serializers.UUIDField()
    role = serializers.ChoiceField(choices=Role.choices)
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(
        required=False, write_only=True, trim_whitespace=False, style={"input_type": "password"}
    )
    display_name = serializers.CharField(max_length=150, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs["username"] = attrs["username"].strip()
        if "password" not in attrs:
            return attrs
        if not attrs.get("display_name"):
            raise ValidationError({"display_name": [_("A new account needs the person's name.")]})
        candidate = get_user_model()(username=attrs["username"], first_name=attrs["display_name"])
        try:
            password_validation.validate_password(attrs["password"], candidate)
        except DjangoValidationError as error:
            raise ValidationError({"password": list(error.messages)}) from error
        return attrs


class MembershipFilter(serializers.Serializer[Any]):
    institution = serializers.UUIDField(required=False)


class MembershipViewSet(NetworkErrorsAs400, viewsets.GenericViewSet[Membership]):
    """Memberships of the institutions the caller administers; nobody else sees any."""

    permission_classes = [IsPerson, IsInstitutionAdmin]
    serializer_class = MembershipOutput
    lookup_field = "uuid"
    lookup_value_regex = UUID_REGEX

    def get_queryset(self) -> QuerySet[Membership]:
        return (
            Membership.objects.filter(institution__in=administered_institutions(self.request.user))
            .select_related("user", "institution")
            .order_by("institution__code", "role", "user__username")
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "institution", OpenApiTypes.UUID, description="Only this institution's members."
            )
        ]
    )
    def list(self, request: Request) -> Response:
        """List the memberships of the institutions you administer."""
        query = validated(MembershipFilter, request.query_params)
        memberships = self.get_queryset()
        if query.get("institution"):
            memberships = memberships.filter(institution__uuid=query["institution"])
        page = self.paginate_queryset(memberships)
        return self.get_paginated_response(MembershipOutput(page, many=True).data)

    def retrieve(self, request: Request, uuid: str) -> Response:
        """Show one membership of an institution you administer."""
        return Response(MembershipOutput(self.get_object()).data)

    @extend_schema(request=MembershipCreateInput, responses={201: MembershipOutput})
    def create(self, request: Request) -> Response:
        """Give a role at an institution you administer, creating the account if asked."""
        data = validated(MembershipCreateInput, request.data)
        institution = get_or_400(
            administered_institutions(request.user),
            "institution",
            data["institution"],
            _("No institution you administer has this UUID."),
        )
        role = data["role"]
        if role == Role.EDGE:
            raise ValidationError({"role": [_("Edge identities come with their edge node.")]})
        if role not in grantable_roles(request.user, institution):
            raise PermissionDenied(_("Only a regional admin may give this role."))
        if "password" in data:
            membership = user_create_for_institution(
                institution=institution,
                username=data["username"],
                full_name=data["display_name"],
                password=data["password"],
                role=role,
                actor=request.user,
            )
        else:
            membership = membership_grant(
                user=self._existing_person(data["username"]),
                institution=institution,
                role=role,
                actor=request.user,
            )
        return Response(MembershipOutput(membership).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, uuid: str) -> Response:
        """End a membership: the person loses the role's access at once."""
        membership = self.get_object()
        if membership.role == Role.EDGE:
            raise ValidationError(
                {"detail": _("An edge identity ends with its edge node, not by itself.")}
            )
        membership_revoke(membership=membership, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _existing_person(self, username: str) -> Any:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        # Edge service users are machine identities; they never get a person's role.
        if user is None or EdgeNode.objects.filter(service_user=user).exists():
            raise ValidationError(
                {
                    "username": [
                        _("No active account has this username; give a password to create one.")
                    ]
                }
            )
        return user
