"""The statements ingest runs for every instance, written out in SQL.

At one instance per request the ORM spent more CPU compiling these queries
than PostgreSQL spent answering them (benchmarks/README.md, "Where the time
goes"). Rare paths — creating a patient, study or series, granting, auditing
— stay in the ORM (studies/ingest.py).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection
from django.db.models import Model

from regional_cloud import sql_rows
from studies.models import Instance, Patient, Series, Study

INSTANCES = Instance._meta.db_table
SERIES = Series._meta.db_table
STUDIES = Study._meta.db_table
PATIENTS = Patient._meta.db_table


@dataclass(frozen=True)
class StoredInstance:
    """An instance the index holds under the SOP Instance UID being sent."""

    sha256: str
    origin_id: int
    archive_key: str


@dataclass(frozen=True)
class KnownStudy:
    """The study row and its patient, as ingest needs them (checks, audit)."""

    pk: int
    uuid: UUID
    study_instance_uid: str
    origin_id: int
    patient_uuid: UUID
    issuer_id: int
    patient_id: str


@dataclass(frozen=True)
class KnownSeries:
    pk: int
    study_id: int


@dataclass(frozen=True)
class Known:
    """What the index holds for one instance's three UIDs (None where nothing)."""

    instance: StoredInstance | None
    study: KnownStudy | None
    series: KnownSeries | None


def _as_uuid(value: object) -> UUID:
    # PostgreSQL's driver returns UUIDs; SQLite stores them as 32 hex characters.
    return value if isinstance(value, UUID) else UUID(str(value))


# Instances looked up per statement: four parameters each, and SQLite (the
# embedded default) may be built with a limit of 999 parameters a statement.
LOOKUP_CHUNK = 200


def index_lookup(uids: Sequence[tuple[str, str, str]]) -> list[Known]:
    """Look up instances, their studies (with patient) and their series.

    ``uids`` holds (SOP Instance, Study Instance, Series Instance UID) per
    instance; the answer is in the same order. One statement per
    ``LOOKUP_CHUNK`` instances: a STOW-RS request of a whole series asks once,
    not once per instance.
    """
    known: list[Known] = []
    for start in range(0, len(uids), LOOKUP_CHUNK):
        chunk = uids[start : start + LOOKUP_CHUNK]
        with sql_rows.planned_cursor() as cursor:
            cursor.execute(
                _lookup_sql(len(chunk)), [v for n, row in enumerate(chunk) for v in (n, *row)]
            )
            rows = {row[0]: row[1:] for row in cursor.fetchall()}
        known.extend(_known(rows[n], study_uid) for n, (_sop, study_uid, _se) in enumerate(chunk))
    return known


@functools.cache
def _lookup_sql(count: int) -> str:
    # A derived table of one-row SELECTs rather than VALUES ... AS k(cols):
    # SQLite (the embedded default) has no column list on a derived table.
    keys = " UNION ALL ".join(["SELECT %s AS n, %s AS sop, %s AS study, %s AS series"] * count)
    return (
        "SELECT k.n, i.sha256, io.origin_id, i.archive_key, "  # noqa: S608 - table names from the models
        "s.id, s.uuid, s.origin_id, p.uuid, p.issuer_id, p.patient_id, se.id, se.study_id "
        f"FROM ({keys}) AS k "
        f"LEFT JOIN {INSTANCES} i ON i.sop_instance_uid = k.sop "
        f"LEFT JOIN {STUDIES} io ON io.id = i.study_id "
        f"LEFT JOIN {STUDIES} s ON s.study_instance_uid = k.study "
        f"LEFT JOIN {PATIENTS} p ON p.id = s.patient_id "
        f"LEFT JOIN {SERIES} se ON se.series_instance_uid = k.series"
    )


def _known(row: Sequence[Any], study_instance_uid: str) -> Known:
    sha256, instance_origin, stored_key = row[:3]
    study_pk, study_uuid, origin, patient_uuid, issuer, patient_id = row[3:9]
    series_pk, series_study = row[9:]
    return Known(
        instance=None if sha256 is None else StoredInstance(sha256, instance_origin, stored_key),
        study=None
        if study_pk is None
        else KnownStudy(
            study_pk,
            _as_uuid(study_uuid),
            study_instance_uid,
            origin,
            _as_uuid(patient_uuid),
            issuer,
            patient_id,
        ),
        series=None if series_pk is None else KnownSeries(series_pk, series_study),
    )


def counters_add(
    *,
    series: Mapping[int, tuple[int, int]],
    studies: Mapping[int, tuple[int, int]],
    now: datetime,
    inserts_first: Sequence[Model] = (),
) -> None:
    """Add (instances, bytes) to each series' and study's counters.

    ``inserts_first`` (unsaved rows: the request's audit events) are inserted
    in the same round trip, before the counters.

    Increments, not recounts: an UPDATE that waited for a concurrent request's
    row lock reads the row as that request committed it. Rows are taken in
    primary-key order, series before studies, so two requests never wait for
    each other in a circle.
    """
    statements: list[tuple[str, list[Any]]] = [
        sql_rows.insert_statement(row) for row in inserts_first
    ]
    for pk in sorted(series):
        instances, size = series[pk]
        statements.append(
            (
                f"UPDATE {SERIES} SET number_of_instances = number_of_instances + %s, "  # noqa: S608
                "size_bytes = size_bytes + %s WHERE id = %s",
                [instances, size, pk],
            )
        )
    for pk in sorted(studies):
        instances, size = studies[pk]
        statements.append(
            (
                f"UPDATE {STUDIES} SET number_of_instances = number_of_instances + %s, "  # noqa: S608
                "size_bytes = size_bytes + %s, updated_at = %s WHERE id = %s",
                [instances, size, now, pk],
            )
        )
    if not statements:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One round trip for all of them, still run in this order: Django's
            # psycopg cursor binds parameters on the client, so a multi-statement
            # string is allowed. SQLite (the embedded default) takes one at a time.
            cursor.execute(
                "; ".join(sql for sql, _ in statements),
                [value for _, params in statements for value in params],
            )
        else:
            for sql, params in statements:
                cursor.execute(sql, params)
