"""The network API's credentials: edge nodes (token shown once, rotation, heartbeat)
and personal API tokens."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from hospitals.models import ApiToken, EdgeNode, Institution
from hospitals.services import api_token_create, edge_node_create
from regional_cloud.models import AuditEvent
from tests.api_network_helpers import FAST_HASHERS, api, bearer, make_people, results, sha256

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Hash the many test accounts' passwords quickly; what is tested is who may do what."""
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture
def people(network: dict[str, Any]) -> dict[str, Any]:
    return make_people(network)


# --- edge nodes -------------------------------------------------------------------


def create_edge(user: Any, institution: Institution, name: str = "radiology") -> Any:
    return api(user).post(
        "/api/edge-nodes/", {"institution": str(institution.uuid), "name": name}, format="json"
    )


def test_it_shows_an_edges_token_once_and_keeps_only_its_hash(network, people):
    response = create_edge(people["owner"], network["county"])

    assert response.status_code == 201, response.content
    token = response.json()["token"]
    assert token.startswith("edge_")
    edge = EdgeNode.objects.get(uuid=response.json()["uuid"])
    assert edge.token_hash == sha256(token)
    assert token not in str(EdgeNode.objects.filter(pk=edge.pk).values().get())
    detail = api(people["owner"]).get(f"/api/edge-nodes/{edge.uuid}/")
    listing = api(people["owner"]).get("/api/edge-nodes/")
    for body in (detail, listing):
        assert body.status_code == 200
        assert "token" not in body.content.decode().replace("token_", "")
        assert token not in body.content.decode()
    assert detail.json()["token_prefix"] == token[:12]


def test_it_shows_edges_to_the_admin_and_404_to_member_and_outsider(network, people):
    edge = edge_node_create(institution=network["county"], name="radiology").edge_node
    url = f"/api/edge-nodes/{edge.uuid}/"

    assert api(people["owner"]).get(url).status_code == 200
    assert api(people["regional_admin"]).get(url).status_code == 200
    assert api(people["member"]).get(url).status_code == 404
    assert api(people["outsider"]).get(url).status_code == 404
    assert results(api(people["member"]).get("/api/edge-nodes/")) == []
    assert results(api(people["outsider"]).get("/api/edge-nodes/")) == []
    for user in (people["member"], people["outsider"]):
        assert api(user).post(f"{url}rotate-token/").status_code == 404
        assert create_edge(user, network["county"], name="sneaky").status_code == 400
    assert not EdgeNode.objects.filter(name="sneaky").exists()


def test_it_refuses_a_duplicate_edge_name_and_creates_nothing(network, people):
    edge_node_create(institution=network["county"], name="radiology")
    edges, users = EdgeNode.objects.count(), User.objects.count()

    response = create_edge(people["owner"], network["county"], name="radiology")

    assert response.status_code == 400
    assert "already" in response.json()["detail"]
    assert (EdgeNode.objects.count(), User.objects.count()) == (edges, users)


def test_it_rotates_an_edges_token_and_the_old_one_stops_working(network, people):
    issued = edge_node_create(institution=network["county"], name="radiology")
    heartbeat = {"backlog": 0, "lag_seconds": 0, "version": "1.0"}
    assert bearer(issued.token).post("/api/edge-nodes/heartbeat/", heartbeat).status_code == 200

    response = api(people["owner"]).post(f"/api/edge-nodes/{issued.edge_node.uuid}/rotate-token/")

    assert response.status_code == 200
    new_token = response.json()["token"]
    assert new_token != issued.token
    assert bearer(issued.token).post("/api/edge-nodes/heartbeat/", heartbeat).status_code == 401
    assert bearer(new_token).post("/api/edge-nodes/heartbeat/", heartbeat).status_code == 200
    issued.edge_node.refresh_from_db()
    assert issued.edge_node.token_hash == sha256(new_token)
    assert AuditEvent.objects.filter(
        action="edge.rotate_token", object_id=str(issued.edge_node.uuid)
    ).exists()


