"""The page of one edge node: studies at the edge against what the hub confirmed.

Only the admins of the edge's institution (or of its region) see it; anyone
else gets 404, so the page does not tell an outsider that the edge exists.
It shows UIDs and counts, never patient data.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from hospitals.selectors import edge_nodes_visible_to
from hospitals.views import STATUS_LABELS, edge_status
from studies.edge_ledger import edge_ledger, edge_ledger_summary
from studies.models import EdgeStudy

PAGE_SIZE = 50


@login_required
def edge_ledger_page(request: HttpRequest, edge_uuid: Any) -> HttpResponse:
    edge = get_object_or_404(edge_nodes_visible_to(request.user), uuid=edge_uuid)
    state = request.GET.get("state", "")
    if state not in EdgeStudy.State.values:
        state = ""
    page = Paginator(edge_ledger(edge_node=edge, state=state), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    status = edge_status(edge, timezone.now())
    return render(
        request,
        "edge/ledger.html",
        {
            "edge": edge,
            "institution": edge.institution,
            "status": status,
            "status_label": STATUS_LABELS[status],
            "summary": edge_ledger_summary(edge_node=edge),
            "page": page,
            "state": state,
            "states": EdgeStudy.State.choices,
        },
    )
