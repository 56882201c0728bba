"""Test-wide set-up: the environment the settings read, plugins, common fixtures.

The environment is set here, at import time, and only then are the settings
imported and Django set up: that is why pyproject's pytest section does not name
DJANGO_SETTINGS_MODULE (pytest-django would import the settings before this
file). Tests run the production configuration (DEBUG off) against PostgreSQL,
with their own VAR_DIR and a file archive in a temporary folder, so they never
touch the repository's var/.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as _settings

if _settings.configured:
    raise pytest.UsageError(
        "DJANGO_SETTINGS_MODULE is set in the environment, so pytest-django imported the "
        "settings before tests/conftest.py could point them at a test VAR_DIR and archive: "
        "unset it (python3 tools/dev.py test does)"
    )

_TMP = Path(tempfile.mkdtemp(prefix="regional-cloud-tests-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)

os.environ["DEBUG"] = "0"
os.environ["VAR_DIR"] = str(_TMP / "var")
# Tasks run in the test's own process and transaction, with or without Redis.
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
os.environ.setdefault("SECRET_KEY", "tests-only-" + os.urandom(16).hex())
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/regional_cloud")
os.environ.setdefault("ARCHIVE_URL", f"file://{_TMP / 'archive'}")
# pytest-django's live server binds here; only loopback is ever a target.
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "regional_cloud.settings")
(_TMP / "var" / "static").mkdir(parents=True)  # STATIC_ROOT, so WhiteNoise does not warn

import django  # noqa: E402 - only after the environment above

django.setup()

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.redis",
    "tests.fixtures.orthanc",
    "tests.fixtures.browser",
    "tests.fixtures.s3",
    "tests.fixtures.archive",
]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Hash test passwords with MD5: the real hasher costs seconds per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def network(db: None) -> dict[str, Any]:
    """A small region built through the services: see tests.factories.make_network."""
    from tests.factories import make_network

    return make_network()


@pytest.fixture
def client_for(db: None) -> Callable[[Any], Any]:
    """Return ``client_for(user)``: a Django test client logged in as that user."""
    from django.test import Client

    def _client_for(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return _client_for
