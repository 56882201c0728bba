"""The bureau's indicators, read from the rollup tables only (never the index).

Each ``*_section(filters, suppressor)`` returns one view as plain data — KPIs,
trends, tables, flows — that the JSON API sends, the charts draw and the
exports write, so the three can never disagree. Counts pass through
``privacy.Suppressor`` before they leave (see privacy.py for the rules).

Institution filters match either side of a two-sided figure: a referral
counts for the institution that sent it and the one that received it, a
report for the study's origin and its reading institution.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from hospitals.models import EdgeNode, Institution, Tier
from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.privacy import Suppressor, is_shown
from regional_cloud.dashboard.scope import Filters

GB = 1024**3

# Edge health: red when silent for an hour (or never heard from), amber when late,
# backed up or lagging, green otherwise.
EDGE_RED_AFTER = timedelta(hours=1)
EDGE_AMBER_AFTER = timedelta(minutes=10)
EDGE_AMBER_BACKLOG = 100
EDGE_AMBER_LAG_SECONDS = 3600


# --- helpers ----------------------------------------------------------------------------


def institution_label(institution: Institution) -> str:
    if translation.get_language() == "en" and institution.name_en:
        return institution.name_en
    return institution.name


def _institutions(filters: Filters) -> dict[int, Institution]:
    """Return the institutions a view may name: the scope's region, by id."""
    return {i.pk: i for i in Institution.objects.filter(region_id=filters.region_id)}


def _in_range(queryset: Any, filters: Filters) -> QuerySet[Any]:
    return queryset.filter(day__gte=filters.start, day__lte=filters.end)


def _either(filters: Filters, *fields: str) -> Q:
    ids = list(filters.institution_ids)
    condition = Q()
    for name in fields:
        condition |= Q(**{f"{name}__in": ids})
    return condition


def _with_modality(queryset: QuerySet[Any], filters: Filters) -> QuerySet[Any]:
    return queryset.filter(modality=filters.modality) if filters.modality else queryset


def period_of(day: date, granularity: str) -> date:
    """Return the first day of the period (day, ISO week from Monday, month) holding ``day``."""
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def periods(filters: Filters) -> list[date]:
    """Return every period of the range, in order (empty periods included)."""
    found: list[date] = []
    day = filters.start
    while day <= filters.end:
        start = period_of(day, filters.granularity)
        if not found or found[-1] != start:
            found.append(start)
        day += timedelta(days=1)
    return found


def _by_period(
    rows: Iterable[dict[str, Any]], filters: Filters, *fields: str
) -> dict[str, list[float]]:
    """Sum ``fields`` of day rows into the range's periods."""
    index = {p: n for n, p in enumerate(periods(filters))}
    sums = {name: [0.0] * len(index) for name in fields}
    for row in rows:
        slot = index[period_of(row["day"], filters.granularity)]
        for name in fields:
            sums[name][slot] += row[name] or 0
    return sums


def _ints(values: list[float]) -> list[int]:
    return [round(v) for v in values]


def kpi(key: str, label: str, value: Any, unit: str = "", kind: str = "") -> dict[str, Any]:
    """Return one KPI; ``kind`` "count" marks a count of patients' events (suppressed)."""
    return {"key": key, "label": label, "value": value, "unit": unit, "kind": kind or "figure"}


def column(key: str, label: str, kind: str = "count") -> dict[str, str]:
    return {"key": key, "label": label, "kind": kind}


def _gb(value: float, shown: Any) -> float | None:
    return round(value / GB, 2) if is_shown(shown) else None


@dataclass(frozen=True)
class Line:
    """One published breakdown: its shown cells and whether its total must hide."""

    shown: list[int | str]
    total_hidden: bool


def _line(sup: Suppressor, values: list[int]) -> Line:
    shown, hidden = sup.line(values)
    return Line(shown, hidden)


def _total(sup: Suppressor, value: int, *lines: Line) -> int | str:
    return sup.total(value, any(line.total_hidden for line in lines))


# --- study volume and storage -------------------------------------------------------------


