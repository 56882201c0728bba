"""Rebuild the rollup tables from the index, in the database.

``rollup_refresh(since=day)`` recomputes every day from ``day`` on: for each
table, in one transaction, it deletes those days and inserts their rows with
one ``INSERT … SELECT … GROUP BY`` compiled from a Django queryset, so the
same code runs on PostgreSQL and on the embedded SQLite, and no row of the
index ever passes through Python.

Days are calendar days in ``settings.TIME_ZONE``. Each event counts on the
day it happened (see models.py), so refreshing today and yesterday keeps the
tables exact for everything that happens now; a nightly refresh of the last
weeks catches late facts about older events (a critical result seen days
after it was signed).
"""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate, TruncMonth
from django.utils import timezone

from hospitals.models import CLINICAL_ROLES, Membership
from referrals.models import RecognitionDecision, Referral
from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.spans import (
    ALL_MODALITIES,
    build_all_modalities_rows,
    build_coarse_rows,
    has_modality,
    is_spanned,
)
from regional_cloud.models import AuditEvent
from studies.models import Report, Series, Study

# The audited actions that mean "someone looked at or fetched this study's images".
RETRIEVAL_ACTIONS = ("study.view", "study.retrieve", "study.metadata")
UNKNOWN_MODALITY = "OT"  # PS3.3 C.7.3.1.1.1: Other


def display_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def day_start(day: date) -> datetime:
    """Return the first instant of ``day`` in the display time zone."""
    return datetime.combine(day, dtime.min, tzinfo=display_zone())


def local_day(field: str) -> TruncDate:
    return TruncDate(field, tzinfo=display_zone())


class MinutesBetween(models.Func):
    """Minutes from ``start`` to ``end`` (a float), the same on PostgreSQL and SQLite."""

    output_field = models.FloatField()
    arity = 2

    def as_sql(self, compiler: Any, connection: Any, *args: Any, **extra: Any) -> Any:
        template = "(EXTRACT(EPOCH FROM (%(end)s - %(start)s)) / 60.0)"
        return self._minutes(compiler, connection, template)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        template = "((julianday(%(end)s) - julianday(%(start)s)) * 1440.0)"
        return self._minutes(compiler, connection, template)

    def _minutes(self, compiler: Any, connection: Any, template: str) -> Any:
        start_sql, start_params = compiler.compile(self.source_expressions[0])
        end_sql, end_params = compiler.compile(self.source_expressions[1])
        # end first in the template, so order the parameters the same way
        return template % {"start": start_sql, "end": end_sql}, (*end_params, *start_params)


def study_modality(study_ref: str) -> Coalesce:
    """Return the modality of a study: that of its largest series.

    A CT study with a dose-report SR counts as CT; a study without series
    (none should exist) as OT. ``study_ref`` names the study's id in the outer query.
    """
    largest = (
        Series.objects.filter(study_id=OuterRef(study_ref))
        .order_by("-number_of_instances", "modality")
        .values("modality")[:1]
    )
    return Coalesce(Subquery(largest), Value(UNKNOWN_MODALITY), output_field=models.CharField())


# --- one source query per table -------------------------------------------------------
# Each returns rows in the order of the table's COLUMNS, grouped in the database.


def _volume(start: datetime | None) -> QuerySet[Any]:
    studies = Study.objects.all() if start is None else Study.objects.filter(received_at__gte=start)
    return (
        studies.order_by()
        .annotate(d=local_day("received_at"), m=study_modality("pk"))
        .values("d", "origin_id", "m")
        .annotate(
            n=Count("id"),
            s=Sum("number_of_series"),
            i=Sum("number_of_instances"),
            b=Sum("size_bytes"),
        )
        .values_list("d", "origin_id", "m", "n", "s", "i", "b")
    )


def _final_reports(start: datetime | None) -> QuerySet[Report]:
    reports = Report.objects.filter(
        state=Report.State.FINAL, amends__isnull=True, signed_at__isnull=False
    )
    return reports if start is None else reports.filter(signed_at__gte=start)


