"""The network API under /api/: institutions, memberships, who the caller is, and that
every route needs a caller. Edge nodes and tokens: test_api_credentials.py."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import AllowAny
from rest_framework.test import APIClient

from hospitals.models import (
    Institution,
    InstitutionGroup,
    Membership,
    Role,
    Tier,
)
from hospitals.services import edge_node_create, membership_grant
from regional_cloud.models import AuditEvent
from tests.api_network_helpers import FAST_HASHERS, api, make_people, results

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Hash the many test accounts' passwords quickly; what is tested is who may do what."""
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture
def people(network: dict[str, Any]) -> dict[str, Any]:
    return make_people(network)


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
