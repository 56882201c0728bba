"""Writes to consultations: requests, answers, the room's messages, the conclusion.

States: requested → scheduled (a consultant accepted) → live (someone joined
the room) → concluded (the lead signed) | cancelled. Every transition locks
the row, checks who acts, writes a system message into the room's transcript
(numbered like every message, see ``messages``) and an audit row, and moves
study access with it: a participant who accepts gets ``view_study`` on the
consultation's studies through ``study_access_grant(source="consultation")``;
concluding or cancelling schedules the end of that access.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm

from hospitals.models import Institution, Role
from hospitals.selectors import active_memberships
from hospitals.services import institution_role_group
from referrals.consultation import signing
from referrals.consultation.events import message_event, push
from referrals.consultation.messages import MAX_TEXT, ConsultationError, next_seq
from referrals.consultation.models import (
    OPEN_STATES,
    Consultation,
    ConsultationMessage,
    Participant,
)
from referrals.models import DEFAULT_GRACE_HOURS, Referral, ReferralEvent
from referrals.rules import policy_for
from regional_cloud.audit import audit
from regional_cloud.notifications import notify
from regional_cloud.permissions import filter_by_permission, has_object_permission
from studies.access import VIEW, study_access_grant, study_access_schedule_revoke
from studies.models import Study, StudyGrant

State = Consultation.State
VIEW_CONSULTATION = "referrals.view_consultation"
DOCTOR_ROLES: frozenset[str] = frozenset({Role.CLINIC_DOCTOR, Role.SPECIALIST})

# Called after commit with (consultation, event kind): notifications may register here.
AFTER_TRANSITION: list[Callable[[Consultation, str], None]] = []


# --- requesting and answering -----------------------------------------------------------


@transaction.atomic
def consultation_request(
    *,
    actor: Any,
    consultants: Iterable[Any],
    institution: Institution | None = None,
    referral: Referral | None = None,
    studies: Iterable[Study] = (),
    lead: Any = None,
    question: str = "",
    scheduled_for: dt.datetime | None = None,
) -> Consultation:
    """Request a consultation on a referral's or on some studies' images.

    ``institution`` is where the actor requests from (needed only when they
    are a doctor at several). The actor must see every study; the consultants
    must be doctors in the requesting institution's region.
    """
    institution = _requesting_institution(actor, institution, referral)
    studies = list(studies)
    if referral is not None:
        if not has_object_permission(actor, "referrals.view_referral", referral):
            raise ConsultationError(_("No such referral."), status=404, code="not_found")
        studies = studies or list(referral.studies.all())
        patient = referral.patient
    elif studies:
        patient = studies[0].patient
    else:
        raise ConsultationError(
            _("A consultation needs a referral or at least one study."), code="no_studies"
        )
    visible = filter_by_permission(
        Study.objects.filter(pk__in=[s.pk for s in studies]), actor, "studies.view_study"
    )
    if not studies or visible.count() != len({s.pk for s in studies}):
        raise ConsultationError(
            _("Only studies you may see can be discussed."), code="study_not_visible"
        )
    people = _consultant_seats(actor, institution, consultants)
    lead = lead or people[0][0]
    if lead.pk not in {user.pk for user, _inst in people}:
        raise ConsultationError(
            _("The lead consultant must be one of the consultants."), code="lead_not_consultant"
        )
    if scheduled_for is not None and scheduled_for < timezone.now() - dt.timedelta(minutes=5):
        raise ConsultationError(_("The time must not be in the past."), code="past")
    consultation = Consultation.objects.create(
        referral=referral,
        patient=patient,
        institution=institution,
        requested_by=actor,
        lead=lead,
        question=question.strip()[:MAX_TEXT],
        scheduled_for=scheduled_for,
    )
    consultation.studies.set(visible)
    Participant.objects.create(
        consultation=consultation,
        user=actor,
        institution=institution,
        role=Participant.Role.REQUESTER,
        status=Participant.Status.ACCEPTED,
        responded_at=timezone.now(),
    )
    _admit(consultation, actor, actor)
    for user, where in people:
        _seat(consultation, user, where, actor)
    _system(consultation, actor, "requested")
    _audit(consultation, actor, "requested", "", State.REQUESTED)
    return consultation


@transaction.atomic
def consultation_invite(*, consultation: Consultation, actor: Any, user: Any) -> Participant:
    """Invite one more consultant (the requester or the lead may)."""
    consultation = _lock(consultation)
    _require_state(consultation, OPEN_STATES)
    if actor.pk not in {consultation.requested_by_id, consultation.lead_id}:
        raise _forbidden()
    [(user, where)] = _consultant_seats(actor, consultation.institution, [user])
    if consultation.participants.filter(user=user).exists():
        raise ConsultationError(_("Already invited."), status=409, code="already_invited")
    participant = _seat(consultation, user, where, actor)
    _system(consultation, actor, "invited", {"user": user.pk})
    return participant


@transaction.atomic
def consultation_accept(*, consultation: Consultation, actor: Any) -> Consultation:
    """Accept an invitation: the consultant may now see the studies and join the room."""
    consultation = _lock(consultation)
    _require_state(consultation, OPEN_STATES)
    seat = _own_seat(consultation, actor, {Participant.Status.INVITED})
    seat.status = Participant.Status.ACCEPTED
    seat.responded_at = timezone.now()
    seat.save(update_fields=["status", "responded_at"])
    _admit(consultation, actor, actor)
    _system(consultation, actor, "accepted")
    if consultation.state == State.REQUESTED:
        return _move(consultation, actor, State.SCHEDULED, "scheduled")
    _audit(consultation, actor, "accepted", consultation.state, consultation.state)
    return consultation


@transaction.atomic
def consultation_decline(*, consultation: Consultation, actor: Any) -> Consultation:
    consultation = _lock(consultation)
    _require_state(consultation, OPEN_STATES)
    seat = _own_seat(consultation, actor, {Participant.Status.INVITED})
    seat.status = Participant.Status.DECLINED
    seat.responded_at = timezone.now()
    seat.save(update_fields=["status", "responded_at"])
    remove_perm(VIEW_CONSULTATION, actor, consultation)
    _system(consultation, actor, "declined")
    _audit(consultation, actor, "declined", consultation.state, consultation.state)
    return consultation


@transaction.atomic
def consultation_join(*, consultation: Consultation, actor: Any, ip: str | None = None) -> bool:
    """Record that ``actor`` entered the room; start the session if it was waiting.

    Return whether the consultation went live. Joining is audited; the
    permission check is the caller's (the room's handshake).
    """
    consultation = _lock(consultation)
    audit(
        action="consultation.join",
        actor=actor,
        institution=consultation.institution,
        object_type="consultation",
        object_id=consultation.uuid,
        patient_ref=consultation.patient.uuid,
        ip=ip,
    )
    has_consultant = consultation.participants.filter(
        role=Participant.Role.CONSULTANT, status=Participant.Status.ACCEPTED
    ).exists()
    if consultation.state in {State.REQUESTED, State.SCHEDULED} and has_consultant:
        consultation.started_at = timezone.now()
        _move(consultation, actor, State.LIVE, "started", ["started_at"])
        _system(consultation, actor, "started")
        return True
    return False


def consultation_leave(*, consultation: Consultation, actor: Any, ip: str | None = None) -> None:
    audit(
        action="consultation.leave",
        actor=actor,
        institution=consultation.institution,
        object_type="consultation",
        object_id=consultation.uuid,
        patient_ref=consultation.patient.uuid,
        ip=ip,
    )


@transaction.atomic
def consultation_cancel(*, consultation: Consultation, actor: Any, reason: str) -> Consultation:
    """Cancel an open consultation (the requester or the lead); access ends after the grace."""
    consultation = _lock(consultation)
    _require_state(consultation, OPEN_STATES)
    if actor.pk not in {consultation.requested_by_id, consultation.lead_id}:
        raise _forbidden()
    if not reason.strip():
        raise ConsultationError(_("Cancelling needs a reason."), code="cancel_without_reason")
    consultation.cancellation_reason = reason.strip()[:200]
    _system(consultation, actor, "cancelled", {"reason": consultation.cancellation_reason})
    return _close(consultation, actor, State.CANCELLED, "cancelled", ["cancellation_reason"])


@transaction.atomic
def consultation_conclude(
    *, consultation: Consultation, actor: Any, conclusion: str
) -> Consultation:
    """The lead consultant writes and signs the conclusion.

    It joins the referral's timeline (if the consultation came from one) and
    the patient's record: the requesting institution's doctors may read it.
    """
    consultation = _lock(consultation)
    _require_state(consultation, {State.LIVE})
    if actor.pk != consultation.lead_id:
        raise ConsultationError(
            _("Only the lead consultant signs the conclusion."), status=403, code="not_lead"
        )
    _own_seat(consultation, actor, {Participant.Status.ACCEPTED})
    if not conclusion.strip():
        raise ConsultationError(_("The conclusion is empty."), code="empty_conclusion")
    now = timezone.now()
    consultation.conclusion = conclusion.strip()[:20000]
    consultation.concluded_by = actor
    consultation.concluded_at = now
    consultation.content_sha256, consultation.signature = signing.seal(
        consultation, signer_id=actor.pk, signed_at=now
    )
    for role in DOCTOR_ROLES:
        assign_perm(
            VIEW_CONSULTATION, institution_role_group(consultation.institution, role), consultation
        )
    if consultation.referral_id:
        ReferralEvent.objects.create(
            referral_id=consultation.referral_id,
            actor=actor,
            kind="consultation_concluded",
            note=str(consultation.uuid),
        )
    _system(consultation, actor, "concluded")
    return _close(
        consultation,
        actor,
        State.CONCLUDED,
        "concluded",
        ["conclusion", "concluded_by", "concluded_at", "content_sha256", "signature"],
    )


# --- helpers -----------------------------------------------------------------------------


def _requesting_institution(
    actor: Any, institution: Institution | None, referral: Referral | None
) -> Institution:
    memberships = active_memberships(actor).filter(role__in=DOCTOR_ROLES)
    if institution is not None:
        memberships = memberships.filter(institution=institution)
    elif referral is not None:
        memberships = memberships.filter(
            institution_id__in=[referral.from_institution_id, referral.to_institution_id]
        )
    ids = {m.institution_id for m in memberships}
    if len(ids) != 1:
        raise ConsultationError(
            _("Name the institution you request from (you work at several).")
            if ids
            else _("Only doctors may request a consultation."),
            status=400 if ids else 403,
            code="institution",
        )
    return Institution.objects.get(pk=ids.pop())


def _consultant_seats(
    actor: Any, institution: Institution, consultants: Iterable[Any]
) -> list[tuple[Any, Institution]]:
    """Return each consultant with the institution they are invited as (their region's)."""
    seats: list[tuple[Any, Institution]] = []
    for user in dict.fromkeys(consultants):
        if user is None or user.pk == actor.pk or not user.is_active:
            raise ConsultationError(_("Invite other doctors only."), code="bad_consultant")
        membership = (
            active_memberships(user)
            .filter(role__in=DOCTOR_ROLES, institution__region_id=institution.region_id)
            .order_by("-role", "institution__tier")
            .first()
        )
        if membership is None:
            raise ConsultationError(
                _("A consultant must be a doctor in this region."), code="bad_consultant"
            )
        seats.append((user, membership.institution))
    if not seats:
        raise ConsultationError(_("Invite at least one consultant."), code="no_consultant")
    return seats


def _seat(consultation: Consultation, user: Any, where: Institution, actor: Any) -> Participant:
    participant = Participant.objects.create(
        consultation=consultation, user=user, institution=where, role=Participant.Role.CONSULTANT
    )
    # Invited consultants see the request, so they can answer it; the room waits for "accepted".
    assign_perm(VIEW_CONSULTATION, user, consultation)
    url = f"/consultations/{consultation.uuid}/"
    notify(
        recipients=[user],
        kind="consultation_invited",
        title=_("You are invited to a consultation"),
        url=url,
    )
    return participant


def _admit(consultation: Consultation, user: Any, actor: Any) -> None:
    """Give an accepted participant the room and the studies, for this consultation's sake."""
    assign_perm(VIEW_CONSULTATION, user, consultation)
    for study in consultation.studies.select_related("patient", "origin"):
        study_access_grant(
            study=study,
            grantee=user,
            codenames=[VIEW],
            source=StudyGrant.Source.CONSULTATION,
            source_ref=str(consultation.uuid),
            actor=actor,
        )


def _own_seat(consultation: Consultation, actor: Any, statuses: set[str]) -> Participant:
    seat = consultation.participants.filter(user=actor, status__in=statuses).first()
    if seat is None:
        raise _forbidden()
    return seat


def _forbidden() -> ConsultationError:
    return ConsultationError(
        _("You may not do this in this consultation."), status=403, code="forbidden"
    )


def _lock(consultation: Consultation) -> Consultation:
    return (
        Consultation.objects.select_for_update(of=("self",))
        .select_related("institution", "patient", "referral")
        .get(pk=consultation.pk)
    )


def _require_state(consultation: Consultation, allowed: Iterable[str]) -> None:
    if consultation.state not in set(allowed):
        raise ConsultationError(
            _("Not possible while the consultation is %(state)s.")
            % {"state": consultation.get_state_display()},
            status=409,
            code="illegal_transition",
        )


def _system(
    consultation: Consultation, actor: Any, event: str, extra: dict[str, Any] | None = None
) -> ConsultationMessage:
    """Write an event into the transcript (numbered like any message); push it after commit."""
    seq = next_seq(consultation, any_state=True)
    message = ConsultationMessage.objects.create(
        consultation=consultation,
        seq=seq,
        client_msg_id=f"system:{seq}",
        kind=ConsultationMessage.Kind.SYSTEM,
        author=actor,
        payload={"event": event, **(extra or {})},
    )
    uuid = consultation.uuid
    pk = message.pk

    def _push() -> None:
        from referrals.consultation.selectors import message_out

        stored = ConsultationMessage.objects.select_related("author").get(pk=pk)
        push(uuid, message_event(message_out(stored, uuid)))

    transaction.on_commit(_push)
    return message


def _move(
    consultation: Consultation, actor: Any, to_state: str, kind: str, fields: Iterable[str] = ()
) -> Consultation:
    from_state = consultation.state
    consultation.state = to_state
    consultation.save(update_fields=["state", *fields])
    _audit(consultation, actor, kind, from_state, to_state)
    uuid, state = consultation.uuid, to_state
    transaction.on_commit(lambda: push(uuid, {"type": "room.state", "state": state}))
    transaction.on_commit(lambda: _after(consultation, kind))
    return consultation


def _close(
    consultation: Consultation, actor: Any, to_state: str, kind: str, fields: list[str]
) -> Consultation:
    consultation.closed_at = timezone.now()
    grace = DEFAULT_GRACE_HOURS
    if consultation.referral is not None:
        _answer, _lookback, grace = policy_for(consultation.referral)
    study_access_schedule_revoke(
        source=StudyGrant.Source.CONSULTATION,
        source_ref=str(consultation.uuid),
        after=consultation.closed_at + dt.timedelta(hours=grace),
    )
    consultation.presenter = None
    moved = _move(consultation, actor, to_state, kind, ["closed_at", "presenter", *fields])
    others = [p.user for p in consultation.participants.select_related("user")]
    notify(
        recipients=[u for u in others if u.pk != getattr(actor, "pk", None)],
        kind=f"consultation_{kind}",
        title=_("A consultation was concluded")
        if to_state == State.CONCLUDED
        else _("A consultation was cancelled"),
        url=f"/consultations/{consultation.uuid}/",
    )
    return moved


def _audit(
    consultation: Consultation, actor: Any, kind: str, from_state: str, to_state: str
) -> None:
    audit(
        action=f"consultation.{kind}",
        actor=actor,
        institution=consultation.institution,
        object_type="consultation",
        object_id=consultation.uuid,
        patient_ref=consultation.patient.uuid,
        detail={"from": from_state, "to": to_state},
    )


def _after(consultation: Consultation, kind: str) -> None:
    for hook in AFTER_TRANSITION:
        hook(consultation, kind)
