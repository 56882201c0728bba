"""Model instances from a hand-written SELECT, for the few queries run on every request.

The ORM compiles a query anew each time it runs; for a lookup by one indexed
key that is most of its cost. These helpers let such a query be written out
once in SQL and still hand back ordinary model instances (built the way the
ORM builds them, with ``Model.from_db``), so callers see no difference.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

M = TypeVar("M", bound=Model)


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
