"""Reading pages: the worklist, the reading page with its report editor, reports and
their PDFs, a clinic's studies and the notifications.

Every study, task and report is fetched through ``studies.reading.selectors``,
so another institution's object answers 404, never 403. Writes go through
``studies.reading.services``; a refused transition re-renders the reading page
with status 409 and the reason. Opening a report or its PDF is audited.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from hospitals.models import Membership, Role
from regional_cloud.audit import audit, client_ip
from regional_cloud.notifications import (
    inbox,
    notification_mark_seen,
    notifications_mark_seen_for_url,
)
from studies.models import ReadingTask, Report, ReportTemplate
from studies.models.reading import Priority
from studies.reading import selectors
from studies.reading.display import date_label, patient_age, person_name, sex_label
from studies.reading.links import read_path, report_path, viewer_path
from studies.reading.pdf import hr_mark, render_report_pdf
from studies.reading.rows import waiting_label, worklist_row
from studies.reading.services import (
    NotPermitted,
    ReadingError,
    display_name,
    reading_task_claim,
    reading_task_raise_priority,
    reading_task_release,
    report_addendum_save,
    report_mark_preliminary,
    report_record_read,
    report_save,
    report_sign,
    report_verify,
)
from studies.reading.templates_seed import template_modality

WORKLIST_LIMIT = 200
MODALITY_CHOICES = ["CT", "MR", "DX", "CR", "US", "ECG", "MG", "XA", "NM"]


# --- Worklist ------------------------------------------------------------------------------


@login_required
def worklist_page(request: HttpRequest) -> HttpResponse:
    """The specialist's worklist: their pools' unread studies and those shared with them."""
    user = request.user
    own_pools = set(selectors.specialist_institutions(user).values_list("pk", flat=True))
    if not own_pools:
        raise PermissionDenied(_("The worklist is for specialists."))
    filters = selectors.WorklistFilters.from_query(request.GET)
    now = timezone.now()
    # Pages of WORKLIST_LIMIT rows in the worklist's order (emergency, then waiting, then id).
    page = Paginator(selectors.worklist(user, filters), WORKLIST_LIMIT).get_page(
        request.GET.get("page")
    )
    rows = [worklist_row(task, user=user, own_pools=own_pools, now=now) for task in page]
    for row in rows:
        row["waiting_label"] = waiting_label(row["waiting_minutes"])
    audit(
        action="worklist.read",
        actor=user,
        request=request,
        detail={"rows": len(rows), "page": page.number},
    )
    filter_query = filters.as_query()
    return render(
        request,
        "reading/worklist.html",
        {
            "rows": rows,
            "filters": filters,
            "origins": selectors.worklist_origins(user),
            "priorities": Priority.choices,
            "statuses": [(key, str(label)) for key, label in _status_labels().items()],
            "modalities": MODALITY_CHOICES,
            "page": page,
            # The filters kept in the pager's links.
            "page_query": urlencode(filter_query) + "&" if filter_query else "",
            "filter_query": filter_query,
            "i18n": _worklist_i18n(),
        },
    )


def _worklist_i18n() -> dict[str, str]:
    """Return the words the live worklist script writes into new rows."""
    return {
        "reading": _("%(name)s is reading"),
        "mine": _("You are reading"),
        "open": _("Open"),
        "images": _("Images"),
        "claim": _("Claim"),
        "shared": _("Shared with you"),
        "min": _("%(m)s min"),
        "hm": _("%(h)s h %(m)s min"),
        "dh": _("%(d)s d %(h)s h"),
        "count": _("%(n)s studies"),
    }


def _status_labels() -> dict[str, str]:
    # Built per request so the labels follow the active language.
    return {
        "open": _("Open (unread and in progress)"),
        "unread": _("Unread"),
        "in_progress": _("Being reported"),
        "final": _("Final"),
        "all": _("All"),
    }


# --- Reading page ------------------------------------------------------------------------


def _study_facts(task: ReadingTask) -> dict[str, str]:
    study = task.study
    patient = study.patient
    return {
        "name": person_name(patient.patient_name),
        "patient_id": patient.patient_id,
        "sex": sex_label(patient.patient_sex),
        "age": patient_age(patient.patient_birth_date, study.study_date),
        "study_date": date_label(study.study_date),
        "modality": "/".join(m for m in study.modalities if m != "DOC"),
        "referring": person_name(study.referring_physician_name),
    }


def _render_read(
    request: HttpRequest,
    task: ReadingTask,
    *,
    error: ReadingError | None = None,
    posted: dict[str, Any] | None = None,
) -> HttpResponse:
    user = request.user
    study = task.study
    now = timezone.now()
    report = selectors.main_report(study)
    addenda = selectors.report_addenda(report, user) if report else []
    open_addendum = next((a for a in addenda if a.state == Report.State.DRAFT), None)
    modalities = {template_modality(m) for m in study.modalities}
    templates = list(ReportTemplate.objects.filter(is_active=True, modality__in=modalities))
    chosen = None
    if request.method == "GET" and request.GET.get("template"):
        chosen = next((t for t in templates if str(t.uuid) == request.GET["template"]), None)
    editable = report is None or report.state != Report.State.FINAL
    form = {
        "findings": report.findings if report else "",
        "impression": report.impression if report else "",
        "critical": report.critical if report else False,
        "template": "",
    }
    if chosen is not None and editable:
        form.update(findings=chosen.findings, impression=chosen.impression, template=chosen.uuid)
    if posted and editable:
        form.update(posted)
    addendum_form = {
        "findings": open_addendum.findings if open_addendum else "",
        "impression": open_addendum.impression if open_addendum else "",
        "critical": open_addendum.critical if open_addendum else False,
    }
    if posted and not editable:
        addendum_form.update(posted)
    context = {
        "task": task,
        "study": study,
        "facts": _study_facts(task),
        "report": report,
        "addenda": addenda,
        "open_addendum": open_addendum,
        "templates": templates,
        "template_texts": {
            str(t.uuid): {"findings": t.findings, "impression": t.impression} for t in templates
        },
        "form": form,
        "addendum_form": addendum_form,
        "editable": editable,
        "holding": task.claim_active(now) and task.claimed_by_id == user.pk,
        "held_by": display_name(task.claimed_by) if task.claim_active(now) else "",
        "claim_expires_at": task.claim_expires_at if task.claim_active(now) else None,
        "viewer_url": viewer_path(study.study_instance_uid),
        "hr": hr_mark(report) if report else None,
        "verified": report_verify(report) if report and report.is_final else None,
        "error": error,
    }
    return render(request, "reading/read.html", context, status=error.status if error else 200)


@login_required
def read_page(request: HttpRequest, study_uid: str) -> HttpResponse:
    """A study on the worklist: its facts, the claim, the report editor and its addenda."""
    task = selectors.access_task_by_study_uid(request.user, study_uid)
    audit(
        action="reading.open",
        actor=request.user,
        institution=task.reading_institution,
        object_type="reading_task",
        object_id=task.uuid,
        study_uid=task.study.study_instance_uid,
        patient_ref=task.study.patient.uuid,
        request=request,
    )
    return _render_read(request, task)


def _refused(request: HttpRequest, task: ReadingTask, error: ReadingError, **kw: Any) -> Any:
    if isinstance(error, NotPermitted):
        raise Http404("no such study")
    task.refresh_from_db()
    return _render_read(request, task, error=error, **kw)


@login_required
@require_POST
def read_claim(request: HttpRequest, study_uid: str) -> HttpResponse:
    task = selectors.access_task_by_study_uid(request.user, study_uid)
    try:
        reading_task_claim(task=task, user=request.user)
    except ReadingError as error:
        return _refused(request, task, error)
    return redirect(read_path(study_uid))


@login_required
@require_POST
def read_release(request: HttpRequest, study_uid: str) -> HttpResponse:
    task = selectors.access_task_by_study_uid(request.user, study_uid)
    try:
        reading_task_release(task=task, user=request.user)
    except ReadingError as error:
        return _refused(request, task, error)
    messages.info(request, _("You gave the study back to the pool."))
    return redirect("worklist")


def _posted_report(request: HttpRequest) -> dict[str, Any]:
    return {
        "findings": str(request.POST.get("findings", "")),
        "impression": str(request.POST.get("impression", "")),
        "critical": request.POST.get("critical") in {"on", "1", "true"},
    }


@login_required
@require_POST
def read_report(request: HttpRequest, study_uid: str) -> HttpResponse:
    """Save the report, and release it as preliminary or sign it (``action``)."""
    task = selectors.access_task_by_study_uid(request.user, study_uid)
    action = request.POST.get("action", "save")
    posted = _posted_report(request)
    template = None
    if request.POST.get("template"):
        template_uuid = _uuid(request.POST["template"])
        if template_uuid:
            template = ReportTemplate.objects.filter(uuid=template_uuid).first()
    try:
        with transaction.atomic():
            report = report_save(task=task, user=request.user, template=template, **posted)
            if action == "preliminary":
                report_mark_preliminary(report=report, user=request.user)
            elif action == "sign":
                report_sign(report=report, user=request.user)
    except ReadingError as error:
        return _refused(request, task, error, posted=posted)
    notes = {
        "preliminary": _("The report is released as preliminary."),
        "sign": _("The report is signed and final."),
    }
    messages.success(request, notes.get(action, _("Draft saved.")))
    if action == "sign":
        return redirect("worklist")
    return redirect(read_path(study_uid))


@login_required
@require_POST
def read_addendum(request: HttpRequest, study_uid: str) -> HttpResponse:
    """Write or sign the addendum to the study's final report."""
    task = selectors.access_task_by_study_uid(request.user, study_uid)
    report = selectors.main_report(task.study)
    posted = _posted_report(request)
    try:
        if report is None:
            raise ReadingError("no_report", _("The study has no report yet."))
        with transaction.atomic():
            addendum = report_addendum_save(report=report, user=request.user, **posted)
            if request.POST.get("action") == "sign":
                report_sign(report=addendum, user=request.user)
    except ReadingError as error:
        return _refused(request, task, error, posted=posted)
    messages.success(
        request,
        _("The addendum is signed.") if request.POST.get("action") == "sign" else _("Draft saved."),
    )
    return redirect(read_path(study_uid))