def _turnaround(start: datetime | None) -> QuerySet[Any]:
    return (
        _final_reports(start)
        .order_by()
        .annotate(
            d=local_day("signed_at"),
            m=study_modality("study_id"),
            minutes=MinutesBetween(F("study__received_at"), F("signed_at")),
        )
        .values("d", "study__origin_id", "task__reading_institution_id", "m")
        .annotate(
            n=Count("id"),
            total=Coalesce(Sum("minutes"), Value(0.0)),
            h1=Count("id", filter=Q(minutes__lte=60)),
            h4=Count("id", filter=Q(minutes__gt=60, minutes__lte=240)),
            h24=Count("id", filter=Q(minutes__gt=240, minutes__lte=1440)),
            over=Count("id", filter=Q(minutes__gt=1440)),
        )
        .values_list(
            "d",
            "study__origin_id",
            "task__reading_institution_id",
            "m",
            "n",
            "total",
            "h1",
            "h4",
            "h24",
            "over",
        )
    )


def _critical(start: datetime | None) -> QuerySet[Any]:
    return (
        _final_reports(start)
        .filter(critical=True)
        .order_by()
        .annotate(
            d=local_day("signed_at"),
            m=study_modality("study_id"),
            to_notify=MinutesBetween(F("signed_at"), F("critical_notified_at")),
            to_seen=MinutesBetween(F("signed_at"), F("critical_seen_at")),
        )
        .values("d", "study__origin_id", "task__reading_institution_id", "m")
        .annotate(
            n=Count("id"),
            notified=Count("critical_notified_at"),
            notify_sum=Coalesce(Sum("to_notify"), Value(0.0)),
            seen=Count("critical_seen_at"),
            seen_sum=Coalesce(Sum("to_seen"), Value(0.0)),
        )
        .values_list(
            "d",
            "study__origin_id",
            "task__reading_institution_id",
            "m",
            "n",
            "notified",
            "notify_sum",
            "seen",
            "seen_sum",
        )
    )


def _workload(start: datetime | None) -> QuerySet[Any]:
    return (
        _final_reports(start)
        .order_by()
        .annotate(d=local_day("signed_at"), m=study_modality("study_id"))
        .values("d", "signed_by_id", "task__reading_institution_id", "m")
        .annotate(n=Count("id"))
        .values_list("d", "signed_by_id", "task__reading_institution_id", "m", "n")
    )


def _recognition(start: datetime | None) -> QuerySet[Any]:
    decisions = RecognitionDecision.objects.all()
    if start is not None:
        decisions = decisions.filter(decided_at__gte=start)
    recognized = RecognitionDecision.Decision.RECOGNIZED
    return (
        decisions.order_by()
        .annotate(d=local_day("decided_at"), m=study_modality("study_id"))
        .values("d", "institution_id", "study__origin_id", "m")
        .annotate(
            n=Count("id"),
            yes=Count("id", filter=Q(decision=recognized)),
            no=Count("id", filter=~Q(decision=recognized)),
            repeats=Count("repeat_study_id"),
            saving=Coalesce(
                Sum("saving_yuan"),
                Value(0, output_field=models.DecimalField(max_digits=14, decimal_places=2)),
            ),
        )
        .values_list(
            "d", "institution_id", "study__origin_id", "m", "n", "yes", "no", "repeats", "saving"
        )
    )


def _retrievals(start: datetime | None) -> QuerySet[Any]:
    events = AuditEvent.objects.filter(
        action__in=RETRIEVAL_ACTIONS,
        outcome=AuditEvent.Outcome.SUCCESS,
        actor__isnull=False,
    ).exclude(study_uid="")
    if start is not None:
        events = events.filter(occurred_at__gte=start)
    origin = Study.objects.filter(study_instance_uid=OuterRef("study_uid")).values("origin_id")[:1]
    clinical = Membership.objects.filter(
        user_id=OuterRef("actor_id"), is_active=True, role__in=list(CLINICAL_ROLES)
    )
    # The reader's institution: a clinical membership elsewhere than the study's origin.
    # Someone who also works at the origin reads their own institution's study.
    reader = clinical.exclude(institution_id=OuterRef("origin")).order_by("institution_id")
    return (
        events.order_by()
        .annotate(origin=Subquery(origin))
        .filter(origin__isnull=False)
        .annotate(reader=Subquery(reader.values("institution_id")[:1]))
        .filter(reader__isnull=False)
        .filter(~Exists(clinical.filter(institution_id=OuterRef("origin"))))
        .annotate(d=local_day("occurred_at"))
        .values("d", "origin", "reader")
        .annotate(studies=Count("study_uid", distinct=True), n=Count("id"))
        .values_list("d", "origin", "reader", "studies", "n")
    )


