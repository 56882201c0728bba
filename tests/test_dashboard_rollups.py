"""Every figure on the dashboard equals a count made here, independently, from the raw rows.

The region's k is set to 1 in these tests, so nothing is suppressed and every
number can be compared exactly; suppression has its own tests.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client

from referrals.models import RecognitionDecision, Referral
from regional_cloud.dashboard.models import DailyStudyVolume
from regional_cloud.dashboard.rollups import rollup_refresh
from regional_cloud.models import AuditEvent
from studies.models import Report, Study
from tests.dashboard_helpers import ZONE, Activity, build_activity, local, make_study

pytestmark = pytest.mark.django_db

GB = 1024**3


@pytest.fixture
def activity() -> Activity:
    built = build_activity()
    region = built.network["region"]
    region.min_cell_size = 1
    region.save(update_fields=["min_cell_size"])
    rollup_refresh(since=None)
    return built


def get(client: Client, section: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/dashboard/{section}/", params)
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    return data


def kpis(data: dict[str, Any]) -> dict[str, Any]:
    return {k["key"]: k["value"] for k in data["kpis"]}


def table(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return next(t["rows"] for t in data["tables"] if t["key"] == key)


def day_of(moment: Any) -> date:
    return moment.astimezone(ZONE).date()


def in_range(moment: Any, first: date, last: date) -> bool:
    return moment is not None and first <= day_of(moment) <= last


@pytest.fixture
def analyst(activity: Activity, client_for: Any) -> Client:
    client: Client = client_for(activity.people["analyst"])
    return client


def whole(activity: Activity) -> dict[str, str]:
    return {"from": activity.first.isoformat(), "to": activity.last.isoformat()}


def test_it_counts_studies_by_institution_modality_and_day(activity: Activity, analyst: Client):
    data = get(analyst, "volume", **whole(activity))

    studies = list(Study.objects.all())
    assert kpis(data)["studies"] == len(studies)
    assert kpis(data)["instances"] == sum(s.number_of_instances for s in studies)
    by_name = {row["institution"]: row for row in table(data, "by_institution")}
    for key in ("centre", "county", "clinic", "other_clinic"):
        inst = activity.network[key]
        own = [s for s in studies if s.origin_id == inst.pk]
        assert by_name[inst.name]["studies"] == len(own), key
        assert by_name[inst.name]["gb"] == round(sum(s.size_bytes for s in own) / GB, 2)
    assert activity.network["bureau"].name not in by_name
    expected_modality = Counter(activity.modality[s.pk] for s in studies)
    shown = {row["modality"]: row["studies"] for row in table(data, "by_modality")}
    assert shown == dict(expected_modality)
    assert "SR" not in shown  # the CT study's dose report does not make it an SR study
    per_day = Counter(day_of(s.received_at) for s in studies)
    periods = [date.fromisoformat(p) for p in data["trend"]["periods"]]
    assert periods == [activity.first + timedelta(days=n) for n in range(10)]
    assert data["trend"]["series"][0]["values"] == [per_day.get(p, 0) for p in periods]


def test_it_shows_storage_growth_including_what_came_before_the_range(
    activity: Activity, analyst: Client
):
    start = activity.first + timedelta(days=4)
    data = get(analyst, "volume", **{"from": start.isoformat(), "to": activity.last.isoformat()})

    studies = list(Study.objects.all())
    periods = [date.fromisoformat(p) for p in data["storage"]["periods"]]
    expected = [
        round(sum(s.size_bytes for s in studies if day_of(s.received_at) <= p) / GB, 2)
        for p in periods
    ]
    assert data["storage"]["values"] == expected
    assert kpis(data)["gb_stored"] == expected[-1]


def test_it_puts_a_study_on_its_day_in_the_display_time_zone(activity: Activity, analyst: Client):
    # 00:30 in Shanghai is 16:30 UTC the day before: it belongs to the Shanghai day.
    day = activity.last + timedelta(days=2)
    make_study(activity, activity.network["clinic"], local(day, 0, 30), "DX", _rng())
    make_study(activity, activity.network["clinic"], local(day, 23, 50), "DX", _rng())
    rollup_refresh(since=day - timedelta(days=1))

    data = get(analyst, "volume", **{"from": day.isoformat(), "to": day.isoformat()})
    before = get(
        analyst,
        "volume",
        **{
            "from": (day - timedelta(days=1)).isoformat(),
            "to": (day - timedelta(days=1)).isoformat(),
        },
    )

    assert kpis(data)["studies"] == 2
    assert kpis(before)["studies"] == 0


def _rng() -> Any:
    import random

    return random.Random(1)


def test_it_measures_upload_to_report_turnaround(activity: Activity, analyst: Client):
    data = get(analyst, "turnaround", **whole(activity))

    final = [
        r
        for r in Report.objects.select_related("study", "task")
        if r.state == "final"
        and r.amends_id is None
        and in_range(r.signed_at, activity.first, activity.last)
    ]
    minutes = [(r.signed_at - r.study.received_at).total_seconds() / 60 for r in final]
    assert kpis(data)["reports"] == len(final)
    assert kpis(data)["mean_hours"] == round(sum(minutes) / len(minutes) / 60, 1)
    within = sum(1 for m in minutes if m <= 1440)
    assert kpis(data)["within_24h"] == round(100 * within / len(final), 1)
    buckets = [
        sum(1 for m in minutes if m <= 60),
        sum(1 for m in minutes if 60 < m <= 240),
        sum(1 for m in minutes if 240 < m <= 1440),
        sum(1 for m in minutes if m > 1440),
    ]
    assert data["buckets"]["values"] == buckets
    clinic = activity.network["clinic"]
    rows = {row["institution"]: row for row in table(data, "by_origin")}
    own = [m for r, m in zip(final, minutes, strict=True) if r.study.origin_id == clinic.pk]
    assert rows[clinic.name]["reports"] == len(own)
    assert rows[clinic.name]["mean_hours"] == round(sum(own) / len(own) / 60, 1)

    workload = Counter(r.signed_by.get_full_name() for r in final)
    assert {row["reader"]: row["reports"] for row in table(data, "workload")} == dict(workload)

    critical = [r for r in final if r.critical]
    seen = [r for r in critical if r.critical_seen_at]
    assert kpis(data)["critical"] == len(critical)
    seen_minutes = [(r.critical_seen_at - r.signed_at).total_seconds() / 60 for r in seen]
    assert kpis(data)["critical_seen_minutes"] == round(sum(seen_minutes) / len(seen), 1)
    assert kpis(data)["critical_seen"] == round(100 * len(seen) / len(critical), 1)


def test_it_counts_referrals_up_and_down_acceptance_and_time_to_accept(
    activity: Activity, analyst: Client
):
    first, last = activity.first, activity.last + timedelta(days=3)  # answers come later
    data = get(analyst, "referrals", **{"from": first.isoformat(), "to": last.isoformat()})

    referrals = list(Referral.objects.all())
    submitted = [r for r in referrals if in_range(r.submitted_at, first, last)]
    accepted = [r for r in referrals if in_range(r.accepted_at, first, last)]
    refused = [
        r
        for r in referrals
        if r.state in {"rejected", "expired"} and in_range(r.closed_at, first, last)
    ]
    values = kpis(data)
    assert values["up"] == sum(1 for r in submitted if r.direction == "up")
    assert values["down"] == sum(1 for r in submitted if r.direction == "down")
    assert values["accepted"] == len(accepted)
    assert values["acceptance"] == round(100 * len(accepted) / (len(accepted) + len(refused)), 1)
    waits = [(r.accepted_at - r.submitted_at).total_seconds() / 3600 for r in accepted]
    assert values["hours_to_accept"] == round(sum(waits) / len(waits), 1)

    links: dict[tuple[str, str], int] = defaultdict(int)
    for r in submitted:
        links[(r.from_institution.name, r.to_institution.name)] += 1
    shown = {(row["from"], row["to"]): row["submitted"] for row in table(data, "flows")}
    assert shown == dict(links)
    for direction in ("up", "down"):
        expected: dict[tuple[str, str], int] = Counter(
            (r.from_institution.name, r.to_institution.name)
            for r in submitted
            if r.direction == direction
        )
        drawn = {(f["source"], f["target"]): f["value"] for f in data["flows"][direction]}
        assert drawn == dict(expected)


def test_it_counts_recognition_repeats_savings_and_cross_hospital_reads(
    activity: Activity, analyst: Client
):
    first, last = activity.first, activity.last + timedelta(days=4)
    data = get(analyst, "recognition", **{"from": first.isoformat(), "to": last.isoformat()})

    decisions = [
        d for d in RecognitionDecision.objects.all() if in_range(d.decided_at, first, last)
    ]
    recognized = [d for d in decisions if d.decision == "recognized"]
    repeats = [d for d in decisions if d.repeat_study_id]
    values = kpis(data)
    assert values["decisions"] == len(decisions)
    assert values["recognition_rate"] == round(100 * len(recognized) / len(decisions), 1)
    assert values["repeats"] == len(repeats)
    assert values["repeat_rate"] == round(100 * len(repeats) / len(decisions), 1)
    assert values["saving_yuan"] == float(sum(d.saving_yuan for d in recognized))

    # Reads by the county's radiologist of the clinic's studies count (one per study and
    # day); the clinic's own doctor, someone working at both, denied reads and searches
    # do not. The centre's expert read the county's studies' metadata.
    events = AuditEvent.objects.filter(action__in=["study.view", "study.retrieve"])
    clinic_uids = {e.study_uid for e in events if e.actor_id == activity.people["reader_a"].pk}
    county_uids = set(
        AuditEvent.objects.filter(action="study.metadata").values_list("study_uid", flat=True)
    )
    assert values["retrievals"] == len(clinic_uids) + len(county_uids)
    rows = {(row["origin"], row["reader"]): row["studies"] for row in table(data, "retrievals")}
    network = activity.network
    assert rows == {
        (network["clinic"].name, network["county"].name): len(clinic_uids),
        (network["county"].name, network["centre"].name): len(county_uids),
    }


def test_it_refreshes_only_the_days_asked_and_gives_the_same_rows_twice(activity: Activity):
    before = set(
        DailyStudyVolume.objects.values_list(
            "day", "institution_id", "modality", "studies", "bytes"
        )
    )
    rollup_refresh(since=None)
    assert (
        set(
            DailyStudyVolume.objects.values_list(
                "day", "institution_id", "modality", "studies", "bytes"
            )
        )
        == before
    )

    # A study arriving late for an old day is picked up only by a refresh that covers it.
    old_day = activity.first + timedelta(days=1)
    make_study(activity, activity.network["other_clinic"], local(old_day, 9), "MR", _rng())
    rollup_refresh(since=activity.last)
    cell = DailyStudyVolume.objects.filter(
        span="day", day=old_day, institution=activity.network["other_clinic"], modality="MR"
    )
    assert (
        sum(cell.values_list("studies", flat=True))
        == sum(
            1
            for s in Study.objects.filter(origin=activity.network["other_clinic"])
            if day_of(s.received_at) == old_day and activity.modality.get(s.pk) == "MR"
        )
        - 1
    )
    rollup_refresh(since=old_day)
    assert sum(cell.values_list("studies", flat=True)) == sum(
        1
        for s in Study.objects.filter(origin=activity.network["other_clinic"])
        if day_of(s.received_at) == old_day and activity.modality.get(s.pk) == "MR"
    )


def test_it_filters_by_institution_tier_and_modality(activity: Activity, analyst: Client):
    network = activity.network
    studies = list(Study.objects.all())
    clinic = network["clinic"]

    one = get(analyst, "volume", institution=str(clinic.uuid), **whole(activity))
    tier = get(analyst, "volume", tier="clinic", **whole(activity))
    ct = get(analyst, "volume", modality="ct", **whole(activity))

    assert kpis(one)["studies"] == sum(1 for s in studies if s.origin_id == clinic.pk)
    assert [row["institution"] for row in table(one, "by_institution")] == [clinic.name]
    clinics = {clinic.pk, network["other_clinic"].pk}
    assert kpis(tier)["studies"] == sum(1 for s in studies if s.origin_id in clinics)
    assert kpis(ct)["studies"] == sum(1 for s in studies if activity.modality[s.pk] == "CT")

    # A referral counts for both ends: the county's view holds what it sent and received.
    referrals = get(
        analyst,
        "referrals",
        institution=str(network["county"].uuid),
        **{
            "from": activity.first.isoformat(),
            "to": (activity.last + timedelta(days=3)).isoformat(),
        },
    )
    county = network["county"].pk
    mine = [
        r
        for r in Referral.objects.exclude(submitted_at=None)
        if county in {r.from_institution_id, r.to_institution_id}
        and in_range(r.submitted_at, activity.first, activity.last + timedelta(days=3))
    ]
    assert kpis(referrals)["up"] + kpis(referrals)["down"] == len(mine)


def test_it_sums_days_into_weeks_and_months(activity: Activity, analyst: Client):
    weekly = get(analyst, "volume", granularity="week", **whole(activity))
    monthly = get(analyst, "volume", granularity="month", **whole(activity))

    studies = list(Study.objects.all())
    weeks = Counter(
        day_of(s.received_at) - timedelta(days=day_of(s.received_at).weekday()) for s in studies
    )
    assert weekly["trend"]["periods"] == [w.isoformat() for w in sorted(weeks)]
    assert weekly["trend"]["series"][0]["values"] == [weeks[w] for w in sorted(weeks)]
    assert monthly["trend"]["periods"] == ["2026-10-01"]
    assert monthly["trend"]["series"][0]["values"] == [len(studies)]
