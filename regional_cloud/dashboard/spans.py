"""Coarse rollup rows (whole weeks, whole months, every modality) and reading through them.

Writing: after a table's day rows are rebuilt, ``build_all_modalities_rows``
adds, for a table with a modality, one row per cell with the modalities summed
(``modality`` = ``ALL_MODALITIES``): most views filter no modality and read
those, a sixth of the rows. Then ``build_coarse_rows`` sums the day rows (both
kinds) into one row per ISO week (``day`` = its Monday) and per calendar month
(``day`` = its first day) in the same table. All of it is ``INSERT … SELECT …
GROUP BY`` like the day rows themselves. Every figure a row carries is a count
or a sum, so the coarser rows are exact, not estimates.

Reading: ``covering(start, end, granularity)`` returns the filter that reads
the range ``start..end`` as whole months, then whole weeks, then single days,
each day of the range exactly once. With a trend granularity, only spans that
lie inside one trend period are used (a week is never split across two months,
a month never read for a weekly trend), so the rows can be summed per period;
without one (totals and breakdowns) the coarsest spans are used.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce
from typing import Any

from django.db import connection, models
from django.db.models import Q, Sum, Value
from django.db.models.functions import TruncMonth, TruncWeek

DAY, WEEK, MONTH = "day", "week", "month"
# No DICOM modality is written so (PS3.3 C.7.3.1.1.1 codes are letters and digits).
ALL_MODALITIES = "*"
SUMMED_FIELDS = (
    models.IntegerField,  # and its Positive/Big subclasses
    models.FloatField,
    models.DecimalField,
)


# --- writing --------------------------------------------------------------------------------


def is_spanned(model: type[models.Model]) -> bool:
    return any(field.name == "span" for field in model._meta.concrete_fields)


def _columns(model: type[models.Model]) -> tuple[list[Any], list[Any]]:
    """Return the model's key fields (the cell besides day and span) and its summed fields."""
    keys: list[Any] = []
    sums: list[Any] = []
    for field in model._meta.concrete_fields:
        if field.primary_key or field.name in {"day", "span"}:
            continue
        is_sum = isinstance(field, SUMMED_FIELDS) and not field.is_relation
        (sums if is_sum else keys).append(field)
    return keys, sums


def period_start(day: date, span: str) -> date:
    """Return the first day of the week (Monday) or month holding ``day``."""
    if span == WEEK:
        return day - timedelta(days=day.weekday())
    if span == MONTH:
        return day.replace(day=1)
    return day


def _insert(model: type[models.Model], columns: list[str], select: Any) -> int:
    select_sql, params = select.query.sql_with_params()
    db_table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        # Table and column names come from the model; every value is a parameter.
        cursor.execute(f"INSERT INTO {db_table} ({names}) {select_sql}", params)
        return max(cursor.rowcount, 0)


def has_modality(model: type[models.Model]) -> bool:
    return any(field.name == "modality" for field in model._meta.concrete_fields)


def build_all_modalities_rows(model: type[models.Model], *, since: date | None) -> int:
    """Add ``model``'s every-modality day rows from its day rows from ``since`` on (all days
    when None); the old ones are gone with the day rows they summed."""
    keys, sums = _columns(model)
    others = [f for f in keys if f.name != "modality"]
    days = model._default_manager.filter(span=DAY).exclude(modality=ALL_MODALITIES)
    if since is not None:
        days = days.filter(day__gte=since)
    select = (
        days.order_by()
        .values("day", *(f.attname for f in others))
        .annotate(**{f"total_{f.attname}": Sum(f.attname) for f in sums})
        .annotate(every=Value(ALL_MODALITIES, output_field=models.CharField()))
        .values_list(
            "day", *(f.attname for f in others), "every", *(f"total_{f.attname}" for f in sums)
        )
    )
    columns = ["day", *(f.column for f in others), "modality", *(f.column for f in sums)]
    return _insert(model, columns, select)


def build_coarse_rows(model: type[models.Model], *, since: date | None) -> int:
    """Rebuild ``model``'s week and month rows from its day rows, for the periods from the
    one holding ``since`` on (all when None). Run inside the transaction that rebuilt
    the day rows, so a reader never sees coarse rows that disagree with them."""
    keys, sums = _columns(model)
    manager = model._default_manager
    written = 0
    for span, trunc in ((WEEK, TruncWeek), (MONTH, TruncMonth)):
        first = period_start(since, span) if since is not None else None
        old = manager.filter(span=span)
        days = manager.filter(span=DAY)
        if first is not None:
            old = old.filter(day__gte=first)
            days = days.filter(day__gte=first)
        old._raw_delete(old.db)
        select = (
            days.order_by()
            .annotate(period=trunc("day", output_field=models.DateField()))
            .values("period", *(f.attname for f in keys))
            .annotate(**{f"total_{f.attname}": Sum(f.attname) for f in sums})
            .annotate(span_value=Value(span, output_field=models.CharField()))
            .values_list(
                "span_value",
                "period",
                *(f.attname for f in keys),
                *(f"total_{f.attname}" for f in sums),
            )
        )
        columns = ["span", "day", *(f.column for f in keys + sums)]
        written += _insert(model, columns, select)
    return written


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Consecutive rows of one span: those whose ``day`` lies in first..last."""

    span: str
    first: date
    last: date


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _pieces(start: date, end: date, granularity: str | None) -> Iterator[tuple[str, date]]:
    """Yield (span, first day) pieces that tile start..end, coarsest first."""
    months = granularity in {None, MONTH}
    weeks = granularity in {None, MONTH, WEEK}
    day = start
    while day <= end:
        month_after = _next_month(day)
        if months and day.day == 1 and month_after - timedelta(days=1) <= end:
            yield MONTH, day
            day = month_after
            continue
        week_end = day + timedelta(days=6)
        # For a monthly trend (and for totals, so months stay reachable) a week must not
        # cross into the next month.
        same_month = week_end.month == day.month or granularity == WEEK
        if weeks and day.weekday() == 0 and week_end <= end and same_month:
            yield WEEK, day
            day = week_end + timedelta(days=1)
            continue
        yield DAY, day
        day += timedelta(days=1)


def runs(start: date, end: date, granularity: str | None = None) -> list[Run]:
    """Return the runs of rows that cover start..end once (see the module's docstring)."""
    step = {DAY: timedelta(days=1), WEEK: timedelta(days=7)}
    found: list[Run] = []
    for span, first in _pieces(start, end, granularity):
        previous = found[-1] if found else None
        follows = previous is not None and previous.span == span
        if follows and previous is not None:
            after = _next_month(previous.last) if span == MONTH else previous.last + step[span]
            if after == first:
                found[-1] = Run(span, previous.first, first)
                continue
        found.append(Run(span, first, first))
    return found


def covering(start: date, end: date, granularity: str | None = None) -> Q:
    """Return the filter that reads start..end from a spanned rollup table (see above)."""
    conditions = [
        Q(span=run.span, day__gte=run.first, day__lte=run.last)
        for run in runs(start, end, granularity)
    ]
    return reduce(operator.or_, conditions) if conditions else Q(pk__in=[])
