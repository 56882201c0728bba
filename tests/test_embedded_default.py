"""With no service variables set, the hub runs on its own: SQLite, a folder archive.

The set-up is the README's own command, ``tools/dev.py demo --no-serve`` (migrate,
preflight, seed), pointed at a temporary VAR_DIR; then the same daphne ASGI
server the demo execs serves it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests

from tests.fixtures.browser import DaphneServer, start_daphne, stop_daphne

REPO = Path(__file__).resolve().parent.parent
DEMO_USER = "dongshan_doctor"  # one of the accounts README lists

pytestmark = pytest.mark.timeout(180)


def run_demo_setup(var: Path) -> subprocess.CompletedProcess[str]:
    # The demo must not see the suite's services: dev.py drops these itself,
    # and the test proves it by leaving them set.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    return subprocess.run(
        [sys.executable, "tools/dev.py", "demo", "--no-serve", "--var-dir", str(var)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )


@pytest.fixture(scope="module")
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the embedded default, after the demo's own set-up ran."""
    var = tmp_path_factory.mktemp("embedded-var")
    result = run_demo_setup(var)
    assert result.returncode == 0, result.stdout + result.stderr
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "ARCHIVE_URL", "REDIS_URL", "SECRET_KEY"}
        and key != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="regional_cloud.settings",
        VAR_DIR=str(var),
        SECRET_KEY_FILE=str(var / "secret_key"),
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    return env


@pytest.fixture(scope="module")
def embedded_hub(
    embedded_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphneServer]:
    server = start_daphne(embedded_env, log_dir=tmp_path_factory.mktemp("embedded-log"))
    yield server
    stop_daphne(server)


def _demo_password(env: dict[str, str]) -> str:
    return env.get("DEMO_PASSWORD", "demo-pass-2026")


def test_it_keeps_its_database_in_var_dir(embedded_env: dict[str, str]) -> None:
    database = Path(embedded_env["VAR_DIR"]) / "demo.sqlite3"

    assert database.is_file()
    assert database.stat().st_size > 0


def test_it_serves_the_login_page(embedded_hub: DaphneServer) -> None:
    response = requests.get(f"{embedded_hub.url}/accounts/login/", timeout=10)

    assert response.status_code == 200
    assert 'name="password"' in response.text
    assert "csrfmiddlewaretoken" in response.text


def test_it_sends_a_visitor_to_the_login_page(embedded_hub: DaphneServer) -> None:
    response = requests.get(f"{embedded_hub.url}/", timeout=10, allow_redirects=False)

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/accounts/login/")


def test_it_keeps_a_private_secret_key(embedded_env: dict[str, str]) -> None:
    secret = Path(embedded_env["SECRET_KEY_FILE"])

    assert len(secret.read_text().strip()) >= 50
    assert secret.stat().st_mode & 0o077 == 0


def test_it_logs_a_demo_account_in(
    embedded_env: dict[str, str], embedded_hub: DaphneServer
) -> None:
    session = requests.Session()
    login_url = f"{embedded_hub.url}/accounts/login/"
    session.get(login_url, timeout=10)

    response = session.post(
        login_url,
        data={
            "username": DEMO_USER,
            "password": _demo_password(embedded_env),
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login_url},
        timeout=10,
        allow_redirects=False,
    )

    assert response.status_code == 302
    assert "sessionid" in session.cookies
    home = session.get(f"{embedded_hub.url}/", timeout=10, allow_redirects=False)
    assert home.status_code == 200


def test_it_refuses_a_wrong_password(embedded_hub: DaphneServer) -> None:
    session = requests.Session()
    login_url = f"{embedded_hub.url}/accounts/login/"
    session.get(login_url, timeout=10)

    response = session.post(
        login_url,
        data={
            "username": DEMO_USER,
            "password": "not-the-password",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": login_url},
        timeout=10,
        allow_redirects=False,
    )

    assert response.status_code == 200
    assert "sessionid" not in session.cookies


def _row_counts(database: Path) -> dict[str, int]:
    with closing(sqlite3.connect(database)) as connection:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            # The audit trail and sessions grow with every run and every login.
            if name not in {"regional_cloud_auditevent", "django_session", "sqlite_sequence"}
        ]
        return {
            name: connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]  # noqa: S608
            for name in tables
        }


def test_it_seeds_idempotently(embedded_env: dict[str, str]) -> None:
    database = Path(embedded_env["VAR_DIR"]) / "demo.sqlite3"
    before = _row_counts(database)

    again = run_demo_setup(Path(embedded_env["VAR_DIR"]))

    assert again.returncode == 0, again.stdout + again.stderr
    assert before["auth_user"] > 0
    assert _row_counts(database) == before
