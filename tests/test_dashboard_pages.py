"""Dashboard pages and API: who sees what (bureau, institution admin, others), filters, exports."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client
from openpyxl import load_workbook

from hospitals.models import Role
from regional_cloud.dashboard.rollups import rollup_refresh
from regional_cloud.models import AuditEvent
from tests.dashboard_helpers import Activity, build_activity
from tests.factories import make_institution, make_region, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def activity() -> Activity:
    built = build_activity()
    rollup_refresh(since=None)
    return built


def wide(activity: Activity) -> dict[str, str]:
    return {"from": activity.first.isoformat(), "to": activity.last.isoformat()}


def test_it_shows_the_bureau_the_region_with_filters_and_charts(
    activity: Activity, client_for: Any
):
    analyst = client_for(activity.people["analyst"])

    page = analyst.get("/dashboard/", wide(activity))

    assert page.status_code == 200
    html = page.content.decode()
    for section in ("volume", "turnaround", "referrals", "recognition"):
        assert f'data-section="{section}"' in html
    assert "vendor/echarts/echarts.min.js" in html
    for name in ("from", "to", "institution", "tier", "modality", "granularity"):
        assert f'name="{name}"' in html
    assert activity.network["clinic"].name in html  # a choice of the institution filter
    assert analyst.get("/dashboard/at-a-glance/").status_code == 200
    assert analyst.get("/static/vendor/echarts/echarts.min.js").status_code == 200
    home = analyst.get("/").content.decode()
    assert 'href="/dashboard/"' in home


def test_it_drills_down_from_the_region_to_an_institution(activity: Activity, client_for: Any):
    analyst = client_for(activity.people["analyst"])
    clinic = activity.network["clinic"]

    region = analyst.get("/api/dashboard/volume/", wide(activity)).json()
    row = next(r for r in region["tables"][0]["rows"] if r["institution"] == clinic.name)
    page = analyst.get(f"/dashboard/institutions/{row['institution_uuid']}/", wide(activity))
    one = analyst.get(
        "/api/dashboard/volume/", {**wide(activity), "institution": row["institution_uuid"]}
    ).json()

    assert page.status_code == 200
    assert clinic.name in page.content.decode()
    assert one["kpis"][0]["value"] == row["studies"]
    assert one["filters"]["institution"] == str(clinic.uuid)


def test_an_institution_admin_sees_only_their_institution(activity: Activity, client_for: Any):
    admin = client_for(activity.people["county_admin"])
    county, clinic = activity.network["county"], activity.network["clinic"]

    data = admin.get("/api/dashboard/volume/", wide(activity)).json()
    page = admin.get("/dashboard/").content.decode()

    assert [row["institution"] for row in data["tables"][0]["rows"]] == [county.name]
    assert data["filters"]["institution"] == str(county.uuid)
    assert county.name in page
    assert admin.get(f"/dashboard/institutions/{clinic.uuid}/").status_code == 404
    assert admin.get("/api/dashboard/volume/", {"institution": str(clinic.uuid)}).status_code == 404
    assert admin.get(f"/dashboard/institutions/{county.uuid}/").status_code == 200
    # Another region's institution does not exist for the bureau either.
    elsewhere = make_institution(region=make_region())
    analyst = client_for(activity.people["analyst"])
    assert analyst.get(f"/dashboard/institutions/{elsewhere.uuid}/").status_code == 404
    assert (
        analyst.get("/api/dashboard/volume/", {"institution": str(elsewhere.uuid)}).status_code
        == 404
    )


def test_it_refuses_everyone_else(activity: Activity, client_for: Any):
    for key in ("clinic_doctor", "reader_a"):
        client = client_for(activity.people[key])
        assert client.get("/dashboard/").status_code == 403, key
        assert client.get("/api/dashboard/volume/").status_code == 403, key
        assert client.get("/api/dashboard/volume/export/csv/").status_code == 403, key
    anonymous = Client()
    assert anonymous.get("/dashboard/").status_code == 302
    assert anonymous.get("/api/dashboard/referrals/").status_code in {401, 403}
    # Another region's analyst sees their own (empty) region, never this one.
    other = make_institution(region=make_region(), tier="bureau")
    stranger = client_for(make_user(institution=other, role=Role.BUREAU_ANALYST))
    data = stranger.get("/api/dashboard/volume/", wide(activity)).json()
    assert data["kpis"][0]["value"] == 0
    assert activity.network["clinic"].name not in str(data)


def test_it_answers_bad_filters_with_400(activity: Activity, client_for: Any):
    analyst = client_for(activity.people["analyst"])

    assert analyst.get("/api/dashboard/volume/", {"from": "yesterday"}).status_code == 400
    assert (
        analyst.get(
            "/api/dashboard/volume/", {"from": "2026-10-09", "to": "2026-10-01"}
        ).status_code
        == 400
    )
    assert analyst.get("/api/dashboard/volume/", {"granularity": "hour"}).status_code == 400
    assert analyst.get("/api/dashboard/volume/", {"tier": "moon"}).status_code == 400
    # "*" marks the rollup rows that sum every modality: no caller names it.
    assert analyst.get("/api/dashboard/volume/", {"modality": "*"}).status_code == 400
    assert analyst.get("/api/dashboard/volume/export/pdf/").status_code == 404
    assert analyst.get("/api/dashboard/nothing/export/csv/").status_code == 404
    page = analyst.get("/dashboard/", {"from": "yesterday"})
    assert page.status_code == 200  # the page says what is wrong and shows the default range


def test_it_exports_what_is_shown_and_audits_the_export(activity: Activity, client_for: Any):
    analyst = client_for(activity.people["analyst"])
    shown = analyst.get("/api/dashboard/turnaround/", wide(activity)).json()

    response = analyst.get("/api/dashboard/turnaround/export/xlsx/", wide(activity))

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.content))
    summary = {row[0]: row[1] for row in book.worksheets[0].iter_rows(values_only=True) if row}
    for kpi in shown["kpis"]:
        assert summary[kpi["label"]] == (kpi["value"] if kpi["value"] is not None else None)
    workload = next(t for t in shown["tables"] if t["key"] == "workload")
    sheet = next(s for s in book.worksheets if s.title.startswith(workload["title"][:20]))
    rows = list(sheet.iter_rows(values_only=True))[1:]
    assert [(r[0], r[2]) for r in rows] == [(w["reader"], w["reports"]) for w in workload["rows"]]
    event = AuditEvent.objects.get(action="dashboard.export")
    assert event.actor == activity.people["analyst"]
    assert event.detail["format"] == "xlsx"


def test_without_a_task_worker_a_stale_dashboard_refreshes_recent_days_on_read(
    activity: Activity, client_for: Any
):
    import random
    from datetime import timedelta

    from django.utils import timezone

    from regional_cloud.dashboard.models import RollupState
    from tests.dashboard_helpers import make_study

    now = timezone.now()
    make_study(
        activity, activity.network["clinic"], now - timedelta(minutes=5), "DX", random.Random(2)
    )
    today = timezone.localdate().isoformat()
    analyst = client_for(activity.people["analyst"])
    assert analyst.get("/api/dashboard/volume/", {"from": today}).json()["kpis"][0]["value"] == 0

    RollupState.objects.update(refreshed_at=now - timedelta(minutes=10))
    data = analyst.get("/api/dashboard/volume/", {"from": today}).json()

    assert data["kpis"][0]["value"] == "<5"