def test_it_records_a_heartbeat_from_the_edges_own_token(network, people):
    issued = edge_node_create(institution=network["county"], name="radiology")

    response = bearer(issued.token).post(
        "/api/edge-nodes/heartbeat/",
        {"backlog": 7, "lag_seconds": 42, "version": "edge-agent 0.3"},
        format="json",
    )

    assert response.status_code == 200, response.content
    edge = EdgeNode.objects.get(pk=issued.edge_node.pk)
    assert (edge.backlog, edge.lag_seconds, edge.agent_version) == (7, 42, "edge-agent 0.3")
    assert edge.last_contact_at is not None
    health = api(people["owner"]).get(f"/api/edge-nodes/{edge.uuid}/").json()
    assert (health["backlog"], health["lag_seconds"]) == (7, 42)


def test_it_refuses_a_heartbeat_from_anyone_but_an_edge(network, people):
    edge_node_create(institution=network["county"], name="radiology")
    _, user_token = api_token_create(user=people["owner"], name="script")
    body = {"backlog": 1, "lag_seconds": 1, "version": "x"}

    assert bearer(user_token).post("/api/edge-nodes/heartbeat/", body).status_code == 403
    assert api(people["owner"]).post("/api/edge-nodes/heartbeat/", body).status_code == 403
    assert api().post("/api/edge-nodes/heartbeat/", body).status_code in {401, 403}
    assert not EdgeNode.objects.filter(last_contact_at__isnull=False).exists()


def test_it_refuses_a_bad_heartbeat(network):
    issued = edge_node_create(institution=network["county"], name="radiology")

    response = bearer(issued.token).post(
        "/api/edge-nodes/heartbeat/", {"backlog": -1, "lag_seconds": 0, "version": "x"}
    )

    assert response.status_code == 400
    assert "backlog" in response.json()


def test_it_keeps_an_edge_token_to_the_heartbeat(network):
    issued = edge_node_create(institution=network["county"], name="radiology")

    for url in ("/api/memberships/", "/api/edge-nodes/", "/api/tokens/", "/api/institutions/"):
        assert bearer(issued.token).get(url).status_code == 403, url


# --- personal API tokens ----------------------------------------------------------


def test_it_issues_a_personal_token_shown_once_that_authenticates(network, people):
    response = api(people["member"]).post("/api/tokens/", {"name": "PACS script"}, format="json")

    assert response.status_code == 201, response.content
    token = response.json()["token"]
    assert token.startswith("ric_")
    assert ApiToken.objects.get(uuid=response.json()["uuid"]).token_hash == sha256(token)
    listing = api(people["member"]).get("/api/tokens/")
    assert token not in listing.content.decode()
    assert "token" not in listing.json()["results"][0]
    me = bearer(token).get("/api/me/")
    assert me.status_code == 200
    assert me.json()["username"] == people["member"].username


def test_it_stops_a_revoked_token(network, people):
    api_token, token = api_token_create(user=people["member"], name="script")
    assert bearer(token).get("/api/me/").status_code == 200

    response = bearer(token).delete(f"/api/tokens/{api_token.uuid}/")

    assert response.status_code == 204
    assert bearer(token).get("/api/me/").status_code == 401
    assert bearer("ric_made-up").get("/api/me/").status_code == 401


def test_it_shows_and_revokes_only_ones_own_tokens(network, people):
    api_token, token = api_token_create(user=people["member"], name="script")

    assert results(api(people["owner"]).get("/api/tokens/")) == []
    assert api(people["owner"]).get(f"/api/tokens/{api_token.uuid}/").status_code == 404
    assert api(people["owner"]).delete(f"/api/tokens/{api_token.uuid}/").status_code == 404
    assert bearer(token).get("/api/me/").status_code == 200


def test_it_lets_no_token_mint_more_tokens(network, people):
    _, token = api_token_create(user=people["member"], name="script")

    response = bearer(token).post("/api/tokens/", {"name": "another"}, format="json")

    assert response.status_code == 403
    assert ApiToken.objects.filter(user=people["member"]).count() == 1
