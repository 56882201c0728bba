"""A small region's activity written as raw index rows, for the dashboard tests.

The rows are made directly (no DICOM files): the dashboards count index rows,
and the tests recount the same rows in Python to check every figure. Patients
carry known Chinese names, IDs and birth dates, which must never appear in
any dashboard response.
"""

from __future__ import annotations

import random
import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from django.conf import settings

from hospitals.models import Institution, Role
from hospitals.services import membership_grant
from referrals.models import RecognitionDecision, Referral
from regional_cloud.models import AuditEvent
from studies.models import Patient, ReadingTask, Report, Series, Study
from tests.factories import make_network, make_user

ZONE = zoneinfo.ZoneInfo(settings.TIME_ZONE)
FIRST_DAY = date(2026, 10, 5)  # a Monday
DAYS = 10
NAMES = ["张三丰", "李秀英", "王建国", "赵美丽", "陈小明", "刘德华", "欧阳娜娜", "司马光"]
BIRTH_DATES = ["19580312", "19601130", "19721005", "19850817", "19900101", "20010509"]
# modality: (series layout as (modality, instances), bytes per instance)
LAYOUTS: dict[str, list[tuple[str, int]]] = {
    "CT": [("CT", 120), ("SR", 1)],
    "DX": [("DX", 2)],
    "US": [("US", 12), ("KO", 1)],
    "MR": [("MR", 200)],
}


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, dtime(hour, minute), tzinfo=ZONE)


@dataclass
class Activity:
    network: dict[str, Any]
    people: dict[str, Any]
    studies: list[Study] = field(default_factory=list)
    modality: dict[int, str] = field(default_factory=dict)  # study pk -> expected modality
    reports: list[Report] = field(default_factory=list)
    referrals: list[Referral] = field(default_factory=list)
    decisions: list[RecognitionDecision] = field(default_factory=list)
    patients: list[Patient] = field(default_factory=list)

    @property
    def first(self) -> date:
        return FIRST_DAY

    @property
    def last(self) -> date:
        return FIRST_DAY + timedelta(days=DAYS - 1)


def make_people(network: dict[str, Any]) -> dict[str, Any]:
    return {
        "analyst": make_user(institution=network["bureau"], role=Role.BUREAU_ANALYST),
        "county_admin": make_user(institution=network["county"], role=Role.INSTITUTION_ADMIN),
        "clinic_doctor": make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR),
        "other_doctor": make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR),
        "reader_a": make_user(
            institution=network["county"], role=Role.SPECIALIST, first_name="王主任"
        ),
        "reader_b": make_user(
            institution=network["county"], role=Role.SPECIALIST, first_name="李医师"
        ),
        "expert": make_user(
            institution=network["centre"], role=Role.SPECIALIST, first_name="周教授"
        ),
    }


def make_study(
    activity: Activity,
    origin: Institution,
    received_at: datetime,
    modality: str,
    rng: random.Random,
) -> Study:
    n = len(activity.studies) + 1
    patient = Patient.objects.create(
        issuer=origin,
        patient_id=f"ZX{origin.pk:03d}{n:05d}",
        patient_name=f"{rng.choice(NAMES)}^{n}",
        patient_birth_date=rng.choice(BIRTH_DATES),
        patient_sex="F",
    )
    activity.patients.append(patient)
    layout = LAYOUTS[modality]
    size = 0
    study = Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.8.498.5.{origin.pk}.{n}",
        patient=patient,
        origin=origin,
        modalities_in_study="\\".join(sorted(m for m, _ in layout)),
        number_of_series=len(layout),
        number_of_instances=sum(i for _, i in layout),
        received_at=received_at,
    )
    for index, (series_modality, instances) in enumerate(layout):
        series_size = instances * rng.randint(100_000, 600_000)
        size += series_size
        Series.objects.create(
            study=study,
            series_instance_uid=f"{study.study_instance_uid}.{index + 1}",
            modality=series_modality,
            number_of_instances=instances,
            size_bytes=series_size,
        )
    study.size_bytes = size
    study.save(update_fields=["size_bytes"])
    activity.studies.append(study)
    activity.modality[study.pk] = modality
    return study


def make_report(
    activity: Activity,
    study: Study,
    reader: Any,
    reading: Institution,
    *,
    signed_at: datetime | None,
    state: str = Report.State.FINAL,
    critical: bool = False,
    seen_after: timedelta | None = None,
) -> Report:
    task, _ = ReadingTask.objects.get_or_create(
        study=study, defaults={"reading_institution": reading, "routed_at": study.received_at}
    )
    report = Report.objects.create(
        study=study,
        task=task,
        author=reader,
        state=state,
        findings="所见",
        signed_by=reader if signed_at else None,
        signed_at=signed_at,
        critical=critical,
        critical_notified_at=signed_at if critical else None,
        critical_seen_at=signed_at + seen_after if critical and seen_after and signed_at else None,
    )
    activity.reports.append(report)
    return report


