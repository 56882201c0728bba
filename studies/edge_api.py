"""The edge ledger's API.

``POST /api/edge-nodes/ledger/``: an edge (its own token) reports the studies it
holds; the answer says, per study, what the hub has confirmed from its index.
``GET /api/edge-nodes/{uuid}/ledger/``: the admins of the edge's institution (or
its region) read the ledger; anyone else gets 404.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hospitals.api.common import IsEdgeNode, IsPerson, validated
from hospitals.models import EdgeNode
from hospitals.selectors import edge_nodes_visible_to
from studies.edge_ledger import (
    MAX_REPORTS,
    LedgerError,
    StudyReport,
    edge_ledger,
    edge_studies_report,
)
from studies.models import EdgeStudy


class StudyReportInput(serializers.Serializer[Any]):
    study_instance_uid = serializers.RegexField(r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    orthanc_study_id = serializers.CharField(max_length=64, allow_blank=True, default="")
    instances_at_edge = serializers.IntegerField(min_value=0)
    error = serializers.CharField(
        max_length=64,
        allow_blank=True,
        default="",
        help_text="A short code when the push failed for good, e.g. duplicate_sop_instance.",
    )


class LedgerReportInput(serializers.Serializer[Any]):
    studies = serializers.ListField(child=StudyReportInput(), min_length=1, max_length=MAX_REPORTS)


class EdgeStudyOutput(serializers.ModelSerializer[EdgeStudy]):
    """A study at the edge against the hub's index: UIDs and counts, no patient data."""

    class Meta:
        model = EdgeStudy
        fields = [
            "study_instance_uid",
            "orthanc_study_id",
            "instances_at_edge",
            "instances_confirmed",
            "state",
            "last_error",
            "first_seen_at",
            "last_reported_at",
            "confirmed_at",
        ]


class EdgeLedgerReportView(APIView):
    """Report studies held at the calling edge; authenticate with the edge's own token."""

    permission_classes = [IsEdgeNode]

    @extend_schema(request=LedgerReportInput, responses=EdgeStudyOutput(many=True))
    def post(self, request: Request) -> Response:
        # A bare list is accepted too: it is what a hand-written client sends first.
        payload = {"studies": request.data} if isinstance(request.data, list) else request.data
        data = validated(LedgerReportInput, payload)
        edge_node = request.auth
        assert isinstance(edge_node, EdgeNode)  # IsEdgeNode made sure
        reports = [StudyReport(**item) for item in data["studies"]]
        try:
            rows = edge_studies_report(edge_node=edge_node, reports=reports)
        except LedgerError as exc:
            raise ValidationError({"studies": [str(exc)]}) from exc
        return Response(EdgeStudyOutput(rows, many=True).data)


class EdgeLedgerView(generics.ListAPIView[EdgeStudy]):
    """The ledger of one edge node: its studies, newest first; ``?state=`` filters."""

    permission_classes = [IsPerson]
    serializer_class = EdgeStudyOutput

    def get_queryset(self) -> QuerySet[EdgeStudy]:
        edge_node = get_object_or_404(
            edge_nodes_visible_to(self.request.user), uuid=self.kwargs["uuid"]
        )
        state = self.request.query_params.get("state", "")
        if state and state not in EdgeStudy.State.values:
            raise ValidationError({"state": [f"one of {', '.join(EdgeStudy.State.values)}"]})
        return edge_ledger(edge_node=edge_node, state=state)

    @extend_schema(
        parameters=[
            OpenApiParameter("uuid", OpenApiTypes.UUID, OpenApiParameter.PATH),
            OpenApiParameter("state", str, enum=EdgeStudy.State.values),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
