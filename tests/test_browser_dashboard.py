"""A bureau analyst opens the dashboards in Chromium: the charts are drawn, from local files."""

from __future__ import annotations

from typing import Any

import pytest

from regional_cloud.dashboard.rollups import rollup_refresh
from tests.dashboard_helpers import Activity, build_activity
from tests.factories import PASSWORD
from tests.fixtures.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VOLUME_TABLE = '[data-section="volume"] [data-table="by_institution"]'
# Per canvas: how many pixels are neither transparent nor white (ECharts draws on canvas).
INKED_PIXELS = """
() => Array.from(document.querySelectorAll('[data-chart] canvas')).map((canvas) => {
  const context = canvas.getContext('2d');
  const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) {
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a > 0 && (r < 235 || g < 235 || b < 235)) { inked += 1; }
  }
  return {chart: canvas.closest('[data-chart]').getAttribute('data-chart'), inked};
})
"""


@pytest.fixture
def activity() -> Activity:
    built = build_activity()
    region = built.network["region"]
    region.name = "青山县"
    region.save(update_fields=["name"])
    for key, name in [
        ("centre", "市第一人民医院影像中心"),
        ("county", "青山县人民医院"),
        ("clinic", "石桥镇卫生院"),
        ("other_clinic", "河口镇卫生院"),
    ]:
        built.network[key].name = name
        built.network[key].save(update_fields=["name"])
    rollup_refresh(since=None)
    return built


def log_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()


def outside_requests(page: Any, base: str) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if not r.url.startswith(base) else None)
    return seen


def test_it_draws_the_indicators_and_the_network(page: Any, live_hub: str, activity: Activity):
    elsewhere = outside_requests(page, live_hub)
    log_in(page, live_hub, activity.people["analyst"].username)
    page.get_by_test_id("open-dashboard").click()
    page.wait_for_load_state()
    query = f"?from={activity.first}&to={activity.last}&granularity=day"
    page.goto(f"{live_hub}/dashboard/{query}")

    for name in ("volume", "turnaround", "referrals", "recognition"):
        page.locator(f'[data-section="{name}"][data-loaded="true"]').wait_for()
    page.wait_for_timeout(1500)  # ECharts animates its first drawing
    inked = page.evaluate(INKED_PIXELS)
    charts = {c["chart"]: c["inked"] for c in inked}
    expected = {
        "volume-trend",
        "volume-modality",
        "volume-storage",
        "turnaround-trend",
        "turnaround-buckets",
        "referrals-trend",
        "referrals-up",
        "referrals-down",
        "recognition-trend",
    }
    assert expected <= set(charts), charts
    for chart in expected:
        assert charts[chart] > 500, (chart, charts[chart])
    studies = page.locator('[data-section="volume"] [data-kpi="studies"] .stat__value')
    assert studies.inner_text().replace(",", "") == str(len(activity.studies))
    # Chinese institution names in the tables, and a row leads to the institution's page
    assert "石桥镇卫生院" in page.locator(VOLUME_TABLE).inner_text()
    screenshot(page, "dashboard-region-zh")

    page.locator(f"{VOLUME_TABLE} a", has_text="石桥镇卫生院").click()
    page.wait_for_load_state()
    assert "/dashboard/institutions/" in page.url
    page.locator('[data-section="volume"][data-loaded="true"]').wait_for()
    assert "石桥镇卫生院" in page.locator("h1").inner_text()

    page.goto(f"{live_hub}/dashboard/at-a-glance/{query}")
    page.locator('[data-section="network"][data-loaded="true"]').wait_for()
    page.wait_for_timeout(1500)
    network = {c["chart"]: c["inked"] for c in page.evaluate(INKED_PIXELS)}
    assert network["network-graph"] > 500
    assert network["referrals-up"] > 500
    screenshot(page, "dashboard-network-zh")

    assert elsewhere == [], elsewhere  # no CDN, no font service: everything is served here
