"""The network API under /api/: who sees and manages what, tokens, edges' heartbeat."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.test import APIClient

from hospitals.models import (
    ApiToken,
    EdgeNode,
    Institution,
    InstitutionGroup,
    Membership,
    Role,
    Tier,
)
from hospitals.services import api_token_create, edge_node_create, membership_grant
from regional_cloud.models import AuditEvent
from tests.factories import make_institution, make_region, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Hash the many test accounts' passwords quickly; what is tested is who may do what."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(network: dict[str, Any]) -> dict[str, Any]:
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


# --- memberships ------------------------------------------------------------------


def test_it_lists_memberships_only_to_the_institutions_admins(network, people):
    county = str(network["county"].uuid)
    url = f"/api/memberships/?institution={county}"

    owner_sees = {m["user"]["username"] for m in results(api(people["owner"]).get(url))}
    regional_sees = {m["user"]["username"] for m in results(api(people["regional_admin"]).get(url))}

    assert owner_sees == {people["owner"].username, people["member"].username}
    assert regional_sees == owner_sees
    assert results(api(people["member"]).get(url)) == []
    assert results(api(people["outsider"]).get(url)) == []
    assert results(api(people["outsider"]).get("/api/memberships/")) != []  # their own


def test_it_shows_a_membership_to_its_admin_and_404_to_member_and_outsider(network, people):
    membership = Membership.objects.get(user=people["member"])
    url = f"/api/memberships/{membership.uuid}/"

    response = api(people["owner"]).get(url)

    assert response.status_code == 200
    assert response.json()["role"] == Role.SPECIALIST
    assert response.json()["institution"] == str(network["county"].uuid)
    assert api(people["member"]).get(url).status_code == 404
    assert api(people["outsider"]).get(url).status_code == 404


def test_it_creates_an_account_with_a_role(network, people):
    response = api(people["owner"]).post(
        "/api/memberships/",
        {
            "institution": str(network["county"].uuid),
            "role": Role.TECHNICIAN,
            "username": "new-tech",
            "password": "a-long-enough-secret-42",
            "display_name": "王技师",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    user = User.objects.get(username="new-tech")
    assert user.check_password("a-long-enough-secret-42")
    assert user.get_full_name() == "王技师"
    assert response.json()["user"] == {"username": "new-tech", "name": "王技师"}
    group = InstitutionGroup.objects.get(institution=network["county"], role=Role.TECHNICIAN)
    assert user.groups.filter(pk=group.group_id).exists()
    assert "password" not in response.json()
    assert AuditEvent.objects.filter(action="membership.grant", actor=people["owner"]).exists()


def test_it_gives_a_role_to_an_existing_account(network, people):
    response = api(people["owner"]).post(
        "/api/memberships/",
        {
            "institution": str(network["county"].uuid),
            "role": Role.CLINIC_DOCTOR,
            "username": people["member"].username,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    assert Membership.objects.filter(
        user=people["member"], role=Role.CLINIC_DOCTOR, is_active=True
    ).exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"role": "surgeon"}, "role"),
        ({"role": Role.EDGE}, "role"),
        ({"password": "123"}, "password"),
        ({"display_name": ""}, "display_name"),
        ({"institution": "not-a-uuid"}, "institution"),
    ],
)
def test_it_refuses_bad_member_input_and_creates_nothing(network, people, change, field):
    body = {
        "institution": str(network["county"].uuid),
        "role": Role.TECHNICIAN,
        "username": "someone-new",
        "password": "a-long-enough-secret-42",
        "display_name": "某人",
    } | change
    users, memberships = User.objects.count(), Membership.objects.count()

    response = api(people["owner"]).post("/api/memberships/", body, format="json")

    assert response.status_code == 400
    assert response.json()[field]  # the reason, on the field at fault
    assert (User.objects.count(), Membership.objects.count()) == (users, memberships)


def test_it_refuses_an_unknown_username_without_a_password(network, people):
    response = api(people["owner"]).post(
        "/api/memberships/",
        {"institution": str(network["county"].uuid), "role": "technician", "username": "ghost"},
        format="json",
    )

    assert response.status_code == 400
    assert "username" in response.json()


def test_it_refuses_member_and_outsider_adding_people(network, people):
    body = {
        "institution": str(network["county"].uuid),
        "role": Role.SPECIALIST,
        "username": people["outsider"].username,
    }
    for user in (people["member"], people["outsider"]):
        response = api(user).post("/api/memberships/", body, format="json")
        assert response.status_code == 400
        assert "institution" in response.json()
    assert not Membership.objects.filter(user=people["outsider"], institution=network["county"])


def test_it_lets_only_a_regional_admin_make_regional_admins(network, people):
    body = {
        "institution": str(network["county"].uuid),
        "role": Role.REGIONAL_ADMIN,
        "username": people["member"].username,
    }

    refused = api(people["owner"]).post("/api/memberships/", body, format="json")
    granted = api(people["regional_admin"]).post("/api/memberships/", body, format="json")

    assert refused.status_code == 403
    assert granted.status_code == 201


def test_it_revokes_a_membership_for_the_admin_only(network, people):
    membership = Membership.objects.get(user=people["member"])
    url = f"/api/memberships/{membership.uuid}/"

    assert api(people["outsider"]).delete(url).status_code == 404
    assert api(people["member"]).delete(url).status_code == 404
    membership.refresh_from_db()
    assert membership.is_active

    assert api(people["owner"]).delete(url).status_code == 204
    membership.refresh_from_db()
    assert not membership.is_active
    group = InstitutionGroup.objects.get(institution=network["county"], role=Role.SPECIALIST)
    assert not people["member"].groups.filter(pk=group.group_id).exists()


def test_it_keeps_edge_identities_out_of_membership_revocation(network, people):
    issued = edge_node_create(institution=network["county"], name="orthanc")
    membership = Membership.objects.get(user=issued.edge_node.service_user)

    response = api(people["owner"]).delete(f"/api/memberships/{membership.uuid}/")

    assert response.status_code == 400
    assert response.json()["detail"]
    membership.refresh_from_db()
    assert membership.is_active


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


# --- institutions and me ----------------------------------------------------------


def test_it_lists_only_the_callers_region(network, people):
    codes = {i["code"] for i in results(api(people["member"]).get("/api/institutions/"))}

    mine = {network[k].code for k in ("centre", "county", "clinic", "other_clinic", "bureau")}
    assert codes == mine
    outsider_codes = {i["code"] for i in results(api(people["outsider"]).get("/api/institutions/"))}
    assert outsider_codes == {people["elsewhere"].code}
    url = f"/api/institutions/{people['elsewhere'].uuid}/"
    assert api(people["member"]).get(url).status_code == 404


def test_it_describes_an_institution(network, people):
    response = api(people["member"]).get(f"/api/institutions/{network['clinic'].uuid}/")

    assert response.status_code == 200
    body = response.json()
    assert body["hub"] == str(network["county"].uuid)
    assert body["tier"] == Tier.TOWNSHIP_CLINIC
    assert body["region"]["uuid"] == str(network["region"].uuid)
    assert "id" not in body


def test_it_lets_a_regional_admin_create_an_institution_with_its_groups(network, people):
    response = api(people["regional_admin"]).post(
        "/api/institutions/",
        {
            "code": "new-clinic",
            "name": "新乡镇卫生院",
            "tier": Tier.TOWNSHIP_CLINIC,
            "grade": "1",
            "hub": str(network["county"].uuid),
            "hr_scope": "city",
            "hr_valid_from": "2026-01-01",
            "hr_valid_until": "2027-12-31",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    institution = Institution.objects.get(code="new-clinic")
    assert institution.region == network["region"]
    assert institution.hub == network["county"]
    assert set(institution.role_groups.values_list("role", flat=True)) == set(Role.values)
    assert response.json()["uuid"] == str(institution.uuid)


def test_it_refuses_institution_writes_from_others(network, people):
    body = {"code": "x-clinic", "name": "X", "tier": Tier.TOWNSHIP_CLINIC}
    for user in (people["owner"], people["member"], people["outsider"]):
        assert api(user).post("/api/institutions/", body, format="json").status_code == 403
    url = f"/api/institutions/{network['clinic'].uuid}/"
    for user in (people["owner"], people["member"]):
        assert api(user).patch(url, {"name": "Renamed"}, format="json").status_code == 403
    assert api(people["outsider"]).patch(url, {"name": "Renamed"}, format="json").status_code in {
        403,
        404,
    }
    assert not Institution.objects.filter(code="x-clinic").exists()
    network["clinic"].refresh_from_db()
    assert network["clinic"].name != "Renamed"


def test_it_refuses_a_hub_in_another_region_and_creates_nothing(network, people):
    admin = people["regional_admin"]
    body = {"code": "far-clinic", "name": "远", "tier": Tier.TOWNSHIP_CLINIC}

    unknown_hub = api(admin).post(
        "/api/institutions/", body | {"hub": str(people["elsewhere"].uuid)}, format="json"
    )
    # Once the admin may see the other region, the rule itself answers.
    membership_grant(user=admin, institution=people["elsewhere"], role=Role.SPECIALIST)
    other_region_hub = api(admin).post(
        "/api/institutions/",
        body | {"hub": str(people["elsewhere"].uuid), "region": str(network["region"].uuid)},
        format="json",
    )

    assert unknown_hub.status_code == 400
    assert "hub" in unknown_hub.json()
    assert other_region_hub.status_code == 400
    assert "same region" in other_region_hub.json()["detail"]
    assert not Institution.objects.filter(code="far-clinic").exists()


def test_it_lets_a_regional_admin_change_an_institution(network, people):
    url = f"/api/institutions/{network['clinic'].uuid}/"

    response = api(people["regional_admin"]).patch(
        url, {"name": "改名卫生院", "hub": str(network["centre"].uuid)}, format="json"
    )
    circle = api(people["regional_admin"]).patch(
        f"/api/institutions/{network['centre'].uuid}/",
        {"hub": str(network["clinic"].uuid)},
        format="json",
    )

    assert response.status_code == 200, response.content
    network["clinic"].refresh_from_db()
    assert (network["clinic"].name, network["clinic"].hub) == ("改名卫生院", network["centre"])
    event = AuditEvent.objects.get(action="institution.update")
    assert set(event.detail["changes"]) == {"name", "hub"}
    assert circle.status_code == 400
    network["centre"].refresh_from_db()
    assert network["centre"].hub is None


def test_it_tells_the_caller_who_they_are(network, people):
    response = api(people["owner"]).get("/api/me/")

    assert response.status_code == 200
    body = response.json()
    assert body["username"] == people["owner"].username
    assert body["memberships"] == [
        {
            "uuid": str(Membership.objects.get(user=people["owner"]).uuid),
            "institution": str(network["county"].uuid),
            "institution_name": network["county"].name,
            "role": Role.INSTITUTION_ADMIN,
        }
    ]


# --- everything under /api/ needs a caller ------------------------------------------


def api_patterns() -> list[URLPattern]:
    """Return every URL pattern under /api/."""

    def walk(patterns: list[Any], inside_api: bool) -> list[URLPattern]:
        found = []
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                nested = inside_api or str(pattern.pattern) == "api/"
                found += walk(pattern.url_patterns, nested)
            elif isinstance(pattern, URLPattern) and inside_api:
                found.append(pattern)
        return found

    return walk(get_resolver().url_patterns, inside_api=False)


def sample_argument(pattern: URLPattern, name: str) -> str:
    """Return a value the route's converter accepts: a number for int, else a UUID."""
    converter = getattr(pattern.pattern, "converters", {}).get(name)
    if converter is not None and converter.regex == "[0-9]+":
        return "1"
    if (
        converter is not None
        and "uuid" not in type(converter).__name__.lower()
        and ("0-9a-f" not in converter.regex)
    ):
        return "1.2.3"
    return str(uuid.uuid4())


