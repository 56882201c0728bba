"""Pages of the network: sign-in, a home page per role, people and edge management.

Every management page fetches its institution through
``administered_institutions(user)``, so an outsider gets 404, never a hint
that the object exists. Writes go through ``hospitals.services``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Sum, Value, When
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from hospitals.forms import (
    EdgeNodeCreateForm,
    LoginForm,
    MemberAddForm,
    PasswordChangeForm,
    role_choices,
)
from hospitals.models import EdgeNode, Institution, Membership, Role, Tier
from hospitals.selectors import (
    administered_institutions,
    edge_nodes_visible_to,
    grantable_roles,
    institutions_for_role,
    primary_membership,
)
from hospitals.services import (
    IssuedEdgeToken,
    NetworkError,
    edge_node_create,
    edge_node_rotate_token,
    membership_grant,
    membership_revoke,
    user_create_for_institution,
)
from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent

TIER_DISPLAY_ORDER = [
    Tier.REFERRAL_CENTRE,
    Tier.COUNTY_HOSPITAL,
    Tier.TOWNSHIP_CLINIC,
    Tier.HEALTH_BUREAU,
]

# An edge that has not reported for this long is shown as silent.
EDGE_SILENT_AFTER = timedelta(minutes=15)

# --- Sign-in -----------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's login with our form; success and failure go to the audit trail."""

    form_class = LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit(action="auth.login", actor=form.get_user(), request=self.request)
        return response

    def form_invalid(self, form: Any) -> HttpResponse:
        # The typed username helps to spot guessing; the typed password is never kept.
        username = str(self.request.POST.get("username", ""))[:150]
        audit(
            action="auth.login_failed",
            outcome=AuditEvent.Outcome.DENIED,
            request=self.request,
            object_type="user",
            detail={"username": username},
        )
        return super().form_invalid(form)


