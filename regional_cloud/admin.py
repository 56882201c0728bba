"""The audit trail in the admin: read-only, and reading it is itself audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent

AUDIT_FIELDS = (
    "occurred_at",
    "actor",
    "actor_username",
    "institution_uuid",
    "institution_name",
    "action",
    "object_type",
    "object_id",
    "patient_ref",
    "study_uid",
    "outcome",
    "ip_address",
    "detail",
)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "actor_username",
        "institution_name",
        "action",
        "object_type",
        "object_id",
        "study_uid",
        "outcome",
        "ip_address",
    )
    list_filter = ("action", "outcome", ("occurred_at", admin.DateFieldListFilter))
    search_fields = ("action", "object_id", "study_uid")
    date_hierarchy = "occurred_at"
    fields = AUDIT_FIELDS
    readonly_fields = AUDIT_FIELDS
    actions = None
    show_full_result_count = False  # a count(*) over millions of rows on every page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            # Which filters were used, not their values: a search term may be a name.
            audit(
                action="audit.read",
                actor=request.user,
                object_type="audit_event",
                request=request,
                detail={"view": "list", "parameters": sorted(request.GET.keys())},
            )
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            audit(
                action="audit.read",
                actor=request.user,
                object_type="audit_event",
                object_id=object_id,
                request=request,
                detail={"view": "detail"},
            )
        return response
