"""The network at a glance: institutions, volumes and edge health."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from hospitals.models import EdgeNode, Tier
from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.privacy import Suppressor
from regional_cloud.dashboard.scope import Filters
from regional_cloud.dashboard.selectors.common import (
    EDGE_AMBER_AFTER,
    EDGE_AMBER_BACKLOG,
    EDGE_AMBER_LAG_SECONDS,
    EDGE_RED_AFTER,
    _either,
    _in_range,
    _institutions,
    _line,
    _order,
    _total,
    _with_modality,
    column,
    institution_label,
    kpi,
    tier_labels,
)
from regional_cloud.dashboard.selectors.referral_flows import _flow_rows, flows
from regional_cloud.demo.network import SIMULATED_AGENT_VERSION

# --- the network at a glance ----------------------------------------------------------------


def edge_health(edge: EdgeNode, now: datetime) -> str:
    """Return green, amber, red or off for one edge node."""
    if not edge.is_active:
        return "off"
    if edge.last_contact_at is None or now - edge.last_contact_at > EDGE_RED_AFTER:
        return "red"
    if (
        now - edge.last_contact_at > EDGE_AMBER_AFTER
        or edge.backlog >= EDGE_AMBER_BACKLOG
        or edge.lag_seconds >= EDGE_AMBER_LAG_SECONDS
    ):
        return "amber"
    return "green"


HEALTH_RANK = {"red": 3, "amber": 2, "green": 1, "off": 0}


def network_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    tiers = tier_labels()
    now = timezone.now()
    counts = dict(
        _with_modality(
            _in_range(rollup.DailyStudyVolume.objects, filters).filter(
                _either(filters, "institution_id")
            ),
            filters,
        )
        .values("institution_id")
        .annotate(n=Sum("studies"))
        .values_list("institution_id", "n")
    )
    edges: dict[int, list[EdgeNode]] = defaultdict(list)
    for edge in EdgeNode.objects.filter(institution_id__in=filters.institution_ids):
        edges[edge.institution_id].append(edge)
    labels = {
        "green": _("Healthy"),
        "amber": _("Late or backed up"),
        "red": _("Silent"),
        "off": _("Disabled"),
        "": _("No edge node"),
    }
    shown_institutions = [
        names[pk]
        for pk in sorted(filters.institution_ids, key=lambda pk: _order(names[pk]))
        if names[pk].tier != Tier.HEALTH_BUREAU
    ]
    study_line = _line(sup, [counts.get(i.pk, 0) for i in shown_institutions])
    rows = []
    for inst, studies in zip(shown_institutions, study_line.shown, strict=True):
        pk = inst.pk
        own = edges.get(pk, [])
        health = max((edge_health(e, now) for e in own), key=HEALTH_RANK.__getitem__, default="")
        contacts = [e.last_contact_at for e in own if e.last_contact_at]
        last = max(contacts) if contacts else None
        simulated = any(e.agent_version == SIMULATED_AGENT_VERSION for e in own)
        health_label = str(labels[health])
        if simulated and health:
            health_label = _("%(health)s (simulated by the demo)") % {"health": health_label}
        rows.append(
            {
                "institution": institution_label(inst),
                "institution_uuid": str(inst.uuid),
                "tier": tiers[inst.tier],
                "studies": studies,
                "health": health,
                "health_label": health_label,
                "simulated": simulated,
                "last_contact": timezone.localtime(last).strftime("%Y-%m-%d %H:%M") if last else "",
                "backlog": sum(e.backlog for e in own),
                "lag_seconds": max((e.lag_seconds for e in own), default=0),
            }
        )
    flow = flows(_flow_rows(filters), names, sup)
    by_health = {h: sum(1 for r in rows if r["health"] == h) for h in ("green", "amber", "red")}
    simulated_kpi = (
        [kpi("edges_simulated", _("Edges simulated by the demo"), simulated_count)]
        if (simulated_count := sum(1 for r in rows if r["simulated"]))
        else []
    )
    return {
        "section": "network",
        "kpis": [
            kpi("institutions", _("Institutions"), len(rows)),
            kpi("edges_green", _("Edges healthy"), by_health["green"]),
            kpi("edges_amber", _("Edges late or backed up"), by_health["amber"]),
            kpi("edges_red", _("Edges silent"), by_health["red"]),
            *simulated_kpi,
            kpi(
                "studies",
                _("Studies received"),
                _total(sup, sum(counts.get(i.pk, 0) for i in shown_institutions), study_line),
                kind="count",
            ),
        ],
        "flows": flow,
        "nodes": [
            {
                "name": r["institution"],
                "uuid": r["institution_uuid"],
                "tier": r["tier"],
                "health": r["health"],
            }
            for r in rows
        ],
        "tables": [
            {
                "key": "institutions",
                "title": _("Institutions, volumes and edge health"),
                "columns": [
                    column("institution", _("Institution"), "text"),
                    column("tier", _("Tier"), "text"),
                    column("studies", _("Studies")),
                    column("health_label", _("Edge health"), "health"),
                    column("last_contact", _("Last contact"), "text"),
                    column("backlog", _("Studies waiting"), "number"),
                    column("lag_seconds", _("Lag (s)"), "number"),
                ],
                "rows": rows,
            }
        ],
    }
