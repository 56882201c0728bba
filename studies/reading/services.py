"""Writes of reading: claims on worklist items and the report's life.

A claim gives one reader the study for ``READING_CLAIM_MINUTES`` (renewed by
every save); a claim past its time counts as free, and a periodic task clears
it. Only the claim holder, who must hold ``studies.report_study`` on the study,
writes its report:

    draft ──► preliminary ──► final (signed)
      └────────────────────────┘
    final ◄── addendum: its own Report (``amends``), draft ──► final

A final report is never edited in place (the service refuses; on PostgreSQL a
trigger refuses too). A critical result (危急值) notifies the requesting
doctors the moment it is released — marked preliminary or signed — and the
time they first open it is recorded. Every transition is audited; websocket
events, notifications and the archive copy run after commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from hospitals.models import Role
from regional_cloud.audit import audit
from regional_cloud.permissions import has_object_permission
from studies.models import ReadingTask, Report, ReportTemplate
from studies.models.reading import PRIORITY_RANK, Priority
from studies.reading import signing
from studies.reading.events import worklist_changed

REPORT_STUDY = "studies.report_study"
VIEW_STUDY = "studies.view_study"
MAX_TEXT = 20_000


class ReadingError(Exception):
    """A reading write the rules refuse (HTTP 409); ``code`` is stable, the message says why."""

    status = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ClaimHeld(ReadingError):
    """Another reader holds the study."""

    def __init__(self, holder: str) -> None:
        super().__init__("claim_held", _("%(name)s is reading this study.") % {"name": holder})
        self.holder = holder


class NotPermitted(ReadingError):
    """The user may not do this to the study (views answer 404, as if it did not exist)."""

    status = 404


def claim_duration() -> timedelta:
    return timedelta(minutes=int(getattr(settings, "READING_CLAIM_MINUTES", 30)))


def display_name(user: Any) -> str:
    """Return how a colleague is named on the worklist (full name, else username)."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _lock_task(task: ReadingTask) -> ReadingTask:
    # Not joined to claimed_by: a row re-read after waiting for the lock would carry
    # the new claimed_by_id with the joined user of the old snapshot (none).
    return (
        ReadingTask.objects.select_for_update(of=("self",))
        .select_related("study", "study__patient", "study__origin", "reading_institution")
        .get(pk=task.pk)
    )


def _require_reporter(task: ReadingTask, user: Any) -> None:
    if not has_object_permission(user, REPORT_STUDY, task.study):
        raise NotPermitted("not_permitted", _("No such study on your worklist."))


def _require_claim(task: ReadingTask, user: Any, now: datetime) -> None:
    if task.claim_active(now) and task.claimed_by_id == user.pk:
        return
    if task.claim_active(now):
        raise ClaimHeld(display_name(task.claimed_by))
    raise ReadingError("claim_required", _("Claim the study before writing its report."))


def _audit(action: str, *, user: Any, task: ReadingTask, obj: Any = None, **detail: Any) -> None:
    audit(
        action=action,
        actor=user,
        institution=task.reading_institution,
        object_type="report" if isinstance(obj, Report) else "reading_task",
        object_id=(obj or task).uuid,
        study_uid=task.study.study_instance_uid,
        patient_ref=task.study.patient.uuid,
        detail=detail,
    )


# --- Claims ------------------------------------------------------------------------------------


@transaction.atomic
def reading_task_claim(*, task: ReadingTask, user: Any) -> ReadingTask:
    """Give ``user`` the study for a while; a claim held by another raises ``ClaimHeld``."""
    _require_reporter(task, user)
    locked = _lock_task(task)
    now = timezone.now()
    renewal = locked.claim_active(now) and locked.claimed_by_id == user.pk
    if locked.claim_active(now) and not renewal:
        raise ClaimHeld(display_name(locked.claimed_by))
    if not renewal:
        locked.claimed_by = user
        locked.claimed_at = now
    locked.claim_expires_at = now + claim_duration()
    locked.save(update_fields=["claimed_by", "claimed_at", "claim_expires_at"])
    if not renewal:
        _audit("reading.claim", user=user, task=locked)
        worklist_changed(locked, "claimed")
    return locked


@transaction.atomic
def reading_task_release(*, task: ReadingTask, user: Any) -> ReadingTask:
    """Give the study back (idempotent); only its holder may, while the claim lasts."""
    _require_reporter(task, user)
    locked = _lock_task(task)
    now = timezone.now()
    if locked.claim_active(now) and locked.claimed_by_id != user.pk:
        raise ClaimHeld(display_name(locked.claimed_by))
    if locked.claimed_by_id is None:
        return locked
    _clear_claim(locked)
    _audit("reading.release", user=user, task=locked)
    worklist_changed(locked, "released")
    return locked


def _clear_claim(task: ReadingTask) -> None:
    task.claimed_by = None
    task.claimed_at = None
    task.claim_expires_at = None
    task.save(update_fields=["claimed_by", "claimed_at", "claim_expires_at"])


