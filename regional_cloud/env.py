"""Typed readers for the environment variables the settings take.

Every reader fails at start with an ``ImproperlyConfigured`` that names the
variable and what it expects: a wrong value must stop the process before it
serves anything, never surface later as a confusing error.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """Return the variable, or the contents of the file named by ``NAME_FILE``."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE: cannot read {file_name!r} ({exc.strerror})"
            ) from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}: expected a boolean (true/false, 1/0), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: expected an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}: expected an integer >= {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_time_zone(name: str, default: str) -> str:
    value = os.environ.get(name, default)
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(
            f"{name}: expected an IANA time zone such as 'Asia/Shanghai', got {value!r}"
        ) from None
    return value


def parse_database_url(url: str, *, name: str = "DATABASE_URL") -> dict[str, object]:
    """Return a Django DATABASES entry for ``postgres://user:pass@host:port/db``."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"{name}: expected postgres://USER:PASSWORD@HOST:PORT/DBNAME, got scheme "
            f"{parts.scheme!r}"
        )
    db_name = unquote(parts.path.lstrip("/"))
    if not db_name:
        raise ImproperlyConfigured(f"{name}: the URL names no database (…/DBNAME)")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"{name}: the port is not a number") from None
    options: dict[str, object] = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    pool = _pool_options(options, name)
    if pool:
        options["pool"] = pool
    options["prepare_threshold"] = _prepare_threshold(options, name)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": db_name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        # Under ASGI each request may run on another thread: a persistent
        # connection per thread leaks connections until PostgreSQL refuses more.
        # The pool below gives the reuse back without the leak (and requires 0).
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
    }


# A process's pool (psycopg_pool through Django's OPTIONS["pool"]). Connections
# are opened on demand up to the maximum; a thread that finds all of them taken
# waits up to the timeout. The maximum must cover what one process holds at
# once: its concurrent requests (gunicorn threads, daphne's request threads)
# plus the threads that keep a connection between messages (the consultation
# consumer's posting threads, ASGI_THREADS of them). Several processes share
# PostgreSQL's max_connections (100 by default): processes x max stays below it.
POOL_DEFAULTS: dict[str, float] = {"min_size": 2, "max_size": 16, "timeout": 30.0}
POOL_PARAMETERS = {
    "pool_min_size": "min_size",
    "pool_max_size": "max_size",
    "pool_timeout": "timeout",
}


def _pool_options(options: dict[str, object], name: str) -> dict[str, object] | None:
    """Take the ``pool*`` query parameters out of ``options``; return the pool's settings.

    ``?pool=off`` turns pooling off (a new connection per request);
    ``pool_min_size``, ``pool_max_size`` and ``pool_timeout`` (seconds) size it.
    """
    switch = str(options.pop("pool", "on")).strip().lower()
    given = {
        target: str(options.pop(parameter))
        for parameter, target in POOL_PARAMETERS.items()
        if parameter in options
    }
    if switch in FALSE_WORDS:
        return None
    if switch not in TRUE_WORDS:
        raise ImproperlyConfigured(f"{name}: pool= expects on or off, got {switch!r}")
    min_size = _pool_number(given, "min_size", name, minimum=0)
    max_size = _pool_number(given, "max_size", name, minimum=1)
    timeout = _pool_number(given, "timeout", name, minimum=0.001)
    if min_size > max_size:
        raise ImproperlyConfigured(
            f"{name}: pool_min_size ({min_size:g}) is above pool_max_size ({max_size:g})"
        )
    return {"min_size": int(min_size), "max_size": int(max_size), "timeout": timeout}


# Statements run through ``regional_cloud.sql_rows.planned_cursor`` (the few that
# every request runs: token, index look-up, instance and audit rows) are
# prepared on a connection after this many runs, so PostgreSQL stops parsing and
# planning them anew: ~0.3 ms of its CPU each time. Other queries are bound on
# the client and never prepared. ``?prepare_threshold=off`` for a pooler in
# transaction mode that cannot keep prepared statements (PgBouncer before 1.21).
PREPARE_THRESHOLD_DEFAULT = 5


def _prepare_threshold(options: dict[str, object], name: str) -> int | None:
    raw = str(options.pop("prepare_threshold", PREPARE_THRESHOLD_DEFAULT)).strip().lower()
    if raw in FALSE_WORDS - {"0"}:
        return None
    try:
        threshold = int(raw)
    except ValueError:
        threshold = -1
    if threshold < 0:
        raise ImproperlyConfigured(
            f"{name}: prepare_threshold= expects a number of runs (0 or more) or off, got {raw!r}"
        )
    return threshold


def _pool_number(given: dict[str, str], key: str, name: str, *, minimum: float) -> float:
    raw = given.get(key)
    if raw is None:
        return POOL_DEFAULTS[key]
    try:
        value = float(raw) if key == "timeout" else int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: pool_{key} expects a number, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}: pool_{key} must be at least {minimum:g}, got {raw}")
    return value


@dataclass(frozen=True)
class ArchiveConfig:
    """Where the archive's objects live: a local folder or an S3 bucket."""

    kind: str  # "file" or "s3"
    path: str = ""
    endpoint: str = ""
    bucket: str = ""
    access_key: str = ""
    secret_key: str = ""
    secure: bool = False
    region: str = ""


def parse_archive_url(url: str, *, name: str = "ARCHIVE_URL") -> ArchiveConfig:
    """Parse ``file:///abs/path`` or ``s3://KEY:SECRET@HOST:PORT/BUCKET[?secure=true]``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ImproperlyConfigured(
                f"{name}: a file archive is local: write file:///ABS/PATH (three slashes), "
                f"got host {parts.netloc!r}"
            )
        if not parts.path.startswith("/"):
            raise ImproperlyConfigured(f"{name}: a file archive needs an absolute path")
        return ArchiveConfig(kind="file", path=unquote(parts.path))
    if parts.scheme in {"s3", "s3+http", "s3+https"}:
        bucket = parts.path.strip("/")
        if not parts.hostname or not bucket or "/" in bucket:
            raise ImproperlyConfigured(
                f"{name}: expected s3://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET, got {_redact(url)}"
            )
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name}: the port is not a number") from None
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        secure = parts.scheme == "s3+https" or query.get("secure", "").lower() in TRUE_WORDS
        endpoint = parts.hostname + (f":{port}" if port else "")
        return ArchiveConfig(
            kind="s3",
            endpoint=endpoint,
            bucket=bucket,
            access_key=unquote(parts.username or ""),
            secret_key=unquote(parts.password or ""),
            secure=secure,
            region=query.get("region", ""),
        )
    raise ImproperlyConfigured(
        f"{name}: expected file:///PATH or s3://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET, "
        f"got scheme {parts.scheme!r}"
    )


def parse_redis_url(url: str, *, name: str = "REDIS_URL") -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise ImproperlyConfigured(f"{name}: expected redis://HOST:PORT/DB, got {_redact(url)}")
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise ImproperlyConfigured(f"{name}: the port is not a number") from None
    return url


def _redact(url: str) -> str:
    """Return the URL with any password replaced, for error messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
