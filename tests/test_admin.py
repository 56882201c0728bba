"""The admin: staff only, writes through services, an audit trail read-only and audited."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from hospitals.models import (
    ApiToken,
    EdgeNode,
    Institution,
    InstitutionGroup,
    Membership,
    Role,
    Tier,
)
from hospitals.services import api_token_create
from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent
from tests.factories import make_institution, make_region, make_user

pytestmark = pytest.mark.django_db

AUDIT_LIST = "/admin/regional_cloud/auditevent/"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def admin_user(network: dict[str, Any]) -> Any:
    """The region's admin: staff and superuser, as in the demo."""
    return make_user(
        institution=network["bureau"],
        role=Role.REGIONAL_ADMIN,
        is_staff=True,
        is_superuser=True,
    )


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def reads(user: Any) -> int:
    return AuditEvent.objects.filter(action="audit.read", actor=user).count()


# --- who gets in ----------------------------------------------------------------


def test_it_keeps_non_staff_out_of_the_admin(network):
    member = make_user(institution=network["county"], role=Role.INSTITUTION_ADMIN)

    for url in ("/admin/", AUDIT_LIST, "/admin/hospitals/institution/"):
        response = login(member).get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url
    assert Client().get(AUDIT_LIST).status_code == 302
    assert reads(member) == 0


def test_it_refuses_the_audit_trail_to_staff_without_the_permission(network):
    staff = make_user(institution=network["county"], is_staff=True)

    assert login(staff).get(AUDIT_LIST).status_code == 403
    assert reads(staff) == 0


# --- the audit trail --------------------------------------------------------------


def test_it_audits_reading_the_audit_trail(admin_user):
    event = audit(action="study.read", study_uid="1.2.3.4", object_id="x")
    client = login(admin_user)

    listing = client.get(AUDIT_LIST, {"q": "1.2.3.4"})
    detail = client.get(f"{AUDIT_LIST}{event.pk}/change/")

    assert listing.status_code == 200
    assert "1.2.3.4" in listing.content.decode()
    assert detail.status_code == 200
    list_read, detail_read = AuditEvent.objects.filter(
        action="audit.read", actor=admin_user
    ).order_by("id")
    assert list_read.detail == {"view": "list", "parameters": ["q"]}
    assert "1.2.3.4" not in str(list_read.detail)  # what was searched for stays out
    assert (detail_read.object_type, detail_read.object_id) == ("audit_event", str(event.pk))


def test_it_writes_an_audit_row_as_the_orm_would(admin_user):
    institution = make_institution(region=make_region())
    event = audit(
        action="study.ingest",
        actor=admin_user,
        institution=institution,
        object_type="study",
        object_id="x",
        study_uid="1.2.3",
        outcome=AuditEvent.Outcome.DENIED,
        ip="10.0.0.7",
        detail={"stored": 2, "codes": ["a"]},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor, stored.actor_username) == (admin_user, admin_user.get_username())
    assert (stored.institution_uuid, stored.institution_name) == (
        institution.uuid,
        institution.name,
    )
    assert (stored.action, stored.object_type, stored.object_id) == ("study.ingest", "study", "x")
    assert (stored.outcome, stored.ip_address) == ("denied", "10.0.0.7")
    assert stored.detail == {"stored": 2, "codes": ["a"]}
    assert stored.occurred_at == event.occurred_at
    with pytest.raises(PermissionError):
        event.save()  # the returned row is a stored one: append-only


