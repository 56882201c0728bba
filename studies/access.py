"""Grant and revoke access to studies: every object permission goes through here.

Each reason for access is a ``StudyGrant`` row; guardian's permission row for
(study, grantee, codename) exists exactly while at least one unrevoked grant
does. Every grant and revoke is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from regional_cloud.audit import audit
from studies.models import Study, StudyGrant

VIEW = "view_study"
REPORT = "report_study"


def _grantee_filter(grantee: Any) -> dict[str, Any]:
    if isinstance(grantee, Group):
        return {"group": grantee, "user": None}
    return {"user": grantee, "group": None}


def _grantee_label(grantee: Any) -> str:
    return f"group:{grantee.name}" if isinstance(grantee, Group) else f"user:{grantee.pk}"


@transaction.atomic
def study_access_grant(
    *,
    study: Study,
    grantee: Any,
    codenames: Iterable[str],
    source: str,
    source_ref: str = "",
    actor: Any = None,
) -> list[StudyGrant]:
    """Grant ``codenames`` on ``study`` to a group or user for one reason (idempotent)."""
    grants = []
    for codename in codenames:
        grant, created = StudyGrant.objects.get_or_create(
            study=study,
            codename=codename,
            source=source,
            source_ref=source_ref,
            revoked_at=None,
            **_grantee_filter(grantee),
        )
        if grant.revoke_after is not None:
            # A reason that was ending is renewed (e.g. a referral reopened).
            grant.revoke_after = None
            grant.save(update_fields=["revoke_after"])
        if created:
            assign_perm(f"studies.{codename}", grantee, study)
            audit(
                action="study.access_grant",
                actor=actor,
                institution=study.origin,
                object_type="study",
                object_id=study.uuid,
                study_uid=study.study_instance_uid,
                patient_ref=study.patient.uuid,
                detail={
                    "codename": codename,
                    "grantee": _grantee_label(grantee),
                    "source": source,
                    "source_ref": source_ref,
                },
            )
        grants.append(grant)
    return grants


@transaction.atomic
def study_access_schedule_revoke(*, source: str, source_ref: str, after: datetime) -> int:
    """Mark every grant of one reason to end at ``after``; return how many."""
    return StudyGrant.objects.filter(
        source=source, source_ref=source_ref, revoked_at__isnull=True
    ).update(revoke_after=after)


@transaction.atomic
def study_access_revoke_due(*, now: datetime | None = None, actor: Any = None) -> int:
    """Revoke the grants whose time has come; return how many were revoked."""
    now = now or timezone.now()
    due = list(
        StudyGrant.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(revoked_at__isnull=True, revoke_after__lte=now)
        .select_related("study", "study__patient", "study__origin", "group", "user")
    )
    for grant in due:
        _revoke(grant, now=now, actor=actor)
    return len(due)


@transaction.atomic
def study_access_revoke(*, source: str, source_ref: str, actor: Any = None) -> int:
    """Revoke every grant of one reason now; return how many."""
    grants = list(
        StudyGrant.objects.select_for_update(of=("self",))
        .filter(source=source, source_ref=source_ref, revoked_at__isnull=True)
        .select_related("study", "study__patient", "study__origin", "group", "user")
    )
    now = timezone.now()
    for grant in grants:
        _revoke(grant, now=now, actor=actor)
    return len(grants)


def _revoke(grant: StudyGrant, *, now: datetime, actor: Any) -> None:
    grant.revoked_at = now
    grant.save(update_fields=["revoked_at"])
    grantee = grant.group or grant.user
    still_granted = StudyGrant.objects.filter(
        study=grant.study,
        codename=grant.codename,
        revoked_at__isnull=True,
        **_grantee_filter(grantee),
    ).exists()
    if not still_granted:
        remove_perm(f"studies.{grant.codename}", grantee, grant.study)
    audit(
        action="study.access_revoke",
        actor=actor,
        institution=grant.study.origin,
        object_type="study",
        object_id=grant.study.uuid,
        study_uid=grant.study.study_instance_uid,
        patient_ref=grant.study.patient.uuid,
        detail={
            "codename": grant.codename,
            "grantee": _grantee_label(grantee),
            "source": grant.source,
            "source_ref": grant.source_ref,
            "permission_removed": not still_granted,
        },
    )
