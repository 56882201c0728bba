"""Shared builders for the referral, patient-index and recognition tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from typing import Any

from django.utils import timezone

from hospitals.models import Role
from referrals.models import Referral
from referrals.services import referral_accept, referral_create, referral_submit
from regional_cloud.permissions import filter_by_permission
from studies.ingest import ReceivedFile, Sender, instances_ingest
from studies.models import Study
from tests.dicom_helpers import ct_small, to_bytes
from tests.factories import make_user


def ingest_study(
    institution: Any,
    patient_id: str = "P-1",
    *,
    days_ago: int = 0,
    modality: str = "CT",
    body_part: str = "",
    patient_name: str | None = None,
) -> Study:
    """Store one small study sent by ``institution`` through the one ingest pipeline."""
    ds = ct_small(patient_id=patient_id, patient_name=patient_name)
    ds.StudyDate = (timezone.localdate() - dt.timedelta(days=days_ago)).strftime("%Y%m%d")
    ds.Modality = modality
    if body_part:
        ds.BodyPartExamined = body_part
    data = to_bytes(ds)
    report = instances_ingest(
        files=[ReceivedFile(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())],
        sender=Sender(user=None, institution=institution),
    )
    assert not report.refused, report.results
    return Study.objects.get(study_instance_uid=ds.StudyInstanceUID)


def can_view(user: Any, study: Study) -> bool:
    return filter_by_permission(
        Study.objects.filter(pk=study.pk), user, "studies.view_study"
    ).exists()


def make_people(network: dict[str, Any]) -> dict[str, Any]:
    """Doctors of the referral's two sides, a second specialist, and outsiders."""
    return {
        "doctor": make_user(
            institution=network["clinic"], role=Role.CLINIC_DOCTOR, first_name="陈医生"
        ),
        "doctor2": make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR),
        "specialist": make_user(
            institution=network["county"], role=Role.SPECIALIST, first_name="王主任"
        ),
        "specialist2": make_user(institution=network["county"], role=Role.SPECIALIST),
        "county_doctor": make_user(institution=network["county"], role=Role.CLINIC_DOCTOR),
        "expert": make_user(institution=network["centre"], role=Role.SPECIALIST),
        "outsider": make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR),
    }


def up_referral(
    network: dict[str, Any], people: dict[str, Any], study: Study, **kw: Any
) -> Referral:
    return referral_create(
        actor=people["doctor"],
        from_institution=network["clinic"],
        to_institution=kw.pop("to", network["county"]),
        patient=study.patient,
        direction="up",
        studies=kw.pop("studies", [study]),
        clinical_question="右肺结节，请会诊",
        **kw,
    )


def accepted_referral(network: dict[str, Any], people: dict[str, Any], study: Study) -> Referral:
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    return referral_accept(referral=referral, actor=people["specialist"])