def _uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


# --- Reports -------------------------------------------------------------------------------


@login_required
def report_detail(request: HttpRequest, report_uuid: Any) -> HttpResponse:
    """A report with its addenda, readable by everyone who may see the study."""
    report = selectors.access_report(request.user, report_uuid)
    if report.amends is not None:
        return redirect(f"{report_path(report.amends.uuid)}#addendum-{report.uuid}")
    addenda = selectors.report_addenda(report, request.user)
    for item in [report, *addenda]:
        report_record_read(report=item, user=request.user, ip=client_ip(request), fmt="html")
    notifications_mark_seen_for_url(user=request.user, url=report_path(report.uuid))
    study = report.study
    task = report.task
    task.study = study
    return render(
        request,
        "reading/report_detail.html",
        {
            "report": report,
            "addenda": addenda,
            "study": study,
            "facts": _study_facts(task),
            "reading_institution": task.reading_institution,
            "hr": hr_mark(report),
            "verified": report_verify(report) if report.is_final else None,
            "viewer_url": viewer_path(study.study_instance_uid),
            "can_report": selectors.reportable_studies(request.user).filter(pk=study.pk).exists(),
        },
    )


@login_required
def report_pdf(request: HttpRequest, report_uuid: Any) -> HttpResponse:
    """The report as a PDF (with its addenda). The file name carries no patient data."""
    report = selectors.access_report(request.user, report_uuid)
    report_record_read(report=report, user=request.user, ip=client_ip(request), fmt="pdf")
    pdf = render_report_pdf(report)
    response = HttpResponse(pdf, content_type="application/pdf")
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="report-{report.uuid}.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- A clinic's studies --------------------------------------------------------------------


