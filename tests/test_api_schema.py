"""The OpenAPI schema and its docs page: valid, signed-in only, nothing from the internet."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from tests.factories import make_user

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_it_generates_a_valid_schema_without_warnings(tmp_path):
    # A subprocess: the generator counts warnings per process, as the CLI does.
    out = tmp_path / "schema.yaml"
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    schema = out.read_text()
    assert "/api/edge-nodes/heartbeat/" in schema
    assert "bearerToken" in schema


@pytest.mark.django_db
def test_it_serves_the_schema_to_a_signed_in_user_only(client):
    assert client.get(reverse("api-schema")).status_code in {401, 403}

    client.force_login(make_user())
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/memberships/{uuid}/" in paths
    assert "/api/tokens/" in paths


@pytest.mark.django_db
def test_it_sends_an_anonymous_browser_from_the_docs_to_the_login_page(client):
    response = client.get(reverse("api-docs"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


@pytest.mark.django_db
def test_it_serves_the_docs_page_from_local_assets_only(client):
    client.force_login(make_user())

    response = client.get(reverse("api-docs"))

    assert response.status_code == 200
    html = response.content.decode()
    assets = asset_urls(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in assets)
    for url in assets:
        assert url.startswith("/static/"), url
        served: Any = client.get(url)
        assert served.status_code == 200, url
    # No address of another host anywhere in the page, scripts included.
    for url in re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html):
        assert urlsplit(url).hostname in {None, "testserver", "127.0.0.1", "localhost"}, url
    assert '"validatorUrl": null' in html
