"""The demo's edges: no agent runs behind them; the hub simulates their heartbeats, and says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from hospitals.models import EdgeNode
from hospitals.services import edge_node_heartbeat
from regional_cloud.demo.network import (
    SIMULATED_AGENT_VERSION,
    seed_network,
    simulate_edge_heartbeats,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def region() -> Any:
    seeded = seed_network()
    simulate_edge_heartbeats()
    return seeded


def network_data(client: Any) -> dict[str, Any]:
    response = client.get("/api/dashboard/network/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


def test_simulated_edges_stay_alive_and_are_labelled_so(region: Any, client_for: Any):
    analyst = client_for(get_user_model().objects.get(username="bureau_analyst"))
    edges = EdgeNode.objects.filter(institution__region=region)
    assert set(edges.values_list("agent_version", flat=True)) == {SIMULATED_AGENT_VERSION}
    # Two hours later nothing has reported: without the simulation every edge is silent.
    edges.update(last_contact_at=timezone.now() - timedelta(hours=2))

    data = network_data(analyst)

    rows = next(t["rows"] for t in data["tables"] if t["key"] == "institutions")
    assert {row["health"] for row in rows} <= {"green", "amber"}
    assert all(row["simulated"] for row in rows)
    assert all("simulated" in row["health_label"] for row in rows)
    kpis = {k["key"]: k["value"] for k in data["kpis"]}
    assert kpis["edges_simulated"] == edges.count()
    assert kpis["edges_red"] == 0

    page = analyst.get("/dashboard/at-a-glance/").content.decode()
    assert 'data-testid="simulated-edges"' in page


def test_an_edge_a_real_agent_reported_from_is_not_simulated(region: Any, client_for: Any):
    analyst = client_for(get_user_model().objects.get(username="bureau_analyst"))
    real = EdgeNode.objects.filter(institution__region=region).order_by("pk").first()
    assert real is not None
    edge_node_heartbeat(edge_node=real, backlog=0, lag_seconds=0, version="edge-agent/1.0")
    EdgeNode.objects.filter(pk=real.pk).update(last_contact_at=timezone.now() - timedelta(hours=2))
    simulate_edge_heartbeats()  # seeding again leaves it alone too

    rows = next(t["rows"] for t in network_data(analyst)["tables"] if t["key"] == "institutions")
    row = next(r for r in rows if r["institution_uuid"] == str(real.institution.uuid))
    assert row["health"] == "red"
    assert not row["simulated"]
    real.refresh_from_db()
    assert real.agent_version == "edge-agent/1.0"


def test_a_region_without_simulated_edges_says_nothing_of_them(region: Any, client_for: Any):
    EdgeNode.objects.update(agent_version="edge-agent/1.0")
    analyst = client_for(get_user_model().objects.get(username="bureau_analyst"))
    data = network_data(analyst)
    assert "edges_simulated" not in {k["key"] for k in data["kpis"]}
    assert (
        'data-testid="simulated-edges"'
        not in analyst.get("/dashboard/at-a-glance/").content.decode()
    )


def test_without_a_task_worker_any_page_beats_them_once_a_minute(
    region: Any, client_for: Any, monkeypatch: Any
):
    from regional_cloud.demo import network as demo_network

    analyst = client_for(get_user_model().objects.get(username="bureau_analyst"))
    edges = EdgeNode.objects.filter(institution__region=region)
    two_hours_ago = timezone.now() - timedelta(hours=2)
    edges.update(last_contact_at=two_hours_ago)
    monkeypatch.setattr(demo_network, "_last_beat", -1e9)

    home = analyst.get("/")  # the analyst's home page: edge nodes online / need attention

    assert home.status_code == 200
    assert home.context["edges_attention"] == 0
    assert home.context["edges_online"] == edges.count()
    assert SIMULATED_AGENT_VERSION in home.content.decode()  # beside each edge's name

    # Within the minute, no request beats again.
    edges.update(last_contact_at=two_hours_ago)
    analyst.get("/")
    assert set(edges.values_list("last_contact_at", flat=True)) == {two_hours_ago}


def test_an_earlier_demos_edges_become_simulated_on_seeding(region: Any):
    EdgeNode.objects.update(agent_version="demo")
    simulate_edge_heartbeats()
    assert set(EdgeNode.objects.values_list("agent_version", flat=True)) == {
        SIMULATED_AGENT_VERSION
    }
