"""Shared builders for the consultation tests: a clinic's study and a room of doctors."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from referrals.consultation.models import Consultation
from referrals.consultation.services import (
    consultation_accept,
    consultation_join,
    consultation_request,
)
from studies.models import Study
from tests.referral_helpers import ingest_study, make_people


@dataclass
class Room:
    network: dict[str, Any]
    people: dict[str, Any]
    study: Study
    consultation: Consultation

    @property
    def doctor(self) -> Any:
        return self.people["doctor"]

    @property
    def specialist(self) -> Any:
        return self.people["specialist"]

    @property
    def expert(self) -> Any:
        return self.people["expert"]


def make_room(network: dict[str, Any], *, accept: bool = True, live: bool = False) -> Room:
    """A clinic doctor's consultation on one study with a county specialist (lead) and a
    centre expert; ``accept`` has both consultants accept, ``live`` has the lead join."""
    people = make_people(network)
    study = ingest_study(network["clinic"], patient_id=f"P-{uuid.uuid4().hex[:8]}")
    consultation = consultation_request(
        actor=people["doctor"],
        studies=[study],
        consultants=[people["specialist"], people["expert"]],
        question="右肺上叶结节，请会诊",
    )
    if accept:
        consultation_accept(consultation=consultation, actor=people["specialist"])
        consultation_accept(consultation=consultation, actor=people["expert"])
    if live:
        consultation_join(consultation=consultation, actor=people["specialist"])
    consultation.refresh_from_db()
    return Room(network, people, study, consultation)


def first_image(study: Study) -> dict[str, str]:
    """Return the UIDs of the study's first image, as an annotation names them."""
    instance = study.instances.select_related("series").order_by("pk").first()
    assert instance is not None
    return {
        "study": study.study_instance_uid,
        "series": instance.series.series_instance_uid,
        "sop": instance.sop_instance_uid,
    }
