"""``INSERT … ON CONFLICT DO NOTHING RETURNING``: insert the rows that are new, say which.

Django's ``bulk_create(ignore_conflicts=True)`` cannot tell which rows went
in, and a savepoint per row (to catch ``IntegrityError``) costs two statements
each. One statement does both: rows that would break a unique constraint are
skipped — after waiting for a concurrent transaction that holds the same key,
so the answer is final — and the inserted ones are named by ``returning``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from psycopg.types.json import Jsonb

from regional_cloud import sql_rows

# PostgreSQL takes at most 65,535 parameters a statement; SQLite (the embedded
# default) may be built with a limit as low as 999.
MAX_PARAMETERS = {"postgresql": 65_535, "sqlite": 999}


class JsonText(str):
    """A JSON field's value already encoded: inserted as it is, not encoded again.

    Lets a caller that holds many rows until the insert keep each value as a
    few kilobytes of text instead of tens of kilobytes of Python objects.
    """


def insert_new_rows(model: type[Model], objs: Sequence[Model], *, returning: str) -> set[Any]:
    """Insert ``objs`` (unsaved, of ``model``); return ``returning`` of those inserted.

    Field defaults and ``pre_save`` apply as in ``Model.save``; the objects'
    primary keys are not set.
    """
    if not objs:
        return set()
    opts = model._meta
    fields = [f for f in opts.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    returned_column = quote(str(opts.get_field(returning).column))  # type: ignore[union-attr]
    inserted: set[Any] = set()
    rows_per_statement = max(1, MAX_PARAMETERS.get(connection.vendor, 999) // len(fields))
    for start in range(0, len(objs), rows_per_statement):
        batch = objs[start : start + rows_per_statement]
        params = [_param(field, obj) for obj in batch for field in fields]
        sql = (
            f"INSERT INTO {quote(opts.db_table)} ({columns}) "  # noqa: S608 - names from the model
            f"VALUES {', '.join([row] * len(batch))} "
            f"ON CONFLICT DO NOTHING RETURNING {returned_column}"
        )
        with sql_rows.planned_cursor() as cursor:
            cursor.execute(sql, params)
            inserted.update(value for (value,) in cursor.fetchall())
    return inserted


def _param(field: Field[Any, Any], obj: Model) -> Any:
    value = field.pre_save(obj, True)
    if isinstance(value, JsonText):
        # SQLite keeps JSON as text: the encoded value is already what it stores.
        return Jsonb(value, dumps=str) if connection.vendor == "postgresql" else str(value)
    return field.get_db_prep_save(value, connection)
