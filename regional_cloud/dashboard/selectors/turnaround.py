"""Upload-to-report turnaround, critical results, reading workload."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils.translation import gettext as _

from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.privacy import Suppressor
from regional_cloud.dashboard.scope import Filters
from regional_cloud.dashboard.selectors.common import (
    _by_period,
    _either,
    _in_periods,
    _in_range,
    _institutions,
    _ints,
    _line,
    _total,
    _with_modality,
    column,
    institution_label,
    kpi,
    periods,
)

# --- upload-to-report turnaround, critical results, workload -------------------------------


def turnaround_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    rows = _with_modality(
        rollup.DailyTurnaround.objects.filter(
            _either(filters, "origin_id", "reading_institution_id")
        ),
        filters,
    )
    base = _in_range(rows, filters)
    totals = base.aggregate(
        reports=Sum("reports"),
        minutes=Sum("minutes_sum"),
        h1=Sum("within_1h"),
        h4=Sum("within_4h"),
        h24=Sum("within_24h"),
        over=Sum("over_24h"),
    )
    reports = totals["reports"] or 0
    buckets = [totals["h1"] or 0, totals["h4"] or 0, totals["h24"] or 0, totals["over"] or 0]
    bucket_line = _line(sup, buckets)
    days = list(
        _in_periods(rows, filters)
        .values("day")
        .annotate(reports=Sum("reports"), minutes=Sum("minutes_sum"))
    )
    trend = _by_period(days, filters, "reports", "minutes")
    trend_line = _line(sup, _ints(trend["reports"]))
    by_origin = list(
        base.values("origin_id")
        .annotate(
            reports=Sum("reports"),
            minutes=Sum("minutes_sum"),
            within=Sum("within_1h") + Sum("within_4h") + Sum("within_24h"),
        )
        .order_by("-reports", "origin_id")
    )
    origin_line = _line(sup, [row["reports"] for row in by_origin])
    shown_reports = _total(sup, reports, bucket_line, trend_line, origin_line)
    within_day = buckets[0] + buckets[1] + buckets[2]

    critical = _with_modality(
        _in_range(rollup.DailyCritical.objects, filters).filter(
            _either(filters, "origin_id", "reading_institution_id")
        ),
        filters,
    ).aggregate(n=Sum("critical"), seen=Sum("seen"), seen_minutes=Sum("seen_minutes_sum"))
    critical_n = critical["n"] or 0
    seen = critical["seen"] or 0

    workload = _workload(filters, sup)
    return {
        "section": "turnaround",
        "kpis": [
            kpi("reports", _("Final reports"), shown_reports, kind="count"),
            kpi(
                "mean_hours",
                _("Mean upload-to-report time"),
                sup.mean((totals["minutes"] or 0) / 60, reports, shown=shown_reports),
                _("h"),
            ),
            kpi(
                "within_24h",
                _("Reported within 24 h"),
                sup.rate(within_day, reports, shown=shown_reports),
                "%",
            ),
            kpi("critical", _("Critical results"), sup.cell(critical_n), kind="count"),
            kpi(
                "critical_seen_minutes",
                _("Mean time until a critical result was seen"),
                sup.mean(critical["seen_minutes"] or 0, seen, shown=sup.cell(seen)),
                _("min"),
            ),
            kpi("critical_seen", _("Critical results seen"), sup.rate(seen, critical_n), "%"),
        ],
        "buckets": {
            "labels": [_("≤ 1 h"), _("1–4 h"), _("4–24 h"), _("> 24 h")],
            "values": bucket_line.shown,
        },
        "trend": {
            "periods": [p.isoformat() for p in periods(filters)],
            "series": [
                {"key": "reports", "label": _("Final reports"), "values": trend_line.shown},
                {
                    "key": "mean_hours",
                    "label": _("Mean hours to report"),
                    "values": [
                        sup.mean(minutes / 60, round(n), shown=shown)
                        for minutes, n, shown in zip(
                            trend["minutes"], trend["reports"], trend_line.shown, strict=True
                        )
                    ],
                    "kind": "mean",
                },
            ],
        },
        "tables": [
            {
                "key": "by_origin",
                "title": _("Turnaround by sending institution"),
                "columns": [
                    column("institution", _("Sending institution"), "text"),
                    column("reports", _("Final reports")),
                    column("mean_hours", _("Mean hours"), "number"),
                    column("within_24h", _("Within 24 h (%)"), "number"),
                ],
                "rows": [
                    {
                        "institution": institution_label(names[row["origin_id"]]),
                        "institution_uuid": str(names[row["origin_id"]].uuid),
                        "reports": shown,
                        "mean_hours": sup.mean(
                            (row["minutes"] or 0) / 60, row["reports"], shown=shown
                        ),
                        "within_24h": sup.rate(row["within"] or 0, row["reports"], shown=shown),
                    }
                    for row, shown in zip(by_origin, origin_line.shown, strict=True)
                    if row["origin_id"] in names
                ],
            },
            workload,
        ],
    }


def _workload(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    rows = list(
        _with_modality(
            _in_range(rollup.DailyWorkload.objects, filters).filter(
                _either(filters, "institution_id")
            ),
            filters,
        )
        .values("reader_id", "institution_id")
        .annotate(reports=Sum("reports"))
        .order_by("-reports", "reader_id")
    )
    readers = {
        user.pk: user.get_full_name() or user.get_username()
        for user in get_user_model().objects.filter(pk__in={row["reader_id"] for row in rows})
    }
    line = _line(sup, [row["reports"] for row in rows])
    return {
        "key": "workload",
        "title": _("Reading workload per specialist"),
        "columns": [
            column("reader", _("Specialist"), "text"),
            column("institution", _("Reading institution"), "text"),
            column("reports", _("Final reports")),
        ],
        "rows": [
            {
                "reader": readers.get(row["reader_id"], "?"),
                "institution": institution_label(names[row["institution_id"]]),
                "institution_uuid": str(names[row["institution_id"]].uuid),
                "reports": shown,
            }
            for row, shown in zip(rows, line.shown, strict=True)
            if row["institution_id"] in names
        ],
    }
