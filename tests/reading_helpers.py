"""Builders for the reading tests: a region with people in every role, and studies ingested
through the one ingest pipeline (so routing runs from its after-ingest hook)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Any

from django.test import TestCase
from pydicom.dataset import Dataset

from hospitals.models import Role, Tier
from studies.ingest import ReceivedFile, Sender, instances_ingest
from studies.models import ReadingTask, Study
from tests.dicom_helpers import ct_small, to_bytes
from tests.factories import make_institution, make_network, make_user

PATIENT_NAME = "王^小东"
PATIENT_DISPLAY = "王小东"


@dataclass
class Region:
    """A region (centre ← county ← clinics) with people, and an unrelated region's county."""

    net: dict[str, Any]
    specialist: Any  # 王主任, radiologist at the county hospital
    specialist2: Any  # a second county radiologist
    centre_specialist: Any
    clinic_doctor: Any
    clinic_doctor2: Any
    clinic_technician: Any
    other_clinic_doctor: Any
    outsider: Any  # radiologist of another region's county hospital
    outsider_county: Any

    def __getitem__(self, key: str) -> Any:
        return self.net[key]


def make_reading_region() -> Region:
    net = make_network()
    other = make_network()
    return Region(
        net=net,
        specialist=make_user(
            institution=net["county"], role=Role.SPECIALIST, first_name="王主任", username="wang"
        ),
        specialist2=make_user(
            institution=net["county"], role=Role.SPECIALIST, first_name="李医生", username="li"
        ),
        centre_specialist=make_user(institution=net["centre"], role=Role.SPECIALIST),
        clinic_doctor=make_user(institution=net["clinic"], role=Role.CLINIC_DOCTOR),
        clinic_doctor2=make_user(institution=net["clinic"], role=Role.CLINIC_DOCTOR),
        clinic_technician=make_user(institution=net["clinic"], role=Role.TECHNICIAN),
        other_clinic_doctor=make_user(institution=net["other_clinic"], role=Role.CLINIC_DOCTOR),
        outsider=make_user(institution=other["county"], role=Role.SPECIALIST),
        outsider_county=other["county"],
    )


def make_clinic_without_hub(region: Any) -> Any:
    return make_institution(region=region, tier=Tier.TOWNSHIP_CLINIC)


def ct_dataset(
    *,
    patient_id: str = "P-1",
    patient_name: str = PATIENT_NAME,
    priority: str | None = None,
    study_uid: str | None = None,
    study_date: str = "20261101",
    accession: str = "ACC1",
    description: str = "胸部CT平扫",
) -> Dataset:
    ds = ct_small(patient_id=patient_id, patient_name=patient_name, study_uid=study_uid)
    ds.PatientBirthDate = "19700315"
    ds.PatientSex = "M"
    ds.StudyDate = study_date
    ds.AccessionNumber = accession
    ds.StudyDescription = description
    ds.ReferringPhysicianName = "张^医生"
    if priority:
        ds.RequestedProcedurePriority = priority
    return ds


def ingest(
    institution: Any, user: Any = None, *, datasets: list[Dataset] | None = None, **kwargs: Any
) -> Study:
    """Ingest one CT instance (or ``datasets``) for ``institution``; run the after-commit hooks."""
    datasets = datasets or [ct_dataset(**kwargs)]
    files = []
    for ds in datasets:
        data = to_bytes(ds)
        files.append(
            ReceivedFile(
                stream=io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest()
            )
        )
    with TestCase.captureOnCommitCallbacks(execute=True):
        report = instances_ingest(files=files, sender=Sender(user=user, institution=institution))
    assert not report.refused, [r.code for r in report.refused]
    return Study.objects.get(study_instance_uid=datasets[0].StudyInstanceUID)


def task_of(study: Study) -> ReadingTask:
    return ReadingTask.objects.select_related("study", "reading_institution").get(study=study)
