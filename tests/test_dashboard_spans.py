"""Week, month and every-modality rollup rows: views read them, and no figure changes.

The region's k is 1 here (nothing suppressed), so each figure is compared
exactly with a count made from the raw rows, and each whole response with the
one the day rows alone give.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client, override_settings

from referrals.models import RecognitionDecision, Referral
from regional_cloud.dashboard import spans
from regional_cloud.dashboard.models import DailyStudyVolume, DailyTurnaround
from regional_cloud.dashboard.rollups import rollup_refresh
from regional_cloud.dashboard.selectors import common, network, recognition, turnaround, volume
from studies.models import Report, Study
from tests.dashboard_helpers import (
    FIRST_DAY,
    LAYOUTS,
    ZONE,
    Activity,
    _referrals,
    build_activity,
    local,
    make_report,
    make_study,
)
from tests.factories import make_institution, make_region

SECTIONS = ["volume", "turnaround", "referrals", "recognition", "network"]
EARLIEST = date(2026, 6, 24)  # some three months before the helpers' ten days


# --- covering a range -----------------------------------------------------------------------


def _days_of(run: spans.Run) -> list[tuple[date, date]]:
    """Return the (first, last) days of each row the run reads."""
    rows, day = [], run.first
    while day <= run.last:
        if run.span == spans.MONTH:
            after = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
        elif run.span == spans.WEEK:
            after = day + timedelta(days=7)
        else:
            after = day + timedelta(days=1)
        rows.append((day, after - timedelta(days=1)))
        day = after
    return rows


@pytest.mark.parametrize("granularity", [None, "day", "week", "month"])
def test_the_spans_cover_every_day_once_and_never_cross_a_trend_period(granularity: Any):
    rng = random.Random(3)
    for _ in range(400):
        start = date(2024, 1, 1) + timedelta(days=rng.randint(0, 900))
        end = start + timedelta(days=rng.choice([0, 1, 6, 7, 13, 30, 31, 45, 92, 364, 800]))
        seen: Counter[date] = Counter()
        for run in spans.runs(start, end, granularity):
            assert run.span in {spans.DAY, spans.WEEK, spans.MONTH}
            for first, last in _days_of(run):
                assert first == spans.period_start(first, run.span)
                if granularity in {"week", "month"}:
                    # Inside one trend period: the row can be summed into it.
                    assert common.period_of(first, granularity) == common.period_of(
                        last, granularity
                    )
                if granularity == "day":
                    assert run.span == spans.DAY
                day = first
                while day <= last:
                    seen[day] += 1
                    day += timedelta(days=1)
        expected = {start + timedelta(days=n) for n in range((end - start).days + 1)}
        assert set(seen) == expected
        assert set(seen.values()) == {1}


def test_a_year_reads_months_and_a_few_weeks_and_days():
    pieces = list(spans._pieces(date(2025, 11, 23), date(2026, 11, 22), None))
    kinds = Counter(span for span, _first in pieces)
    assert kinds[spans.MONTH] == 11
    assert kinds[spans.WEEK] <= 8
    assert kinds[spans.DAY] <= 14
    assert len(spans.runs(date(2025, 11, 23), date(2026, 11, 22))) <= 6


# --- the figures ----------------------------------------------------------------------------


@pytest.fixture
def activity(db: Any) -> Activity:
    """The helpers' ten days, and three months before them with studies on most days."""
    built = build_activity()
    rng = random.Random(11)
    earlier = Activity(network=built.network, people=built.people)
    network, people = built.network, built.people
    day = EARLIEST
    while day < FIRST_DAY:
        for key in ("clinic", "other_clinic", "county", "centre"):
            for _ in range(rng.choice([0, 0, 1, 2])):
                received = local(day, rng.choice([0, 9, 15, 23]), rng.randint(0, 59))
                study = make_study(built, network[key], received, rng.choice(list(LAYOUTS)), rng)
                earlier.studies.append(study)
        day += timedelta(days=1)
    for study in earlier.studies:
        if rng.random() < 0.2:
            continue
        reading = (
            network["centre"] if study.origin_id == network["centre"].pk else network["county"]
        )
        reader = people["expert"] if reading == network["centre"] else people["reader_a"]
        signed = study.received_at + timedelta(minutes=rng.choice([30, 200, 900, 3000]))
        make_report(built, study, reader, reading, signed_at=signed)
    _referrals(earlier, rng)
    built.referrals.extend(earlier.referrals)
    built.decisions.extend(earlier.decisions)
    region = network["region"]
    region.min_cell_size = 1
    region.save(update_fields=["min_cell_size"])
    rollup_refresh(since=None)
    return built


@pytest.fixture
def analyst(activity: Activity, client_for: Any) -> Client:
    client: Client = client_for(activity.people["analyst"])
    return client


