"""No patient reaches a bureau user: small cells hidden (exports too), 403 on patient data.

The bureau walk opens every URL pattern of the project — pages, /api/,
/dicom-web/, the admin — as a bureau analyst and accepts only 403 or 404,
except the dashboards, the home page, the account pages and the network's
structure.
"""

from __future__ import annotations

import csv
import io
import itertools
import random
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from openpyxl import load_workbook

from regional_cloud.dashboard.middleware import bureau_may_open
from regional_cloud.dashboard.privacy import Suppressor
from regional_cloud.dashboard.rollups import rollup_refresh
from studies.models import Patient
from tests.dashboard_helpers import BIRTH_DATES, NAMES, Activity, build_activity, local, make_study

SECTIONS = ["volume", "turnaround", "referrals", "recognition", "network"]


# --- the rule itself ------------------------------------------------------------------------


def test_it_hides_a_small_cell_and_its_complement():
    sup = Suppressor(k=5)

    assert sup.line([3, 10, 20]) == (["<5", "<5", 20], False)
    assert sup.line([0, 10, 20]) == ([0, 10, 20], False)
    assert sup.line([3, 2, 40, 7]) == (["<5", "<5", 40, "<5"], False)
    # Nothing large to hide with: the total goes too.
    assert sup.line([3, 4]) == (["<5", "<5"], True)
    assert sup.line([2]) == (["<5"], True)
    assert sup.total(3) == "<5"
    assert sup.cell(0) == 0


def test_it_never_leaves_a_hidden_cell_recoverable_from_the_total():
    sup = Suppressor(k=5)
    rng = random.Random(3)
    for _ in range(2000):
        values = [rng.choice([0, 1, 2, 3, 4, 5, 8, 13, 40]) for _ in range(rng.randint(1, 6))]
        shown, total_hidden = sup.line(values)
        hidden = [v for v, s in zip(values, shown, strict=True) if s == "<5"]
        if not hidden or total_hidden:
            continue
        # The published total minus the shown cells is a sum of at least two unknowns,
        # one of them with no upper bound (≥ k), so no single hidden value follows.
        assert len(hidden) >= 2, values
        assert max(hidden) >= 5, values
        assert sum(hidden) >= 5, values


def test_it_hides_rates_and_means_built_on_small_counts():
    sup = Suppressor(k=5)

    assert sup.rate(3, 100) is None  # 3 of 100: the 3 would show through
    assert sup.rate(97, 100) is None  # the 3 that are not
    assert sup.rate(50, 100) == 50.0
    assert sup.rate(0, 100) == 0.0
    assert sup.rate(2, 4) is None
    assert sup.mean(120.0, 4) is None
    assert sup.mean(120.0, 6) == 20.0
    assert sup.mean(120.0, 6, shown="<5") is None


# --- on the dashboards ------------------------------------------------------------------------


@pytest.fixture
def activity(db: None) -> Activity:
    built = build_activity()
    rollup_refresh(since=None)
    return built


