"""Helpers shared by the dashboard's sections: periods, KPIs, suppression lines."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import translation

from hospitals.models import Institution, Tier
from regional_cloud.dashboard.models import MonthlyStorage
from regional_cloud.dashboard.privacy import Suppressor, is_shown
from regional_cloud.dashboard.scope import Filters
from regional_cloud.dashboard.spans import ALL_MODALITIES, covering

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
    """Rows covering the range once, as coarse as they come: for totals and breakdowns."""
    return queryset.filter(covering(filters.start, filters.end))


def _in_periods(queryset: Any, filters: Filters) -> QuerySet[Any]:
    """Rows covering the range once, none crossing a trend period: for ``values("day")``."""
    return queryset.filter(covering(filters.start, filters.end, filters.granularity))


def _either(filters: Filters, *fields: str) -> Q:
    """Rows naming one of the filter's institutions in any of ``fields``.

    Nothing to check when the filter keeps every institution there is: a list of a
    hundred ids costs PostgreSQL (before 17) one index descent per id, and the
    request a couple of milliseconds to bind, per query.
    """
    if filters.every_institution:
        return Q()
    ids = list(filters.institution_ids)
    condition = Q()
    for name in fields:
        condition |= Q(**{f"{name}__in": ids})
    return condition


def _with_modality(queryset: QuerySet[Any], filters: Filters) -> QuerySet[Any]:
    """Rows of the filter's modality, else the rows that sum every modality (see spans.py)."""
    return queryset.filter(modality=filters.modality or ALL_MODALITIES)


def _each_modality(queryset: QuerySet[Any], filters: Filters) -> QuerySet[Any]:
    """Rows of the filter's modality, else those of each modality: for a breakdown by it.

    The modalities are named (a short list, from the month table of storage, which
    never holds every-modality rows): ``modality <> '*'`` cannot use the index that
    starts with span and modality, and a year of it was a sequential scan.
    """
    if filters.modality:
        return queryset.filter(modality=filters.modality)
    known = MonthlyStorage.objects.order_by().values_list("modality", flat=True).distinct()
    return queryset.filter(modality__in=sorted(set(known)))


def period_of(day: date, granularity: str) -> date:
    """Return the first day of the period (day, ISO week from Monday, month) holding ``day``."""
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def periods(filters: Filters) -> list[date]:
    """Return every period of the range, in order (empty periods included)."""
    return list(_periods(filters.start, filters.end, filters.granularity))


@functools.lru_cache(maxsize=256)
def _periods(start: date, end: date, granularity: str) -> tuple[date, ...]:
    # Asked several times per request, with the same few ranges by everyone.
    found: list[date] = []
    day = start
    while day <= end:
        first = period_of(day, granularity)
        if not found or found[-1] != first:
            found.append(first)
        day += timedelta(days=1)
    return tuple(found)


def tier_labels() -> dict[str, str]:
    """Return each tier's label in the current language.

    ``get_tier_display()`` rebuilds and hashes the translated choices on every call:
    for the hundred institutions of a table that was a tenth of a request's CPU.
    """
    return {value: str(label) for value, label in Tier.choices}


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


TIER_ORDER = {
    Tier.REFERRAL_CENTRE: 0,
    Tier.COUNTY_HOSPITAL: 1,
    Tier.TOWNSHIP_CLINIC: 2,
    Tier.HEALTH_BUREAU: 3,
}


def _order(institution: Institution) -> tuple[int, str]:
    return (TIER_ORDER.get(Tier(institution.tier), 9), institution.code)