@login_required
def my_studies_page(request: HttpRequest) -> HttpResponse:
    """My institution's studies with their report status, report and PDF."""
    user = request.user
    page = Paginator(selectors.my_studies(user), 50).get_page(request.GET.get("page"))
    clinic_of = set(
        Membership.objects.filter(
            user_id=user.pk or 0, role=Role.CLINIC_DOCTOR, is_active=True
        ).values_list("institution_id", flat=True)
    )
    rows = []
    for study in page:
        status = selectors.report_status(study)
        reports = [r for r in study.reports.all() if r.state != Report.State.DRAFT]
        main = next((r for r in reports if r.amends_id is None), None)
        task = getattr(study, "reading_task", None)
        rows.append(
            {
                "study": study,
                "name": person_name(study.patient.patient_name),
                "sex": sex_label(study.patient.patient_sex),
                "age": patient_age(study.patient.patient_birth_date, study.study_date),
                "study_date": date_label(study.study_date),
                "modality": "/".join(m for m in study.modalities if m != "DOC"),
                "status": status,
                "status_label": _label(status),
                "report": main,
                "task": task,
                "critical_unseen": any(r.critical and not r.critical_seen_at for r in reports),
                "can_raise": task is not None
                and task.status != ReadingTask.Status.FINAL
                and study.origin_id in clinic_of
                and task.priority != Priority.EMERGENCY,
                "viewer_url": viewer_path(study.study_instance_uid),
            }
        )
    audit(action="study.list", actor=user, request=request, detail={"rows": len(rows)})
    return render(
        request,
        "reading/my_studies.html",
        {"rows": rows, "page": page, "priorities": Priority.choices},
    )