@transaction.atomic
def reading_claims_expire(*, now: datetime | None = None) -> int:
    """Clear the claims whose time has passed; return how many (the periodic task)."""
    now = now or timezone.now()
    expired = list(
        ReadingTask.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(claimed_by__isnull=False, claim_expires_at__lte=now)
        .select_related("study", "study__patient", "reading_institution")
    )
    for task in expired:
        holder = task.claimed_by_id
        _clear_claim(task)
        _audit("reading.claim_expired", user=None, task=task, holder=holder)
        worklist_changed(task, "released")
    return len(expired)


@transaction.atomic
def reading_task_raise_priority(*, task: ReadingTask, user: Any, priority: str) -> ReadingTask:
    """Let a doctor of the study's origin make it more urgent (never less)."""
    if priority not in Priority.values:
        raise ReadingError("bad_priority", _("Unknown priority."))
    locked = _lock_task(task)
    is_requester = locked.study.origin.memberships.filter(
        user=user, role=Role.CLINIC_DOCTOR, is_active=True
    ).exists()
    if not is_requester or not has_object_permission(user, VIEW_STUDY, locked.study):
        raise NotPermitted("not_permitted", _("No such study."))
    if locked.status == ReadingTask.Status.FINAL:
        raise ReadingError("already_final", _("The study has been reported."))
    if PRIORITY_RANK[Priority(priority)] >= PRIORITY_RANK[Priority(locked.priority)]:
        raise ReadingError("not_higher", _("The priority can only be raised."))
    old = locked.priority
    locked.priority = priority
    locked.save(update_fields=["priority"])
    _audit("reading.priority_raise", user=user, task=locked, old=old, new=priority)
    worklist_changed(locked, "priority")
    return locked


# --- Reports -----------------------------------------------------------------------------------


def _clean_text(value: str, label: str) -> str:
    text = (value or "").replace("\r\n", "\n")
    if len(text) > MAX_TEXT:
        raise ReadingError("too_long", _("%(field)s is too long.") % {"field": label})
    return text


def _writable(report: Report) -> None:
    if report.state == Report.State.FINAL:
        raise ReadingError(
            "report_final", _("A final report is never edited: write an addendum instead.")
        )


def _start_work(task: ReadingTask, now: datetime) -> None:
    """Renew the holder's claim; mark the task in progress on its first report."""
    task.claim_expires_at = now + claim_duration()
    fields = ["claim_expires_at"]
    if task.status == ReadingTask.Status.UNREAD:
        task.status = ReadingTask.Status.IN_PROGRESS
        fields.append("status")
        worklist_changed(task, "in_progress")
    task.save(update_fields=fields)


@transaction.atomic
def report_save(
    *,
    task: ReadingTask,
    user: Any,
    findings: str,
    impression: str,
    critical: bool = False,
    template: ReportTemplate | None = None,
) -> Report:
    """Create or update the study's report while it is a draft or preliminary."""
    _require_reporter(task, user)
    locked = _lock_task(task)
    now = timezone.now()
    _require_claim(locked, user, now)
    findings = _clean_text(findings, _("Findings"))
    impression = _clean_text(impression, _("Impression"))
    report = (
        Report.objects.select_for_update()
        .filter(study_id=locked.study_id, amends__isnull=True)
        .first()
    )
    if report is None:
        report = Report.objects.create(
            study=locked.study,
            task=locked,
            author=user,
            template=template,
            findings=findings,
            impression=impression,
            critical=critical,
        )
        action = "report.create"
    else:
        _writable(report)
        report.author = user
        report.findings = findings
        report.impression = impression
        report.critical = critical
        report.updated_at = now
        fields = ["author", "findings", "impression", "critical", "updated_at"]
        if template is not None:
            report.template = template
            fields.append("template")
        report.save(update_fields=fields)
        action = "report.update"
    report.study = locked.study
    _start_work(locked, now)
    _audit(action, user=user, task=locked, obj=report, state=report.state, critical=critical)
    if report.state != Report.State.DRAFT:
        _notify_critical_if_new(report, locked, now)
    return report


@transaction.atomic
def report_mark_preliminary(*, report: Report, user: Any) -> Report:
    """Release a draft as preliminary: the clinic may read it before it is signed."""
    locked = _lock_task(report.task)
    _require_reporter(locked, user)
    now = timezone.now()
    _require_claim(locked, user, now)
    report = Report.objects.select_for_update().get(pk=report.pk)
    if report.is_addendum:
        raise ReadingError("addendum_preliminary", _("An addendum goes from draft to final."))
    if report.state != Report.State.DRAFT:
        raise ReadingError(
            "not_draft",
            _("Only a draft can be marked preliminary (it is %(state)s).")
            % {"state": report.get_state_display()},
        )
    report.state = Report.State.PRELIMINARY
    report.preliminary_at = now
    report.updated_at = now
    report.save(update_fields=["state", "preliminary_at", "updated_at"])
    report.study = locked.study
    _start_work(locked, now)
    _audit("report.preliminary", user=user, task=locked, obj=report)
    worklist_changed(locked, "preliminary")
    _notify_critical_if_new(report, locked, now)
    return report


