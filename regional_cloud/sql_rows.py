"""Model instances from a hand-written SELECT, for the few queries run on every request.

The ORM compiles a query anew each time it runs; for a lookup by one indexed
key that is most of its cost. These helpers let such a query be written out
once in SQL and still hand back ordinary model instances (built the way the
ORM builds them, with ``Model.from_db``), so callers see no difference.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import psycopg
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Model

M = TypeVar("M", bound=Model)


def planned_cursor() -> CursorWrapper:
    """Return a cursor whose statements PostgreSQL may keep planned on the connection.

    Django's cursors bind parameters on the client, so PostgreSQL parses and
    plans every statement anew: for the look-ups by one key that every request
    runs, that is most of its work (~0.3 ms of CPU where running the plan takes
    ~0.03 ms). This cursor sends parameters apart, so psycopg prepares a
    statement once it has run ``prepare_threshold`` times on the connection
    (``DATABASE_URL``, ``regional_cloud.env``). One statement per call: no
    ``;``-joined strings. SQLite (the embedded default) gets a plain cursor.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = psycopg.Cursor(connection.connection)
    # Django's wrapper all the same: execute wrappers, query logging, error mapping.
    if connection.queries_logged:
        return CursorDebugWrapper(raw, connection)
    return CursorWrapper(raw, connection)


def columns(model: type[Model], alias: str) -> str:
    """Return ``alias.col, …`` for every concrete field of ``model``, in field order."""
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(str(f.column))}" for f in model._meta.concrete_fields)


def width(model: type[Model]) -> int:
    """Return how many columns ``columns(model, …)`` selects."""
    return len(model._meta.concrete_fields)


def from_row(model: type[M], row: tuple[Any, ...] | list[Any], start: int = 0) -> M:
    """Build a ``model`` instance from ``row[start:start + width(model)]``.

    Each field's database converters run first (``from_db_value``: JSON
    parsing and the like), as in the ORM.
    """
    fields = model._meta.concrete_fields
    values = list(row[start : start + len(fields)])
    for index, field in enumerate(fields):
        for convert in field.get_db_converters(connection):
            values[index] = convert(values[index], field, connection)
    return model.from_db(connection.alias, [f.attname for f in fields], values)


def insert(obj: Model) -> None:
    """Insert the unsaved ``obj`` as ``obj.save()`` would, and set its primary key.

    Field defaults and ``pre_save`` apply as in the ORM; no signals are sent
    (none are connected for the models that use this).
    """
    sql, params = insert_statement(obj)
    with planned_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None  # INSERT … RETURNING one row
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias


def insert_statement(obj: Model) -> tuple[str, list[Any]]:
    """Return the INSERT of the unsaved ``obj`` and its parameters, for a caller
    that sends it together with other statements (its primary key is not set)."""
    sql, fields = _insert_sql(type(obj), connection.vendor)
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


@functools.cache
def _insert_sql(model: type[Model], vendor: str) -> tuple[str, list[Any]]:
    # ``vendor`` is in the key: the SQLite demo and PostgreSQL quote alike, but
    # a process might hold both (tests), and the SQL must be its own backend's.
    quote = connection.ops.quote_name
    opts = model._meta
    assert opts.pk is not None
    fields = [f for f in opts.concrete_fields if not f.primary_key]
    sql = (
        f"INSERT INTO {quote(opts.db_table)} "  # noqa: S608 - names from the model
        f"({', '.join(quote(str(f.column)) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {quote(str(opts.pk.column))}"
    )
    return sql, fields
