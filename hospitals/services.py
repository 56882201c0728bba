"""Writes to the network: institutions, their role groups, members and edge nodes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from hospitals.models import (
    Alliance,
    ApiToken,
    EdgeNode,
    Institution,
    InstitutionGroup,
    Membership,
    Region,
    Role,
    Tier,
)
from hospitals.tokens import EDGE_PREFIX, USER_PREFIX, new_token, token_hash, token_prefix
from regional_cloud.audit import audit


class NetworkError(ValueError):
    """A write to the network that the rules refuse; the message says why."""


def role_group_name(institution: Institution, role: str) -> str:
    return f"{institution.code}:{role}"


def institution_role_group(institution: Institution, role: str) -> Group:
    """Return the auth group of ``role`` at ``institution``."""
    return (
        InstitutionGroup.objects.select_related("group")
        .get(institution=institution, role=role)
        .group
    )


@transaction.atomic
def institution_create(
    *,
    region: Region,
    code: str,
    name: str,
    tier: str,
    grade: str = "",
    name_en: str = "",
    hub: Institution | None = None,
    alliances: list[Alliance] | None = None,
    hr_scope: str = "",
    hr_valid_from: date | None = None,
    hr_valid_until: date | None = None,
    actor: Any = None,
) -> Institution:
    """Create an institution and one auth group per role."""
    if hub is not None and hub.region_id != region.pk:
        raise NetworkError("the reading hub must be in the same region")
    if tier == Tier.HEALTH_BUREAU and hub is not None:
        raise NetworkError("a health bureau has no reading hub")
    institution = Institution.objects.create(
        region=region,
        code=code,
        name=name,
        name_en=name_en,
        tier=tier,
        grade=grade,
        hub=hub,
        hr_scope=hr_scope,
        hr_valid_from=hr_valid_from,
        hr_valid_until=hr_valid_until,
    )
    if alliances:
        institution.alliances.set(alliances)
    for role in Role.values:
        group = Group.objects.create(name=role_group_name(institution, role))
        InstitutionGroup.objects.create(institution=institution, role=role, group=group)
    audit(
        action="institution.create",
        actor=actor,
        institution=institution,
        object_type="institution",
        object_id=institution.uuid,
    )
    return institution


@transaction.atomic
def membership_grant(
    *, user: Any, institution: Institution, role: str, actor: Any = None
) -> Membership:
    """Give ``user`` ``role`` at ``institution`` (idempotent) and join its group."""
    if role not in Role.values:
        raise NetworkError(f"unknown role {role!r}")
    membership, created = Membership.objects.get_or_create(
        user=user, institution=institution, role=role
    )
    if not membership.is_active:
        membership.is_active = True
        membership.save(update_fields=["is_active"])
        created = True
    user.groups.add(institution_role_group(institution, role))
    if created:
        audit(
            action="membership.grant",
            actor=actor,
            institution=institution,
            object_type="membership",
            object_id=membership.uuid,
            detail={"role": role, "user": user.get_username()},
        )
    return membership


@transaction.atomic
def membership_revoke(*, membership: Membership, actor: Any = None) -> None:
    """End a membership: the user leaves the role's group at once."""
    if not membership.is_active:
        return
    membership.is_active = False
    membership.save(update_fields=["is_active"])
    membership.user.groups.remove(institution_role_group(membership.institution, membership.role))
    audit(
        action="membership.revoke",
        actor=actor,
        institution=membership.institution,
        object_type="membership",
        object_id=membership.uuid,
        detail={"role": membership.role, "user": membership.user.get_username()},
    )


@dataclass(frozen=True)
class IssuedEdgeToken:
    edge_node: EdgeNode
    token: str  # shown once; only its hash is stored


@transaction.atomic
def edge_node_create(*, institution: Institution, name: str, actor: Any = None) -> IssuedEdgeToken:
    """Register an edge node with its own service user; return its token (once)."""
    if institution.tier == Tier.HEALTH_BUREAU:
        raise NetworkError("a health bureau runs no imaging edge")
    if EdgeNode.objects.filter(institution=institution, name=name).exists():
        raise NetworkError("this institution already has an edge node with that name")
    user_model = get_user_model()
    service_user = user_model.objects.create_user(
        username=f"edge-{institution.code}-{EdgeNode.objects.count() + 1}-{new_token('')[:6]}"
    )
    service_user.set_unusable_password()
    service_user.save(update_fields=["password"])
    token = new_token(EDGE_PREFIX)
    edge = EdgeNode.objects.create(
        institution=institution,
        name=name,
        service_user=service_user,
        token_hash=token_hash(token),
        token_prefix=token_prefix(token),
    )
    membership_grant(user=service_user, institution=institution, role=Role.EDGE, actor=actor)
    audit(
        action="edge.create",
        actor=actor,
        institution=institution,
        object_type="edge_node",
        object_id=edge.uuid,
    )
    return IssuedEdgeToken(edge_node=edge, token=token)