@transaction.atomic
def report_sign(*, report: Report, user: Any) -> Report:
    """Sign a draft or preliminary report (or an addendum): it becomes final for good."""
    locked = _lock_task(report.task)
    _require_reporter(locked, user)
    now = timezone.now()
    _require_claim(locked, user, now)
    report = (
        Report.objects.select_for_update(of=("self",)).select_related("amends").get(pk=report.pk)
    )
    _writable(report)
    if not (report.findings.strip() or report.impression.strip()):
        raise ReadingError("empty_report", _("Write the findings or the impression first."))
    report.study = locked.study
    report.state = Report.State.FINAL
    report.signed_by = user
    report.signed_at = now
    report.updated_at = now
    report.content_sha256, report.signature = signing.seal(report, signer_id=user.pk, signed_at=now)
    report.save(
        update_fields=[
            "state",
            "signed_by",
            "signed_at",
            "updated_at",
            "content_sha256",
            "signature",
        ]
    )
    if not report.is_addendum:
        locked.status = ReadingTask.Status.FINAL
        locked.finalized_at = now
        locked.save(update_fields=["status", "finalized_at"])
    # Signing ends the reading: the study goes back to the pool (for an addendum, say).
    _clear_claim(locked)
    _audit(
        "report.sign",
        user=user,
        task=locked,
        obj=report,
        content_sha256=report.content_sha256,
        addendum=report.is_addendum,
    )
    worklist_changed(locked, "final")
    _notify_critical_if_new(report, locked, now)
    report_id, user_id = report.pk, user.pk
    transaction.on_commit(lambda: _after_sign(report_id, user_id))
    return report


def _after_sign(report_id: int, user_id: int) -> None:
    # Imported here: the archive copy and the notifications pull in the PDF and ingest.
    from studies.reading.dicom_report import report_archive_after_sign
    from studies.reading.notify import notify_report_final

    notify_report_final(report_id)
    report_archive_after_sign(report_id, user_id)


@transaction.atomic
def report_addendum_save(
    *, report: Report, user: Any, findings: str, impression: str, critical: bool = False
) -> Report:
    """Start or edit the open addendum to a final report."""
    locked = _lock_task(report.task)
    _require_reporter(locked, user)
    now = timezone.now()
    _require_claim(locked, user, now)
    if report.is_addendum or report.state != Report.State.FINAL:
        raise ReadingError("not_final", _("Only a final report takes an addendum."))
    findings = _clean_text(findings, _("Findings"))
    impression = _clean_text(impression, _("Impression"))
    addendum = (
        Report.objects.select_for_update()
        .filter(amends=report, state=Report.State.DRAFT)
        .order_by("created_at")
        .first()
    )
    if addendum is None:
        addendum = Report.objects.create(
            study=locked.study,
            task=locked,
            amends=report,
            author=user,
            findings=findings,
            impression=impression,
            critical=critical,
        )
        action = "report.addendum_create"
    else:
        addendum.author = user
        addendum.findings = findings
        addendum.impression = impression
        addendum.critical = critical
        addendum.updated_at = now
        addendum.save(update_fields=["author", "findings", "impression", "critical", "updated_at"])
        action = "report.addendum_update"
    _start_work(locked, now)
    _audit(action, user=user, task=locked, obj=addendum, amends=str(report.uuid))
    return addendum


def report_verify(report: Report) -> bool:
    """Return whether a final report is unaltered since it was signed."""
    return report.state == Report.State.FINAL and signing.verify(report)


def _notify_critical_if_new(report: Report, task: ReadingTask, now: datetime) -> None:
    """Send a released critical result to the requesting doctors, once."""
    if not report.critical or report.critical_notified_at is not None:
        return
    report.critical_notified_at = now
    report.save(update_fields=["critical_notified_at"])
    _audit("report.critical_notify", user=None, task=task, obj=report)
    report_id = report.pk

    def send() -> None:
        from studies.reading.notify import notify_report_critical

        notify_report_critical(report_id)

    transaction.on_commit(send)


@transaction.atomic
def report_record_read(
    *, report: Report, user: Any, ip: str | None = None, fmt: str = "html"
) -> None:
    """Audit that ``user`` opened a report; the first opening by a requesting doctor of a
    critical result is when it was seen."""
    audit(
        action="report.read",
        actor=user,
        institution=report.task.reading_institution,
        object_type="report",
        object_id=report.uuid,
        study_uid=report.study.study_instance_uid,
        patient_ref=report.study.patient.uuid,
        ip=ip,
        detail={"format": fmt},
    )
    if not report.critical or report.state == Report.State.DRAFT:
        return
    is_requester = report.study.origin.memberships.filter(
        user=user, role__in=[Role.CLINIC_DOCTOR, Role.TECHNICIAN], is_active=True
    ).exists()
    if not is_requester:
        return
    seen = Report.objects.filter(pk=report.pk, critical_seen_at__isnull=True).update(
        critical_seen_at=timezone.now()
    )
    if seen:
        report.refresh_from_db(fields=["critical_seen_at"])
        audit(
            action="report.critical_seen",
            actor=user,
            institution=report.study.origin,
            object_type="report",
            object_id=report.uuid,
            study_uid=report.study.study_instance_uid,
            patient_ref=report.study.patient.uuid,
            ip=ip,
        )
