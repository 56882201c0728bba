"""Dashboard pages: the frame, the filters and the chart containers.

The figures themselves come from /api/dashboard/ (the page's script fetches
them with the page's filters), so what the page draws and what the export
writes are the same data. Pages are for bureau analysts and regional admins
(the region) and institution admins (their institution only).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from hospitals.models import EdgeNode, Institution, Tier
from regional_cloud.dashboard.cache import rollup_version
from regional_cloud.dashboard.scope import (
    GRANULARITIES,
    FilterError,
    Filters,
    Scope,
    dashboard_scope,
    parse_filters,
)
from regional_cloud.dashboard.selectors import SECTIONS, institution_label, modalities
from regional_cloud.demo.network import SIMULATED_AGENT_VERSION


def _filters_or_default(scope: Scope, request: HttpRequest, **fixed: Any) -> tuple[Filters, str]:
    try:
        return parse_filters(scope, request.GET, **fixed), ""
    except FilterError as error:
        return parse_filters(scope, {}, **fixed), str(error)


def _context(
    request: HttpRequest,
    scope: Scope,
    filters: Filters,
    error: str,
    page: str,
    *,
    fixed_institution: bool = False,
) -> dict[str, Any]:
    institutions = (
        Institution.objects.filter(region=scope.region)
        .exclude(tier=Tier.HEALTH_BUREAU)
        .order_by("tier", "code")
    )
    query = filters.as_query()
    config = {
        "api": {name: reverse(f"api-dashboard-{name}") for name in SECTIONS},
        "export": reverse("api-dashboard-export", kwargs={"section": "SECTION", "fmt": "FMT"}),
        "drill": reverse(
            "dashboard_institution",
            kwargs={"institution_uuid": "00000000-0000-0000-0000-000000000000"},
        )
        if scope.region_wide
        else "",
        "query": query,
        "page": page,
        "text": {
            "suppressed": _("hidden: fewer than %(k)s") % {"k": scope.region.min_cell_size},
            "no_data": _("No data for these filters."),
            "all_hidden": _(
                "Every count here is below %(k)s and hidden: choose a longer period or a "
                "weekly or monthly trend."
            )
            % {"k": scope.region.min_cell_size},
            "load_error": _("The figures could not be loaded."),
            "up": _("Referred up"),
            "down": _("Referred down"),
            "studies": _("Studies"),
            "storage": _("Storage in use (GB)"),
            "by_modality": _("Studies by modality"),
            "turnaround_buckets": _("Upload to report"),
            "reports": _("Final reports"),
        },
    }
    return {
        "scope": scope,
        "region": scope.region,
        "filters": filters,
        "filter_error": error,
        "institution_choices": [(str(i.uuid), institution_label(i)) for i in institutions],
        "tier_choices": [(v, label) for v, label in Tier.choices if v != Tier.HEALTH_BUREAU],
        "modality_choices": modalities(filters),
        "granularities": [
            ("day", _("Daily")),
            ("week", _("Weekly")),
            ("month", _("Monthly")),
        ],
        "granularity_values": GRANULARITIES,
        "refreshed_at": rollup_version().oldest,
        "k": scope.region.min_cell_size,
        "config": config,
        "page": page,
        "fixed_institution": fixed_institution or not scope.region_wide,
    }


@require_safe
@login_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    """The region's dashboard; an institution admin's own institution's."""
    scope = dashboard_scope(request.user)
    filters, error = _filters_or_default(scope, request)
    return render(
        request, "dashboard/dashboard.html", _context(request, scope, filters, error, "overview")
    )


@require_safe
@login_required
def institution_page(request: HttpRequest, institution_uuid: Any) -> HttpResponse:
    """One institution's dashboard: the drill-down from the region's."""
    scope = dashboard_scope(request.user)
    if not Institution.objects.filter(region=scope.region, uuid=institution_uuid).exists():
        raise Http404
    filters, error = _filters_or_default(scope, request, institution=str(institution_uuid))
    context = _context(request, scope, filters, error, "overview", fixed_institution=True)
    return render(request, "dashboard/dashboard.html", context)


@require_safe
@login_required
def network_page(request: HttpRequest) -> HttpResponse:
    """The network at a glance: who refers to whom, volumes and edge health."""
    scope = dashboard_scope(request.user)
    filters, error = _filters_or_default(scope, request)
    context = _context(request, scope, filters, error, "network")
    context["simulated_edges"] = EdgeNode.objects.filter(
        institution__region=scope.region, agent_version=SIMULATED_AGENT_VERSION, is_active=True
    ).count()
    return render(request, "dashboard/network.html", context)
