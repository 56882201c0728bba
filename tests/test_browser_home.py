"""A person logs in with a real Chromium and sees their role's home page, in both languages."""

from __future__ import annotations

from typing import Any

import pytest

from hospitals.models import EdgeNode, Role
from hospitals.services import edge_node_create, edge_node_heartbeat
from tests.factories import PASSWORD, make_network, make_user
from tests.fixtures.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# role, where the person works, what the home page says in Chinese and in English
HOMES = [
    (Role.CLINIC_DOCTOR, "clinic", "上传检查", "Upload studies"),
    (Role.SPECIALIST, "county", "工作列表", "Worklist"),
    (Role.TECHNICIAN, "clinic", "最近上传", "Recent uploads"),
    (Role.BUREAU_ANALYST, "bureau", "区域概览", "Region dashboard"),
    (Role.INSTITUTION_ADMIN, "clinic", "本机构管理", "Manage your institution"),
    (Role.REGIONAL_ADMIN, "centre", "区域网络管理", "Network management"),
]


def log_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()


def realistic_network() -> dict[str, Any]:
    network = make_network()
    network["centre"].name = "市第一人民医院（区域影像中心）"
    network["county"].name = "青山县人民医院"
    network["clinic"].name = "石桥镇卫生院"
    network["other_clinic"].name = "河口镇卫生院"
    network["bureau"].name = "青山县卫健委"
    for key in ["centre", "county", "clinic", "other_clinic", "bureau"]:
        network[key].save(update_fields=["name"])
    edge = edge_node_create(institution=network["clinic"], name="放射科 Orthanc").edge_node
    edge_node_heartbeat(edge_node=edge, backlog=3, lag_seconds=12, version="0.1.0")
    edge_node_create(institution=network["county"], name="PACS 网关")
    return network


@pytest.mark.parametrize(("role", "where", "chinese", "english"), HOMES)
def test_it_shows_each_role_its_home_in_chinese_then_english(
    page: Any, live_hub: str, role: str, where: str, chinese: str, english: str
) -> None:
    network = realistic_network()
    user = make_user(institution=network[where], role=role, first_name="李明")

    log_in(page, live_hub, user.username)

    home = page.locator(f'[data-home="{role}"]')
    home.wait_for()
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert chinese in home.inner_text()
    assert "区域影像云" in page.title()
    assert network[where].name in page.locator(".user-box").inner_text()
    screenshot(page, f"home-{role}-zh")

    page.get_by_test_id("language-switch").click()
    page.wait_for_load_state()
    page.locator(f'[data-home="{role}"]').wait_for()
    assert page.locator("html").get_attribute("lang") == "en"
    assert english in page.locator(f'[data-home="{role}"]').inner_text()
    assert "Regional Imaging Cloud" in page.title()
    screenshot(page, f"home-{role}-en")

    # and back: the switch names Chinese in Chinese
    page.get_by_test_id("language-switch").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-hans"


def test_it_shows_a_clear_message_for_a_wrong_password(page: Any, live_hub: str) -> None:
    network = make_network()
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    log_in(page, live_hub, user.username, "wrong-password-123")
    assert "用户名或密码错误" in page.get_by_test_id("login-error").inner_text()
    screenshot(page, "login-failed-zh")


def test_it_lets_a_regional_admin_manage_the_network(page: Any, live_hub: str) -> None:
    network = realistic_network()
    admin = make_user(institution=network["centre"], role=Role.REGIONAL_ADMIN, first_name="张伟")
    log_in(page, live_hub, admin.username)
    screenshot(page, "home-regional_admin-zh-full")

    page.get_by_role("navigation", name="主导航").get_by_role("link", name="网络管理").click()
    page.locator('[data-section="institutions"]').wait_for()
    assert "石桥镇卫生院" in page.locator('[data-section="institutions"]').inner_text()
    screenshot(page, "network-regional_admin-zh")

    page.get_by_role("link", name="石桥镇卫生院").first.click()
    page.locator('[data-section="facts"]').wait_for()
    screenshot(page, "institution-detail-zh")
    page.get_by_role("link", name="登记边缘节点").click()
    page.get_by_label("名称").fill("超声工作站")
    page.get_by_role("button", name="登记并签发令牌").click()
    token = page.get_by_test_id("edge-token").inner_text().strip()
    assert token.startswith("edge_")
    screenshot(page, "edge-token-zh")
    assert EdgeNode.objects.filter(name="超声工作站").exists()

    page.get_by_role("link", name="我已保存令牌").click()
    page.locator('[data-section="edges"]').wait_for()
    assert token not in page.content()


def test_it_lets_an_institution_admin_add_a_member(page: Any, live_hub: str) -> None:
    network = realistic_network()
    admin = make_user(institution=network["clinic"], role=Role.INSTITUTION_ADMIN)
    log_in(page, live_hub, admin.username)
    page.get_by_role("link", name="管理人员").click()
    page.get_by_label("用户名").fill("zhao.lei")
    page.get_by_label("姓名").fill("赵磊")
    page.get_by_label("初始密码").fill("Township-2026-ok")
    page.get_by_label("角色").select_option(Role.TECHNICIAN)
    page.get_by_role("button", name="添加", exact=True).click()
    page.locator(".alert-success").wait_for()
    assert "zhao.lei" in page.locator('[data-section="members"]').inner_text()
    screenshot(page, "members-institution_admin-zh")


def test_it_fits_a_phone_screen(make_page: Any, live_hub: str) -> None:
    network = realistic_network()
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR, first_name="王芳")
    page = make_page(viewport={"width": 390, "height": 844})
    log_in(page, live_hub, user.username)
    page.locator('[data-home="clinic_doctor"]').wait_for()
    # nothing wider than the screen: no sideways scrolling on a phone
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    screenshot(page, "home-clinic_doctor-zh-phone")
