"""A region's referral and recognition rules in Django's admin: data the regional admin edits.

Referral timing (``ReferralPolicy``), recognition rules with their per-modality
validity windows, and exam prices are edited here; each change leaves an audit
row. Referrals, QC results and recognition decisions are shown read-only and by
reference (no patient names): they change only through the workflow. Staff who
are not superusers see only the regions they administer.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from hospitals.selectors import administered_regions
from referrals.models import (
    ExamPrice,
    ModalityWindow,
    QualityStatus,
    RecognitionDecision,
    RecognitionRule,
    Referral,
    ReferralEvent,
    ReferralPolicy,
)
from regional_cloud.audit import audit


class RegionScopedAdmin(admin.ModelAdmin):
    """Rows of the regions the staff user administers; writes audited."""

    region_path = "region"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows = super().get_queryset(request)
        if request.user.is_superuser:
            return rows
        return rows.filter(**{f"{self.region_path}__in": administered_regions(request.user)})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "region" and not request.user.is_superuser:
            kwargs["queryset"] = administered_regions(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit(
            action=f"{obj._meta.model_name}.{'change' if change else 'create'}",
            actor=request.user,
            object_type=str(obj._meta.model_name),
            object_id=obj.pk,
            request=request,
            detail={"changed": list(form.changed_data)},
        )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        audit(
            action=f"{obj._meta.model_name}.delete",
            actor=request.user,
            object_type=str(obj._meta.model_name),
            object_id=obj.pk,
            request=request,
        )
        super().delete_model(request, obj)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReferralPolicy)
class ReferralPolicyAdmin(RegionScopedAdmin):
    list_display = ["region", "urgency", "answer_within_minutes", "lookback_days", "grace_hours"]
    list_filter = ["urgency"]


class ModalityWindowInline(admin.TabularInline):
    model = ModalityWindow
    extra = 1


@admin.register(RecognitionRule)
class RecognitionRuleAdmin(RegionScopedAdmin):
    list_display = [
        "region",
        "same_level",
        "lower_accepts_higher",
        "within_alliance",
        "required_hr_scope",
        "unknown_quality_passes",
        "updated_at",
    ]
    readonly_fields = ["updated_at"]
    inlines = [ModalityWindowInline]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)


@admin.register(ExamPrice)
class ExamPriceAdmin(RegionScopedAdmin):
    list_display = ["region", "modality", "body_part", "price_yuan"]
    list_filter = ["modality"]
    search_fields = ["modality", "body_part"]


class ReferralEventInline(admin.TabularInline):
    model = ReferralEvent
    fields = readonly_fields = ("at", "actor", "kind", "from_state", "to_state")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin, RegionScopedAdmin):
    """Referrals by reference: the admin never shows who the patient is."""

    region_path = "from_institution__region"
    list_display = [
        "uuid",
        "direction",
        "urgency",
        "from_institution",
        "to_institution",
        "state",
        "created_at",
    ]
    list_filter = ["state", "direction", "urgency"]
    fields = readonly_fields = (
        "uuid",
        "direction",
        "urgency",
        "from_institution",
        "to_institution",
        "state",
        "created_at",
        "submitted_at",
        "answer_due_at",
        "accepted_at",
        "closed_at",
    )
    inlines = [ReferralEventInline]


@admin.register(QualityStatus)
class QualityStatusAdmin(ReadOnlyAdmin, RegionScopedAdmin):
    region_path = "study__origin__region"
    list_display = ["study", "status", "set_by_institution", "set_at"]
    list_filter = ["status"]
    fields = readonly_fields = ("study", "status", "set_by", "set_by_institution", "set_at", "note")


@admin.register(RecognitionDecision)
class RecognitionDecisionAdmin(ReadOnlyAdmin, RegionScopedAdmin):
    region_path = "institution__region"
    list_display = ["uuid", "study", "institution", "decision", "saving_yuan", "decided_at"]
    list_filter = ["decision"]
    fields = readonly_fields = (
        "uuid",
        "study",
        "institution",
        "decided_by",
        "decision",
        "reasons",
        "other_text",
        "repeat_study",
        "saving_yuan",
        "evaluation",
        "decided_at",
    )
