"""A computed section is kept until the rollups change, and never shown across scopes."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.test import Client, override_settings

from regional_cloud.dashboard import api
from regional_cloud.dashboard.rollups import rollup_refresh
from tests.dashboard_helpers import Activity, build_activity, local, make_study

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_cache() -> Any:
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def activity() -> Activity:
    built = build_activity()
    region = built.network["region"]
    region.min_cell_size = 1
    region.save(update_fields=["min_cell_size"])
    rollup_refresh(since=None)
    return built


@pytest.fixture
def computed(monkeypatch: Any) -> list[str]:
    """Record each section actually computed (not served from the cache)."""
    calls: list[str] = []
    sections = dict(api.SECTIONS)
    for name, compute in api.SECTIONS.items():

        def counting(filters: Any, sup: Any, _name: str = name, _compute: Any = compute) -> Any:
            calls.append(_name)
            return _compute(filters, sup)

        sections[name] = counting
    monkeypatch.setattr(api, "SECTIONS", sections)
    return calls


def studies(client: Client, **params: Any) -> Any:
    response = client.get("/api/dashboard/volume/", params)
    assert response.status_code == 200, response.content
    return next(k["value"] for k in response.json()["kpis"] if k["key"] == "studies")


def whole(activity: Activity) -> dict[str, str]:
    return {"from": activity.first.isoformat(), "to": activity.last.isoformat()}


@override_settings(DASHBOARD_CACHE_SECONDS=600)
def test_a_view_is_computed_once_per_refresh(
    activity: Activity, client_for: Any, computed: list[str]
):
    analyst = client_for(activity.people["analyst"])
    first = studies(analyst, **whole(activity))
    assert studies(analyst, **whole(activity)) == first
    assert computed == ["volume"]

    # Another filter is another entry.
    studies(analyst, tier="clinic", **whole(activity))
    assert computed == ["volume", "volume"]

    # A study arrives; until the rollups are refreshed the figure stands, then it moves.
    make_study(
        activity, activity.network["clinic"], local(activity.last, 10), "CT", random.Random(1)
    )
    assert studies(analyst, **whole(activity)) == first
    rollup_refresh(since=activity.last)
    assert studies(analyst, **whole(activity)) == first + 1
    assert computed == ["volume", "volume", "volume"]


@override_settings(DASHBOARD_CACHE_SECONDS=600)
def test_an_institution_admin_never_gets_the_regions_entry(
    activity: Activity, client_for: Any, computed: list[str]
):
    analyst = client_for(activity.people["analyst"])
    county_admin = client_for(activity.people["county_admin"])
    region_wide = studies(analyst, **whole(activity))
    own = studies(county_admin, **whole(activity))
    assert own < region_wide
    assert computed == ["volume", "volume"]


@override_settings(DASHBOARD_CACHE_SECONDS=600)
def test_the_language_and_k_are_part_of_the_entry(activity: Activity, client_for: Any):
    analyst = client_for(activity.people["analyst"])
    english = analyst.get("/api/dashboard/volume/", whole(activity), HTTP_ACCEPT_LANGUAGE="en")
    chinese = analyst.get("/api/dashboard/volume/", whole(activity), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert english.json()["kpis"][0]["label"] != chinese.json()["kpis"][0]["label"]

    region = activity.network["region"]
    region.min_cell_size = 10_000
    region.save(update_fields=["min_cell_size"])
    assert studies(analyst, **whole(activity)) == "<10000"


@override_settings(DASHBOARD_CACHE_SECONDS=600)
def test_edge_health_is_never_cached(activity: Activity, client_for: Any, computed: list[str]):
    analyst = client_for(activity.people["analyst"])
    for _ in range(2):
        assert analyst.get("/api/dashboard/network/", whole(activity)).status_code == 200
    assert computed == ["network", "network"]


@override_settings(DASHBOARD_CACHE_SECONDS=0)
def test_a_zero_lifetime_turns_the_cache_off(
    activity: Activity, client_for: Any, computed: list[str]
):
    analyst = client_for(activity.people["analyst"])
    studies(analyst, **whole(activity))
    studies(analyst, **whole(activity))
    assert computed == ["volume", "volume"]