@transaction.atomic
def edge_node_rotate_token(*, edge_node: EdgeNode, actor: Any = None) -> IssuedEdgeToken:
    """Issue a new token; the old one stops working at once."""
    token = new_token(EDGE_PREFIX)
    edge_node.token_hash = token_hash(token)
    edge_node.token_prefix = token_prefix(token)
    edge_node.token_rotated_at = timezone.now()
    edge_node.save(update_fields=["token_hash", "token_prefix", "token_rotated_at"])
    audit(
        action="edge.rotate_token",
        actor=actor,
        institution=edge_node.institution,
        object_type="edge_node",
        object_id=edge_node.uuid,
    )
    return IssuedEdgeToken(edge_node=edge_node, token=token)


def edge_node_heartbeat(
    *, edge_node: EdgeNode, backlog: int, lag_seconds: int, version: str
) -> None:
    """Record an edge's health report (not audited: it is no state change of patient data)."""
    edge_node.last_contact_at = timezone.now()
    edge_node.backlog = max(0, backlog)
    edge_node.lag_seconds = max(0, lag_seconds)
    edge_node.agent_version = version[:32]
    edge_node.save(update_fields=["last_contact_at", "backlog", "lag_seconds", "agent_version"])


@transaction.atomic
def api_token_create(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """Create a personal API token; return it with the token text (shown once)."""
    token = new_token(USER_PREFIX)
    api_token = ApiToken.objects.create(
        user=user, name=name, token_hash=token_hash(token), token_prefix=token_prefix(token)
    )
    audit(action="api_token.create", actor=user, object_type="api_token", object_id=api_token.uuid)
    return api_token, token


@transaction.atomic
def api_token_revoke(*, api_token: ApiToken, actor: Any) -> None:
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        api_token.save(update_fields=["revoked_at"])
        audit(
            action="api_token.revoke",
            actor=actor,
            object_type="api_token",
            object_id=api_token.uuid,
        )


@transaction.atomic
def user_create_for_institution(
    *,
    institution: Institution,
    username: str,
    full_name: str,
    password: str,
    role: str,
    actor: Any = None,
) -> Membership:
    """Create a person's account and give it ``role`` at ``institution``.

    Accounts are made by the institution that employs the person, so the new
    user starts with exactly one membership.
    """
    if role == Role.EDGE:
        raise NetworkError("edge identities are created with their edge node")
    user_model = get_user_model()
    if user_model.objects.filter(username__iexact=username).exists():
        raise NetworkError("this username is already taken")
    user = user_model.objects.create_user(
        username=username, password=password, first_name=full_name[:150]
    )
    audit(
        action="user.create",
        actor=actor,
        institution=institution,
        object_type="user",
        object_id=user.pk,
        detail={"user": username},
    )
    return membership_grant(user=user, institution=institution, role=role, actor=actor)


def _ref(value: Any) -> str:
    """Return a value for the audit trail: a related object by its UUID."""
    return str(getattr(value, "uuid", value) or "")


# The fields an institution's details may change; its code names its role groups.
INSTITUTION_UPDATE_FIELDS = frozenset(
    {
        "name",
        "name_en",
        "tier",
        "grade",
        "hub",
        "hr_scope",
        "hr_valid_from",
        "hr_valid_until",
        "is_active",
    }
)


@transaction.atomic
def institution_update(
    *,
    institution: Institution,
    data: dict[str, Any],
    alliances: list[Alliance] | None = None,
    actor: Any = None,
) -> Institution:
    """Change an institution's details (keys of ``INSTITUTION_UPDATE_FIELDS``) and alliances."""
    unknown = set(data) - INSTITUTION_UPDATE_FIELDS
    if unknown:
        raise NetworkError(f"these fields cannot be changed: {', '.join(sorted(unknown))}")
    merged = {field: getattr(institution, field) for field in INSTITUTION_UPDATE_FIELDS} | data
    hub = merged["hub"]
    if hub is not None:
        if hub.region_id != institution.region_id:
            raise NetworkError("the reading hub must be in the same region")
        if merged["tier"] == Tier.HEALTH_BUREAU:
            raise NetworkError("a health bureau has no reading hub")
        # Walk up the hub chain: reading must not go round in a circle.
        seen = {institution.pk}
        while hub is not None:
            if hub.pk in seen:
                raise NetworkError("the reading hub would form a circle")
            seen.add(hub.pk)
            hub = hub.hub
    if (
        merged["hr_valid_from"]
        and merged["hr_valid_until"]
        and merged["hr_valid_until"] < merged["hr_valid_from"]
    ):
        raise NetworkError("the qualification must end after it starts")
    changes: dict[str, list[str]] = {}
    for field, value in data.items():
        old = getattr(institution, field)
        if old != value:
            changes[field] = [_ref(old), _ref(value)]
            setattr(institution, field, value)
    if changes:
        institution.save(update_fields=list(changes))
    if alliances is not None:
        old_ids = {str(a.uuid) for a in institution.alliances.all()}
        new_ids = {str(a.uuid) for a in alliances}
        if old_ids != new_ids:
            if any(a.region_id != institution.region_id for a in alliances):
                raise NetworkError("alliances must be in the institution's region")
            institution.alliances.set(alliances)
            changes["alliances"] = [",".join(sorted(old_ids)), ",".join(sorted(new_ids))]
    if changes:
        audit(
            action="institution.update",
            actor=actor,
            institution=institution,
            object_type="institution",
            object_id=institution.uuid,
            detail={"changes": changes},
        )
    return institution
