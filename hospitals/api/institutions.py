"""``/api/institutions/``: the region's network, readable by its members, managed by its admins."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from hospitals.api.common import (
    UUID_REGEX,
    IsPerson,
    NetworkErrorsAs400,
    get_or_400,
    validated,
)
from hospitals.models import Alliance, Grade, HRScope, Institution, Region, Tier
from hospitals.selectors import administered_regions, institutions_in_user_regions
from hospitals.services import institution_create, institution_update


class IsRegionalAdminOrReadOnly(permissions.BasePermission):
    """Members read; only a regional admin of the institution's region writes."""

    message = _("Only a regional admin may change the network.")

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return administered_regions(request.user).exists()

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return administered_regions(request.user).filter(pk=obj.region_id).exists()


class RegionOutput(serializers.ModelSerializer[Region]):
    class Meta:
        model = Region
        fields = ["uuid", "code", "name"]


class AllianceOutput(serializers.ModelSerializer[Alliance]):
    class Meta:
        model = Alliance
        fields = ["uuid", "name", "kind"]


class InstitutionOutput(serializers.ModelSerializer[Institution]):
    region = RegionOutput(read_only=True)
    hub = serializers.UUIDField(source="hub.uuid", read_only=True, allow_null=True)
    alliances = AllianceOutput(many=True, read_only=True)

    class Meta:
        model = Institution
        fields = [
            "uuid",
            "region",
            "code",
            "name",
            "name_en",
            "tier",
            "grade",
            "hub",
            "alliances",
            "hr_scope",
            "hr_valid_from",
            "hr_valid_until",
            "is_active",
        ]


class InstitutionDetailsInput(serializers.Serializer[Any]):
    """The details shared by creating and changing an institution."""

    name = serializers.CharField(max_length=100)
    name_en = serializers.CharField(max_length=100, required=False, allow_blank=True)
    tier = serializers.ChoiceField(choices=Tier.choices)
    grade = serializers.ChoiceField(choices=Grade.choices, required=False, allow_blank=True)
    hub = serializers.UUIDField(
        required=False, allow_null=True, help_text="The reading hub, in the same region."
    )
    alliances = serializers.ListField(child=serializers.UUIDField(), required=False)
    hr_scope = serializers.ChoiceField(choices=HRScope.choices, required=False, allow_blank=True)
    hr_valid_from = serializers.DateField(required=False, allow_null=True)
    hr_valid_until = serializers.DateField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("hr_valid_from"), attrs.get("hr_valid_until")
        if start and end and end < start:
            raise ValidationError(
                {"hr_valid_until": [_("The qualification must end after it starts.")]}
            )
        return attrs


class InstitutionCreateInput(InstitutionDetailsInput):
    region = serializers.UUIDField(
        required=False, help_text="Needed only by an admin of several regions."
    )
    code = serializers.SlugField(max_length=32)

    def validate_code(self, value: str) -> str:
        # Codes are unique across regions: they name the institution's role groups.
        if Institution.objects.filter(code=value).exists():
            raise ValidationError(_("An institution with this code already exists."))
        return value


class InstitutionUpdateInput(InstitutionDetailsInput):
    is_active = serializers.BooleanField(required=False)


class InstitutionViewSet(NetworkErrorsAs400, viewsets.GenericViewSet[Institution]):
    """The institutions of the caller's regions: members read, regional admins manage."""

    permission_classes = [IsPerson, IsRegionalAdminOrReadOnly]
    serializer_class = InstitutionOutput
    lookup_field = "uuid"
    lookup_value_regex = UUID_REGEX

    def get_queryset(self) -> QuerySet[Institution]:
        return institutions_in_user_regions(self.request.user)

    def list(self, request: Request) -> Response:
        """List the institutions of your regions."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(InstitutionOutput(page, many=True).data)

    def retrieve(self, request: Request, uuid: str) -> Response:
        """Show one institution of your regions."""
        return Response(InstitutionOutput(self.get_object()).data)

    @extend_schema(request=InstitutionCreateInput, responses={201: InstitutionOutput})
    def create(self, request: Request) -> Response:
        """Create an institution (regional admins), with its role groups."""
        data = validated(InstitutionCreateInput, request.data)
        regions = administered_regions(request.user)
        if data.get("region") is not None:
            region = get_or_400(
                regions, "region", data["region"], _("Not a region you administer.")
            )
        else:
            candidates = list(regions[:2])
            if len(candidates) != 1:
                raise ValidationError({"region": [_("Name the region (you administer several).")]})
            region = candidates[0]
        institution = institution_create(
            region=region,
            code=data["code"],
            name=data["name"],
            name_en=data.get("name_en", ""),
            tier=data["tier"],
            grade=data.get("grade", ""),
            hub=self._hub(data),
            alliances=_alliances(region, data.get("alliances", [])),
            hr_scope=data.get("hr_scope", ""),
            hr_valid_from=data.get("hr_valid_from"),
            hr_valid_until=data.get("hr_valid_until"),
            actor=request.user,
        )
        return Response(InstitutionOutput(institution).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=InstitutionUpdateInput, responses=InstitutionOutput)
    def partial_update(self, request: Request, uuid: str) -> Response:
        """Change an institution's details (regional admins of its region)."""
        institution = self.get_object()
        data = validated(InstitutionUpdateInput, request.data, partial=True)
        alliances = data.pop("alliances", None)
        if "hub" in data:
            data["hub"] = self._hub(data)
        institution_update(
            institution=institution,
            data=data,
            alliances=None if alliances is None else _alliances(institution.region, alliances),
            actor=request.user,
        )
        return Response(InstitutionOutput(self.get_object()).data)

    def _hub(self, data: dict[str, Any]) -> Institution | None:
        if data.get("hub") is None:
            return None
        return get_or_400(
            institutions_in_user_regions(self.request.user),
            "hub",
            data["hub"],
            _("No institution of your regions has this UUID."),
        )


def _alliances(region: Region, uuids: list[Any]) -> list[Alliance]:
    found = list(Alliance.objects.filter(region=region, uuid__in=uuids))
    if len(found) != len(set(uuids)):
        raise ValidationError({"alliances": [_("Every alliance must be one of the region's.")]})
    return found
