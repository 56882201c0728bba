"""A worklist row as the page and the API show it (one shape for both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from studies.models import ReadingTask
from studies.reading.display import date_label, patient_age, person_name, sex_label
from studies.reading.links import read_path, viewer_path
from studies.reading.services import display_name

NON_IMAGE = {"DOC", "SR", "KO", "PR"}


def worklist_row(
    task: ReadingTask, *, user: Any, own_pools: set[int], now: datetime | None = None
) -> dict[str, Any]:
    """Return one worklist row; ``own_pools`` are the ids of the user's reading institutions."""
    now = now or timezone.now()
    study = task.study
    patient = study.patient
    claimed = task.claim_active(now)
    return {
        "id": str(task.uuid),
        "study_instance_uid": study.study_instance_uid,
        "priority": task.priority,
        "priority_label": str(task.get_priority_display()),
        "status": task.status,
        "status_label": str(task.get_status_display()),
        "routed_at": task.routed_at.isoformat(),
        "waiting_minutes": max(0, int((now - task.routed_at).total_seconds() // 60)),
        "origin": {"uuid": str(study.origin.uuid), "name": study.origin.name},
        "reading_institution": {
            "uuid": str(task.reading_institution.uuid),
            "name": task.reading_institution.name,
        },
        "shared": task.reading_institution_id not in own_pools,
        "modality": "/".join(m for m in study.modalities if m not in NON_IMAGE),
        "patient": {
            "name": person_name(patient.patient_name),
            "id": patient.patient_id,
            "sex": patient.patient_sex,
            "sex_label": sex_label(patient.patient_sex),
            "age": patient_age(patient.patient_birth_date, study.study_date),
        },
        "description": study.study_description,
        "accession_number": study.accession_number,
        "study_date": date_label(study.study_date),
        "claim": (
            {
                "holder": display_name(task.claimed_by),
                "mine": task.claimed_by_id == user.pk,
                "expires_at": task.claim_expires_at.isoformat() if task.claim_expires_at else None,
            }
            if claimed
            else None
        ),
        "read_url": read_path(study.study_instance_uid),
        "claim_url": reverse("reading-claim", args=[study.study_instance_uid]),
        "viewer_url": viewer_path(study.study_instance_uid),
    }


def waiting_label(minutes: int) -> str:
    """Return a waiting time as people say it: 5 min, 2 h 10 min, 3 d 4 h."""
    if minutes < 60:
        return _("%(m)s min") % {"m": minutes}
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return _("%(h)s h %(m)s min") % {"h": hours, "m": mins}
    days, hours = divmod(hours, 24)
    return _("%(d)s d %(h)s h") % {"d": days, "h": hours}
