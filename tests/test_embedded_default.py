"""With no service variables set, the hub runs on its own: SQLite, a folder archive.

This is what ``python3 tools/dev.py demo`` serves; here in a temporary VAR_DIR,
through the same daphne ASGI server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.browser import DaphneServer, start_daphne, stop_daphne

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the embedded default, its database migrated."""
    var = tmp_path_factory.mktemp("embedded-var")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "ARCHIVE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="regional_cloud.settings",
        VAR_DIR=str(var),
        DEBUG="0",
        SECRET_KEY="embedded-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return env


@pytest.fixture(scope="module")
def embedded_hub(
    embedded_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DaphneServer]:
    server = start_daphne(embedded_env, log_dir=tmp_path_factory.mktemp("embedded-log"))
    yield server
    stop_daphne(server)


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


def test_it_logs_a_user_in(embedded_env: dict[str, str], embedded_hub: DaphneServer) -> None:
    create = (
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_user('embedded-user', password='embedded-pass-9')"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", create],
        cwd=REPO,
        env=embedded_env,
        check=True,
        timeout=60,
        capture_output=True,
    )
    session = requests.Session()
    login_url = f"{embedded_hub.url}/accounts/login/"
    session.get(login_url, timeout=10)

    response = session.post(
        login_url,
        data={
            "username": "embedded-user",
            "password": "embedded-pass-9",
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
