"""The network in Django's admin, for regional admins (staff users).

Additions and changes go through hospitals.services, as everywhere else, so an
institution made here has its role groups, a membership joins its group, an
edge gets its service user and token, and each write leaves an audit row.
Staff who are not superusers see only the regions they administer.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext_lazy as _

from hospitals.models import (
    Alliance,
    ApiToken,
    EdgeNode,
    Institution,
    Membership,
    Region,
    Role,
    Tier,
)
from hospitals.selectors import (
    administered_institutions,
    administered_regions,
    edge_nodes_visible_to,
)
from hospitals.services import (
    INSTITUTION_UPDATE_FIELDS,
    NetworkError,
    edge_node_create,
    edge_node_rotate_token,
    institution_create,
    institution_update,
    membership_grant,
    membership_revoke,
)
from regional_cloud.audit import audit


def adopt(obj: Model, created: Model) -> None:
    """Make the admin's unsaved ``obj`` stand for the row a service ``created``.

    The admin goes on to log and redirect to the object it built from the form,
    so that object must become the saved one.
    """
    for field in obj._meta.concrete_fields:
        setattr(obj, field.attname, getattr(created, field.attname))
    obj._state.adding = False
    obj._state.db = created._state.db


class ServiceAdmin(admin.ModelAdmin):
    """A model admin whose writes are services; a refused write shows its reason."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)
        except NetworkError as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Relations were written by the service; only inlines (none here) remain.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "min_cell_size"]
    search_fields = ["code", "name"]
    readonly_fields = ["uuid"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Region]:
        if request.user.is_superuser:
            return super().get_queryset(request)
        return administered_regions(request.user)

    def save_model(self, request: HttpRequest, obj: Region, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit(
            action="region.update" if change else "region.create",
            actor=request.user,
            object_type="region",
            object_id=obj.uuid,
            request=request,
            detail={"fields": sorted(form.changed_data)},
        )


@admin.register(Alliance)
class AllianceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "region"]
    list_filter = ["kind", "region"]
    search_fields = ["name"]
    readonly_fields = ["uuid"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Alliance]:
        queryset = super().get_queryset(request).select_related("region")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(region__in=administered_regions(request.user))

    def save_model(self, request: HttpRequest, obj: Alliance, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit(
            action="alliance.update" if change else "alliance.create",
            actor=request.user,
            object_type="alliance",
            object_id=obj.uuid,
            request=request,
            detail={"fields": sorted(form.changed_data)},
        )


class InstitutionForm(forms.ModelForm):
    class Meta:
        model = Institution
        fields = [
            "region",
            "code",
            "name",
            "name_en",
            "tier",
            "grade",
            "hub",
            "alliances",
            "hr_scope",
            "hr_valid_from",
            "hr_valid_until",
            "is_active",
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        hub = cleaned.get("hub")
        region = cleaned.get("region") or getattr(self.instance, "region", None)
        if hub is not None:
            if region is not None and hub.region_id != region.pk:
                self.add_error("hub", _("The reading hub must be in the same region."))
            if cleaned.get("tier") == Tier.HEALTH_BUREAU:
                self.add_error("hub", _("A health bureau has no reading hub."))
        return cleaned


@admin.register(Institution)
class InstitutionAdmin(ServiceAdmin):
    form = InstitutionForm
    list_display = ["code", "name", "tier", "grade", "region", "hub", "hr_scope", "is_active"]
    list_filter = ["region", "tier", "grade", "hr_scope", "is_active"]
    search_fields = ["code", "name", "name_en"]
    filter_horizontal = ["alliances"]
    fields = tuple(InstitutionForm.Meta.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # The code names the role groups; the region holds the patients' records.
        return ["uuid", "region", "code"] if obj is not None else ["uuid"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Institution]:
        queryset = super().get_queryset(request).select_related("region", "hub")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(region__in=administered_regions(request.user))

    def save_model(self, request: HttpRequest, obj: Institution, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            created = institution_create(
                region=data["region"],
                code=data["code"],
                name=data["name"],
                name_en=data.get("name_en", ""),
                tier=data["tier"],
                grade=data.get("grade", ""),
                hub=data.get("hub"),
                alliances=list(data.get("alliances") or []),
                hr_scope=data.get("hr_scope", ""),
                hr_valid_from=data.get("hr_valid_from"),
                hr_valid_until=data.get("hr_valid_until"),
                actor=request.user,
            )
            adopt(obj, created)
            return
        changed = {f: data[f] for f in form.changed_data if f in INSTITUTION_UPDATE_FIELDS}
        institution_update(
            institution=Institution.objects.get(pk=obj.pk),
            data=changed,
            alliances=list(data["alliances"]) if "alliances" in form.changed_data else None,
            actor=request.user,
        )


class MembershipAddForm(forms.ModelForm):
    role = forms.ChoiceField(
        label=_("role"), choices=[c for c in Role.choices if c[0] != Role.EDGE]
    )

    class Meta:
        model = Membership
        fields = ["user", "institution", "role"]

    def validate_unique(self) -> None:
        # Granting is idempotent and brings back a revoked membership: not a duplicate.
        return


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    list_display = ["user", "institution", "role", "is_active", "created_at"]
    list_filter = ["role", "is_active", "institution__region"]
    search_fields = ["user__username", "institution__code", "institution__name"]
    list_select_related = ["user", "institution"]
    actions = ["revoke_selected"]
    autocomplete_fields = ["user", "institution"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = MembershipAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["user", "institution", "role"]
        return ["uuid", "user", "institution", "role", "is_active", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A membership changes only by granting or revoking it.
        return [] if obj is None else self.get_fields(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Membership]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(institution__in=administered_institutions(request.user))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        if change:
            return
        data = form.cleaned_data
        granted = membership_grant(
            user=data["user"],
            institution=data["institution"],
            role=data["role"],
            actor=request.user,
        )
        adopt(obj, granted)

    @admin.action(description=_("Revoke the selected memberships"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        revoked = 0
        for membership in queryset.exclude(role=Role.EDGE).select_related("institution", "user"):
            membership_revoke(membership=membership, actor=request.user)
            revoked += 1
        self.message_user(request, _("%(count)d memberships revoked.") % {"count": revoked})


@admin.register(EdgeNode)
class EdgeNodeAdmin(ServiceAdmin):
    """Edges: created with a token shown once; health is read-only; no token hash shown."""

    list_display = [
        "name",
        "institution",
        "is_active",
        "last_contact_at",
        "backlog",
        "lag_seconds",
        "agent_version",
        "token_prefix",
    ]
    list_filter = ["is_active", "institution__region", "agent_version"]
    search_fields = ["name", "institution__code", "institution__name"]
    list_select_related = ["institution"]
    actions = ["rotate_token"]
    HEALTH_FIELDS = [
        "uuid",
        "institution",
        "name",
        "service_user",
        "is_active",
        "created_at",
        "token_prefix",
        "token_rotated_at",
        "last_contact_at",
        "backlog",
        "lag_seconds",
        "agent_version",
    ]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["institution", "name"] if obj is None else self.HEALTH_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else self.HEALTH_FIELDS

    def get_queryset(self, request: HttpRequest) -> QuerySet[EdgeNode]:
        if request.user.is_superuser:
            return super().get_queryset(request).select_related("institution")
        return edge_nodes_visible_to(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: EdgeNode, form: Any, change: bool) -> None:
        if change:
            return
        issued = edge_node_create(
            institution=form.cleaned_data["institution"],
            name=form.cleaned_data["name"],
            actor=request.user,
        )
        adopt(obj, issued.edge_node)
        self._show_token(request, issued.edge_node, issued.token)

    @admin.action(description=_("Issue a new token (the old one stops working)"))
    def rotate_token(self, request: HttpRequest, queryset: QuerySet[EdgeNode]) -> None:
        for edge_node in queryset.select_related("institution"):
            issued = edge_node_rotate_token(edge_node=edge_node, actor=request.user)
            self._show_token(request, edge_node, issued.token)

    def _show_token(self, request: HttpRequest, edge_node: EdgeNode, token: str) -> None:
        # Shown once, on the next page; only the hash stays in the database.
        message = _("Token of %(edge)s (shown only now, copy it into the edge agent): %(token)s")
        self.message_user(request, message % {"edge": edge_node, "token": token}, messages.WARNING)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Personal tokens, read-only: people make and revoke their own under /api/tokens/."""

    list_display = ["name", "user", "token_prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "token_prefix"]
    fields = ("uuid", "name", "user", "token_prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        queryset = super().get_queryset(request).select_related("user")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(user=request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
