"""Study volume and storage growth."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum
from django.utils.translation import gettext as _

from hospitals.models import Tier
from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.privacy import Suppressor, is_shown
from regional_cloud.dashboard.scope import Filters
from regional_cloud.dashboard.selectors.common import (
    GB,
    _by_period,
    _each_modality,
    _either,
    _gb,
    _in_periods,
    _in_range,
    _institutions,
    _ints,
    _line,
    _order,
    _total,
    _with_modality,
    column,
    institution_label,
    kpi,
    periods,
    tier_labels,
)

# --- study volume and storage -------------------------------------------------------------


def volume_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    tiers = tier_labels()
    rows = _with_modality(
        rollup.DailyStudyVolume.objects.filter(_either(filters, "institution_id")),
        filters,
    )
    base = _in_range(rows, filters)
    days = list(
        _in_periods(rows, filters)
        .values("day")
        .annotate(studies=Sum("studies"), bytes=Sum("bytes"))
    )
    trend = _by_period(days, filters, "studies", "bytes")
    by_institution = {
        row["institution_id"]: row
        for row in base.values("institution_id").annotate(
            studies=Sum("studies"), instances=Sum("instances"), bytes=Sum("bytes")
        )
    }
    by_modality = list(
        _in_range(
            _each_modality(
                rollup.DailyStudyVolume.objects.filter(_either(filters, "institution_id")),
                filters,
            ),
            filters,
        )
        .values("modality")
        .annotate(studies=Sum("studies"), bytes=Sum("bytes"))
        .order_by("-studies", "modality")
    )
    institutions = [
        names[pk]
        for pk in sorted(filters.institution_ids, key=lambda pk: _order(names[pk]))
        if names[pk].tier != Tier.HEALTH_BUREAU
    ]
    inst_counts = [by_institution.get(i.pk, {}).get("studies") or 0 for i in institutions]
    total = sum(inst_counts)
    trend_line = _line(sup, _ints(trend["studies"]))
    inst_line = _line(sup, inst_counts)
    mod_line = _line(sup, [row["studies"] for row in by_modality])
    total_shown = _total(sup, total, trend_line, inst_line, mod_line)
    instances = sum(row.get("instances") or 0 for row in by_institution.values())
    added = sum(row.get("bytes") or 0 for row in by_institution.values())

    # Storage growth: everything stored before the range, then each period's additions.
    month = filters.start.replace(day=1)
    stored_before = rollup.MonthlyStorage.objects.filter(
        _either(filters, "institution_id"), day__lt=month
    )
    if filters.modality:  # (the month table holds no every-modality rows)
        stored_before = stored_before.filter(modality=filters.modality)
    months_before = stored_before.aggregate(b=Sum("bytes"))["b"]
    days_before = _with_modality(
        rollup.DailyStudyVolume.objects.filter(
            _either(filters, "institution_id"),
            span=rollup.Span.DAY,
            day__gte=month,
            day__lt=filters.start,
        ),
        filters,
    ).aggregate(b=Sum("bytes"))["b"]
    before = (months_before or 0) + (days_before or 0)
    stored, running = [], float(before)
    for value in trend["bytes"]:
        running += value
        stored.append(round(running / GB, 2))

    return {
        "section": "volume",
        "kpis": [
            kpi("studies", _("Studies received"), total_shown, kind="count"),
            kpi("instances", _("Images"), instances if is_shown(total_shown) else None),
            kpi("gb_added", _("Storage added"), _gb(added, total_shown), "GB"),
            kpi("gb_stored", _("Storage in use"), stored[-1] if stored else 0, "GB"),
        ],
        "trend": {
            "periods": [p.isoformat() for p in periods(filters)],
            "series": [{"key": "studies", "label": _("Studies"), "values": trend_line.shown}],
        },
        "storage": {
            "periods": [p.isoformat() for p in periods(filters)],
            "values": stored,
        },
        "tables": [
            {
                "key": "by_institution",
                "title": _("Studies by institution"),
                "columns": [
                    column("institution", _("Institution"), "text"),
                    column("tier", _("Tier"), "text"),
                    column("studies", _("Studies")),
                    column("gb", _("GB"), "number"),
                ],
                "rows": [
                    {
                        "institution": institution_label(inst),
                        "institution_uuid": str(inst.uuid),
                        "tier": tiers[inst.tier],
                        "studies": shown,
                        "gb": _gb(by_institution.get(inst.pk, {}).get("bytes") or 0, shown),
                    }
                    for inst, shown in zip(institutions, inst_line.shown, strict=True)
                ],
            },
            {
                "key": "by_modality",
                "title": _("Studies by modality"),
                "columns": [
                    column("modality", _("Modality"), "text"),
                    column("studies", _("Studies")),
                    column("gb", _("GB"), "number"),
                ],
                "rows": [
                    {
                        "modality": row["modality"],
                        "studies": shown,
                        "gb": _gb(row["bytes"] or 0, shown),
                    }
                    for row, shown in zip(by_modality, mod_line.shown, strict=True)
                ],
            },
        ],
    }
