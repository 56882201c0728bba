"""Reads about the network and the people in it."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from hospitals.models import EdgeNode, Institution, Membership, Role

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
    regional = Institution.objects.filter(
        region__institutions__memberships__user=user,
        region__institutions__memberships__role=Role.REGIONAL_ADMIN,
        region__institutions__memberships__is_active=True,
    )
    own = institutions_for_role(user, Role.INSTITUTION_ADMIN)
    return (regional | own).distinct().order_by("tier", "code")


def edge_nodes_visible_to(user: Any) -> QuerySet[EdgeNode]:
    return EdgeNode.objects.filter(institution__in=administered_institutions(user)).select_related(
        "institution"
    )
