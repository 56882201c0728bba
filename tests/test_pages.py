"""The network's pages: home per role, sign-in, member and edge management."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hospitals.authentication import user_for_token
from hospitals.models import Alliance, EdgeNode, HRScope, Membership, Role, Tier
from hospitals.services import edge_node_create, edge_node_heartbeat, membership_grant
from hospitals.tokens import token_hash
from regional_cloud.models import AuditEvent
from tests.factories import PASSWORD, make_institution, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_hashing(settings: Any) -> None:
    """Hash test passwords cheaply: the real hasher costs half a second per user."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_in(language: str, user: Any = None) -> Client:
    client = Client()
    client.cookies["django_language"] = language
    if user is not None:
        client.force_login(user)
    return client


def text(response: Any) -> str:
    return response.content.decode()


# --- Home per role -------------------------------------------------------------------------

# role, where it works, what the page shows in Chinese and in English
HOMES = [
    (
        Role.CLINIC_DOCTOR,
        "clinic",
        ["上传检查", "我的患者", "您的阅片中心"],
        ["Upload studies", "My patients"],
    ),
    (Role.TECHNICIAN, "clinic", ["上传检查", "最近上传"], ["Upload studies", "Recent uploads"]),
    (
        Role.SPECIALIST,
        "county",
        ["工作列表", "您负责阅片的机构"],
        ["Worklist", "Institutions you read for"],
    ),
    (
        Role.BUREAU_ANALYST,
        "bureau",
        ["区域概览", "乡镇卫生院", "边缘节点"],
        ["Region dashboard", "Township clinic"],
    ),
    (
        Role.INSTITUTION_ADMIN,
        "clinic",
        ["本机构管理", "管理人员"],
        ["Manage your institution", "Manage members"],
    ),
    (
        Role.REGIONAL_ADMIN,
        "centre",
        ["区域网络管理", "全部机构"],
        ["Network management", "All institutions"],
    ),
]


@pytest.mark.parametrize(("role", "where", "chinese", "english"), HOMES)
def test_it_shows_each_role_its_home_in_both_languages(
    network: dict[str, Any], role: str, where: str, chinese: list[str], english: list[str]
) -> None:
    user = make_user(institution=network[where], role=role)

    zh = client_in("zh-hans", user).get("/")
    assert zh.status_code == 200
    assert f'data-home="{role}"' in text(zh)
    assert '<html lang="zh-hans">' in text(zh)
    for words in chinese:
        assert words in text(zh)
    assert "<title>" in text(zh)
    assert "区域影像云" in text(zh)

    en = client_in("en", user).get("/")
    assert '<html lang="en">' in text(en)
    for words in english:
        assert words in text(en)
    assert "Regional Imaging Cloud" in text(en)
    assert "上传检查" not in text(en)