def get(client: Client, section: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/api/dashboard/{section}/", params)
    assert response.status_code == 200, response.content
    data: dict[str, Any] = response.json()
    data.pop("refreshed_at")
    return data


def kpis(data: dict[str, Any]) -> dict[str, Any]:
    return {k["key"]: k["value"] for k in data["kpis"]}


def day_of(moment: Any) -> date:
    return moment.astimezone(ZONE).date()


RANGES = [
    (EARLIEST, FIRST_DAY + timedelta(days=9)),  # everything, ragged at both ends
    (date(2026, 7, 9), date(2026, 10, 2)),  # a Thursday to a Friday
    (date(2026, 8, 1), date(2026, 8, 31)),  # exactly one month
    (date(2026, 8, 3), date(2026, 8, 16)),  # exactly two weeks
]


def test_the_range_reads_week_and_month_rows(activity: Activity):
    first, last = RANGES[0]
    read = DailyStudyVolume.objects.filter(spans.covering(first, last))
    assert read.filter(span=spans.MONTH).exists()
    assert read.filter(span=spans.WEEK).exists()
    # Coarse rows hold what their days hold, the every-modality rows what each modality's do.
    august = DailyTurnaround.objects.filter(span=spans.DAY, day__month=8)
    month = DailyTurnaround.objects.filter(span=spans.MONTH, day=date(2026, 8, 1))
    each = [r.reports for r in august if r.modality != spans.ALL_MODALITIES]
    every = [r.reports for r in august if r.modality == spans.ALL_MODALITIES]
    assert sum(each) == sum(every) > 0
    assert sum(r.reports for r in month) == 2 * sum(each)
    assert len(every) < len(each)


def test_long_ranges_count_what_the_raw_rows_hold(analyst: Client, activity: Activity):
    for first, last in RANGES:
        for granularity in ("day", "week", "month"):
            _check_counts(analyst, first, last, granularity)


def _check_counts(analyst: Client, first: date, last: date, granularity: str) -> None:
    query = {"from": first.isoformat(), "to": last.isoformat(), "granularity": granularity}

    def period(day: date) -> str:
        return common.period_of(day, granularity).isoformat()

    studies = [s for s in Study.objects.all() if first <= day_of(s.received_at) <= last]
    volume = get(analyst, "volume", **query)
    assert kpis(volume)["studies"] == len(studies)
    per_period = Counter(period(day_of(s.received_at)) for s in studies)
    trend = dict(
        zip(volume["trend"]["periods"], volume["trend"]["series"][0]["values"], strict=True)
    )
    assert {p: v for p, v in trend.items() if v} == dict(per_period)

    reports = [
        r
        for r in Report.objects.filter(state="final", amends=None).exclude(signed_at=None)
        if first <= day_of(r.signed_at) <= last
    ]
    turnaround = get(analyst, "turnaround", **query)
    assert kpis(turnaround)["reports"] == len(reports)
    per_period = Counter(period(day_of(r.signed_at)) for r in reports)
    trend = dict(
        zip(turnaround["trend"]["periods"], turnaround["trend"]["series"][0]["values"], strict=True)
    )
    assert {p: v for p, v in trend.items() if v} == dict(per_period)

    submitted = [
        r
        for r in Referral.objects.exclude(submitted_at=None)
        if first <= day_of(r.submitted_at) <= last
    ]
    referrals = get(analyst, "referrals", **query)
    assert kpis(referrals)["up"] == sum(1 for r in submitted if r.direction == "up")
    assert kpis(referrals)["down"] == sum(1 for r in submitted if r.direction == "down")

    decisions = [
        d for d in RecognitionDecision.objects.all() if first <= day_of(d.decided_at) <= last
    ]
    recognition = get(analyst, "recognition", **query)
    assert kpis(recognition)["decisions"] == len(decisions)


def _day_rows_only(start: date, end: date, _granularity: Any = None) -> Any:
    return _COVERING(start, end, "day")


_COVERING = spans.covering


@override_settings(DASHBOARD_CACHE_SECONDS=0)
def test_coarse_and_every_modality_rows_change_no_figure(
    analyst: Client, activity: Activity, monkeypatch: Any
):
    first, last = RANGES[0]
    institution = str(activity.network["county"].uuid)
    filters = [{}, {"tier": "clinic"}, {"modality": "CT"}, {"institution": institution}]
    for granularity, extra in itertools.product(["day", "week", "month"], filters):
        query = {"from": first.isoformat(), "to": last.isoformat(), "granularity": granularity}
        query.update(extra)
        coarse = {section: get(analyst, section, **query) for section in SECTIONS}
        with monkeypatch.context() as patch:
            patch.setattr(common, "covering", _day_rows_only)
            for module in (network, recognition, turnaround, volume):
                patch.setattr(module, "_with_modality", common._each_modality)
            fine = {section: get(analyst, section, **query) for section in SECTIONS}
        assert coarse == fine


@override_settings(DASHBOARD_CACHE_SECONDS=0)
def test_another_regions_studies_never_count(analyst: Client, activity: Activity):
    first, last = RANGES[0]
    query = {"from": first.isoformat(), "to": last.isoformat(), "granularity": "week"}
    # Alone in the database, the region's views read the rollups without an id list.
    alone = {section: get(analyst, section, **query) for section in SECTIONS}

    elsewhere = make_institution(region=make_region())
    make_study(activity, elsewhere, local(date(2026, 8, 5), 10), "CT", random.Random(5))
    rollup_refresh(since=None)
    assert DailyStudyVolume.objects.filter(institution=elsewhere).exists()

    assert {section: get(analyst, section, **query) for section in SECTIONS} == alone
