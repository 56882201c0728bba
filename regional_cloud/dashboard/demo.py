"""A few months of simulated activity, so the demo's dashboards mean something on first open.

``seed_activity(months=4)`` writes index rows only — patients, studies,
series, reading tasks, final reports, referrals and recognition decisions —
with bulk inserts and no images. Simulated rows are marked: their study UIDs
start with ``SIMULATED_UID_ROOT``, their PatientIDs with ``SIM-``, and they have
no Instance rows, so the archive's fixity and reconcile checks (which walk
Instance.archive_key) never see them. Nobody holds a permission on them, so
they appear on no worklist or patient page, only in the aggregates.

It writes no audit events: the audit trail records what people did, and a
simulation must not forge it. Cross-hospital retrievals therefore start at
zero in the demo and grow as people use it.

Idempotent: a region that already has simulated studies gets nothing new.
Afterwards it rebuilds the rollup tables.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from hospitals.models import CLINICAL_ROLES, EdgeNode, Institution, Membership, Region, Role, Tier
from referrals.models import RecognitionDecision, Referral, RepeatReason
from regional_cloud.dashboard.rollups import display_zone, rollup_refresh
from studies.models import Patient, ReadingTask, Report, Series, Study
from studies.reading import signing

SIMULATED_UID_ROOT = "1.2.826.0.1.3680043.8.498.77"  # pydicom's prefix; ".77" marks simulated rows
SIMULATED_PATIENT_PREFIX = "SIM-"
BATCH = 2000

# modality: (weight by tier clinic/county/centre, instances, bytes per instance, price ¥)
MODALITIES: dict[str, tuple[tuple[int, int, int], int, int, int]] = {
    "DX": ((50, 25, 10), 2, 10_000_000, 80),
    "US": ((28, 15, 10), 20, 300_000, 120),
    "ECG": ((10, 5, 3), 1, 200_000, 30),
    "CT": ((12, 35, 40), 220, 520_000, 320),
    "MR": ((0, 15, 30), 300, 260_000, 650),
    "MG": ((0, 5, 7), 4, 30_000_000, 180),
}
TIER_COLUMN = {Tier.TOWNSHIP_CLINIC: 0, Tier.COUNTY_HOSPITAL: 1, Tier.REFERRAL_CENTRE: 2}
DAILY_STUDIES = {Tier.TOWNSHIP_CLINIC: 7, Tier.COUNTY_HOSPITAL: 24, Tier.REFERRAL_CENTRE: 36}
# Share of a weekday's volume on Saturday and Sunday.
WEEKEND_FACTOR = (0.35, 0.2)


@dataclass
class _Made:
    studies: list[Study]
    by_day: dict[tuple[int, date], list[Study]]


def _weighted(rng: random.Random, tier: str) -> str:
    column = TIER_COLUMN[Tier(tier)]
    names = list(MODALITIES)
    return rng.choices(names, weights=[MODALITIES[m][0][column] for m in names])[0]


def _at(day: date, rng: random.Random) -> datetime:
    """Return a moment in working hours (8:00–18:00, some evening emergencies) of ``day``."""
    hour = rng.choice([8, 9, 9, 10, 10, 10, 11, 11, 14, 14, 15, 15, 16, 16, 17, 19, 21])
    clock = dtime(hour, rng.randrange(60), rng.randrange(60))
    return datetime.combine(day, clock, tzinfo=display_zone())


def _lognormal_minutes(rng: random.Random, median: float, spread: float = 0.9) -> float:
    return float(median * math.exp(rng.gauss(0, spread)))


def _people(region: Region) -> tuple[dict[int, list[Any]], dict[int, Any]]:
    """Return (specialists by institution id, someone to act for each institution)."""
    specialists: dict[int, list[Any]] = defaultdict(list)
    actors: dict[int, Any] = {}
    memberships = Membership.objects.filter(
        institution__region=region, is_active=True
    ).select_related("user")
    for membership in memberships.order_by("pk"):
        if membership.role == Role.SPECIALIST:
            specialists[membership.institution_id].append(membership.user)
        if membership.role in CLINICAL_ROLES:
            actors.setdefault(membership.institution_id, membership.user)
    for edge in EdgeNode.objects.filter(institution__region=region).select_related("service_user"):
        actors.setdefault(edge.institution_id, edge.service_user)
    return specialists, actors


def _studies(
    institutions: list[Institution], days: list[date], now: datetime, rng: random.Random
) -> _Made:
    patients: list[Patient] = []
    studies: list[Study] = []
    series: list[Series] = []
    pool: dict[int, list[Patient]] = defaultdict(list)
    by_day: dict[tuple[int, date], list[Study]] = defaultdict(list)
    for inst in institutions:
        mean = DAILY_STUDIES[Tier(inst.tier)] * rng.uniform(0.7, 1.3)
        for day in days:
            factor = WEEKEND_FACTOR[day.weekday() - 5] if day.weekday() >= 5 else 1.0
            count = max(0, round(rng.gauss(mean * factor, math.sqrt(mean * factor + 1))))
            for n in range(count):
                if pool[inst.pk] and rng.random() < 0.3:
                    patient = rng.choice(pool[inst.pk])
                else:
                    patient = Patient(
                        issuer=inst,
                        patient_id=f"{SIMULATED_PATIENT_PREFIX}{inst.pk}-{len(patients) + 1}",
                        patient_sex=rng.choice("MF"),
                    )
                    patients.append(patient)
                    pool[inst.pk].append(patient)
                modality = _weighted(rng, inst.tier)
                _weights, instances, per_instance, _price = MODALITIES[modality]
                count_instances = max(1, round(instances * rng.uniform(0.6, 1.4)))
                received = _at(day, rng)
                if received > now:
                    continue
                uid = f"{SIMULATED_UID_ROOT}.{inst.pk}.{day:%Y%m%d}.{n + 1}"
                study = Study(
                    study_instance_uid=uid,
                    patient=patient,
                    origin=inst,
                    study_date=f"{day:%Y%m%d}",
                    study_description=f"{modality} (simulated)",
                    modalities_in_study=modality,
                    number_of_series=1,
                    number_of_instances=count_instances,
                    size_bytes=count_instances * per_instance,
                    received_at=received,
                    updated_at=received,
                )
                studies.append(study)
                by_day[(inst.pk, day)].append(study)
                series.append(
                    Series(
                        study=study,
                        series_instance_uid=f"{uid}.1",
                        modality=modality,
                        series_number=1,
                        number_of_instances=count_instances,
                        size_bytes=study.size_bytes,
                    )
                )
    Patient.objects.bulk_create(patients, batch_size=BATCH)
    for study in studies:
        study.patient = study.patient  # pick up the patient's new primary key
    Study.objects.bulk_create(studies, batch_size=BATCH)
    for s in series:
        s.study = s.study
    Series.objects.bulk_create(series, batch_size=BATCH)
    return _Made(studies, by_day)


def _reader_for(inst: Institution) -> Institution | None:
    if inst.tier in {Tier.COUNTY_HOSPITAL, Tier.REFERRAL_CENTRE}:
        return inst
    return inst.hub


def _reports(
    made: _Made,
    institutions: dict[int, Institution],
    specialists: dict[int, list[Any]],
    now: datetime,
    rng: random.Random,
) -> None:
    """A final report for most studies old enough; clinics wait longer than hospitals."""
    tasks: list[ReadingTask] = []
    reports: list[Report] = []
    for study in made.studies:
        reading = _reader_for(institutions[study.origin_id])
        readers = specialists.get(reading.pk, []) if reading else []
        if reading is None or not readers or rng.random() < 0.04:
            continue
        median = 150 if study.origin.tier == Tier.TOWNSHIP_CLINIC else 70
        signed_at = study.received_at + timedelta(minutes=_lognormal_minutes(rng, median, 1.0))
        if signed_at > now:
            continue
        reader = rng.choice(readers)
        task = ReadingTask(
            study=study,
            reading_institution=reading,
            status=ReadingTask.Status.FINAL,
            routed_at=study.received_at,
            finalized_at=signed_at,
        )
        tasks.append(task)
        critical = rng.random() < 0.02
        report = Report(
            study=study,
            task=task,
            author=reader,
            state=Report.State.FINAL,
            findings="模拟报告(仅用于演示统计)。",
            impression="未见明显异常。" if not critical else "危急值:请立即处理。",
            critical=critical,
            created_at=study.received_at,
            updated_at=signed_at,
            signed_by=reader,
            signed_at=signed_at,
        )
        if critical:
            report.critical_notified_at = signed_at
            seen = signed_at + timedelta(minutes=_lognormal_minutes(rng, 18, 0.8))
            report.critical_seen_at = seen if seen < now else None
        report.content_sha256, report.signature = signing.seal(
            report, signer_id=reader.pk, signed_at=signed_at
        )
        reports.append(report)
    ReadingTask.objects.bulk_create(tasks, batch_size=BATCH)
    for report in reports:
        report.task = report.task
    Report.objects.bulk_create(reports, batch_size=BATCH)


def _referrals(
    made: _Made,
    institutions: dict[int, Institution],
    actors: dict[int, Any],
    now: datetime,
    rng: random.Random,
) -> None:
    """Clinic → county → centre, some back down; receivers decide on the priors they got."""
    referrals: list[Referral] = []
    decisions: list[RecognitionDecision] = []
    links: list[tuple[Referral, Study]] = []
    for study in made.studies:
        origin = institutions[study.origin_id]
        up_share = {Tier.TOWNSHIP_CLINIC: 0.05, Tier.COUNTY_HOSPITAL: 0.025}.get(
            Tier(origin.tier), 0.0
        )
        down_share = {Tier.COUNTY_HOSPITAL: 0.02, Tier.REFERRAL_CENTRE: 0.03}.get(
            Tier(origin.tier), 0.0
        )
        roll = rng.random()
        if roll < up_share and origin.hub_id:
            direction, target = Referral.Direction.UP, institutions[origin.hub_id]
        elif roll < up_share + down_share:
            served = [i for i in institutions.values() if i.hub_id == origin.pk]
            if not served:
                continue
            direction, target = Referral.Direction.DOWN, rng.choice(served)
        else:
            continue
        creator, receiver = actors.get(origin.pk), actors.get(target.pk)
        if creator is None or receiver is None:
            continue
        submitted = study.received_at + timedelta(minutes=_lognormal_minutes(rng, 90))
        if submitted > now:
            continue
        referral = Referral(
            patient=study.patient,
            direction=direction,
            from_institution=origin,
            to_institution=target,
            clinical_question="模拟转诊(仅用于演示统计)",
            created_by=creator,
            created_at=submitted,
            submitted_at=submitted,
            state=Referral.State.SUBMITTED,
        )
        answered = submitted + timedelta(minutes=_lognormal_minutes(rng, 240, 1.1))
        fate = rng.random()
        if answered <= now:
            if fate < 0.84:
                referral.state = Referral.State.ACCEPTED
                referral.accepted_at = answered
                referral.accepted_by = receiver
                if answered + timedelta(days=3) < now:
                    referral.state = Referral.State.COMPLETED
                    referral.closed_at = answered + timedelta(days=3)
            elif fate < 0.93:
                referral.state = Referral.State.REJECTED
                referral.rejection_reason = "模拟:本院暂无床位"
                referral.closed_at = answered
            else:
                referral.state = Referral.State.EXPIRED
                referral.closed_at = answered
        referrals.append(referral)
        links.append((referral, study))
        if referral.accepted_at is not None and direction == Referral.Direction.UP:
            decisions.append(_decision(referral, study, made, receiver, rng))
    Referral.objects.bulk_create(referrals, batch_size=BATCH)
    through = Referral.studies.through
    through.objects.bulk_create(
        [through(referral_id=r.pk, study_id=s.pk) for r, s in links], batch_size=BATCH
    )
    for decision in decisions:
        decision.referral = decision.referral
    RecognitionDecision.objects.bulk_create(decisions, batch_size=BATCH)


def _decision(
    referral: Referral, study: Study, made: _Made, receiver: Any, rng: random.Random
) -> RecognitionDecision:
    assert referral.accepted_at is not None
    modality = study.modalities_in_study
    decided_at = referral.accepted_at + timedelta(minutes=rng.randrange(5, 120))
    if rng.random() < 0.78:
        return RecognitionDecision(
            study=study,
            decided_by=receiver,
            institution=referral.to_institution,
            referral=referral,
            decision=RecognitionDecision.Decision.RECOGNIZED,
            saving_yuan=Decimal(MODALITIES[modality][3]),
            decided_at=decided_at,
        )
    # Not recognized: often a repeat exam that day at the receiving institution.
    local = decided_at.astimezone(display_zone()).date()
    same_day = made.by_day.get((referral.to_institution_id, local), [])
    repeat = rng.choice(same_day) if same_day and rng.random() < 0.7 else None
    return RecognitionDecision(
        study=study,
        decided_by=receiver,
        institution=referral.to_institution,
        referral=referral,
        decision=RecognitionDecision.Decision.NOT_RECOGNIZED,
        reasons=[
            rng.choice(
                [RepeatReason.CONDITION_CHANGED, RepeatReason.TOO_OLD, RepeatReason.BEFORE_SURGERY]
            )
        ],
        repeat_study=repeat,
        decided_at=decided_at,
    )


def _days(months: int) -> list[date]:
    today = timezone.localdate(timezone=display_zone())
    first = today - timedelta(days=round(months * 30.4))
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]


def simulated_studies(region: Region) -> QuerySet[Study]:
    return Study.objects.filter(
        origin__region=region, study_instance_uid__startswith=SIMULATED_UID_ROOT + "."
    )


def seed_activity(*, months: int = 4, region_code: str = "", seed: int = 2026) -> int:
    """Simulate ``months`` of activity in the demo region; return how many studies were made.

    Run it after ``seed_network()``. A region with simulated studies already is
    left alone (returns 0). The rollup tables are rebuilt at the end.
    """
    from regional_cloud.demo.network import REGION_CODE

    region = Region.objects.get(code=region_code or REGION_CODE)
    if simulated_studies(region).exists():
        return 0
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    now = timezone.now()
    institutions = {
        i.pk: i
        for i in Institution.objects.filter(region=region, is_active=True).exclude(
            tier=Tier.HEALTH_BUREAU
        )
    }
    specialists, actors = _people(region)
    with transaction.atomic():
        ordered = sorted(institutions.values(), key=lambda i: i.pk)
        made = _studies(ordered, _days(months), now, rng)
        _reports(made, institutions, specialists, now, rng)
        _referrals(made, institutions, actors, now, rng)
    rollup_refresh(since=None)
    return len(made.studies)