def test_it_follows_accept_language_without_a_cookie(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    client = Client()
    client.force_login(user)
    assert "Upload studies" in text(client.get("/", HTTP_ACCEPT_LANGUAGE="en"))
    assert "上传检查" in text(client.get("/", HTTP_ACCEPT_LANGUAGE="zh-CN"))


def test_it_shows_the_clinic_its_reading_hub(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    page = text(client_in("zh-hans", user).get("/"))
    assert network["county"].name in page
    assert 'data-section="upload"' in page
    assert 'data-section="patients"' in page


def test_it_lists_the_institutions_a_specialist_reads_for(network: dict[str, Any]) -> None:
    user = make_user(institution=network["county"], role=Role.SPECIALIST)
    page = text(client_in("en", user).get("/"))
    assert network["clinic"].name in page
    assert network["other_clinic"].name in page
    assert network["centre"].name not in page.split('data-section="served"')[1]


def test_it_shows_the_bureau_aggregates_and_edge_health(network: dict[str, Any]) -> None:
    issued = edge_node_create(institution=network["clinic"], name="放射科 Orthanc")
    edge_node_heartbeat(edge_node=issued.edge_node, backlog=7, lag_seconds=3, version="1.0")
    user = make_user(institution=network["bureau"], role=Role.BUREAU_ANALYST)
    page = text(client_in("en", user).get("/"))
    assert "放射科 Orthanc" in page
    assert "Online" in page
    # one clinic tier cell holds both clinics
    assert 'data-tier="clinic">\n      <span class="stat__value">2</span>' in page
    # The analyst manages nothing: no token actions, no network link.
    assert "Rotate token" not in page
    assert reverse("institution_list") not in page


def test_it_shows_the_most_specific_role_first(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    membership_grant(user=user, institution=network["clinic"], role=Role.INSTITUTION_ADMIN)
    page = text(client_in("en", user).get("/"))
    assert 'data-home="institution_admin"' in page
    assert reverse("members", args=[network["clinic"].uuid]) in page


def test_it_tells_a_user_without_a_role_to_ask_for_one(db: None) -> None:
    user = make_user()
    response = client_in("zh-hans", user).get("/")
    assert response.status_code == 200
    assert "尚未分配角色" in text(response)
    assert "No role yet" in text(client_in("en", user).get("/"))


def test_it_sends_anonymous_visitors_to_the_login_page(db: None) -> None:
    for url in ["/", reverse("institution_list")]:
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_it_shows_navigation_by_role(network: dict[str, Any]) -> None:
    doctor = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    admin = make_user(institution=network["centre"], role=Role.REGIONAL_ADMIN)
    assert reverse("institution_list") not in text(client_in("en", doctor).get("/"))
    assert reverse("institution_list") in text(client_in("en", admin).get("/"))


def test_it_switches_language_with_the_form(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    client = client_in("zh-hans", user)
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/"}, follow=True)
    assert "Upload studies" in text(response)
    assert "简体中文" in text(response)  # the switch back, in its own language


# --- Sign-in --------------------------------------------------------------------------------


def test_it_logs_in_and_audits_it(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    client = client_in("en")
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    event = AuditEvent.objects.get(action="auth.login")
    assert event.actor == user
    assert event.ip_address == "127.0.0.1"


def test_it_refuses_a_wrong_password_clearly_and_audits_it(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    response = client_in("zh-hans").post(
        reverse("login"), {"username": user.username, "password": "not-the-password-42"}
    )
    assert response.status_code == 200
    assert "用户名或密码错误" in text(response)
    response = client_in("en").post(
        reverse("login"), {"username": user.username, "password": "not-the-password-42"}
    )
    assert "Wrong username or password" in text(response)
    events = AuditEvent.objects.filter(action="auth.login_failed")
    assert events.count() == 2
    event = events.first()
    assert event is not None
    assert event.outcome == AuditEvent.Outcome.DENIED
    assert event.detail == {"username": user.username}
    assert "not-the-password-42" not in str(event.detail)
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_it_logs_out_by_post_only_and_audits_it(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    client = client_in("en", user)
    assert client.get(reverse("logout")).status_code == 405
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="auth.logout", actor=user).exists()
    assert client.get("/").status_code == 302


def test_it_changes_the_password(network: dict[str, Any]) -> None:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    client = client_in("zh-hans", user)
    page = client.get(reverse("password_change"))
    assert "修改密码" in text(page)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "yet-another-pass-2026",
            "new_password2": "yet-another-pass-2026",
        },
    )
    assert response["Location"] == reverse("password_change_done")
    user.refresh_from_db()
    assert user.check_password("yet-another-pass-2026")
    assert AuditEvent.objects.filter(action="auth.password_change", actor=user).exists()
    assert "密码已修改" in text(client.get(reverse("password_change_done")))


# --- Members: owner / member / outsider -----------------------------------------------------


@pytest.fixture
def people(network: dict[str, Any]) -> dict[str, Any]:
    return {
        "owner": make_user(institution=network["clinic"], role=Role.INSTITUTION_ADMIN),
        "member": make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR),
        "outsider": make_user(institution=network["other_clinic"], role=Role.INSTITUTION_ADMIN),
        "regional": make_user(institution=network["centre"], role=Role.REGIONAL_ADMIN),
    }


def add_url(institution: Any) -> str:
    return reverse("member_add", args=[institution.uuid])


NEW_PERSON = {
    "account": "new",
    "username": "wang.fang",
    "full_name": "王芳",
    "password": "Clinic-2026-long",
    "role": Role.CLINIC_DOCTOR,
}


def test_it_lets_the_institution_admin_create_a_member(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    clinic = network["clinic"]
    client = client_in("zh-hans", people["owner"])
    page = client.get(reverse("members", args=[clinic.uuid]))
    assert page.status_code == 200
    assert people["member"].username in text(page)
    assert 'name="csrfmiddlewaretoken"' in text(page)

    response = client.post(add_url(clinic), NEW_PERSON)
    assert response.status_code == 302
    new_user = get_user_model().objects.get(username="wang.fang")
    assert new_user.first_name == "王芳"
    assert new_user.check_password("Clinic-2026-long")
    membership = Membership.objects.get(user=new_user, institution=clinic)
    assert membership.role == Role.CLINIC_DOCTOR
    assert membership.is_active
    followed = client.get(response["Location"])
    assert "wang.fang" in text(followed)
    assert AuditEvent.objects.filter(action="user.create", actor=people["owner"]).exists()
    grant = AuditEvent.objects.get(action="membership.grant", object_id=str(membership.uuid))
    assert grant.actor == people["owner"]


def test_it_adds_an_existing_account_by_username(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    clinic = network["clinic"]
    client = client_in("en", people["owner"])
    data = {"account": "existing", "username": people["outsider"].username, "role": Role.SPECIALIST}
    response = client.post(add_url(clinic), data)
    assert response.status_code == 302
    assert Membership.objects.filter(
        user=people["outsider"], institution=clinic, role=Role.SPECIALIST, is_active=True
    ).exists()


def test_it_refuses_bad_member_input_with_messages(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    clinic = network["clinic"]
    client = client_in("en", people["owner"])
    taken = client.post(add_url(clinic), {**NEW_PERSON, "username": people["member"].username})
    assert taken.status_code == 400
    assert "This username is already taken." in text(taken)
    weak = client.post(add_url(clinic), {**NEW_PERSON, "password": "123"})
    assert weak.status_code == 400
    unknown = client.post(
        add_url(clinic), {"account": "existing", "username": "nobody", "role": Role.TECHNICIAN}
    )
    assert "No active account has this username." in text(unknown)
    edge_user = edge_node_create(institution=clinic, name="e1").edge_node.service_user
    machine = client.post(
        add_url(clinic),
        {"account": "existing", "username": edge_user.username, "role": Role.TECHNICIAN},
    )
    assert machine.status_code == 400
    assert not get_user_model().objects.filter(username="wang.fang").exists()


def test_it_keeps_the_regional_role_for_regional_admins(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    clinic = network["clinic"]
    owner = client_in("en", people["owner"])
    escalate = {"account": "existing", "username": people["owner"].username}
    response = owner.post(add_url(clinic), {**escalate, "role": Role.REGIONAL_ADMIN})
    assert response.status_code == 400
    assert not Membership.objects.filter(user=people["owner"], role=Role.REGIONAL_ADMIN).exists()
    regional = client_in("en", people["regional"])
    response = regional.post(add_url(clinic), {**escalate, "role": Role.REGIONAL_ADMIN})
    assert response.status_code == 302


def test_it_lets_the_institution_admin_revoke_a_member(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    clinic = network["clinic"]
    membership = Membership.objects.get(user=people["member"], institution=clinic)
    client = client_in("zh-hans", people["owner"])
    url = reverse("member_revoke", args=[clinic.uuid, membership.uuid])
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 302
    membership.refresh_from_db()
    assert not membership.is_active
    assert "已不再是" in text(client.get(response["Location"]))
    event = AuditEvent.objects.get(action="membership.revoke")
    assert event.actor == people["owner"]
    assert event.object_id == str(membership.uuid)
    # the revoked doctor no longer has a home
    assert 'data-home="no-role"' in text(client_in("en", people["member"]).get("/"))


def test_it_refuses_revoking_yourself(network: dict[str, Any], people: dict[str, Any]) -> None:
    clinic = network["clinic"]
    own = Membership.objects.get(user=people["owner"], institution=clinic)
    client_in("en", people["owner"]).post(reverse("member_revoke", args=[clinic.uuid, own.uuid]))
    own.refresh_from_db()
    assert own.is_active


def test_it_hides_members_from_a_member_and_an_outsider(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    clinic = network["clinic"]
    membership = Membership.objects.get(user=people["member"], institution=clinic)
    urls = [
        ("get", reverse("members", args=[clinic.uuid])),
        ("get", reverse("institution_detail", args=[clinic.uuid])),
        ("post", add_url(clinic)),
        ("post", reverse("member_revoke", args=[clinic.uuid, membership.uuid])),
        ("post", reverse("edge_create", args=[clinic.uuid])),
    ]
    for who in ["member", "outsider"]:
        client = client_in("en", people[who])
        for method, url in urls:
            response = getattr(client, method)(url, NEW_PERSON)
            assert response.status_code in {403, 404}, (who, url)
            if who == "outsider":
                assert response.status_code == 404, url
    assert client_in("en", people["member"]).get(reverse("institution_list")).status_code == 403
    membership.refresh_from_db()
    assert membership.is_active
    assert not get_user_model().objects.filter(username="wang.fang").exists()
    assert not EdgeNode.objects.exists()


def test_it_lets_the_regional_admin_manage_every_institution_of_the_region(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    client = client_in("en", people["regional"])
    page = text(client.get(reverse("institution_list")))
    for key in ["centre", "county", "clinic", "other_clinic", "bureau"]:
        assert network[key].name in page
    assert client.get(reverse("members", args=[network["clinic"].uuid])).status_code == 200
    stranger = make_user(institution=make_institution(), role=Role.REGIONAL_ADMIN)
    detail = reverse("institution_detail", args=[network["clinic"].uuid])
    assert client_in("en", stranger).get(detail).status_code == 404


def test_it_shows_institution_details(network: dict[str, Any], people: dict[str, Any]) -> None:
    page = text(
        client_in("zh-hans", people["owner"]).get(
            reverse("institution_detail", args=[network["clinic"].uuid])
        )
    )
    assert "乡镇卫生院/社区卫生服务中心" in page
    assert "一级" in page
    assert network["county"].name in page
    assert "登记边缘节点" in page


def test_it_shows_alliances_and_the_hr_qualification(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    community = Alliance.objects.create(
        region=network["region"], name="青山县医共体", kind=Alliance.Kind.COMMUNITY
    )
    today = timezone.localdate()
    county = make_institution(
        region=network["region"],
        tier=Tier.COUNTY_HOSPITAL,
        hub=network["centre"],
        alliances=[community],
        hr_scope=HRScope.PROVINCE,
        hr_valid_from=today - timedelta(days=30),
        hr_valid_until=today + timedelta(days=300),
    )
    url = reverse("institution_detail", args=[county.uuid])
    zh = text(client_in("zh-hans", people["regional"]).get(url))
    assert "青山县医共体" in zh
    assert "医共体</span>" in zh
    assert "本省HR" in zh
    assert "今日有效" in zh
    assert (today + timedelta(days=300)).isoformat() in zh
    en = text(client_in("en", people["regional"]).get(url))
    assert "Provincial HR" in en
    assert "valid today" in en
    assert "County medical community" in en


# --- Edge nodes ---------------------------------------------------------------------------


def test_it_shows_a_new_edge_token_once_and_stores_only_its_hash(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    clinic = network["clinic"]
    client = client_in("zh-hans", people["owner"])
    assert client.get(reverse("edge_create", args=[clinic.uuid])).status_code == 200
    response = client.post(reverse("edge_create", args=[clinic.uuid]), {"name": "放射科 Orthanc"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    edge = EdgeNode.objects.get(institution=clinic, name="放射科 Orthanc")
    token = response.context["token"]
    assert token.startswith("edge_")
    assert token in text(response)
    assert "此令牌仅显示这一次" in text(response)
    assert edge.token_hash == token_hash(token)
    assert token not in edge.token_hash
    found = user_for_token(token)
    assert found is not None
    assert found[0] == edge.service_user
    # never again: not on the detail page, not on the home page
    detail = text(client.get(reverse("institution_detail", args=[clinic.uuid])))
    assert token not in detail
    assert edge.token_prefix in detail
    assert token not in text(client.get("/"))
    event = AuditEvent.objects.get(action="edge.create")
    assert event.actor == people["owner"]
    assert event.object_id == str(edge.uuid)


def test_it_refuses_a_duplicate_edge_name(network: dict[str, Any], people: dict[str, Any]) -> None:
    clinic = network["clinic"]
    edge_node_create(institution=clinic, name="PACS")
    response = client_in("en", people["owner"]).post(
        reverse("edge_create", args=[clinic.uuid]), {"name": "PACS"}
    )
    assert response.status_code == 400
    assert "already has an edge node" in text(response)


def test_it_rotates_a_token_and_the_old_one_stops_working(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    issued = edge_node_create(institution=network["clinic"], name="PACS")
    url = reverse("edge_rotate", args=[issued.edge_node.uuid])
    client = client_in("en", people["owner"])
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 200
    new_token = response.context["token"]
    assert new_token != issued.token
    assert new_token in text(response)
    assert "The previous token no longer works" in text(response)
    assert user_for_token(issued.token) is None
    found = user_for_token(new_token)
    assert found is not None
    assert found[1] == issued.edge_node
    event = AuditEvent.objects.get(action="edge.rotate_token")
    assert event.actor == people["owner"]


def test_it_hides_edge_rotation_from_a_member_and_an_outsider(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    issued = edge_node_create(institution=network["clinic"], name="PACS")
    url = reverse("edge_rotate", args=[issued.edge_node.uuid])
    for who in ["member", "outsider"]:
        assert client_in("en", people[who]).post(url).status_code == 404
    assert user_for_token(issued.token) is not None
    assert not AuditEvent.objects.filter(action="edge.rotate_token").exists()


def test_it_gives_a_bureau_no_edge_node(network: dict[str, Any], people: dict[str, Any]) -> None:
    url = reverse("edge_create", args=[network["bureau"].uuid])
    assert client_in("en", people["regional"]).post(url, {"name": "x"}).status_code == 403
    assert not EdgeNode.objects.exists()


def test_it_rejects_a_post_without_csrf_token(
    network: dict[str, Any], people: dict[str, Any]
) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["owner"])
    response = client.post(add_url(network["clinic"]), NEW_PERSON)
    assert response.status_code == 403
    assert not get_user_model().objects.filter(username="wang.fang").exists()
