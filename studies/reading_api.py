"""``/api/worklist/``, ``/api/reports/``, ``/api/report-templates/``, ``/api/notifications/``.

The worklist's rows are the same as the page's (``studies.reading.rows``); a
live update asks for one row with ``?id=<task uuid>`` plus the page's filters,
so the permission filter and the filters apply to it. A refused transition
answers 409 with ``{"error": code, "detail": reason}`` (and ``holder`` when
another reader holds the study); an object the caller may not see answers 404.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hospitals.api.common import IsPerson, validated
from regional_cloud.audit import audit, client_ip
from regional_cloud.models import Notification
from regional_cloud.notifications import inbox, notification_mark_seen, unread_count
from studies.models import ReadingTask, Report, ReportTemplate
from studies.reading import selectors
from studies.reading.links import report_path, report_pdf_path
from studies.reading.rows import worklist_row
from studies.reading.services import (
    ClaimHeld,
    NotPermitted,
    ReadingError,
    display_name,
    reading_task_claim,
    reading_task_release,
    report_addendum_save,
    report_mark_preliminary,
    report_record_read,
    report_save,
    report_sign,
    report_verify,
)
from studies.reading.templates_seed import template_modality

LIST_LIMIT = 200

# --- Serializers (the schema of what the views return) -------------------------------------


class InstitutionRef(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    name = serializers.CharField()


class PatientOutput(serializers.Serializer[Any]):
    name = serializers.CharField()
    id = serializers.CharField()
    sex = serializers.CharField()
    sex_label = serializers.CharField()
    age = serializers.CharField()


class ClaimOutput(serializers.Serializer[Any]):
    holder = serializers.CharField(help_text="Who is reading the study now.")
    mine = serializers.BooleanField()
    expires_at = serializers.DateTimeField(allow_null=True)


class WorklistRowOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField(help_text="The reading task's UUID.")
    study_instance_uid = serializers.CharField()
    priority = serializers.ChoiceField(choices=["emergency", "urgent", "routine"])
    priority_label = serializers.CharField()
    status = serializers.ChoiceField(choices=ReadingTask.Status.values)
    status_label = serializers.CharField()
    routed_at = serializers.DateTimeField()
    waiting_minutes = serializers.IntegerField()
    origin = InstitutionRef()
    reading_institution = InstitutionRef()
    shared = serializers.BooleanField(help_text="Shared with you, not from your own pool.")
    modality = serializers.CharField()
    patient = PatientOutput()
    description = serializers.CharField()
    accession_number = serializers.CharField()
    study_date = serializers.CharField()
    claim = ClaimOutput(allow_null=True)
    read_url = serializers.CharField()
    claim_url = serializers.CharField(help_text="The page's claim form posts here.")
    viewer_url = serializers.CharField()


class WorklistOutput(serializers.Serializer[Any]):
    count = serializers.IntegerField(help_text="Rows matching the filters, on every page.")
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    results = WorklistRowOutput(many=True)


class ErrorOutput(serializers.Serializer[Any]):
    error = serializers.CharField()
    detail = serializers.CharField()
    holder = serializers.CharField(required=False)


class ReportOutput(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    study_instance_uid = serializers.CharField(source="study.study_instance_uid")
    amends = serializers.UUIDField(source="amends.uuid", allow_null=True, default=None)
    state = serializers.ChoiceField(choices=Report.State.values)
    findings = serializers.CharField()
    impression = serializers.CharField()
    critical = serializers.BooleanField()
    critical_notified_at = serializers.DateTimeField(allow_null=True)
    critical_seen_at = serializers.DateTimeField(allow_null=True)
    author = serializers.SerializerMethodField()
    signed_by = serializers.SerializerMethodField()
    signed_at = serializers.DateTimeField(allow_null=True)
    content_sha256 = serializers.CharField()
    signature_valid = serializers.SerializerMethodField()
    archived_sop_instance_uid = serializers.CharField()
    url = serializers.SerializerMethodField()
    pdf_url = serializers.SerializerMethodField()

    def get_author(self, report: Report) -> str:
        return display_name(report.author)

    def get_signed_by(self, report: Report) -> str:
        return display_name(report.signed_by)

    def get_signature_valid(self, report: Report) -> bool | None:
        return report_verify(report) if report.is_final else None

    def get_url(self, report: Report) -> str:
        return report_path(report.uuid)

    def get_pdf_url(self, report: Report) -> str:
        return report_pdf_path(report.uuid)


class ReportInput(serializers.Serializer[Any]):
    findings = serializers.CharField(allow_blank=True, default="", max_length=20_000)
    impression = serializers.CharField(allow_blank=True, default="", max_length=20_000)
    critical = serializers.BooleanField(default=False)
    template = serializers.UUIDField(required=False, allow_null=True)
    action = serializers.ChoiceField(choices=["save", "preliminary", "sign"], default="save")


class AddendumInput(serializers.Serializer[Any]):
    findings = serializers.CharField(allow_blank=True, default="", max_length=20_000)
    impression = serializers.CharField(allow_blank=True, default="", max_length=20_000)
    critical = serializers.BooleanField(default=False)
    action = serializers.ChoiceField(choices=["save", "sign"], default="save")


class ReportTemplateOutput(serializers.ModelSerializer[ReportTemplate]):
    class Meta:
        model = ReportTemplate
        fields = ["uuid", "modality", "body_part", "name", "findings", "impression"]


class NotificationOutput(serializers.ModelSerializer[Notification]):
    class Meta:
        model = Notification
        fields = ["uuid", "kind", "title", "body", "url", "created_at", "seen_at"]


class NotificationListOutput(serializers.Serializer[Any]):
    unread = serializers.IntegerField()
    results = NotificationOutput(many=True)


# --- Helpers -------------------------------------------------------------------------------


def _conflict(error: ReadingError) -> Response:
    if isinstance(error, NotPermitted):
        raise Http404("no such study")
    body = {"error": error.code, "detail": error.message}
    if isinstance(error, ClaimHeld):
        body["holder"] = error.holder
    return Response(body, status=status.HTTP_409_CONFLICT)


def _row(request: Request, task: ReadingTask) -> dict[str, Any]:
    own = set(selectors.specialist_institutions(request.user).values_list("pk", flat=True))
    task = selectors.access_task_by_uuid(request.user, task.uuid)
    return worklist_row(task, user=request.user, own_pools=own)


FILTER_PARAMETERS = [
    OpenApiParameter("priority", str, enum=["emergency", "urgent", "routine"]),
    OpenApiParameter("modality", str, description="CT, MR, DX, US, ECG..."),
    OpenApiParameter("origin", str, description="The origin institution's UUID."),
    OpenApiParameter("status", str, enum=list(selectors.STATUS_FILTERS)),
    OpenApiParameter("date_from", str, description="Study date from (YYYY-MM-DD)."),
    OpenApiParameter("date_to", str, description="Study date to (YYYY-MM-DD)."),
    OpenApiParameter("q", str, description="Patient name or ID, or accession number."),
    OpenApiParameter("id", str, many=True, description="Only these reading tasks (UUIDs)."),
    OpenApiParameter("page", int, description="Page number, from 1 (200 rows a page)."),
]

# --- Worklist ------------------------------------------------------------------------------


class WorklistView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(
        operation_id="worklist_list", parameters=FILTER_PARAMETERS, responses={200: WorklistOutput}
    )
    def get(self, request: Request) -> Response:
        """Your worklist: emergency first, then the longest waiting, 200 rows a page."""
        filters = selectors.WorklistFilters.from_query(request.query_params)
        own = set(selectors.specialist_institutions(request.user).values_list("pk", flat=True))
        tasks = selectors.worklist(request.user, filters)
        page = Paginator(tasks, LIST_LIMIT).get_page(request.query_params.get("page"))
        now = timezone.now()
        rows = [worklist_row(task, user=request.user, own_pools=own, now=now) for task in page]
        audit(
            action="worklist.read",
            actor=request.user,
            request=request,
            detail={"rows": len(rows), "page": page.number},
        )
        return Response(
            {
                "count": page.paginator.count,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "results": rows,
            }
        )


class WorklistItemView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(operation_id="worklist_retrieve", responses={200: WorklistRowOutput})
    def get(self, request: Request, task_uuid: Any) -> Response:
        """One worklist row."""
        task = selectors.access_task_by_uuid(request.user, task_uuid)
        return Response(_row(request, task))


class ClaimView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(request=None, responses={200: WorklistRowOutput, 409: ErrorOutput})
    def post(self, request: Request, task_uuid: Any) -> Response:
        """Claim the study: one reader at a time; 409 names who holds it."""
        task = selectors.access_task_by_uuid(request.user, task_uuid)
        try:
            reading_task_claim(task=task, user=request.user)
        except ReadingError as error:
            return _conflict(error)
        return Response(_row(request, task))


class ReleaseView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(request=None, responses={200: WorklistRowOutput, 409: ErrorOutput})
    def post(self, request: Request, task_uuid: Any) -> Response:
        """Give the study back to the pool."""
        task = selectors.access_task_by_uuid(request.user, task_uuid)
        try:
            reading_task_release(task=task, user=request.user)
        except ReadingError as error:
            return _conflict(error)
        return Response(_row(request, task))


class TaskReportView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(request=ReportInput, responses={200: ReportOutput, 409: ErrorOutput})
    def post(self, request: Request, task_uuid: Any) -> Response:
        """Save the study's report; ``action`` may also release it or sign it."""
        task = selectors.access_task_by_uuid(request.user, task_uuid)
        data = validated(ReportInput, request.data)
        template = None
        if data.get("template"):
            template = ReportTemplate.objects.filter(uuid=data["template"]).first()
        try:
            with transaction.atomic():
                report = report_save(
                    task=task,
                    user=request.user,
                    findings=data["findings"],
                    impression=data["impression"],
                    critical=data["critical"],
                    template=template,
                )
                if data["action"] == "preliminary":
                    report = report_mark_preliminary(report=report, user=request.user)
                elif data["action"] == "sign":
                    report = report_sign(report=report, user=request.user)
        except ReadingError as error:
            return _conflict(error)
        return Response(ReportOutput(selectors.access_report(request.user, report.uuid)).data)