def api_routes() -> list[tuple[str, str]]:
    """Return ``(name, path)`` of every route under /api/, with sample path arguments."""
    routes = []
    for pattern in api_patterns():
        assert pattern.name, f"name every /api/ route: {pattern.pattern}"
        kwargs = {arg: sample_argument(pattern, arg) for arg in pattern.pattern.regex.groupindex}
        routes.append((pattern.name, reverse(pattern.name, kwargs=kwargs)))
    return routes


def test_it_pairs_every_api_view_with_a_permission_and_a_filtered_queryset():
    for pattern in api_patterns():
        view = getattr(pattern.callback, "cls", None)
        if view is None:
            continue  # a plain Django view (the docs page): checked by the walk below
        initkwargs = getattr(pattern.callback, "initkwargs", {})
        permission_classes = initkwargs.get("permission_classes", view.permission_classes)
        assert AllowAny not in permission_classes, pattern.name
        if issubclass(view, GenericAPIView):
            # A class-level queryset is unfiltered; lists must come from get_queryset().
            assert initkwargs.get("queryset", view.queryset) is None, pattern.name
            assert view.get_queryset is not GenericAPIView.get_queryset, pattern.name


def test_it_finds_the_api_routes():
    names = {name for name, _ in api_routes()}

    assert {"api-schema", "api-docs", "api-me", "api-edge-node-heartbeat"} <= names
    assert all(path.startswith("/api/") for _, path in api_routes())


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_it_refuses_anonymous_callers_everywhere_under_api(network, method):
    client = APIClient()
    for name, path in api_routes():
        response = getattr(client, method)(path)
        if name in {"api-docs", "api-redoc"}:
            # A browser page: off to the login page.
            assert response.status_code == 302, path
            assert response["Location"].startswith(reverse("login")), path
        else:
            assert response.status_code in {401, 403}, (method, path, response.status_code)