def _referral_flow(start: datetime | None) -> QuerySet[Any]:
    """Return one row per event kind and day; ``_insert`` sums them per cell."""
    keys = ("from_institution_id", "to_institution_id", "direction")
    zero = Value(0)
    zero_minutes = Value(0.0, output_field=models.FloatField())

    def events(at: str, **state: Any) -> QuerySet[Referral]:
        rows = Referral.objects.filter(**{f"{at}__isnull": False}, **state)
        return rows if start is None else rows.filter(**{f"{at}__gte": start})

    submitted = (
        events("submitted_at")
        .order_by()
        .annotate(d=local_day("submitted_at"))
        .values("d", *keys)
        .annotate(a=Count("id"), b=zero, c=zero, e=zero, f=zero_minutes)
    )
    accepted = (
        events("accepted_at")
        .order_by()
        .annotate(
            d=local_day("accepted_at"),
            wait=MinutesBetween(F("submitted_at"), F("accepted_at")),
        )
        .values("d", *keys)
        .annotate(a=zero, b=Count("id"), c=zero, e=zero, f=Coalesce(Sum("wait"), zero_minutes))
    )
    rejected = (
        events("closed_at", state=Referral.State.REJECTED)
        .order_by()
        .annotate(d=local_day("closed_at"))
        .values("d", *keys)
        .annotate(a=zero, b=zero, c=Count("id"), e=zero, f=zero_minutes)
    )
    expired = (
        events("closed_at", state=Referral.State.EXPIRED)
        .order_by()
        .annotate(d=local_day("closed_at"))
        .values("d", *keys)
        .annotate(a=zero, b=zero, c=zero, e=Count("id"), f=zero_minutes)
    )
    columns = ("d", *keys, "a", "b", "c", "e", "f")
    return submitted.values_list(*columns).union(
        accepted.values_list(*columns),
        rejected.values_list(*columns),
        expired.values_list(*columns),
        all=True,
    )


def _monthly_storage(start: datetime | None) -> QuerySet[Any]:
    days = rollup.DailyStudyVolume.objects.filter(span=rollup.Span.DAY).exclude(
        modality=ALL_MODALITIES
    )
    if start is not None:
        days = days.filter(day__gte=start.date().replace(day=1))
    return (
        days.order_by()
        .annotate(month=TruncMonth("day"))
        .values("month", "institution_id", "modality")
        .annotate(n=Sum("studies"), b=Sum("bytes"))
        .values_list("month", "institution_id", "modality", "n", "b")
    )


@dataclass(frozen=True)
class Table:
    model: type[models.Model]
    columns: tuple[str, ...]  # database columns, in the source query's order
    keys: int  # how many leading columns form the cell's key
    source: Callable[[datetime | None], QuerySet[Any]]
    # True when the source yields several rows per cell, to be summed on insert.
    regroup: bool = False
    # Rows are per month: a refresh from a day rebuilds that day's whole month.
    monthly: bool = False


TABLES: tuple[Table, ...] = (
    Table(
        rollup.DailyStudyVolume,
        ("day", "institution_id", "modality", "studies", "series", "instances", "bytes"),
        3,
        _volume,
    ),
    Table(
        rollup.MonthlyStorage,
        ("day", "institution_id", "modality", "studies", "bytes"),
        3,
        _monthly_storage,
        monthly=True,
    ),
    Table(
        rollup.DailyReferralFlow,
        (
            "day",
            "from_institution_id",
            "to_institution_id",
            "direction",
            "submitted",
            "accepted",
            "rejected",
            "expired",
            "minutes_to_accept_sum",
        ),
        4,
        _referral_flow,
        regroup=True,
    ),
    Table(
        rollup.DailyTurnaround,
        (
            "day",
            "origin_id",
            "reading_institution_id",
            "modality",
            "reports",
            "minutes_sum",
            "within_1h",
            "within_4h",
            "within_24h",
            "over_24h",
        ),
        4,
        _turnaround,
    ),
    Table(
        rollup.DailyCritical,
        (
            "day",
            "origin_id",
            "reading_institution_id",
            "modality",
            "critical",
            "notified",
            "notify_minutes_sum",
            "seen",
            "seen_minutes_sum",
        ),
        4,
        _critical,
    ),
    Table(
        rollup.DailyRecognition,
        (
            "day",
            "institution_id",
            "origin_id",
            "modality",
            "decisions",
            "recognized",
            "not_recognized",
            "repeats",
            "saving_yuan",
        ),
        4,
        _recognition,
    ),
    Table(
        rollup.DailyRetrievals,
        ("day", "origin_id", "reader_institution_id", "studies", "events"),
        3,
        _retrievals,
    ),
    Table(
        rollup.DailyWorkload,
        ("day", "reader_id", "institution_id", "modality", "reports"),
        4,
        _workload,
    ),
)


