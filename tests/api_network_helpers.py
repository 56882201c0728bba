"""What the network API tests share: the people of a county, API clients, token hashes."""

from __future__ import annotations

import hashlib
from typing import Any

from rest_framework.test import APIClient

from hospitals.models import Role, Tier
from tests.factories import make_institution, make_region, make_user

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_people(network: dict[str, Any]) -> dict[str, Any]:
    """The county's admin (owner), a county specialist (member), another region's admin."""
    elsewhere = make_institution(region=make_region(), tier=Tier.COUNTY_HOSPITAL)
    return {
        "regional_admin": make_user(institution=network["bureau"], role=Role.REGIONAL_ADMIN),
        "owner": make_user(institution=network["county"], role=Role.INSTITUTION_ADMIN),
        "member": make_user(institution=network["county"], role=Role.SPECIALIST),
        "outsider": make_user(institution=elsewhere, role=Role.INSTITUTION_ADMIN),
        "elsewhere": elsewhere,
    }


def api(user: Any = None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    return list(response.json()["results"])


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
