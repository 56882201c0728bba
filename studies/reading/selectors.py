"""Reads for reading: worklists, reports and a clinic's studies, filtered by permission.

Everything starts from ``regional_cloud.permissions.filter_by_permission``:
a worklist is the reading tasks of the studies the user may report
(``studies.report_study``, held through a reading pool's group or given to the
user by a referral or consultation); reports and studies are those the user
may view. ``access_*`` raise ``Http404`` both when an object does not exist
and when the user may not see it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import Http404

from hospitals.models import Institution, Role
from regional_cloud.permissions import filter_by_permission
from studies.models import ReadingTask, Report, Study
from studies.models.reading import Priority

REPORT_STUDY = "studies.report_study"
VIEW_STUDY = "studies.view_study"
OPEN_STATUSES = (ReadingTask.Status.UNREAD, ReadingTask.Status.IN_PROGRESS)
STATUS_FILTERS = ("open", "unread", "in_progress", "final", "all")


def reportable_studies(user: Any) -> QuerySet[Study]:
    """Return the studies ``user`` may report (their pools' and those shared with them)."""
    return filter_by_permission(Study.objects.all(), user, REPORT_STUDY)


def viewable_studies(user: Any) -> QuerySet[Study]:
    return filter_by_permission(Study.objects.all(), user, VIEW_STUDY)


def worklist_tasks(user: Any) -> QuerySet[ReadingTask]:
    """Return every reading task ``user`` may work on: emergency first, then oldest."""
    return (
        ReadingTask.objects.filter(study__in=reportable_studies(user).values("pk"))
        .select_related(
            "study", "study__patient", "study__origin", "reading_institution", "claimed_by"
        )
        .annotate(
            priority_rank=Case(
                When(priority=Priority.EMERGENCY, then=Value(0)),
                When(priority=Priority.URGENT, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by("priority_rank", "routed_at", "id")
    )


@dataclass
class WorklistFilters:
    """What a worklist request asks for; empty fields filter nothing."""

    priority: str = ""
    modality: str = ""
    origin: str = ""  # institution UUID
    status: str = "open"
    date_from: str = ""  # study date, YYYY-MM-DD or YYYYMMDD
    date_to: str = ""
    q: str = ""  # patient name or ID, or accession number
    ids: list[str] = field(default_factory=list)  # task UUIDs (a live update asks for one)

    @property
    def date_from_iso(self) -> str:
        return _iso(self.date_from)

    @property
    def date_to_iso(self) -> str:
        return _iso(self.date_to)

    def as_query(self) -> dict[str, str]:
        """Return the filters that are set, as query parameters (for the live updates)."""
        values = {
            "priority": self.priority,
            "modality": self.modality,
            "origin": self.origin,
            "status": self.status,
            "date_from": self.date_from,
            "date_to": self.date_to,
            "q": self.q,
        }
        return {key: value for key, value in values.items() if value}

    @classmethod
    def from_query(cls, params: Any) -> WorklistFilters:
        status = str(params.get("status") or "open")
        return cls(
            priority=str(params.get("priority") or "")[:16],
            modality=str(params.get("modality") or "").strip().upper()[:16],
            origin=str(params.get("origin") or "")[:36],
            status=status if status in STATUS_FILTERS else "open",
            date_from=_da(str(params.get("date_from") or "")),
            date_to=_da(str(params.get("date_to") or "")),
            q=str(params.get("q") or "").strip()[:64],
            ids=[str(v)[:36] for v in params.getlist("id")] if hasattr(params, "getlist") else [],
        )


def _iso(da: str) -> str:
    return f"{da[:4]}-{da[4:6]}-{da[6:]}" if da else ""


def _da(value: str) -> str:
    """Return a date as DICOM DA (YYYYMMDD), or "" when it is none."""
    digits = value.replace("-", "").strip()
    return digits if len(digits) == 8 and digits.isdigit() else ""


def _modality_q(modality: str) -> Q:
    # ModalitiesInStudy is "CT\\SR": match one whole value, not a substring of another.
    field_name = "study__modalities_in_study"
    return (
        Q(**{field_name: modality})
        | Q(**{f"{field_name}__startswith": modality + "\\"})
        | Q(**{f"{field_name}__endswith": "\\" + modality})
        | Q(**{f"{field_name}__contains": "\\" + modality + "\\"})
    )


def worklist(user: Any, filters: WorklistFilters | None = None) -> QuerySet[ReadingTask]:
    """Return ``user``'s worklist with ``filters`` applied."""
    filters = filters or WorklistFilters()
    tasks = worklist_tasks(user)
    if filters.status == "open":
        tasks = tasks.filter(status__in=OPEN_STATUSES)
    elif filters.status != "all":
        tasks = tasks.filter(status=filters.status)
    if filters.priority in Priority.values:
        tasks = tasks.filter(priority=filters.priority)
    if filters.modality:
        tasks = tasks.filter(_modality_q(filters.modality))
    if filters.origin:
        origin = _uuid_or_none(filters.origin)
        tasks = tasks.filter(study__origin__uuid=origin) if origin else tasks.none()
    if filters.date_from:
        tasks = tasks.filter(study__study_date__gte=filters.date_from)
    if filters.date_to:
        tasks = tasks.filter(study__study_date__lte=filters.date_to)
    if filters.q:
        tasks = tasks.filter(
            Q(study__patient__patient_name__icontains=filters.q)
            | Q(study__patient__patient_name__icontains=filters.q.replace(" ", "^"))
            | Q(study__patient__patient_id__iexact=filters.q)
            | Q(study__accession_number__iexact=filters.q)
        )
    if filters.ids:
        tasks = tasks.filter(uuid__in=[u for u in map(_uuid_or_none, filters.ids) if u])
    return tasks


def _uuid_or_none(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def worklist_origins(user: Any) -> QuerySet[Institution]:
    """Return the institutions whose studies are on ``user``'s worklist (for the filter)."""
    return Institution.objects.filter(
        pk__in=worklist_tasks(user).order_by().values("study__origin_id")
    ).order_by("name")


def access_task_by_study_uid(user: Any, study_uid: str) -> ReadingTask:
    """Return the reading task of a study ``user`` may report, else 404."""
    task = worklist_tasks(user).filter(study__study_instance_uid=study_uid).first()
    if task is None:
        raise Http404("no such study on your worklist")
    return task


def access_task_by_uuid(user: Any, task_uuid: uuid.UUID | str) -> ReadingTask:
    task = worklist_tasks(user).filter(uuid=task_uuid).first()
    if task is None:
        raise Http404("no such worklist item")
    return task


def specialist_institutions(user: Any) -> QuerySet[Institution]:
    """Return the active institutions where ``user`` is an active specialist."""
    if not getattr(user, "is_authenticated", False):
        return Institution.objects.none()
    return Institution.objects.filter(
        memberships__user=user,
        memberships__role=Role.SPECIALIST,
        memberships__is_active=True,
        is_active=True,
    ).distinct()


def is_specialist(user: Any) -> bool:
    return specialist_institutions(user).exists()


def specialist_institution_uuids(user: Any) -> list[str]:
    """Return the UUIDs of the institutions where ``user`` reads (their worklist groups)."""
    return [str(u) for u in specialist_institutions(user).values_list("uuid", flat=True)]


# --- Reports -------------------------------------------------------------------------------


def visible_reports(user: Any) -> QuerySet[Report]:
    """Return the reports ``user`` may read.

    Anyone who may view the study reads its preliminary and final reports;
    drafts only those who may report it.
    """
    viewable = viewable_studies(user).values("pk")
    reportable = reportable_studies(user).values("pk")
    return (
        Report.objects.filter(study__in=viewable)
        .filter(~Q(state=Report.State.DRAFT) | Q(study__in=reportable))
        .select_related(
            "study",
            "study__patient",
            "study__origin",
            "task",
            "task__reading_institution",
            "author",
            "signed_by",
            "amends",
        )
    )


def access_report(user: Any, report_uuid: uuid.UUID | str) -> Report:
    report = visible_reports(user).filter(uuid=report_uuid).first()
    if report is None:
        raise Http404("no such report")
    return report


def main_report(study: Study) -> Report | None:
    """Return the study's report (not an addendum), if one was started."""
    return Report.objects.filter(study=study, amends__isnull=True).first()


def report_addenda(report: Report, user: Any) -> list[Report]:
    """Return the addenda of ``report`` that ``user`` may read, oldest first."""
    return list(
        visible_reports(user).filter(amends=report).order_by("created_at", "id"),
    )


# --- A clinic's studies ----------------------------------------------------------------------


def my_studies(user: Any) -> QuerySet[Study]:
    """Return the studies of ``user``'s institutions that ``user`` may see, newest first."""
    institutions = Institution.objects.filter(
        memberships__user=user, memberships__is_active=True
    ).values("pk")
    return (
        viewable_studies(user)
        .filter(origin__in=institutions)
        .select_related("patient", "origin", "reading_task", "reading_task__reading_institution")
        .prefetch_related("reports")
        .order_by("-received_at", "-id")
    )


def report_status(study: Study) -> str:
    """Return a study's reading state for its clinic: none, waiting, in_progress,
    preliminary, final or critical (a released critical result)."""
    reports = list(study.reports.all())
    released = [r for r in reports if r.state != Report.State.DRAFT]
    if any(r.critical for r in released):
        return "critical"
    main = next((r for r in reports if r.amends_id is None), None)
    if main is not None and main.state in (Report.State.FINAL, Report.State.PRELIMINARY):
        return str(main.state)
    task = getattr(study, "reading_task", None)
    if task is None:
        return "none"
    if main is not None or task.status == ReadingTask.Status.IN_PROGRESS:
        return "in_progress"
    return "waiting"