def test_it_keeps_the_audit_trail_read_only(admin_user):
    event = audit(action="study.read", object_id="x")
    client = login(admin_user)

    change_page = client.get(f"{AUDIT_LIST}{event.pk}/change/").content.decode()

    assert 'name="_save"' not in change_page
    assert client.get(f"{AUDIT_LIST}add/").status_code == 403
    assert client.post(f"{AUDIT_LIST}{event.pk}/change/", {"action": "x"}).status_code == 403
    assert client.post(f"{AUDIT_LIST}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.action == "study.read"
    assert AuditEvent.objects.filter(pk=event.pk).exists()


# --- the network through the admin ------------------------------------------------


def institution_form(**values: Any) -> dict[str, Any]:
    form = {
        "code": "admin-clinic",
        "name": "管理员新建卫生院",
        "name_en": "",
        "tier": Tier.TOWNSHIP_CLINIC,
        "grade": "1",
        "hub": "",
        "hr_scope": "",
        "hr_valid_from": "",
        "hr_valid_until": "",
        "is_active": "on",
    }
    return form | values


def test_it_creates_an_institution_with_its_role_groups(network, admin_user):
    response = login(admin_user).post(
        "/admin/hospitals/institution/add/",
        institution_form(region=network["region"].pk, hub=network["county"].pk),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    institution = Institution.objects.get(code="admin-clinic")
    assert institution.hub == network["county"]
    roles = set(
        InstitutionGroup.objects.filter(institution=institution).values_list("role", flat=True)
    )
    assert roles == set(Role.values)
    assert AuditEvent.objects.filter(
        action="institution.create", actor=admin_user, object_id=str(institution.uuid)
    ).exists()


def test_it_refuses_a_hub_from_another_region(network, admin_user):
    elsewhere = make_institution(region=make_region(), tier=Tier.COUNTY_HOSPITAL)

    response = login(admin_user).post(
        "/admin/hospitals/institution/add/",
        institution_form(region=network["region"].pk, hub=elsewhere.pk),
    )

    assert response.status_code == 200  # the form again, with the reason
    assert list(response.context["adminform"].form.errors) == ["hub"]
    assert not Institution.objects.filter(code="admin-clinic").exists()


def test_it_changes_an_institution_through_the_service(network, admin_user):
    clinic = network["clinic"]

    response = login(admin_user).post(
        f"/admin/hospitals/institution/{clinic.pk}/change/",
        institution_form(name="改名", grade=clinic.grade, hub=network["centre"].pk),
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    clinic.refresh_from_db()
    assert (clinic.name, clinic.hub, clinic.code) == ("改名", network["centre"], clinic.code)
    event = AuditEvent.objects.get(action="institution.update", object_id=str(clinic.uuid))
    assert set(event.detail["changes"]) == {"name", "hub"}


def test_it_grants_and_revokes_memberships_through_the_services(network, admin_user):
    person = make_user()
    client = login(admin_user)

    added = client.post(
        "/admin/hospitals/membership/add/",
        {"user": person.pk, "institution": network["clinic"].pk, "role": Role.CLINIC_DOCTOR},
    )

    assert added.status_code == 302, added.content.decode()[:2000]
    membership = Membership.objects.get(user=person)
    group = InstitutionGroup.objects.get(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    assert person.groups.filter(pk=group.group_id).exists()

    revoked = client.post(
        "/admin/hospitals/membership/",
        {"action": "revoke_selected", "_selected_action": [membership.pk]},
    )

    assert revoked.status_code == 302
    membership.refresh_from_db()
    assert not membership.is_active
    assert not person.groups.filter(pk=group.group_id).exists()
    assert client.get(f"/admin/hospitals/membership/{membership.pk}/delete/").status_code == 403


def test_it_creates_an_edge_and_shows_its_token_once(network, admin_user):
    client = login(admin_user)

    response = client.post(
        "/admin/hospitals/edgenode/add/",
        {"institution": network["county"].pk, "name": "radiology"},
        follow=True,
    )

    assert response.redirect_chain, response.content.decode()[:2000]
    shown = " ".join(str(m) for m in response.context["messages"])
    token = re.search(r"edge_[A-Za-z0-9_-]{40,}", shown)
    assert token is not None, shown
    assert token.group() in response.content.decode()
    edge = EdgeNode.objects.get(name="radiology")
    assert edge.token_hash == hashlib.sha256(token.group().encode()).hexdigest()
    page = client.get(f"/admin/hospitals/edgenode/{edge.pk}/change/").content.decode()
    assert token.group() not in page
    assert edge.token_hash not in page
    assert get_user_model().objects.filter(pk=edge.service_user_id).exists()


def test_it_keeps_api_tokens_read_only(network, admin_user):
    api_token, token = api_token_create(user=admin_user, name="script")
    client = login(admin_user)

    page = client.get(f"/admin/hospitals/apitoken/{api_token.pk}/change/").content.decode()

    assert client.get("/admin/hospitals/apitoken/add/").status_code == 403
    assert client.post(f"/admin/hospitals/apitoken/{api_token.pk}/delete/").status_code == 403
    assert api_token.token_hash not in page
    assert token not in page
    assert ApiToken.objects.filter(pk=api_token.pk, revoked_at__isnull=True).exists()
