"""Check, before serving, that every service the settings name answers.

Settings already refuse malformed values; this finds the well-formed ones that
point nowhere (a stopped PostgreSQL, a wrong S3 endpoint or bucket credentials,
a Redis that is down) and stops the start with a message naming the variable.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from studies.archive import ArchiveError, get_store


class Command(BaseCommand):
    help = "Check the database, the archive and Redis; exit non-zero naming what is wrong."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = [p for p in (check_database(), check_archive(), check_redis()) if p]
        if problems:
            raise CommandError("\n".join(problems))
        self.stdout.write("preflight: database, archive and channel layer answer")


def check_database() -> str:
    variable = "DATABASE_URL" if settings.DATABASE_URL else "the embedded SQLite database"
    try:
        connection.ensure_connection()
        pending = MigrationExecutor(connection).migration_plan(
            MigrationExecutor(connection).loader.graph.leaf_nodes()
        )
    except DatabaseError as exc:
        return f"{variable}: cannot connect ({str(exc).strip().splitlines()[0]})"
    if pending:
        return f"{variable}: {len(pending)} migrations not applied (run manage.py migrate)"
    return ""


def check_archive() -> str:
    try:
        get_store().check()
    except ArchiveError as exc:
        message = str(exc)
        return message if message.startswith("ARCHIVE_URL") else f"ARCHIVE_URL: {message}"
    return ""


def check_redis() -> str:
    if not settings.REDIS_URL:
        return ""
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        return f"REDIS_URL: cannot reach Redis ({exc})"
    return ""
