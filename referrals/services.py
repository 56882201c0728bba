"""Writes to referrals: every transition locks the row, checks who may act, records
an event and an audit row, and moves study access with it.

States: draft → submitted → accepted | rejected → scheduled → arrived → completed;
cancelled (by the sender while open); expired (not answered in time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm

from hospitals.models import Institution, Role
from hospitals.selectors import user_roles_at
from hospitals.services import institution_role_group
from referrals.models import CLOSED_STATES, Referral, ReferralEvent
from referrals.rules import ReferralError, check_route, policy_for
from regional_cloud.audit import audit
from regional_cloud.permissions import filter_by_permission
from studies.access import REPORT, VIEW, study_access_grant, study_access_schedule_revoke
from studies.models import Patient, Study, StudyGrant

State = Referral.State
SENDING_ROLES: set[str] = {Role.CLINIC_DOCTOR, Role.SPECIALIST}
# Roles of the receiving institution that answer a referral.
ANSWERING_ROLES: set[str] = {Role.SPECIALIST, Role.CLINIC_DOCTOR}

# Called after commit with (referral, event kind): notifications register here.
AFTER_TRANSITION: list[Callable[[Referral, str], None]] = []


@transaction.atomic
def referral_create(
    *,
    actor: Any,
    from_institution: Institution,
    to_institution: Institution,
    patient: Patient,
    direction: str,
    studies: Iterable[Study] = (),
    urgency: str = "routine",
    clinical_question: str = "",
    skip_reason: str = "",
    treatment_summary: str = "",
    follow_up_plan: str = "",
    assigned_specialist: Any = None,
) -> Referral:
    """Create a draft referral after checking the network rules and the attached studies."""
    _require_role(actor, from_institution, SENDING_ROLES)
    check_route(
        direction=direction,
        from_institution=from_institution,
        to_institution=to_institution,
        skip_reason=skip_reason,
        treatment_summary=treatment_summary,
        follow_up_plan=follow_up_plan,
    )
    if patient.issuer_id != from_institution.pk:
        raise ReferralError(
            _("The patient must be one of the referring institution's patients."),
            code="foreign_patient",
        )
    attached = _check_studies(actor, patient, list(studies))
    if assigned_specialist is not None and not user_roles_at(
        assigned_specialist, to_institution
    ) & {Role.SPECIALIST}:
        raise ReferralError(
            _("The assigned specialist does not work at the receiving institution."),
            code="specialist_elsewhere",
        )
    referral = Referral.objects.create(
        patient=patient,
        direction=direction,
        urgency=urgency,
        from_institution=from_institution,
        to_institution=to_institution,
        assigned_specialist=assigned_specialist,
        clinical_question=clinical_question,
        skip_reason=skip_reason,
        treatment_summary=treatment_summary,
        follow_up_plan=follow_up_plan,
        created_by=actor,
    )
    referral.studies.set(attached)
    for role in SENDING_ROLES:
        assign_perm(
            "referrals.view_referral", institution_role_group(from_institution, role), referral
        )
    _record(referral, actor, "created", "", State.DRAFT)
    return referral


def _check_studies(actor: Any, patient: Patient, studies: list[Study]) -> list[Study]:
    visible = filter_by_permission(
        Study.objects.filter(pk__in=[s.pk for s in studies]), actor, "studies.view_study"
    )
    if visible.count() != len({s.pk for s in studies}):
        raise ReferralError(
            _("Only studies you may see can be attached."), code="study_not_visible"
        )
    same_person = Q(patient=patient)
    if patient.person_id:
        same_person |= Q(patient__person_id=patient.person_id)
    if visible.exclude(same_person).exists():
        raise ReferralError(
            _("Every attached study must be of this patient."), code="study_of_other_patient"
        )
    return list(visible)


@transaction.atomic
def referral_submit(*, referral: Referral, actor: Any) -> Referral:
    referral = _lock(referral)
    _require_role(actor, referral.from_institution, SENDING_ROLES)
    _require_state(referral, {State.DRAFT})
    now = timezone.now()
    answer_within, _lookback, _grace = policy_for(referral)
    referral.submitted_at = now
    referral.answer_due_at = now + answer_within
    for role in _answering_roles(referral):
        assign_perm(
            "referrals.view_referral",
            institution_role_group(referral.to_institution, role),
            referral,
        )
    if referral.assigned_specialist_id:
        assign_perm("referrals.view_referral", referral.assigned_specialist, referral)
    return _move(referral, actor, State.SUBMITTED, "submitted", ["submitted_at", "answer_due_at"])


@transaction.atomic
def referral_accept(*, referral: Referral, actor: Any) -> Referral:
    """Accept: the receiving side gains access to the attached studies and the priors."""
    referral = _lock(referral)
    _require_answerer(referral, actor)
    _require_state(referral, {State.SUBMITTED})
    referral.accepted_at = timezone.now()
    referral.accepted_by = actor
    _grant_studies(referral, actor)
    return _move(referral, actor, State.ACCEPTED, "accepted", ["accepted_at", "accepted_by"])


@transaction.atomic
def referral_reject(*, referral: Referral, actor: Any, reason: str) -> Referral:
    referral = _lock(referral)
    _require_answerer(referral, actor)
    _require_state(referral, {State.SUBMITTED})
    if not reason.strip():
        raise ReferralError(_("A rejection needs a reason."), code="reject_without_reason")
    referral.rejection_reason = reason.strip()[:200]
    return _close(referral, actor, State.REJECTED, "rejected", ["rejection_reason"], note=reason)


@transaction.atomic
def referral_schedule(*, referral: Referral, actor: Any, when: dt.datetime) -> Referral:
    referral = _lock(referral)
    _require_answerer(referral, actor)
    _require_state(referral, {State.ACCEPTED, State.SCHEDULED})
    if when < timezone.now() - dt.timedelta(minutes=5):
        raise ReferralError(_("The appointment must not be in the past."), code="past")
    referral.scheduled_for = when
    return _move(
        referral, actor, State.SCHEDULED, "scheduled", ["scheduled_for"], note=when.isoformat()
    )


@transaction.atomic
def referral_arrive(*, referral: Referral, actor: Any) -> Referral:
    referral = _lock(referral)
    _require_answerer(referral, actor)
    _require_state(referral, {State.ACCEPTED, State.SCHEDULED})
    return _move(referral, actor, State.ARRIVED, "arrived", [])


@transaction.atomic
def referral_complete(*, referral: Referral, actor: Any, note: str = "") -> Referral:
    referral = _lock(referral)
    _require_answerer(referral, actor)
    _require_state(referral, {State.ARRIVED})
    return _close(referral, actor, State.COMPLETED, "completed", [], note=note)


@transaction.atomic
def referral_cancel(*, referral: Referral, actor: Any, reason: str) -> Referral:
    referral = _lock(referral)
    _require_role(actor, referral.from_institution, SENDING_ROLES)
    _require_state(referral, {State.DRAFT, State.SUBMITTED, State.ACCEPTED, State.SCHEDULED})
    if not reason.strip():
        raise ReferralError(_("Cancelling needs a reason."), code="cancel_without_reason")
    referral.cancellation_reason = reason.strip()[:200]
    return _close(
        referral, actor, State.CANCELLED, "cancelled", ["cancellation_reason"], note=reason
    )


def referrals_expire_due(*, now: dt.datetime | None = None) -> int:
    """Expire submitted referrals nobody answered in time; return how many."""
    now = now or timezone.now()
    count = 0
    due = Referral.objects.filter(state=State.SUBMITTED, answer_due_at__lte=now)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            referral = Referral.objects.select_for_update().get(pk=pk)
            if referral.state == State.SUBMITTED and (referral.answer_due_at or now) <= now:
                _close(referral, None, State.EXPIRED, "expired", [])
                count += 1
    return count


# --- helpers -------------------------------------------------------------------


def _lock(referral: Referral) -> Referral:
    return (
        Referral.objects.select_for_update(of=("self",))
        .select_related("from_institution", "to_institution", "patient")
        .get(pk=referral.pk)
    )


def _require_state(referral: Referral, allowed: set[str]) -> None:
    if referral.state not in allowed:
        raise ReferralError(
            _("Not possible while the referral is %(state)s.")
            % {"state": referral.get_state_display()},
            status=409,
            code="illegal_transition",
        )


def _require_role(actor: Any, institution: Institution, roles: set[str]) -> None:
    if not user_roles_at(actor, institution) & roles:
        raise ReferralError(
            _("Your role at %(institution)s does not allow this.")
            % {"institution": institution.name},
            status=403,
            code="forbidden",
        )


def _answering_roles(referral: Referral) -> set[str]:
    return ANSWERING_ROLES


def _require_answerer(referral: Referral, actor: Any) -> None:
    if referral.assigned_specialist_id and referral.assigned_specialist_id != actor.pk:
        raise ReferralError(
            _("This referral is assigned to another specialist."), status=403, code="forbidden"
        )
    _require_role(actor, referral.to_institution, _answering_roles(referral))


def _grantee(referral: Referral) -> Any:
    if referral.assigned_specialist_id:
        return referral.assigned_specialist
    role = Role.SPECIALIST if referral.direction == Referral.Direction.UP else Role.CLINIC_DOCTOR
    return institution_role_group(referral.to_institution, role)


def _grant_studies(referral: Referral, actor: Any) -> None:
    """Grant the receiving side the attached studies and the patient's priors in the look-back."""
    _answer, lookback_days, _grace = policy_for(referral)
    cutoff = (timezone.localdate() - dt.timedelta(days=lookback_days)).strftime("%Y%m%d")
    patient = referral.patient
    same_person = Q(patient=patient)
    if patient.person_id:
        same_person |= Q(patient__person_id=patient.person_id)
    priors = Study.objects.filter(same_person).filter(study_date__gte=cutoff)
    studies = {s.pk: s for s in referral.studies.all()} | {s.pk: s for s in priors}
    codenames = [VIEW, REPORT] if referral.direction == Referral.Direction.UP else [VIEW]
    grantee = _grantee(referral)
    for study in studies.values():
        study_access_grant(
            study=study,
            grantee=grantee,
            codenames=codenames,
            source=StudyGrant.Source.REFERRAL,
            source_ref=str(referral.uuid),
            actor=actor,
        )