def _insert_sql(table: Table, start: datetime | None) -> tuple[str, tuple[Any, ...]]:
    select_sql, params = table.source(start).query.sql_with_params()
    db_table = connection.ops.quote_name(table.model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in table.columns)
    if not table.regroup:
        # Table and column names come from the models; every value is a parameter.
        return f"INSERT INTO {db_table} ({columns}) {select_sql}", tuple(params)
    # The union's columns come back under the first query's aliases: name them by position.
    aliases = [f"c{i}" for i in range(len(table.columns))]
    keys = ", ".join(aliases[: table.keys])
    sums = ", ".join(f"SUM({a})" for a in aliases[table.keys :])
    # A CTE with a column list: SQLite takes no column list on a subquery alias.
    return (
        f"WITH u ({', '.join(aliases)}) AS ({select_sql}) "  # noqa: S608 - names from _meta
        f"INSERT INTO {db_table} ({columns}) SELECT {keys}, {sums} FROM u GROUP BY {keys}",
        tuple(params),
    )


def no_jit() -> None:
    """Turn PostgreSQL's JIT off for the current transaction.

    JIT compiles a plan for a few hundred milliseconds; the rollup queries are
    either small (a refresh of two days, a dashboard read) or one-off (a full
    rebuild), so the compilation only ever adds latency.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


@dataclass(frozen=True)
class RefreshResult:
    table: str
    rows: int
    seconds: float


def refresh_table(table: Table, *, since: date | None) -> RefreshResult:
    """Recompute ``table`` for every day from ``since`` (all days when None)."""
    began = time.monotonic()
    if since is not None and table.monthly:
        since = since.replace(day=1)
    start = day_start(since) if since is not None else None
    with transaction.atomic():
        no_jit()
        existing = table.model._default_manager.all()
        if since is not None:
            existing = existing.filter(day__gte=since)
            if is_spanned(table.model):
                existing = existing.filter(span=rollup.Span.DAY)
        # No cascades and no signals: derived rows go in one DELETE.
        existing._raw_delete(existing.db)
        sql, params = _insert_sql(table, start)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = max(cursor.rowcount, 0)
        if is_spanned(table.model):
            if has_modality(table.model):
                rows += build_all_modalities_rows(table.model, since=since)
            rows += build_coarse_rows(table.model, since=since)
        if since is None and connection.vendor == "postgresql":
            # A full rebuild replaces every row: plan the readers on the new ones, not on
            # statistics of the old (autovacuum would get there, minutes later).
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table.model._meta.db_table)}")
        seconds = time.monotonic() - began
        rollup.RollupState.objects.update_or_create(
            table=table.model._meta.db_table,
            defaults={"refreshed_at": timezone.now(), "since": since, "seconds": seconds},
        )
    return RefreshResult(table.model._meta.model_name or "", rows, seconds)


def rollup_refresh(*, since: date | None) -> list[RefreshResult]:
    """Recompute every rollup table for the days from ``since`` on (None: all days).

    One transaction per table: a dashboard request sees either the old rows of
    a table or the new ones, never a half-built day.
    """
    return [refresh_table(table, since=since) for table in TABLES]


def refresh_recent(*, days: int = 2) -> list[RefreshResult]:
    """Recompute the last ``days`` days (today included) in the display time zone."""
    today = timezone.localdate(timezone=display_zone())
    return rollup_refresh(since=today - timedelta(days=days - 1))
