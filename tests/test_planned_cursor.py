"""regional_cloud.sql_rows.planned_cursor: the statements every request runs are
prepared on the connection, and still pass through Django's execute wrappers."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from studies.ingest_sql import index_lookup

pytestmark = pytest.mark.django_db


def prepared_statements() -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return list(cursor.fetchall())


def test_a_statement_run_often_is_prepared_and_wrapped():
    threshold = connection.settings_dict["OPTIONS"]["prepare_threshold"]
    assert threshold == 5  # regional_cloud.env's default
    seen: list[str] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        for number in range(threshold + 2):
            [known] = index_lookup([(f"1.2.3.{number}", "1.2.4", "1.2.5")])
            assert known.instance is None
            assert known.study is None

    assert len(seen) == threshold + 2
    [(statement, runs)] = [row for row in prepared_statements() if "AS sop" in row[0]]
    assert runs == 2  # the runs after the threshold use the prepared statement
    assert "$2" in statement  # parameters sent apart, not written into the text


def test_django_cursors_stay_bound_on_the_client():
    with connection.cursor() as cursor:
        for number in range(8):
            cursor.execute("SELECT %s::int + 1", [number])
    assert not [row for row in prepared_statements() if "+ 1" in row[0]]
