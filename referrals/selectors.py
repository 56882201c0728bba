"""Reads for referrals, the patient index and recognition, filtered by what the caller may see.

Lists go through ``filter_by_permission``; single objects are fetched from the
filtered list and raise ``Http404`` otherwise, so nothing confirms that another
institution's referral, patient or study exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from hospitals.models import Institution, Role
from hospitals.selectors import active_memberships
from referrals.models import Referral, ReferralEvent
from referrals.recognition_models import RecognitionDecision
from referrals.rules import ReferralError, check_route
from regional_cloud.permissions import filter_by_permission
from studies.models import Patient, Study

VIEW_REFERRAL = "referrals.view_referral"
VIEW_STUDY = "studies.view_study"
SENDING_ROLES = frozenset({Role.CLINIC_DOCTOR, Role.SPECIALIST})
DOCTOR_ROLES = SENDING_ROLES
SEARCH_LIMIT = 50


# --- referrals -------------------------------------------------------------------------


def visible_referrals(user: Any) -> QuerySet[Referral]:
    """Return the referrals ``user`` may see (through the one permission helper)."""
    return filter_by_permission(
        Referral.objects.select_related(
            "patient", "from_institution", "to_institution", "assigned_specialist", "created_by"
        ),
        user,
        VIEW_REFERRAL,
    )


def _institution_ids(user: Any, roles: frozenset[str] | None = None) -> QuerySet[Any]:
    memberships = active_memberships(user)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return memberships.values("institution_id")


def sent_referrals(user: Any) -> QuerySet[Referral]:
    return visible_referrals(user).filter(from_institution__in=_institution_ids(user))


def incoming_referrals(user: Any) -> QuerySet[Referral]:
    return visible_referrals(user).filter(to_institution__in=_institution_ids(user))


def access_referral(user: Any, referral_uuid: Any) -> Referral:
    """Return the referral if ``user`` may see it, else raise Http404."""
    referral = visible_referrals(user).filter(uuid=referral_uuid).first()
    if referral is None:
        raise Http404("no such referral")
    return referral


def referral_events(referral: Referral) -> QuerySet[ReferralEvent]:
    return referral.events.select_related("actor").order_by("at", "pk")


def sending_institutions(user: Any) -> QuerySet[Institution]:
    """Return the institutions from which ``user`` may refer patients."""
    return Institution.objects.filter(
        pk__in=_institution_ids(user, SENDING_ROLES), is_active=True
    ).order_by("tier", "code")


@dataclass(frozen=True)
class Target:
    institution: Institution
    needs_skip_reason: bool


def allowed_targets(from_institution: Institution, direction: str) -> list[Target]:
    """Return where ``from_institution`` may refer in ``direction``, by ``check_route``'s rules.

    An upward target that skips a level is allowed with a reason: it is listed
    with ``needs_skip_reason`` so the form can ask for one.
    """
    targets = []
    candidates = Institution.objects.filter(region_id=from_institution.region_id, is_active=True)
    for institution in candidates.order_by("-tier", "code"):
        needs_reason = False
        try:
            _check(from_institution, institution, direction, skip_reason="")
        except ReferralError as error:
            if error.code != "skip_without_reason":
                continue
            needs_reason = True
        targets.append(Target(institution, needs_reason))
    return targets


def _check(
    from_institution: Institution, to: Institution, direction: str, skip_reason: str
) -> None:
    # A downward route is judged on its ends; the texts are checked when it is written.
    check_route(
        direction=direction,
        from_institution=from_institution,
        to_institution=to,
        skip_reason=skip_reason,
        treatment_summary="-",
        follow_up_plan="-",
    )


# --- the patient index --------------------------------------------------------------------


def own_patients(user: Any) -> QuerySet[Patient]:
    """Return the patients registered at the institutions where ``user`` is a doctor."""
    return Patient.objects.filter(issuer__in=_institution_ids(user, DOCTOR_ROLES))


def visible_patients(user: Any) -> QuerySet[Patient]:
    """Return ``user``'s own institutions' patients and the patients of referrals they see."""
    via_referrals = visible_referrals(user).values("patient_id")
    return Patient.objects.filter(
        Q(issuer__in=_institution_ids(user, DOCTOR_ROLES)) | Q(pk__in=via_referrals)
    ).select_related("issuer", "person")


def search_patients(user: Any, query: str) -> QuerySet[Patient]:
    """Search ``user``'s own institutions' patients by name or PatientID (never others')."""
    patients = own_patients(user).select_related("issuer")
    query = query.strip()
    if query:
        patients = patients.filter(
            Q(patient_name__icontains=query)
            | Q(patient_name__icontains=query.replace(" ", "^"))
            | Q(patient_id__icontains=query)
        )
    return patients.order_by("patient_name", "patient_id")[:SEARCH_LIMIT]


def access_patient(user: Any, patient_uuid: Any) -> Patient:
    patient = visible_patients(user).filter(uuid=patient_uuid).first()
    if patient is None:
        raise Http404("no such patient")
    return patient


def same_person(patient: Patient) -> Q:
    """Return the condition for studies of this patient or of records linked to the same person."""
    condition = Q(patient=patient)
    if patient.person_id:
        condition |= Q(patient__person_id=patient.person_id)
    return condition


def visible_studies(user: Any) -> QuerySet[Study]:
    return filter_by_permission(Study.objects.all(), user, VIEW_STUDY)


def person_studies(user: Any, patient: Patient) -> QuerySet[Study]:
    """Return the studies of this person that ``user`` may see, at any institution.

    Studies the user may not see are absent: no count, no hint of where they are.
    """
    return (
        visible_studies(user)
        .filter(same_person(patient))
        .select_related("origin", "patient")
        .order_by("-study_date", "-received_at")
    )


def linked_records(user: Any, patient: Patient) -> QuerySet[Patient]:
    """Return the other records linked to the same person that ``user`` may see."""
    if not patient.person_id:
        return Patient.objects.none()
    return (
        visible_patients(user)
        .filter(person_id=patient.person_id)
        .exclude(pk=patient.pk)
        .select_related("issuer")
    )


def confirm_candidates(user: Any, patient: Patient) -> QuerySet[Patient]:
    """Return the patients ``user`` may see at other institutions, to confirm a match with."""
    candidates = visible_patients(user).exclude(issuer_id=patient.issuer_id).exclude(pk=patient.pk)
    if patient.person_id:
        candidates = candidates.exclude(person_id=patient.person_id)
    return candidates.order_by("issuer__code", "patient_name")


def access_study(user: Any, study_uid: str) -> Study:
    study = (
        visible_studies(user)
        .filter(study_instance_uid=study_uid)
        .select_related("patient", "origin", "origin__region")
        .first()
    )
    if study is None:
        raise Http404("no such study")
    return study


# --- recognition ---------------------------------------------------------------------------


def visible_decisions(user: Any, study: Study) -> QuerySet[RecognitionDecision]:
    """Return the decisions on ``study`` that ``user`` may read.

    The deciding institution's doctors see theirs; the origin sees every
    decision on its own study (feedback on its quality). A third institution
    does not learn where else the patient went.
    """
    mine = _institution_ids(user, DOCTOR_ROLES)
    decisions = RecognitionDecision.objects.filter(study=study).select_related(
        "decided_by", "institution", "repeat_study"
    )
    if study.origin_id in {row["institution_id"] for row in mine}:
        return decisions
    return decisions.filter(institution__in=mine)


def access_decision(user: Any, decision_uuid: Any) -> RecognitionDecision:
    """Return a decision of one of ``user``'s institutions on a study they may see, else 404."""
    decision = (
        RecognitionDecision.objects.filter(
            uuid=decision_uuid,
            institution__in=_institution_ids(user, DOCTOR_ROLES),
            study__in=visible_studies(user).values("pk"),
        )
        .select_related("study", "study__patient", "institution")
        .first()
    )
    if decision is None:
        raise Http404("no such decision")
    return decision


# --- what a user may do with a referral ----------------------------------------------------

ANSWERING_ROLES = frozenset({Role.SPECIALIST, Role.CLINIC_DOCTOR})
CANCELLABLE = frozenset(
    {
        Referral.State.DRAFT,
        Referral.State.SUBMITTED,
        Referral.State.ACCEPTED,
        Referral.State.SCHEDULED,
    }
)


def referral_actions(user: Any, referral: Referral) -> list[str]:
    """Return the transitions ``user`` may attempt now (the services decide in the end)."""
    roles_from = _roles_at(user, referral.from_institution_id)
    roles_to = _roles_at(user, referral.to_institution_id)
    sender = bool(roles_from & SENDING_ROLES)
    answerer = bool(roles_to & ANSWERING_ROLES) and (
        not referral.assigned_specialist_id or referral.assigned_specialist_id == user.pk
    )
    state = referral.state
    State = Referral.State
    actions = []
    if sender and state == State.DRAFT:
        actions.append("submit")
    if answerer and state == State.SUBMITTED:
        actions += ["accept", "reject"]
    if answerer and state in {State.ACCEPTED, State.SCHEDULED}:
        actions += ["schedule", "arrive"]
    if answerer and state == State.ARRIVED:
        actions.append("complete")
    if sender and state in CANCELLABLE:
        actions.append("cancel")
    if (
        referral.direction == Referral.Direction.UP
        and roles_to & SENDING_ROLES
        and state in {State.ACCEPTED, State.SCHEDULED, State.ARRIVED, State.COMPLETED}
    ):
        actions.append("refer_down")
    return actions


def _roles_at(user: Any, institution_id: int) -> set[str]:
    return set(
        active_memberships(user)
        .filter(institution_id=institution_id)
        .values_list("role", flat=True)
    )


def down_referral_patient(user: Any, referral: Referral) -> Patient | None:
    """Return the receiving institution's own record of the referred person, if it has one.

    A downward referral is written from the sender's own patient record; the
    record made at arrival is linked to the clinic's by ID number or confirmation.
    """
    patient = referral.patient
    if not patient.person_id:
        return None
    return (
        own_patients(user)
        .filter(issuer_id=referral.to_institution_id, person_id=patient.person_id)
        .first()
    )