def section(client: Client, name: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/dashboard/{name}/", params)
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


def count_columns(table: dict[str, Any]) -> list[str]:
    return [c["key"] for c in table["columns"] if c["kind"] == "count"]


def test_it_shows_no_count_below_k_anywhere(activity: Activity, client_for: Any):
    analyst = client_for(activity.people["analyst"])
    for day in (activity.first, activity.first + timedelta(days=3)):
        for name in SECTIONS:
            data = section(analyst, name, **{"from": day.isoformat(), "to": day.isoformat()})
            for table in data["tables"]:
                for key in count_columns(table):
                    cells = [row[key] for row in table["rows"]]
                    assert all(c == "<5" or c == 0 or c >= 5 for c in cells), (name, key, cells)
                    # One hidden cell next to shown ones would be the total minus them; alone
                    # (the rest zero) it is the whole total, itself below k and hidden.
                    if sum(1 for c in cells if c == "<5") == 1:
                        assert all(c in {0, "<5"} for c in cells), (name, key, cells)
            for series in data.get("trend", {}).get("series", []):
                if series.get("kind"):
                    continue
                values = series["values"]
                assert all(v == "<5" or v == 0 or v >= 5 for v in values), (name, values)
            for kpi in data["kpis"]:
                value = kpi["value"]
                if kpi["kind"] == "count":
                    assert value in {0, "<5"} or value >= 5, (name, kpi)


def small_clinic(activity: Activity) -> tuple[Any, Any]:
    """Give the other clinic exactly three studies on a day of their own."""
    day = activity.last + timedelta(days=5)
    rng = random.Random(5)
    for hour in (9, 10, 11):
        make_study(activity, activity.network["other_clinic"], local(day, hour), "DX", rng)
    for hour in range(8, 18):
        make_study(activity, activity.network["clinic"], local(day, hour), "US", rng)
    for hour in range(8, 14):
        make_study(activity, activity.network["county"], local(day, hour), "CT", rng)
    rollup_refresh(since=day)
    return day, activity.network["other_clinic"]


def test_it_hides_a_small_cell_on_the_page_data_and_in_both_exports(
    activity: Activity, client_for: Any
):
    day, clinic = small_clinic(activity)
    analyst = client_for(activity.people["analyst"])
    params = {"from": day.isoformat(), "to": day.isoformat()}

    data = section(analyst, "volume", **params)
    rows = {row["institution"]: row for row in data["tables"][0]["rows"]}
    assert rows[clinic.name]["studies"] == "<5"
    assert rows[clinic.name]["gb"] is None
    # Its complement hides with it (the county's 6), so 19 − 10 − ? gives nothing away.
    assert rows[activity.network["county"].name]["studies"] == "<5"
    assert rows[activity.network["clinic"].name]["studies"] == 10
    assert data["kpis"][0]["value"] == 19

    csv_response = analyst.get("/api/dashboard/volume/export/csv/", params)
    assert csv_response.status_code == 200
    assert csv_response["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
    row = next(line for line in lines if line and line[0] == clinic.name)
    assert row[2] == "<5"
    assert "3" not in row[2:]
    county_row = next(line for line in lines if line and line[0] == activity.network["county"].name)
    assert county_row[2] == "<5"
    assert "6" not in county_row[2:]

    xlsx_response = analyst.get("/api/dashboard/volume/export/xlsx/", params)
    assert xlsx_response.status_code == 200
    book = load_workbook(io.BytesIO(xlsx_response.content))
    values = [
        list(r)
        for sheet in book.worksheets
        for r in sheet.iter_rows(values_only=True)
        if r and r[0] == clinic.name
    ]
    assert values
    assert values[0][2] == "<5"
    assert 3 not in values[0][2:]


def test_it_takes_k_from_the_region(activity: Activity, client_for: Any):
    day, clinic = small_clinic(activity)
    region = activity.network["region"]
    region.min_cell_size = 2
    region.save(update_fields=["min_cell_size"])

    data = section(
        client_for(activity.people["analyst"]),
        "volume",
        **{"from": day.isoformat(), "to": day.isoformat()},
    )

    rows = {row["institution"]: row for row in data["tables"][0]["rows"]}
    assert rows[clinic.name]["studies"] == 3
    assert data["min_cell_size"] == 2


def identity_strings() -> set[str]:
    found = set(NAMES) | set(BIRTH_DATES)
    for patient in Patient.objects.all():
        found.update({patient.patient_id, patient.patient_name, str(patient.uuid)})
        found.update(p for p in patient.patient_name.split("^") if len(p) > 1 and not p.isdigit())
    return {s for s in found if s}


def test_no_patient_name_id_or_birth_date_reaches_a_dashboard(activity: Activity, client_for: Any):
    secrets = identity_strings()
    assert "张三丰" in secrets
    wide = {
        "from": activity.first.isoformat(),
        "to": (activity.last + timedelta(days=5)).isoformat(),
    }
    for who in ("analyst", "county_admin"):
        client = client_for(activity.people[who])
        bodies = [client.get("/dashboard/", wide), client.get("/dashboard/at-a-glance/", wide)]
        for name in SECTIONS:
            bodies.append(client.get(f"/api/dashboard/{name}/", wide))
            for granularity in ("day", "month"):
                bodies.append(
                    client.get(f"/api/dashboard/{name}/", {**wide, "granularity": granularity})
                )
            bodies.append(client.get(f"/api/dashboard/{name}/export/csv/", wide))
        texts = []
        for response in bodies:
            assert response.status_code == 200, response.request
            texts.append(response.content.decode("utf-8"))
        for name in SECTIONS:
            book = load_workbook(
                io.BytesIO(client.get(f"/api/dashboard/{name}/export/xlsx/", wide).content)
            )
            texts.extend(
                str(value)
                for sheet in book.worksheets
                for row in sheet.iter_rows(values_only=True)
                for value in row
                if value is not None
            )
        everything = "\n".join(texts)
        for secret in secrets:
            assert secret not in everything, (who, secret)


# --- the bureau walk ---------------------------------------------------------------------------


def sample(converter: Any) -> str:
    name = type(converter).__name__.lower() if converter is not None else ""
    if "int" in name:
        return "1"
    if "uuid" in name:
        return str(uuid.uuid4())
    if "path" in name:
        return "00100010"
    return "1.2.826.0.1.3680043.8.498.1"


def every_path() -> list[str]:
    """Return a concrete path for every URL pattern of the project."""
    found: list[str] = []

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                space = (
                    f"{namespace}:{pattern.namespace}".strip(":")
                    if pattern.namespace
                    else namespace
                )
                walk(pattern.url_patterns, prefix + str(pattern.pattern), space)
            elif isinstance(pattern, URLPattern) and pattern.name:
                converters = getattr(pattern.pattern, "converters", {})
                kwargs = {
                    arg: sample(converters.get(arg)) for arg in pattern.pattern.regex.groupindex
                }
                name = f"{namespace}:{pattern.name}" if namespace else pattern.name
                try:
                    found.append(reverse(name, kwargs=kwargs))
                except Exception:  # noqa: S112 - an argument our samples cannot fit
                    continue

    walk(get_resolver().url_patterns, "", "")
    return sorted(set(found))


def test_a_bureau_analyst_gets_nothing_but_aggregates(activity: Activity, client_for: Any):
    analyst = client_for(activity.people["analyst"])
    study = activity.studies[0]
    paths = [
        *every_path(),
        f"/viewer/{study.study_instance_uid}/",
        f"/dicom-web/studies/{study.study_instance_uid}/metadata",
        f"/dicom-web/studies?PatientName={NAMES[0]}",
        f"/patients/{study.patient.uuid}/",
    ]
    assert any(p.startswith("/dicom-web/") for p in paths)
    assert any(p.startswith("/api/") for p in paths)
    assert any(p.startswith("/admin/") for p in paths)
    opened = []
    for path, method in itertools.product(paths, ("get", "post")):
        if path == reverse("logout"):
            continue  # it would end the session the walk runs in
        response = getattr(analyst, method)(path)
        if bureau_may_open(path):
            assert response.status_code < 500, (method, path)
            opened.append(path)
            continue
        assert response.status_code in {403, 404}, (method, path, response.status_code)
    assert "/dashboard/" in opened
    assert "/" in opened
    assert not [p for p in opened if p.startswith(("/dicom-web/", "/viewer/", "/patients/"))]
