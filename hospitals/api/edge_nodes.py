"""``/api/edge-nodes/``: an institution's Orthanc edges, their tokens and their health."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from hospitals.api.common import (
    UUID_REGEX,
    IsEdgeNode,
    IsPerson,
    NetworkErrorsAs400,
    get_or_400,
    validated,
)
from hospitals.models import EdgeNode
from hospitals.selectors import administered_institutions, edge_nodes_visible_to
from hospitals.services import (
    IssuedEdgeToken,
    edge_node_create,
    edge_node_heartbeat,
    edge_node_rotate_token,
)


class ManagesEdgeInstitution(permissions.BasePermission):
    """The caller administers the edge's institution (or its region)."""

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return administered_institutions(request.user).filter(pk=obj.institution_id).exists()


class EdgeNodeOutput(serializers.ModelSerializer[EdgeNode]):
    """An edge and its health. Never its token: only the hash is kept."""

    institution = serializers.UUIDField(source="institution.uuid", read_only=True)
    institution_name = serializers.CharField(source="institution.name", read_only=True)

    class Meta:
        model = EdgeNode
        fields = [
            "uuid",
            "institution",
            "institution_name",
            "name",
            "token_prefix",
            "token_rotated_at",
            "is_active",
            "created_at",
            "last_contact_at",
            "backlog",
            "lag_seconds",
            "agent_version",
        ]


class EdgeNodeWithTokenOutput(EdgeNodeOutput):
    """An edge with its new token: the only response that ever carries it."""

    token = serializers.CharField(
        read_only=True, help_text="Shown once. Put it in the edge agent's configuration."
    )

    class Meta(EdgeNodeOutput.Meta):
        fields = [*EdgeNodeOutput.Meta.fields, "token"]


class EdgeNodeCreateInput(serializers.Serializer[Any]):
    institution = serializers.UUIDField()
    name = serializers.CharField(max_length=100)


class HeartbeatInput(serializers.Serializer[Any]):
    backlog = serializers.IntegerField(min_value=0, help_text="Studies waiting to be pushed.")
    lag_seconds = serializers.IntegerField(
        min_value=0, help_text="Age of the oldest study waiting."
    )
    version = serializers.CharField(max_length=32, allow_blank=True)


class HeartbeatOutput(serializers.ModelSerializer[EdgeNode]):
    class Meta:
        model = EdgeNode
        fields = ["uuid", "last_contact_at"]


def with_token(issued: IssuedEdgeToken) -> dict[str, Any]:
    return {**EdgeNodeOutput(issued.edge_node).data, "token": issued.token}


class EdgeNodeViewSet(NetworkErrorsAs400, viewsets.GenericViewSet[EdgeNode]):
    """Edges of the institutions the caller administers, and the edges' heartbeat."""

    permission_classes = [IsPerson, ManagesEdgeInstitution]
    serializer_class = EdgeNodeOutput
    lookup_field = "uuid"
    lookup_value_regex = UUID_REGEX

    def get_queryset(self) -> QuerySet[EdgeNode]:
        return edge_nodes_visible_to(self.request.user).order_by("institution__code", "name")

    def list(self, request: Request) -> Response:
        """List the edges of the institutions you administer, with their health."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(EdgeNodeOutput(page, many=True).data)

    def retrieve(self, request: Request, uuid: str) -> Response:
        """Show one edge and its health."""
        return Response(EdgeNodeOutput(self.get_object()).data)

    @extend_schema(request=EdgeNodeCreateInput, responses={201: EdgeNodeWithTokenOutput})
    def create(self, request: Request) -> Response:
        """Register an edge; the response is the only time its token is shown."""
        data = validated(EdgeNodeCreateInput, request.data)
        institution = get_or_400(
            administered_institutions(request.user),
            "institution",
            data["institution"],
            _("No institution you administer has this UUID."),
        )
        issued = edge_node_create(
            institution=institution, name=data["name"].strip(), actor=request.user
        )
        return Response(with_token(issued), status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=EdgeNodeWithTokenOutput)
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request: Request, uuid: str) -> Response:
        """Issue a new token; the old one stops working at once."""
        issued = edge_node_rotate_token(edge_node=self.get_object(), actor=request.user)
        return Response(with_token(issued))

    @extend_schema(request=HeartbeatInput, responses=HeartbeatOutput)
    @action(detail=False, methods=["post"], permission_classes=[IsEdgeNode])
    def heartbeat(self, request: Request) -> Response:
        """Report the calling edge's health; authenticate with the edge's own token."""
        data = validated(HeartbeatInput, request.data)
        edge_node = request.auth
        assert isinstance(edge_node, EdgeNode)  # IsEdgeNode made sure
        edge_node_heartbeat(
            edge_node=edge_node,
            backlog=data["backlog"],
            lag_seconds=data["lag_seconds"],
            version=data["version"],
        )
        return Response(HeartbeatOutput(edge_node).data)