def _move(
    referral: Referral,
    actor: Any,
    to_state: str,
    kind: str,
    fields: list[str],
    *,
    note: str = "",
) -> Referral:
    from_state = referral.state
    referral.state = to_state
    referral.save(update_fields=["state", *fields])
    _record(referral, actor, kind, from_state, to_state, note=note)
    return referral


def _close(
    referral: Referral, actor: Any, to_state: str, kind: str, fields: list[str], *, note: str = ""
) -> Referral:
    """Close the referral; its study access ends after the region's grace period."""
    assert to_state in CLOSED_STATES
    referral.closed_at = timezone.now()
    _answer, _lookback, grace_hours = policy_for(referral)
    study_access_schedule_revoke(
        source=StudyGrant.Source.REFERRAL,
        source_ref=str(referral.uuid),
        after=referral.closed_at + dt.timedelta(hours=grace_hours),
    )
    return _move(referral, actor, to_state, kind, ["closed_at", *fields], note=note)


def _record(
    referral: Referral, actor: Any, kind: str, from_state: str, to_state: str, *, note: str = ""
) -> None:
    ReferralEvent.objects.create(
        referral=referral,
        actor=actor,
        kind=kind,
        from_state=from_state,
        to_state=to_state,
        note=note[:500],
    )
    audit(
        action=f"referral.{kind}",
        actor=actor,
        institution=referral.from_institution,
        object_type="referral",
        object_id=referral.uuid,
        patient_ref=referral.patient.uuid,
        detail={"from": from_state, "to": to_state},
    )
    transaction.on_commit(lambda: _after(referral, kind))


def _after(referral: Referral, kind: str) -> None:
    for hook in AFTER_TRANSITION:
        hook(referral, kind)