class TaskAddendumView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(request=AddendumInput, responses={200: ReportOutput, 409: ErrorOutput})
    def post(self, request: Request, task_uuid: Any) -> Response:
        """Write (and with ``action: sign`` sign) the addendum to the final report."""
        task = selectors.access_task_by_uuid(request.user, task_uuid)
        data = validated(AddendumInput, request.data)
        report = selectors.main_report(task.study)
        try:
            if report is None:
                raise ReadingError("no_report", "The study has no report yet.")
            with transaction.atomic():
                addendum = report_addendum_save(
                    report=report,
                    user=request.user,
                    findings=data["findings"],
                    impression=data["impression"],
                    critical=data["critical"],
                )
                if data["action"] == "sign":
                    addendum = report_sign(report=addendum, user=request.user)
        except ReadingError as error:
            return _conflict(error)
        return Response(ReportOutput(selectors.access_report(request.user, addendum.uuid)).data)


# --- Reports -------------------------------------------------------------------------------


class ReportView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(responses={200: ReportOutput})
    def get(self, request: Request, report_uuid: Any) -> Response:
        """A report (drafts only to those who may report the study). Reading it is audited."""
        report = selectors.access_report(request.user, report_uuid)
        report_record_read(report=report, user=request.user, ip=client_ip(request), fmt="json")
        return Response(ReportOutput(report).data)


