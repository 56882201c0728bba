"""Tell the requesting doctors that a report is final, or that it holds a critical result.

"The requesting doctor" is, for now, every clinic doctor of the study's origin
institution plus whoever uploaded it (the first ``study.ingest`` audit row names
them) when that person still has a clinical role there; an order system
(HIS/RIS) would name one doctor. Titles name no patient, so an SMS gateway can
send them; the body names the patient for the doctor's own screen.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import translation
from django.utils.translation import gettext as _

from hospitals.models import CLINICAL_ROLES, Role
from hospitals.services import institution_role_group
from regional_cloud.models import AuditEvent
from regional_cloud.notifications import notify
from studies.models import Report, Study
from studies.reading.display import date_label, person_name
from studies.reading.links import report_path

KIND_FINAL = "report_final"
KIND_CRITICAL = "report_critical"


def requesting_doctors(study: Study) -> list[Any]:
    """Return the active users who asked for this study's reading."""
    group = institution_role_group(study.origin, Role.CLINIC_DOCTOR)
    users = list(group.user_set.filter(is_active=True).order_by("pk"))
    first_ingest = (
        AuditEvent.objects.filter(action="study.ingest", study_uid=study.study_instance_uid)
        .exclude(actor=None)
        .order_by("occurred_at", "id")
        .values_list("actor_id", flat=True)
        .first()
    )
    if first_ingest is not None and all(u.pk != first_ingest for u in users):
        uploader = (
            get_user_model()
            .objects.filter(
                pk=first_ingest,
                is_active=True,
                memberships__institution=study.origin,
                memberships__role__in=list(CLINICAL_ROLES),
                memberships__is_active=True,
            )
            .first()
        )
        if uploader is not None:
            users.append(uploader)
    return users


def _texts(report: Report) -> dict[str, str]:
    study = report.study
    return {
        "modality": "/".join(m for m in study.modalities if m != "DOC") or "-",
        "date": date_label(study.study_date),
        "description": study.study_description,
        "patient": person_name(study.patient.patient_name) or study.patient.patient_id,
        "impression": report.impression[:200],
    }


def _load(report_id: int) -> Report:
    return Report.objects.select_related("study", "study__patient", "study__origin", "amends").get(
        pk=report_id
    )


def notify_report_final(report_id: int) -> None:
    """Notify the requesting doctors that a report (or an addendum) is final."""
    report = _load(report_id)
    with translation.override(settings.LANGUAGE_CODE):
        values = _texts(report)
        if report.is_addendum:
            title = _("Addendum to the %(modality)s report of %(date)s") % values
        else:
            title = _("%(modality)s report of %(date)s is final") % values
        body = _("%(patient)s, %(description)s. Impression: %(impression)s") % values
    notify(
        recipients=requesting_doctors(report.study),
        kind=KIND_FINAL,
        title=title,
        body=body,
        url=report_path((report.amends or report).uuid),
    )


def notify_report_critical(report_id: int) -> None:
    """Notify the requesting doctors of a critical result (危急值) at once."""
    report = _load(report_id)
    with translation.override(settings.LANGUAGE_CODE):
        values = _texts(report)
        title = _("Critical result: %(modality)s of %(date)s") % values
        body = _("%(patient)s, %(description)s. Impression: %(impression)s") % values
    notify(
        recipients=requesting_doctors(report.study),
        kind=KIND_CRITICAL,
        title=title,
        body=body,
        url=report_path((report.amends or report).uuid),
    )