def build_activity(seed: int = 7) -> Activity:
    """A region's ten days: studies, reports, referrals, decisions and audited reads."""
    rng = random.Random(seed)
    network = make_network()
    people = make_people(network)
    activity = Activity(network=network, people=people)
    senders = ["clinic", "other_clinic", "county", "centre"]
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        for key in senders:
            for _ in range(rng.randint(0, 7)):
                hour = rng.choice([0, 8, 10, 14, 16, 23])  # 0 and 23: near the day's edges
                received = local(day, hour, rng.randint(0, 59))
                make_study(activity, network[key], received, rng.choice(list(LAYOUTS)), rng)

    readers = [people["reader_a"], people["reader_b"]]
    for study in activity.studies:
        roll = rng.random()
        if roll < 0.1:
            continue  # not read yet
        reading = (
            network["centre"] if study.origin_id == network["centre"].pk else network["county"]
        )
        reader = people["expert"] if reading == network["centre"] else rng.choice(readers)
        if roll < 0.2:
            make_report(activity, study, reader, reading, signed_at=None, state="draft")
            continue
        signed = study.received_at + timedelta(minutes=rng.choice([20, 50, 90, 200, 600, 2000]))
        critical = rng.random() < 0.15
        seen = timedelta(minutes=rng.randint(3, 90)) if rng.random() < 0.8 else None
        report = make_report(
            activity, study, reader, reading, signed_at=signed, critical=critical, seen_after=seen
        )
        if rng.random() < 0.1:  # an addendum: neither a turnaround nor a report of its own
            Report.objects.create(
                study=study,
                task=report.task,
                amends=report,
                author=reader,
                state=Report.State.FINAL,
                signed_by=reader,
                signed_at=signed + timedelta(hours=1),
            )

    _referrals(activity, rng)
    _reads(activity, rng)
    return activity


def _referrals(activity: Activity, rng: random.Random) -> None:
    network, people = activity.network, activity.people
    routes = [
        ("clinic", "county", "up", people["clinic_doctor"]),
        ("other_clinic", "county", "up", people["other_doctor"]),
        ("county", "centre", "up", people["reader_a"]),
        ("county", "clinic", "down", people["reader_a"]),
        ("centre", "county", "down", people["expert"]),
    ]
    for study in activity.studies:
        if rng.random() > 0.35:
            continue
        sender = [r for r in routes if network[r[0]].pk == study.origin_id]
        if not sender:
            continue
        source, target, direction, creator = rng.choice(sender)
        submitted = study.received_at + timedelta(minutes=rng.randint(10, 300))
        referral = Referral.objects.create(
            patient=study.patient,
            direction=direction,
            from_institution=network[source],
            to_institution=network[target],
            created_by=creator,
            submitted_at=submitted,
            state=Referral.State.SUBMITTED,
        )
        referral.studies.add(study)
        fate = rng.random()
        answered = submitted + timedelta(minutes=rng.randint(5, 3000))
        if fate < 0.6:
            referral.state = Referral.State.ACCEPTED
            referral.accepted_at = answered
        elif fate < 0.75:
            referral.state = Referral.State.REJECTED
            referral.closed_at = answered
        elif fate < 0.85:
            referral.state = Referral.State.EXPIRED
            referral.closed_at = answered
        elif fate < 0.9:
            referral.state = Referral.State.DRAFT
            referral.submitted_at = None
        referral.save()
        activity.referrals.append(referral)
        if referral.accepted_at and direction == "up":
            recognized = rng.random() < 0.7
            decision = RecognitionDecision.objects.create(
                study=study,
                decided_by=people["reader_a"] if target == "county" else people["expert"],
                institution=network[target],
                referral=referral,
                decision="recognized" if recognized else "not_recognized",
                reasons=[] if recognized else ["too_old"],
                saving_yuan=Decimal(rng.choice(["80.00", "320.50", "650.00"]))
                if recognized
                else None,
                repeat_study=None
                if recognized or rng.random() < 0.3
                else _another(activity, study),
                decided_at=referral.accepted_at + timedelta(minutes=30),
            )
            activity.decisions.append(decision)


def _another(activity: Activity, study: Study) -> Study:
    return next(s for s in reversed(activity.studies) if s.pk != study.pk)


def _read(actor: Any, study: Study, action: str = "study.view", outcome: str = "success") -> None:
    AuditEvent.objects.create(
        occurred_at=study.received_at + timedelta(hours=1),
        actor=actor,
        actor_username=actor.get_username(),
        action=action,
        object_type="study",
        object_id=str(study.uuid),
        study_uid=study.study_instance_uid,
        outcome=outcome,
    )


def _reads(activity: Activity, rng: random.Random) -> None:
    """Audited reads: cross-hospital ones count, own-institution and other actions do not."""
    network, people = activity.network, activity.people
    both = make_user(institution=network["county"], role=Role.SPECIALIST)
    membership_grant(user=both, institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    people["both"] = both
    clinic_studies = [s for s in activity.studies if s.origin_id == network["clinic"].pk]
    for study in clinic_studies[:12]:
        for action in ("study.view", "study.retrieve", "study.retrieve", "study.search"):
            _read(people["reader_a"], study, action)
        _read(people["clinic_doctor"], study)
        _read(both, study)
        _read(people["expert"], study, outcome="denied")
    for study in [s for s in activity.studies if s.origin_id == network["county"].pk][:7]:
        _read(people["expert"], study, "study.metadata")