def volume_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    base = _with_modality(
        _in_range(rollup.DailyStudyVolume.objects, filters).filter(
            institution_id__in=filters.institution_ids
        ),
        filters,
    )
    days = list(base.values("day").annotate(studies=Sum("studies"), bytes=Sum("bytes")))
    trend = _by_period(days, filters, "studies", "bytes")
    by_institution = {
        row["institution_id"]: row
        for row in base.values("institution_id").annotate(
            studies=Sum("studies"), instances=Sum("instances"), bytes=Sum("bytes")
        )
    }
    by_modality = list(
        base.values("modality")
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
    months_before = _with_modality(
        rollup.MonthlyStorage.objects.filter(
            day__lt=month, institution_id__in=filters.institution_ids
        ),
        filters,
    ).aggregate(b=Sum("bytes"))["b"]
    days_before = _with_modality(
        rollup.DailyStudyVolume.objects.filter(
            day__gte=month, day__lt=filters.start, institution_id__in=filters.institution_ids
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
                        "tier": inst.get_tier_display(),
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


TIER_ORDER = {
    Tier.REFERRAL_CENTRE: 0,
    Tier.COUNTY_HOSPITAL: 1,
    Tier.TOWNSHIP_CLINIC: 2,
    Tier.HEALTH_BUREAU: 3,
}


def _order(institution: Institution) -> tuple[int, str]:
    return (TIER_ORDER.get(Tier(institution.tier), 9), institution.code)


# --- upload-to-report turnaround, critical results, workload -------------------------------


def turnaround_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    base = _with_modality(
        _in_range(rollup.DailyTurnaround.objects, filters).filter(
            _either(filters, "origin_id", "reading_institution_id")
        ),
        filters,
    )
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
    days = list(base.values("day").annotate(reports=Sum("reports"), minutes=Sum("minutes_sum")))
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
                institution_id__in=filters.institution_ids
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


# --- referrals -----------------------------------------------------------------------------


def _flow_rows(filters: Filters) -> list[dict[str, Any]]:
    return list(
        _in_range(rollup.DailyReferralFlow.objects, filters)
        .filter(_either(filters, "from_institution_id", "to_institution_id"))
        .values("from_institution_id", "to_institution_id", "direction")
        .annotate(
            submitted=Sum("submitted"),
            accepted=Sum("accepted"),
            rejected=Sum("rejected"),
            expired=Sum("expired"),
            minutes=Sum("minutes_to_accept_sum"),
        )
        .order_by("direction", "-submitted", "from_institution_id", "to_institution_id")
    )


def flows(
    rows: list[dict[str, Any]], names: dict[int, Institution], sup: Suppressor
) -> dict[str, list[dict[str, Any]]]:
    """Return the links per direction for a flow diagram; hidden links are left out."""
    result: dict[str, list[dict[str, Any]]] = {"up": [], "down": []}
    for direction in result:
        links = [r for r in rows if r["direction"] == direction]
        line = _line(sup, [r["submitted"] for r in links])
        for row, shown in zip(links, line.shown, strict=True):
            if is_shown(shown) and shown:
                result[direction].append(
                    {
                        "source": institution_label(names[row["from_institution_id"]]),
                        "target": institution_label(names[row["to_institution_id"]]),
                        "value": shown,
                    }
                )
    return result


def referrals_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    rows = _flow_rows(filters)
    up = sum(r["submitted"] for r in rows if r["direction"] == "up")
    down = sum(r["submitted"] for r in rows if r["direction"] == "down")
    accepted = sum(r["accepted"] for r in rows)
    decided = accepted + sum(r["rejected"] + r["expired"] for r in rows)
    minutes = sum(r["minutes"] or 0 for r in rows)

    days = list(
        _in_range(rollup.DailyReferralFlow.objects, filters)
        .filter(_either(filters, "from_institution_id", "to_institution_id"))
        .values("day", "direction")
        .annotate(submitted=Sum("submitted"))
    )
    up_days = _by_period([d for d in days if d["direction"] == "up"], filters, "submitted")
    down_days = _by_period([d for d in days if d["direction"] == "down"], filters, "submitted")
    up_line = _line(sup, _ints(up_days["submitted"]))
    down_line = _line(sup, _ints(down_days["submitted"]))
    link_lines = {
        direction: _line(sup, [r["submitted"] for r in rows if r["direction"] == direction])
        for direction in ("up", "down")
    }
    shown_link = {direction: iter(line.shown) for direction, line in link_lines.items()}
    table_rows = []
    for row in rows:
        shown = next(shown_link[row["direction"]])
        if row["from_institution_id"] not in names or row["to_institution_id"] not in names:
            continue
        table_rows.append(
            {
                "from": institution_label(names[row["from_institution_id"]]),
                "to": institution_label(names[row["to_institution_id"]]),
                "direction": _("Up") if row["direction"] == "up" else _("Down"),
                "submitted": shown,
                "acceptance": sup.rate(
                    row["accepted"],
                    row["accepted"] + row["rejected"] + row["expired"],
                    shown=shown,
                ),
                "hours_to_accept": sup.mean(
                    (row["minutes"] or 0) / 60, row["accepted"], shown=shown
                ),
            }
        )
    return {
        "section": "referrals",
        "kpis": [
            kpi("up", _("Referred up"), _total(sup, up, up_line, link_lines["up"]), kind="count"),
            kpi(
                "down",
                _("Referred down"),
                _total(sup, down, down_line, link_lines["down"]),
                kind="count",
            ),
            kpi("accepted", _("Accepted"), sup.cell(accepted), kind="count"),
            kpi("acceptance", _("Acceptance rate"), sup.rate(accepted, decided), "%"),
            kpi(
                "hours_to_accept",
                _("Mean time to accept"),
                sup.mean(minutes / 60, accepted, shown=sup.cell(accepted)),
                _("h"),
            ),
        ],
        "trend": {
            "periods": [p.isoformat() for p in periods(filters)],
            "series": [
                {"key": "up", "label": _("Referred up"), "values": up_line.shown},
                {"key": "down", "label": _("Referred down"), "values": down_line.shown},
            ],
        },
        "flows": flows(rows, names, sup),
        "tables": [
            {
                "key": "flows",
                "title": _("Who refers to whom"),
                "columns": [
                    column("from", _("From"), "text"),
                    column("to", _("To"), "text"),
                    column("direction", _("Direction"), "text"),
                    column("submitted", _("Referrals")),
                    column("acceptance", _("Accepted (%)"), "number"),
                    column("hours_to_accept", _("Mean hours to accept"), "number"),
                ],
                "rows": table_rows,
            }
        ],
    }


# --- recognition and cross-hospital retrievals --------------------------------------------


def recognition_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    base = _with_modality(
        _in_range(rollup.DailyRecognition.objects, filters).filter(
            _either(filters, "institution_id", "origin_id")
        ),
        filters,
    )
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
        base.values("day").annotate(decisions=Sum("decisions"), recognized=Sum("recognized"))
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
    now = timezone.now()
    counts = dict(
        _with_modality(
            _in_range(rollup.DailyStudyVolume.objects, filters).filter(
                institution_id__in=filters.institution_ids
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
        rows.append(
            {
                "institution": institution_label(inst),
                "institution_uuid": str(inst.uuid),
                "tier": inst.get_tier_display(),
                "studies": studies,
                "health": health,
                "health_label": str(labels[health]),
                "last_contact": timezone.localtime(last).strftime("%Y-%m-%d %H:%M") if last else "",
                "backlog": sum(e.backlog for e in own),
                "lag_seconds": max((e.lag_seconds for e in own), default=0),
            }
        )
    flow = flows(_flow_rows(filters), names, sup)
    by_health = {h: sum(1 for r in rows if r["health"] == h) for h in ("green", "amber", "red")}
    return {
        "section": "network",
        "kpis": [
            kpi("institutions", _("Institutions"), len(rows)),
            kpi("edges_green", _("Edges healthy"), by_health["green"]),
            kpi("edges_amber", _("Edges late or backed up"), by_health["amber"]),
            kpi("edges_red", _("Edges silent"), by_health["red"]),
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


SECTIONS = {
    "volume": volume_section,
    "turnaround": turnaround_section,
    "referrals": referrals_section,
    "recognition": recognition_section,
    "network": network_section,
}


def modalities(filters: Filters) -> list[str]:
    """Return the modalities seen in the region, for the filter's choices."""
    return list(
        rollup.DailyStudyVolume.objects.filter(institution_id__in=filters.institution_ids)
        .values_list("modality", flat=True)
        .distinct()
        .order_by("modality")
    )