class LogoutView(auth_views.LogoutView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            audit(action="auth.logout", actor=request.user, request=request)
        return super().post(request, *args, **kwargs)


class PasswordChangeView(auth_views.PasswordChangeView):
    form_class = PasswordChangeForm

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit(action="auth.password_change", actor=self.request.user, request=self.request)
        return response


# --- Edge health -------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeRow:
    """An edge node with its health judged once, for the templates."""

    edge: EdgeNode
    status: str  # online / silent / never / disabled
    label: str
    just_now: bool = False  # "0 minutes ago" reads as a fault; say "just now"


STATUS_LABELS = {
    "online": gettext_lazy("Online"),
    "silent": gettext_lazy("Silent"),
    "never": gettext_lazy("Never connected"),
    "disabled": gettext_lazy("Disabled"),
}


def edge_status(edge: EdgeNode, now: datetime) -> str:
    if not edge.is_active:
        return "disabled"
    if edge.last_contact_at is None:
        return "never"
    if now - edge.last_contact_at > EDGE_SILENT_AFTER:
        return "silent"
    return "online"


def edge_rows(edges: QuerySet[EdgeNode]) -> list[EdgeRow]:
    now = timezone.now()
    rows = []
    for edge in edges.select_related("institution").order_by("institution__code", "name"):
        status = edge_status(edge, now)
        just_now = edge.last_contact_at is not None and now - edge.last_contact_at < timedelta(
            minutes=1
        )
        rows.append(
            EdgeRow(edge=edge, status=status, label=str(STATUS_LABELS[status]), just_now=just_now)
        )
    return rows


def tier_counts(institutions: QuerySet[Institution]) -> list[dict[str, Any]]:
    """Return ``[{"tier", "label", "count"}]`` for every tier, zeros included."""
    counts = dict(institutions.values_list("tier").annotate(n=Count("id")).values_list("tier", "n"))
    return [
        {"tier": value, "label": label, "count": counts.get(value, 0)}
        for value, label in Tier.choices
    ]


# --- Home pages --------------------------------------------------------------------------


def _home_clinical(request: HttpRequest, membership: Membership) -> dict[str, Any]:
    return {"hub": membership.institution.hub}


def _home_specialist(request: HttpRequest, membership: Membership) -> dict[str, Any]:
    reading_hubs = institutions_for_role(request.user, Role.SPECIALIST).filter(is_active=True)
    served = (
        Institution.objects.filter(hub__in=reading_hubs, is_active=True)
        .select_related("hub")
        .order_by("hub__code", "tier", "code")
    )
    return {"served": served}


def _region_summary(membership: Membership) -> dict[str, Any]:
    region = membership.institution.region
    institutions = Institution.objects.filter(region=region, is_active=True)
    edges = EdgeNode.objects.filter(institution__region=region)
    rows = edge_rows(edges)
    return {
        "region": region,
        "tier_counts": tier_counts(institutions),
        "institution_total": institutions.count(),
        "edges": rows,
        "edges_online": sum(1 for row in rows if row.status == "online"),
        "edges_attention": sum(1 for row in rows if row.status in {"silent", "never"}),
        "backlog_total": edges.filter(is_active=True).aggregate(n=Sum("backlog"))["n"] or 0,
    }


def _home_bureau(request: HttpRequest, membership: Membership) -> dict[str, Any]:
    return _region_summary(membership)


def _home_institution_admin(request: HttpRequest, membership: Membership) -> dict[str, Any]:
    institution = membership.institution
    by_role = dict(
        Membership.objects.filter(institution=institution, is_active=True)
        .exclude(role=Role.EDGE)
        .values_list("role")
        .annotate(n=Count("id"))
        .values_list("role", "n")
    )
    return {
        "role_counts": [
            {"label": label, "count": by_role[value]}
            for value, label in Role.choices
            if by_role.get(value)
        ],
        "member_total": sum(by_role.values()),
        "edges": edge_rows(EdgeNode.objects.filter(institution=institution)),
        "hr_valid_today": institution.hr_valid_on(timezone.localdate()),
    }


def _home_regional_admin(request: HttpRequest, membership: Membership) -> dict[str, Any]:
    context = _region_summary(membership)
    context["institutions"] = _annotated(
        Institution.objects.filter(region=membership.institution.region)
    )
    return context


HOME_PAGES: dict[str, tuple[str, Callable[[HttpRequest, Membership], dict[str, Any]]]] = {
    Role.CLINIC_DOCTOR: ("home/clinic_doctor.html", _home_clinical),
    Role.TECHNICIAN: ("home/technician.html", _home_clinical),
    Role.SPECIALIST: ("home/specialist.html", _home_specialist),
    Role.BUREAU_ANALYST: ("home/bureau_analyst.html", _home_bureau),
    Role.INSTITUTION_ADMIN: ("home/institution_admin.html", _home_institution_admin),
    Role.REGIONAL_ADMIN: ("home/regional_admin.html", _home_regional_admin),
}


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Render the home page of the user's most specific role."""
    membership = primary_membership(request.user)
    if membership is None or membership.role not in HOME_PAGES:
        return render(request, "home/no_role.html")
    template, build = HOME_PAGES[membership.role]
    context = {"membership": membership, "institution": membership.institution}
    context.update(build(request, membership))
    return render(request, template, context)


# --- Network management ------------------------------------------------------------------


# Lists show the network top-down: centre, county hospitals, clinics, then the bureau.
TIER_ORDER = Case(
    *(When(tier=tier, then=Value(rank)) for rank, tier in enumerate(TIER_DISPLAY_ORDER)),
    default=Value(len(TIER_DISPLAY_ORDER)),
    output_field=IntegerField(),
)


def _annotated(institutions: QuerySet[Institution]) -> QuerySet[Institution]:
    return (
        institutions.select_related("hub", "region")
        .annotate(
            member_count=Count(
                "memberships",
                filter=Q(memberships__is_active=True) & ~Q(memberships__role=Role.EDGE),
                distinct=True,
            ),
            edge_count=Count("edge_nodes", distinct=True),
            tier_rank=TIER_ORDER,
        )
        .order_by("tier_rank", "code")
    )


def _administered(request: HttpRequest, institution_uuid: Any) -> Institution:
    return get_object_or_404(
        administered_institutions(request.user).select_related("hub", "region"),
        uuid=institution_uuid,
    )


def offered_roles(user: Any, institution: Institution) -> list[str]:
    """Return the roles offered when adding a member: those ``user`` may grant that fit the tier.

    A health bureau employs analysts and admins; the clinical roles belong to hospitals.
    """
    clinical = {Role.CLINIC_DOCTOR, Role.SPECIALIST, Role.TECHNICIAN}
    unfit = clinical if institution.tier == Tier.HEALTH_BUREAU else {Role.BUREAU_ANALYST}
    return [role for role in grantable_roles(user, institution) if role not in unfit]


@login_required
def institution_list(request: HttpRequest) -> HttpResponse:
    institutions = administered_institutions(request.user)
    if not institutions.exists():
        raise PermissionDenied
    return render(
        request,
        "network/institution_list.html",
        {
            "institutions": _annotated(institutions),
            "edges": edge_rows(edge_nodes_visible_to(request.user)),
        },
    )


@login_required
def institution_detail(request: HttpRequest, institution_uuid: Any) -> HttpResponse:
    institution = _administered(request, institution_uuid)
    return render(
        request,
        "network/institution_detail.html",
        {
            "institution": institution,
            "alliances": institution.alliances.order_by("name"),
            "served": institution.served.filter(is_active=True).order_by("tier", "code"),
            "edges": edge_rows(EdgeNode.objects.filter(institution=institution)),
            "member_total": Membership.objects.filter(institution=institution, is_active=True)
            .exclude(role=Role.EDGE)
            .count(),
            "hr_valid_today": institution.hr_valid_on(timezone.localdate()),
            "can_have_edges": institution.tier != Tier.HEALTH_BUREAU,
        },
    )


def _member_page(
    request: HttpRequest, institution: Institution, form: Form, *, status: int = 200
) -> HttpResponse:
    memberships = (
        Membership.objects.filter(institution=institution)
        .exclude(role=Role.EDGE)
        .select_related("user")
        .order_by("-is_active", "user__username", "role")
    )
    manageable = set(grantable_roles(request.user, institution))
    return render(
        request,
        "network/members.html",
        {
            "institution": institution,
            "active": [m for m in memberships if m.is_active],
            "revoked": [m for m in memberships if not m.is_active],
            "manageable": manageable,
            "form": form,
        },
        status=status,
    )


@login_required
def members(request: HttpRequest, institution_uuid: Any) -> HttpResponse:
    institution = _administered(request, institution_uuid)
    roles = role_choices(offered_roles(request.user, institution))
    return _member_page(request, institution, MemberAddForm(roles=roles))


@login_required
@require_POST
def member_add(request: HttpRequest, institution_uuid: Any) -> HttpResponse:
    institution = _administered(request, institution_uuid)
    roles = role_choices(offered_roles(request.user, institution))
    form = MemberAddForm(request.POST, roles=roles)
    if not form.is_valid():
        return _member_page(request, institution, form, status=400)
    data = form.cleaned_data
    try:
        if form.existing_user is not None:
            membership = membership_grant(
                user=form.existing_user,
                institution=institution,
                role=data["role"],
                actor=request.user,
            )
        else:
            membership = user_create_for_institution(
                institution=institution,
                username=data["username"],
                full_name=data["full_name"],
                password=data["password"],
                role=data["role"],
                actor=request.user,
            )
    except NetworkError as error:
        form.add_error(None, _("The change was refused: %(reason)s") % {"reason": error})
        return _member_page(request, institution, form, status=400)
    messages.success(
        request,
        _("%(user)s is now %(role)s at %(institution)s.")
        % {
            "user": membership.user.get_username(),
            "role": membership.get_role_display(),
            "institution": institution.name,
        },
    )
    return redirect("members", institution_uuid=institution.uuid)


@login_required
@require_POST
def member_revoke(
    request: HttpRequest, institution_uuid: Any, membership_uuid: Any
) -> HttpResponse:
    institution = _administered(request, institution_uuid)
    membership = get_object_or_404(
        Membership.objects.select_related("user", "institution").exclude(role=Role.EDGE),
        uuid=membership_uuid,
        institution=institution,
    )
    if membership.role not in grantable_roles(request.user, institution):
        raise PermissionDenied
    if membership.user_id == request.user.pk:
        messages.error(request, _("You cannot revoke your own membership; ask another admin."))
        return redirect("members", institution_uuid=institution.uuid)
    membership_revoke(membership=membership, actor=request.user)
    messages.success(
        request,
        _("%(user)s is no longer %(role)s at %(institution)s.")
        % {
            "user": membership.user.get_username(),
            "role": membership.get_role_display(),
            "institution": institution.name,
        },
    )
    return redirect("members", institution_uuid=institution.uuid)


def _token_page(request: HttpRequest, issued: IssuedEdgeToken, *, created: bool) -> HttpResponse:
    """Render the one page that ever shows this token; browsers must not keep it."""
    response = render(
        request,
        "network/edge_token.html",
        {
            "edge": issued.edge_node,
            "institution": issued.edge_node.institution,
            "token": issued.token,
            "created": created,
        },
    )
    add_never_cache_headers(response)
    return response


@login_required
def edge_create(request: HttpRequest, institution_uuid: Any) -> HttpResponse:
    institution = _administered(request, institution_uuid)
    if institution.tier == Tier.HEALTH_BUREAU:
        raise PermissionDenied
    form = EdgeNodeCreateForm(request.POST or None, institution=institution)
    if request.method == "POST" and form.is_valid():
        try:
            issued = edge_node_create(
                institution=institution, name=form.cleaned_data["name"], actor=request.user
            )
        except NetworkError as error:
            form.add_error(None, _("The change was refused: %(reason)s") % {"reason": error})
        else:
            return _token_page(request, issued, created=True)
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "network/edge_create.html",
        {"institution": institution, "form": form},
        status=status,
    )


@login_required
@require_POST
def edge_rotate(request: HttpRequest, edge_uuid: Any) -> HttpResponseBase:
    edge = get_object_or_404(edge_nodes_visible_to(request.user), uuid=edge_uuid)
    issued = edge_node_rotate_token(edge_node=edge, actor=request.user)
    return _token_page(request, issued, created=False)
