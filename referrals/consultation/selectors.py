"""Reads for consultations, filtered by the ``view_consultation`` object permission.

Lists go through ``filter_by_permission``; a consultation the caller may not
see is a 404 like an unknown UUID. The room's own check
(``room_participant``) is stricter: an accepted participant of an open
consultation who also holds the permission.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404
from django.urls import reverse

from hospitals.models import Role
from hospitals.selectors import active_memberships
from referrals.consultation.models import (
    OPEN_STATES,
    Annotation,
    Consultation,
    ConsultationMessage,
    Participant,
)
from regional_cloud.permissions import filter_by_permission, has_object_permission
from studies.models import Patient, Study

VIEW_CONSULTATION = "referrals.view_consultation"
VIEW_STUDY = "studies.view_study"
REPLAY_LIMIT = 500


def visible_consultations(user: Any) -> QuerySet[Consultation]:
    """Return the consultations ``user`` may see (through the one permission helper)."""
    return filter_by_permission(
        Consultation.objects.select_related(
            "patient", "institution", "requested_by", "lead", "referral"
        ),
        user,
        VIEW_CONSULTATION,
    )


def access_consultation(user: Any, consultation_uuid: Any) -> Consultation:
    """Return the consultation if ``user`` may see it, else raise Http404."""
    consultation = visible_consultations(user).filter(uuid=consultation_uuid).first()
    if consultation is None:
        raise Http404("no such consultation")
    return consultation


@dataclass(frozen=True)
class RoomSeat:
    consultation: Consultation
    participant: Participant
    me: dict[str, Any]


def room_participant(user: Any, consultation_uuid: Any) -> RoomSeat | None:
    """Return the user's seat in an open consultation's room, or None if they may not enter."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    participant = (
        Participant.objects.filter(
            consultation__uuid=consultation_uuid,
            user=user,
            status=Participant.Status.ACCEPTED,
            consultation__state__in=OPEN_STATES,
        )
        .select_related("consultation", "consultation__institution", "consultation__patient")
        .select_related("institution")
        .first()
    )
    if participant is None:
        return None
    consultation = participant.consultation
    if not has_object_permission(user, VIEW_CONSULTATION, consultation):
        return None
    return RoomSeat(consultation, participant, person(user, participant))


def person(user: Any, participant: Participant | None = None) -> dict[str, Any]:
    """Return how a participant is shown to the others: a name and where they work."""
    return {
        "id": user.pk,
        "name": user.get_full_name() or user.get_username(),
        "institution": participant.institution.name if participant else "",
        "role": participant.role if participant else "",
    }


def message_out(message: ConsultationMessage, consultation_uuid: Any) -> dict[str, Any]:
    """Return what the room is told about one stored message."""
    author = message.author
    snapshot_url = ""
    if message.snapshot_key:
        snapshot_url = reverse("consultation_snapshot", args=[consultation_uuid, message.seq])
    return {
        "seq": message.seq,
        "client_msg_id": message.client_msg_id,
        "kind": message.kind,
        "author": {
            "id": author.pk,
            "name": author.get_full_name() or author.get_username(),
        }
        if author
        else None,
        "text": message.text,
        "payload": message.payload,
        "snapshot_url": snapshot_url,
        "created_at": message.created_at.isoformat(),
    }


def text_out(
    *, seq: int, client_msg_id: str, author: dict[str, Any], text: str, created_at: Any
) -> dict[str, Any]:
    """Return what ``message_out`` says of a text just stored, without building the model.

    The room's hot path (``consumers.post_text_here``): ``author`` is the sender's
    ``{"id", "name"}``, known since the handshake.
    """
    return {
        "seq": seq,
        "client_msg_id": client_msg_id,
        "kind": ConsultationMessage.Kind.TEXT.value,
        "author": author,
        "text": text,
        "payload": {},
        "snapshot_url": "",
        "created_at": created_at.isoformat(),
    }