class ReportTemplateListView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(
        parameters=[OpenApiParameter("modality", str)],
        responses={200: ReportTemplateOutput(many=True)},
    )
    def get(self, request: Request) -> Response:
        """The report templates, for one modality if asked."""
        templates = ReportTemplate.objects.filter(is_active=True)
        modality = str(request.query_params.get("modality") or "")
        if modality:
            templates = templates.filter(modality=template_modality(modality))
        return Response(ReportTemplateOutput(templates, many=True).data)


# --- Notifications -------------------------------------------------------------------------


class NotificationListView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(responses={200: NotificationListOutput})
    def get(self, request: Request) -> Response:
        """Your 50 newest notifications and how many are unseen."""
        items = inbox(request.user)[:50]
        return Response(
            {
                "unread": unread_count(request.user),
                "results": NotificationOutput(items, many=True).data,
            }
        )


class NotificationSeenView(APIView):
    permission_classes = [IsPerson]

    @extend_schema(request=None, responses={200: NotificationOutput})
    def post(self, request: Request, notification_uuid: Any) -> Response:
        """Mark one of your notifications seen."""
        notification = inbox(request.user).filter(uuid=notification_uuid).first()
        if notification is None:
            raise Http404("no such notification")
        notification_mark_seen(notification=notification, user=request.user)
        return Response(NotificationOutput(notification).data)


urlpatterns = [
    path("worklist/", WorklistView.as_view(), name="api-worklist"),
    path("worklist/<uuid:task_uuid>/", WorklistItemView.as_view(), name="api-worklist-item"),
    path("worklist/<uuid:task_uuid>/claim/", ClaimView.as_view(), name="api-worklist-claim"),
    path("worklist/<uuid:task_uuid>/release/", ReleaseView.as_view(), name="api-worklist-release"),
    path("worklist/<uuid:task_uuid>/report/", TaskReportView.as_view(), name="api-worklist-report"),
    path(
        "worklist/<uuid:task_uuid>/addendum/",
        TaskAddendumView.as_view(),
        name="api-worklist-addendum",
    ),
    path("reports/<uuid:report_uuid>/", ReportView.as_view(), name="api-report"),
    path("report-templates/", ReportTemplateListView.as_view(), name="api-report-templates"),
    path("notifications/", NotificationListView.as_view(), name="api-notifications"),
    path(
        "notifications/<uuid:notification_uuid>/seen/",
        NotificationSeenView.as_view(),
        name="api-notification-seen",
    ),
]
