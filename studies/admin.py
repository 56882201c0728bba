"""Reading data a regional admin edits: routing rules and report templates.

Staff who are not superusers see and edit only the rules of the regions they
administer, and may route only to institutions of those regions. Every change
is audited.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from hospitals.models import Institution
from hospitals.selectors import administered_regions
from regional_cloud.audit import audit
from studies.models import ReportTemplate, RoutingRule


class RoutingRuleForm(forms.ModelForm):
    class Meta:
        model = RoutingRule
        fields = [
            "region",
            "order",
            "modality",
            "origin",
            "priority",
            "reading_institution",
            "is_active",
            "note",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        region = data.get("region")
        if region is None:
            return data
        for field in ("origin", "reading_institution"):
            institution = data.get(field)
            if institution is not None and institution.region_id != region.pk:
                raise ValidationError({field: _("The institution must be in the rule's region.")})
        return data


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    form = RoutingRuleForm
    list_display = [
        "region",
        "order",
        "modality",
        "origin",
        "priority",
        "reading_institution",
        "is_active",
    ]
    list_filter = ["region", "is_active", "priority"]
    list_editable = ["is_active"]
    ordering = ["region", "order", "id"]
    readonly_fields = ["uuid"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[RoutingRule]:
        queryset = (
            super().get_queryset(request).select_related("region", "origin", "reading_institution")
        )
        if request.user.is_superuser:
            return queryset
        return queryset.filter(region__in=administered_regions(request.user))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            regions = administered_regions(request.user)
            if db_field.name == "region":
                kwargs["queryset"] = regions
            elif db_field.name in {"origin", "reading_institution"}:
                kwargs["queryset"] = Institution.objects.filter(region__in=regions)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: RoutingRule, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit(
            action="routing_rule.update" if change else "routing_rule.create",
            actor=request.user,
            object_type="routing_rule",
            object_id=obj.uuid,
            request=request,
            detail={"changed": sorted(form.changed_data)},
        )

    def delete_model(self, request: HttpRequest, obj: RoutingRule) -> None:
        audit(
            action="routing_rule.delete",
            actor=request.user,
            object_type="routing_rule",
            object_id=obj.uuid,
            request=request,
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[RoutingRule]) -> None:
        for rule in queryset:
            self.delete_model(request, rule)


@admin.register(ReportTemplate)
class ReportTemplateAdmin(admin.ModelAdmin):
    list_display = ["modality", "body_part", "name", "is_active"]
    list_filter = ["modality", "is_active"]
    search_fields = ["name", "findings", "impression"]
    readonly_fields = ["uuid"]

    def save_model(
        self, request: HttpRequest, obj: ReportTemplate, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        audit(
            action="report_template.update" if change else "report_template.create",
            actor=request.user,
            object_type="report_template",
            object_id=obj.uuid,
            request=request,
        )
