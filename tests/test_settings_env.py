"""Settings come from the environment, and a wrong value stops the process at start.

The first half runs ``manage.py check`` in a subprocess with a clean
environment, as an operator would; the second half tests the readers in
regional_cloud/env.py directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from regional_cloud.env import (
    env_bool,
    env_int,
    env_list,
    env_str,
    env_time_zone,
    parse_archive_url,
    parse_database_url,
    parse_redis_url,
)

REPO = Path(__file__).resolve().parent.parent
GOOD_SECRET = "s" * 50


def manage_check(tmp_path: Path, **variables: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py check`` with only the given variables (None removes a default)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "DJANGO_SETTINGS_MODULE": "regional_cloud.settings",
        "DEBUG": "0",
        "SECRET_KEY": GOOD_SECRET,
        "VAR_DIR": str(tmp_path / "var"),
    }
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_passes_the_check_with_nothing_but_a_secret_key(tmp_path: Path) -> None:
    result = manage_check(tmp_path)

    assert result.returncode == 0, result.stderr


def test_it_passes_the_check_with_production_urls(tmp_path: Path) -> None:
    result = manage_check(
        tmp_path,
        DATABASE_URL="postgres://app:pw@127.0.0.1:5432/regional_cloud",
        ARCHIVE_URL="s3://key:secret@127.0.0.1:9000/archive",
        REDIS_URL="redis://127.0.0.1:6379/0",
        TIME_ZONE="Asia/Urumqi",
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        pytest.param(
            {"DATABASE_URL": "mysql://app:pw@127.0.0.1:3306/regional_cloud"},
            "DATABASE_URL",
            id="database-mysql",
        ),
        pytest.param(
            {"DATABASE_URL": "postgres://app:pw@127.0.0.1:5432"},
            "DATABASE_URL",
            id="database-no-name",
        ),
        pytest.param(
            {"DATABASE_URL": "postgres://app@127.0.0.1:port/regional_cloud"},
            "DATABASE_URL",
            id="database-bad-port",
        ),
        pytest.param({"ARCHIVE_URL": "ftp://127.0.0.1/archive"}, "ARCHIVE_URL", id="archive-ftp"),
        pytest.param(
            {"ARCHIVE_URL": "s3://key:secret@127.0.0.1:9000"}, "ARCHIVE_URL", id="archive-no-bucket"
        ),
        pytest.param({"ARCHIVE_URL": "file://relative"}, "ARCHIVE_URL", id="archive-relative"),
        pytest.param(
            {"ARCHIVE_URL": "file://host/path"},
            "ARCHIVE_URL",
            id="archive-file-with-host",
        ),
        pytest.param({"REDIS_URL": "http://127.0.0.1:6379/0"}, "REDIS_URL", id="redis-http"),
        pytest.param({"SECRET_KEY": None}, "SECRET_KEY", id="secret-missing"),
        pytest.param(
            {"SECRET_KEY": None, "SECRET_KEY_FILE": "/nonexistent/secret"},
            "SECRET_KEY_FILE",
            id="secret-file-missing",
        ),
        pytest.param({"TIME_ZONE": "Mars/Olympus_Mons"}, "TIME_ZONE", id="time-zone"),
        pytest.param({"DEBUG": "maybe"}, "DEBUG", id="debug"),
        pytest.param({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL", id="log-level"),
    ],
)
def test_it_stops_at_start_naming_the_wrong_variable(
    tmp_path: Path, variables: dict[str, str | None], named: str
) -> None:
    result = manage_check(tmp_path, **variables)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{named}:" in result.stderr


def test_it_does_not_print_the_archive_secret_in_its_complaint(tmp_path: Path) -> None:
    result = manage_check(tmp_path, ARCHIVE_URL="s3://key:hunter2-secret@127.0.0.1:9000")

    assert result.returncode != 0
    assert "ARCHIVE_URL" in result.stderr
    assert "hunter2-secret" not in result.stderr


def test_it_reads_the_secret_key_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text(GOOD_SECRET + "\n")

    result = manage_check(tmp_path, SECRET_KEY=None, SECRET_KEY_FILE=str(secret))

    assert result.returncode == 0, result.stderr


# --- The readers themselves -----------------------------------------------------


def test_it_parses_a_postgres_url_with_everything() -> None:
    db = parse_database_url("postgresql://app%40x:p%2Fw@db.local:6543/rc?sslmode=require")

    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["USER"], db["PASSWORD"]) == ("app@x", "p/w")
    assert (db["HOST"], db["PORT"], db["NAME"]) == ("db.local", "6543", "rc")
    assert db["OPTIONS"] == {
        "sslmode": "require",
        "pool": {"min_size": 2, "max_size": 16, "timeout": 30.0},
        "prepare_threshold": 5,
    }
    assert db["CONN_MAX_AGE"] == 0  # Django's pool refuses persistent connections


def test_it_sizes_the_connection_pool_from_the_url() -> None:
    db = parse_database_url("postgres://h/rc?pool_min_size=0&pool_max_size=40&pool_timeout=2.5")

    assert db["OPTIONS"] == {
        "pool": {"min_size": 0, "max_size": 40, "timeout": 2.5},
        "prepare_threshold": 5,
    }


def test_it_turns_the_pool_off_when_asked() -> None:
    db = parse_database_url("postgres://h/rc?pool=off&pool_max_size=40")

    assert db["OPTIONS"] == {"prepare_threshold": 5}


POOL_DEFAULTS_AS_SET = {"min_size": 2, "max_size": 16, "timeout": 30.0}


@pytest.mark.parametrize(("given", "threshold"), [("", 5), ("0", 0), ("12", 12), ("off", None)])
def test_it_reads_when_to_prepare_statements(given: str, threshold: int | None) -> None:
    query = f"?prepare_threshold={given}" if given else ""
    db = parse_database_url(f"postgres://h/rc{query}")

    assert db["OPTIONS"] == {"pool": POOL_DEFAULTS_AS_SET, "prepare_threshold": threshold}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("pool=maybe", "pool= expects on or off"),
        ("pool_max_size=lots", "pool_max_size expects a number"),
        ("pool_max_size=0", "pool_max_size must be at least 1"),
        ("pool_timeout=0", "pool_timeout must be at least"),
        ("pool_min_size=8&pool_max_size=4", "pool_min_size .8. is above pool_max_size .4."),
        ("prepare_threshold=-1", "prepare_threshold= expects a number of runs"),
        ("prepare_threshold=often", "prepare_threshold= expects a number of runs"),
    ],
)
def test_it_refuses_a_wrong_pool_setting(query: str, reason: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=rf"^DATABASE_URL: {reason}"):
        parse_database_url(f"postgres://h/rc?{query}")


def test_it_parses_a_postgres_url_with_the_defaults() -> None:
    db = parse_database_url("postgres://127.0.0.1/rc")

    assert (db["USER"], db["PASSWORD"], db["PORT"], db["NAME"]) == ("", "", "", "rc")


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "sqlite:///tmp/x.db", "postgres://u@h:5432", "postgres://u@h:x/db", ""],
)
def test_it_refuses_a_wrong_database_url(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^DATABASE_URL: "):
        parse_database_url(url)


def test_it_names_the_variable_it_was_given() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^REPLICA_URL: "):
        parse_database_url("mysql://u@h/db", name="REPLICA_URL")


def test_it_parses_a_file_archive() -> None:
    archive = parse_archive_url("file:///srv/archive%20one")

    assert (archive.kind, archive.path) == ("file", "/srv/archive one")


def test_it_parses_an_s3_archive() -> None:
    archive = parse_archive_url("s3://AK:S%2FK@s3.local:9000/bucket?region=cn-north-1")

    assert archive.kind == "s3"
    assert (archive.endpoint, archive.bucket) == ("s3.local:9000", "bucket")
    assert (archive.access_key, archive.secret_key) == ("AK", "S/K")
    assert (archive.secure, archive.region) == (False, "cn-north-1")


@pytest.mark.parametrize("url", ["s3+https://a:b@h/bkt", "s3://a:b@h/bkt?secure=true"])
def test_it_knows_an_s3_archive_is_https(url: str) -> None:
    assert parse_archive_url(url).secure is True


@pytest.mark.parametrize(
    "url",
    [
        "ftp://h/archive",
        "file://relative",
        "file://host/srv/archive",
        "s3://a:b@h:9000",
        "s3://a:b@h:9000/bucket/prefix",
        "s3://a:b@h:port/bucket",
        "s3:///bucket",
    ],
)
def test_it_refuses_a_wrong_archive_url(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^ARCHIVE_URL: "):
        parse_archive_url(url)


def test_it_accepts_redis_urls() -> None:
    assert parse_redis_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert parse_redis_url("rediss://:pw@cache.local:6380/1") == "rediss://:pw@cache.local:6380/1"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:6379", "redis://", "redis://h:port/0", "127.0.0.1:6379"]
)
def test_it_refuses_a_wrong_redis_url(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^REDIS_URL: "):
        parse_redis_url(url)


def test_it_hides_the_redis_password_in_its_complaint() -> None:
    with pytest.raises(ImproperlyConfigured) as excinfo:
        parse_redis_url("http://user:topsecret@127.0.0.1:6379")

    assert "topsecret" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False), ("off", False)],
)
def test_it_reads_booleans(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    monkeypatch.setenv("RC_FLAG", raw)

    assert env_bool("RC_FLAG", not expected) is expected


def test_it_uses_the_boolean_default_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RC_FLAG", raising=False)

    assert env_bool("RC_FLAG", True) is True


def test_it_refuses_a_word_that_is_not_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_FLAG", "perhaps")

    with pytest.raises(ImproperlyConfigured, match=r"^RC_FLAG: "):
        env_bool("RC_FLAG", False)


def test_it_reads_integers_with_a_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_NUMBER", "42")
    assert env_int("RC_NUMBER", 1, minimum=1) == 42

    monkeypatch.setenv("RC_NUMBER", "")
    assert env_int("RC_NUMBER", 7) == 7

    monkeypatch.setenv("RC_NUMBER", "0")
    with pytest.raises(ImproperlyConfigured, match=r"^RC_NUMBER: expected an integer >= 1"):
        env_int("RC_NUMBER", 1, minimum=1)

    monkeypatch.setenv("RC_NUMBER", "4 GB")
    with pytest.raises(ImproperlyConfigured, match=r"^RC_NUMBER: expected an integer"):
        env_int("RC_NUMBER", 1)


def test_it_reads_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_HOSTS", " hub.local, ,127.0.0.1 ")
    assert env_list("RC_HOSTS", ["x"]) == ["hub.local", "127.0.0.1"]

    monkeypatch.delenv("RC_HOSTS")
    assert env_list("RC_HOSTS", ["x"]) == ["x"]


def test_it_prefers_the_file_variable_for_strings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "value"
    secret.write_text("  from-the-file\n")
    monkeypatch.setenv("RC_SECRET", "from-the-variable")
    monkeypatch.setenv("RC_SECRET_FILE", str(secret))

    assert env_str("RC_SECRET") == "from-the-file"


def test_it_names_the_file_variable_when_the_file_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RC_SECRET_FILE", str(tmp_path / "missing"))

    with pytest.raises(ImproperlyConfigured, match=r"^RC_SECRET_FILE: cannot read"):
        env_str("RC_SECRET")


def test_it_checks_time_zones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_TZ", "Asia/Shanghai")
    assert env_time_zone("RC_TZ", "UTC") == "Asia/Shanghai"

    for wrong in ("Beijing", "../etc/passwd", "Asia/Nowhere"):
        monkeypatch.setenv("RC_TZ", wrong)
        with pytest.raises(ImproperlyConfigured, match=r"^RC_TZ: "):
            env_time_zone("RC_TZ", "UTC")