def messages_after(consultation: Consultation, after: int, limit: int = REPLAY_LIMIT) -> list[Any]:
    """Return the room's messages with ``seq > after``, in order, at most ``limit``."""
    return list(
        ConsultationMessage.objects.filter(consultation=consultation, seq__gt=after)
        .select_related("author")
        .order_by("seq")[:limit]
    )


def consultation_annotations(consultation: Consultation) -> QuerySet[Annotation]:
    return consultation.annotations.select_related("author").order_by("created_at", "pk")


def participants_of(consultation: Consultation) -> QuerySet[Participant]:
    return consultation.participants.select_related("user", "institution").order_by(
        "invited_at", "pk"
    )


def patient_consultations(user: Any, patient: Patient) -> QuerySet[Consultation]:
    """Return the concluded consultations of this person that ``user`` may see."""
    same = Q(patient=patient)
    if patient.person_id:
        same |= Q(patient__person_id=patient.person_id)
    return (
        visible_consultations(user)
        .filter(same, state=Consultation.State.CONCLUDED)
        .order_by("-concluded_at")
    )


def patient_record_consultations(user: Any, patient: Patient) -> QuerySet[Consultation]:
    """The patient page's list: concluded consultations ``user`` may see, with who took part."""
    took_part = (
        Participant.objects.filter(status=Participant.Status.ACCEPTED)
        .select_related("user", "institution")
        .order_by("invited_at", "pk")
    )
    return patient_consultations(user, patient).prefetch_related(
        Prefetch("participants", queryset=took_part, to_attr="took_part")
    )


def may_request_consultation(user: Any) -> bool:
    """Doctors may request one (the services check the rest: studies seen, consultants)."""
    return active_memberships(user).filter(role__in=[Role.CLINIC_DOCTOR, Role.SPECIALIST]).exists()


def study_to_consult(user: Any, reference: str) -> Study | None:
    """Return the study named by its UUID or its StudyInstanceUID, if ``user`` may see it.

    Pages link either way (the patient page by UID, the viewer by UUID); a study
    the user may not see is None, like an unknown one.
    """
    reference = (reference or "").strip()[:64]
    try:
        by = Q(uuid=uuid.UUID(reference))
    except ValueError:
        by = Q(study_instance_uid=reference)
    return filter_by_permission(Study.objects.filter(by), user, VIEW_STUDY).first()


def consultant_candidates(user: Any) -> QuerySet[Any]:
    """Return the doctors ``user`` may invite: doctors in the regions where ``user`` is one."""
    from django.contrib.auth import get_user_model

    doctor = [Role.CLINIC_DOCTOR, Role.SPECIALIST]
    regions = active_memberships(user).filter(role__in=doctor).values("institution__region_id")
    return (
        get_user_model()
        .objects.filter(
            is_active=True,
            memberships__is_active=True,
            memberships__role__in=doctor,
            memberships__institution__is_active=True,
            memberships__institution__region_id__in=regions,
        )
        .exclude(pk=user.pk)
        .distinct()
        .order_by("last_name", "first_name", "username")
    )


def consultation_actions(user: Any, consultation: Consultation) -> list[str]:
    """Return what ``user`` may do now: accept, decline, join, conclude, cancel, transcript."""
    if not has_object_permission(user, VIEW_CONSULTATION, consultation):
        return []
    seat = consultation.participants.filter(user=user).first()
    actions = []
    is_open = consultation.state in OPEN_STATES
    if seat and is_open:
        if seat.status == Participant.Status.INVITED:
            actions += ["accept", "decline"]
        elif seat.status == Participant.Status.ACCEPTED:
            actions.append("join")
    if is_open and user.pk in {consultation.requested_by_id, consultation.lead_id}:
        actions.append("cancel")
    if consultation.state == Consultation.State.LIVE and user.pk == consultation.lead_id:
        actions.append("conclude")
    actions.append("transcript")
    return actions


def ice_servers() -> list[dict[str, Any]]:
    """Return the STUN/TURN servers browsers use for the room's audio and video."""
    return list(getattr(settings, "WEBRTC_ICE_SERVERS", []))
