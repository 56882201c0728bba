"""/api/dashboard/: the indicators as JSON for the charts, and CSV/Excel exports.

Every endpoint needs a signed-in bureau analyst, regional admin or
institution admin (403 otherwise); the data are aggregates from the rollup
tables, suppressed below the region's k (see privacy.py).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import Http404, HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hospitals.api.common import IsPerson
from regional_cloud.audit import audit
from regional_cloud.dashboard.cache import RollupVersion, cached_section, rollup_version
from regional_cloud.dashboard.export import CSV_TYPE, XLSX_TYPE, to_csv, to_xlsx
from regional_cloud.dashboard.privacy import Suppressor
from regional_cloud.dashboard.rollups import no_jit, refresh_recent
from regional_cloud.dashboard.scope import FilterError, Filters, dashboard_scope, parse_filters
from regional_cloud.dashboard.selectors import SECTIONS
from regional_cloud.demo.network import keep_simulated_edges_alive

STALE_AFTER = timedelta(minutes=5)
FILTER_PARAMETERS = [
    OpenApiParameter("from", OpenApiTypes.DATE, description="first day (default: 30 days ago)"),
    OpenApiParameter("to", OpenApiTypes.DATE, description="last day, included (default: today)"),
    OpenApiParameter("institution", OpenApiTypes.UUID, description="one institution"),
    OpenApiParameter("tier", OpenApiTypes.STR, enum=["clinic", "county", "centre", "bureau"]),
    OpenApiParameter("modality", OpenApiTypes.STR, description="a DICOM modality, e.g. CT"),
    OpenApiParameter("granularity", OpenApiTypes.STR, enum=["day", "week", "month"]),
]


def refresh_if_no_beat(version: RollupVersion) -> RollupVersion:
    """Without a task worker (the embedded demo) refresh recent days on read, at most
    every few minutes; with one, celery beat keeps the tables current."""
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        return version
    if version.oldest is not None and timezone.now() - version.oldest < STALE_AFTER:
        return version
    # A DatabaseError: another request is refreshing the same days; its rows will do.
    with contextlib.suppress(DatabaseError):
        refresh_recent(days=2)
    return rollup_version()


def section_data(request: Any, section: str, **fixed: Any) -> tuple[dict[str, Any], Filters]:
    """Return one section's data for the request's user and filters."""
    if section not in SECTIONS:
        raise Http404
    scope = dashboard_scope(request.user)
    version = refresh_if_no_beat(rollup_version())
    if section == "network":
        keep_simulated_edges_alive(scope.region)
    try:
        filters = parse_filters(scope, request.GET, **fixed)
    except FilterError as error:
        raise ValidationError({"detail": str(error)}) from error
    k = scope.region.min_cell_size

    def compute() -> dict[str, Any]:
        with transaction.atomic():
            no_jit()  # a plan's JIT compilation alone would cost more than the query
            return SECTIONS[section](filters, Suppressor(k=k))

    data = cached_section(section, filters, k, version, compute)
    data["filters"] = filters.as_query()
    data["min_cell_size"] = k
    data["refreshed_at"] = version.oldest.isoformat() if version.oldest else None
    return data, filters


class AnyAccept(DefaultContentNegotiation):
    """Exports answer with their file whatever the caller's Accept header says."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: Any = None) -> Any:
        return (renderers[0], renderers[0].media_type)


class DashboardSectionView(APIView):
    """One dashboard view (volume, turnaround, referrals, recognition, network) as JSON."""

    permission_classes = [IsPerson]
    section = ""

    @extend_schema(parameters=FILTER_PARAMETERS, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        data, _filters = section_data(request, self.section)
        return Response(data)


class DashboardExportView(APIView):
    """One dashboard view as a CSV or Excel file: its KPIs and tables, as shown."""

    permission_classes = [IsPerson]
    content_negotiation_class = AnyAccept

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={(200, "text/csv"): OpenApiTypes.BINARY},
    )
    def get(self, request: Request, section: str, fmt: str) -> HttpResponse:
        if fmt not in {"csv", "xlsx"}:
            raise Http404
        data, filters = section_data(request, section)
        query = filters.as_query()
        body = to_csv(data, query) if fmt == "csv" else to_xlsx(data, query)
        audit(
            action="dashboard.export",
            actor=request.user,
            institution=filters.institution,
            object_type="dashboard",
            object_id=section,
            request=request,
            detail={"format": fmt, **query},
        )
        name = f"dashboard-{section}-{filters.start:%Y%m%d}-{filters.end:%Y%m%d}.{fmt}"
        response = HttpResponse(body, content_type=CSV_TYPE if fmt == "csv" else XLSX_TYPE)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
