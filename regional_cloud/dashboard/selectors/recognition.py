"""Mutual recognition, repeat exams, money saved, cross-hospital retrievals."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum
from django.utils.translation import gettext as _

from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.privacy import Suppressor, is_shown
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

# --- recognition and cross-hospital retrievals --------------------------------------------


def recognition_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    rows = _with_modality(
        rollup.DailyRecognition.objects.filter(_either(filters, "institution_id", "origin_id")),
        filters,
    )
    base = _in_range(rows, filters)
    by_institution = list(
        base.values("institution_id")
        .annotate(
            decisions=Sum("decisions"),
            recognized=Sum("recognized"),
            repeats=Sum("repeats"),
            saving=Sum("saving_yuan"),
        )
        .order_by("-decisions", "institution_id")
    )
    decisions = sum(r["decisions"] for r in by_institution)
    recognized = sum(r["recognized"] for r in by_institution)
    repeats = sum(r["repeats"] for r in by_institution)
    saving = sum((r["saving"] or 0) for r in by_institution)
    decision_line = _line(sup, [r["decisions"] for r in by_institution])
    repeat_line = _line(sup, [r["repeats"] for r in by_institution])
    days = list(
        _in_periods(rows, filters)
        .values("day")
        .annotate(decisions=Sum("decisions"), recognized=Sum("recognized"))
    )
    trend = _by_period(days, filters, "decisions", "recognized")
    trend_line = _line(sup, _ints(trend["decisions"]))
    shown_decisions = _total(sup, decisions, decision_line, trend_line)

    retrievals = list(
        _in_range(rollup.DailyRetrievals.objects, filters)
        .filter(_either(filters, "origin_id", "reader_institution_id"))
        .values("origin_id", "reader_institution_id")
        .annotate(studies=Sum("studies"), events=Sum("events"))
        .order_by("-studies", "origin_id", "reader_institution_id")
    )
    retrieval_line = _line(sup, [r["studies"] for r in retrievals])
    retrieved = sum(r["studies"] for r in retrievals)
    return {
        "section": "recognition",
        "kpis": [
            kpi("decisions", _("Recognition decisions"), shown_decisions, kind="count"),
            kpi(
                "recognition_rate",
                _("Recognition rate"),
                sup.rate(recognized, decisions, shown=shown_decisions),
                "%",
            ),
            kpi("repeats", _("Repeat exams"), _total(sup, repeats, repeat_line), kind="count"),
            kpi(
                "repeat_rate",
                _("Repeat-exam rate"),
                sup.rate(repeats, decisions, shown=shown_decisions),
                "%",
            ),
            kpi(
                "saving_yuan",
                _("Money saved"),
                float(round(saving, 2))
                if is_shown(shown_decisions) and decisions >= sup.k
                else None,
                "¥",
            ),
            kpi(
                "retrievals",
                _("Cross-hospital retrievals"),
                _total(sup, retrieved, retrieval_line),
                kind="count",
            ),
        ],
        "trend": {
            "periods": [p.isoformat() for p in periods(filters)],
            "series": [
                {"key": "decisions", "label": _("Decisions"), "values": trend_line.shown},
                {
                    "key": "recognition_rate",
                    "label": _("Recognition rate (%)"),
                    "values": [
                        sup.rate(round(yes), round(n), shown=shown)
                        for yes, n, shown in zip(
                            trend["recognized"], trend["decisions"], trend_line.shown, strict=True
                        )
                    ],
                    "kind": "rate",
                },
            ],
        },
        "tables": [
            {
                "key": "by_institution",
                "title": _("Recognition by deciding institution"),
                "columns": [
                    column("institution", _("Institution"), "text"),
                    column("decisions", _("Decisions")),
                    column("recognition_rate", _("Recognized (%)"), "number"),
                    column("repeats", _("Repeat exams")),
                    column("saving_yuan", _("Money saved (¥)"), "number"),
                ],
                "rows": [
                    {
                        "institution": institution_label(names[row["institution_id"]]),
                        "institution_uuid": str(names[row["institution_id"]].uuid),
                        "decisions": shown,
                        "recognition_rate": sup.rate(
                            row["recognized"], row["decisions"], shown=shown
                        ),
                        "repeats": repeat_shown,
                        "saving_yuan": float(row["saving"] or 0)
                        if is_shown(shown) and row["decisions"] >= sup.k
                        else None,
                    }
                    for row, shown, repeat_shown in zip(
                        by_institution, decision_line.shown, repeat_line.shown, strict=True
                    )
                    if row["institution_id"] in names
                ],
            },
            {
                "key": "retrievals",
                "title": _("Cross-hospital retrievals"),
                "columns": [
                    column("origin", _("Images from"), "text"),
                    column("reader", _("Read at"), "text"),
                    column("studies", _("Studies retrieved")),
                ],
                "rows": [
                    {
                        "origin": institution_label(names[row["origin_id"]]),
                        "reader": institution_label(names[row["reader_institution_id"]]),
                        "studies": shown,
                    }
                    for row, shown in zip(retrievals, retrieval_line.shown, strict=True)
                    if row["origin_id"] in names and row["reader_institution_id"] in names
                ],
            },
        ],
    }
