"""Reads about the network and the people in it."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from hospitals.models import ApiToken, EdgeNode, Institution, Membership, Region, Role

# Which home page a role lands on, most specific first.
HOME_ORDER = [
    Role.REGIONAL_ADMIN,
    Role.INSTITUTION_ADMIN,
    Role.BUREAU_ANALYST,
    Role.SPECIALIST,
    Role.CLINIC_DOCTOR,
    Role.TECHNICIAN,
]


def active_memberships(user: Any) -> QuerySet[Membership]:
    if not getattr(user, "is_authenticated", False):
        return Membership.objects.none()
    return Membership.objects.filter(
        user=user, is_active=True, institution__is_active=True
    ).select_related("institution", "institution__region")


def user_roles(user: Any) -> set[str]:
    return set(active_memberships(user).values_list("role", flat=True))


def user_roles_at(user: Any, institution: Institution) -> set[str]:
    """Return the user's active roles at one institution."""
    return set(
        active_memberships(user).filter(institution=institution).values_list("role", flat=True)
    )


def primary_membership(user: Any) -> Membership | None:
    """Return the membership that decides the user's home page."""
    memberships = list(active_memberships(user))
    for role in HOME_ORDER:
        for membership in memberships:
            if membership.role == role:
                return membership
    return None


def institutions_for_role(user: Any, role: str) -> QuerySet[Institution]:
    return Institution.objects.filter(
        memberships__user=user, memberships__role=role, memberships__is_active=True
    ).distinct()


def administered_institutions(user: Any) -> QuerySet[Institution]:
    """Return the institutions whose people and edges ``user`` may manage."""
    if not getattr(user, "is_authenticated", False):
        return Institution.objects.none()
    # Filter by id sets, not by OR-ing joined querysets: Django refuses to combine a
    # distinct query with a non-distinct one, and the joins would multiply rows.
    regional = Institution.objects.filter(region__in=administered_regions(user)).values("pk")
    own = institutions_for_role(user, Role.INSTITUTION_ADMIN).values("pk")
    return Institution.objects.filter(Q(pk__in=regional) | Q(pk__in=own)).order_by("tier", "code")


def edge_nodes_visible_to(user: Any) -> QuerySet[EdgeNode]:
    return EdgeNode.objects.filter(institution__in=administered_institutions(user)).select_related(
        "institution"
    )


def administered_regions(user: Any) -> QuerySet[Region]:
    """Return the regions in which ``user`` is a regional admin."""
    if not getattr(user, "is_authenticated", False):
        return Region.objects.none()
    return Region.objects.filter(
        institutions__memberships__user=user,
        institutions__memberships__role=Role.REGIONAL_ADMIN,
        institutions__memberships__is_active=True,
        institutions__is_active=True,
    ).distinct()


def institutions_in_user_regions(user: Any) -> QuerySet[Institution]:
    """Return every institution of the regions ``user`` belongs to.

    The network's structure is no patient data: any member may see it.
    """
    regions = active_memberships(user).values("institution__region")
    return (
        Institution.objects.filter(region__in=regions)
        .select_related("region", "hub")
        .prefetch_related("alliances")
        .order_by("tier", "code")
    )


def grantable_roles(user: Any, institution: Institution) -> list[str]:
    """Return the roles ``user`` may give at ``institution`` (none if not its admin).

    Only a regional admin makes regional admins, so an institution admin cannot
    raise anyone above themselves; edge identities come only with their edge node.
    """
    if administered_regions(user).filter(pk=institution.region_id).exists():
        return [role for role in Role.values if role != Role.EDGE]
    if institutions_for_role(user, Role.INSTITUTION_ADMIN).filter(pk=institution.pk).exists():
        return [role for role in Role.values if role not in {Role.EDGE, Role.REGIONAL_ADMIN}]
    return []


def api_tokens_of(user: Any) -> QuerySet[ApiToken]:
    """Return ``user``'s own personal API tokens, newest first."""
    if not getattr(user, "is_authenticated", False):
        return ApiToken.objects.none()
    return ApiToken.objects.filter(user=user).order_by("-created_at")