def _label(status: str) -> str:
    labels = {
        "none": _("Not routed"),
        "waiting": _("Waiting to be read"),
        "in_progress": _("Being reported"),
        "preliminary": _("Preliminary report"),
        "final": _("Final report"),
        "critical": _("Critical result"),
    }
    return labels.get(status, status)


@login_required
@require_POST
def raise_priority(request: HttpRequest, study_uid: str) -> HttpResponse:
    """A clinic doctor asks for a study to be read sooner."""
    study = get_object_or_404(selectors.my_studies(request.user), study_instance_uid=study_uid)
    task = ReadingTask.objects.filter(study=study).select_related("study").first()
    if task is None:
        raise Http404("the study is not routed")
    try:
        reading_task_raise_priority(
            task=task, user=request.user, priority=str(request.POST.get("priority", ""))
        )
    except NotPermitted as error:
        raise Http404("no such study") from error
    except ReadingError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The reading pool sees the new priority."))
    return redirect("my-studies")


# --- Notifications ---------------------------------------------------------------------------


@login_required
def notifications_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        inbox(request.user).filter(seen_at__isnull=True).update(seen_at=timezone.now())
        return redirect("notifications")
    return render(
        request, "reading/notifications.html", {"notifications": inbox(request.user)[:100]}
    )


@login_required
def notification_open(request: HttpRequest, notification_uuid: Any) -> HttpResponse:
    """Mark a notification seen and follow its link (only ever to this site)."""
    notification = get_object_or_404(inbox(request.user), uuid=notification_uuid)
    notification_mark_seen(notification=notification, user=request.user)
    url = notification.url or "/"
    if not url.startswith("/") or not url_has_allowed_host_and_scheme(url, allowed_hosts=None):
        url = "/"
    return HttpResponseRedirect(url)


urlpatterns = [
    path("worklist/", worklist_page, name="worklist"),
    path("read/<str:study_uid>/", read_page, name="reading-read"),
    path("read/<str:study_uid>/claim/", read_claim, name="reading-claim"),
    path("read/<str:study_uid>/release/", read_release, name="reading-release"),
    path("read/<str:study_uid>/report/", read_report, name="reading-report"),
    path("read/<str:study_uid>/addendum/", read_addendum, name="reading-addendum"),
    path("reports/<uuid:report_uuid>/", report_detail, name="report-detail"),
    path("reports/<uuid:report_uuid>/pdf/", report_pdf, name="report-pdf"),
    path("my-studies/", my_studies_page, name="my-studies"),
    path("my-studies/<str:study_uid>/priority/", raise_priority, name="my-studies-priority"),
    path("notifications/", notifications_page, name="notifications"),
    path(
        "notifications/<uuid:notification_uuid>/",
        notification_open,
        name="notification-open",
    ),
]
