"""Consultation services: requests, answers, access, the room's messages, the conclusion."""

from __future__ import annotations

import base64
import datetime as dt
import io

import pytest
from django.utils import timezone
from PIL import Image

from referrals.consultation import signing
from referrals.consultation.messages import ConsultationError, message_post
from referrals.consultation.models import (
    Annotation,
    Consultation,
    ConsultationMessage,
    Participant,
)
from referrals.consultation.selectors import (
    access_consultation,
    consultant_candidates,
    patient_consultations,
    room_participant,
    visible_consultations,
)
from referrals.consultation.services import (
    consultation_accept,
    consultation_cancel,
    consultation_conclude,
    consultation_decline,
    consultation_invite,
    consultation_join,
    consultation_request,
)
from referrals.models import ReferralEvent
from regional_cloud.models import AuditEvent
from studies.access import study_access_revoke_due
from studies.archive import get_store
from studies.models import StudyGrant
from tests.consultation_helpers import first_image, make_room
from tests.factories import make_institution, make_region, make_user
from tests.referral_helpers import accepted_referral, can_view, ingest_study, make_people

pytestmark = pytest.mark.django_db
State = Consultation.State
Kind = ConsultationMessage.Kind


def png_data_url(size: int = 8) -> str:
    buffer = io.BytesIO()
    Image.new("L", (size, size), 128).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def say(room, user, text: str, client_id: str):
    return message_post(
        consultation=room.consultation,
        actor=user,
        client_msg_id=client_id,
        kind=Kind.TEXT,
        text=text,
    )


# --- requesting and answering ----------------------------------------------------------


def test_it_invites_consultants_who_see_the_studies_only_once_they_accept(network):
    room = make_room(network, accept=False)
    c = room.consultation

    assert c.state == State.REQUESTED
    assert c.lead == room.specialist
    assert set(c.participants.values_list("user", "status")) == {
        (room.doctor.pk, Participant.Status.ACCEPTED),
        (room.specialist.pk, Participant.Status.INVITED),
        (room.expert.pk, Participant.Status.INVITED),
    }
    # Invited: they see the request, not yet the images, and may not enter the room.
    assert access_consultation(room.expert, c.uuid) == c
    assert not can_view(room.expert, room.study)
    assert room_participant(room.expert, c.uuid) is None

    consultation_accept(consultation=c, actor=room.expert)

    c.refresh_from_db()
    assert c.state == State.SCHEDULED
    assert can_view(room.expert, room.study)
    assert StudyGrant.objects.filter(
        study=room.study, user=room.expert, source="consultation", source_ref=str(c.uuid)
    ).exists()
    assert room_participant(room.expert, c.uuid) is not None


def test_it_shows_a_consultation_to_its_participants_only(network):
    room = make_room(network)
    outsider = room.people["outsider"]
    colleague = room.people["doctor2"]  # same clinic, not a participant

    assert set(visible_consultations(room.doctor)) == {room.consultation}
    assert set(visible_consultations(room.specialist)) == {room.consultation}
    assert not visible_consultations(outsider).exists()
    assert not visible_consultations(colleague).exists()
    assert room_participant(outsider, room.consultation.uuid) is None


def test_it_refuses_a_request_on_studies_the_doctor_may_not_see(network):
    people = make_people(network)
    foreign = ingest_study(network["other_clinic"], patient_id="P-9")

    with pytest.raises(ConsultationError) as error:
        consultation_request(
            actor=people["doctor"], studies=[foreign], consultants=[people["specialist"]]
        )
    assert error.value.code == "study_not_visible"


def test_it_refuses_consultants_outside_the_region_and_a_lead_who_is_not_one(network):
    people = make_people(network)
    study = ingest_study(network["clinic"])
    far = make_institution(region=make_region())
    stranger = make_user(institution=far, role="specialist")

    with pytest.raises(ConsultationError) as error:
        consultation_request(actor=people["doctor"], studies=[study], consultants=[stranger])
    assert error.value.code == "bad_consultant"
    with pytest.raises(ConsultationError) as error:
        consultation_request(
            actor=people["doctor"],
            studies=[study],
            consultants=[people["specialist"]],
            lead=people["expert"],
        )
    assert error.value.code == "lead_not_consultant"
    assert stranger not in consultant_candidates(people["doctor"])
    assert people["expert"] in consultant_candidates(people["doctor"])


def test_it_lets_an_invited_consultant_decline_and_lose_sight_of_it(network):
    room = make_room(network, accept=False)

    consultation_decline(consultation=room.consultation, actor=room.expert)

    assert not visible_consultations(room.expert).exists()
    assert not can_view(room.expert, room.study)
    with pytest.raises(ConsultationError):
        consultation_accept(consultation=room.consultation, actor=room.expert)


def test_it_lets_the_requester_invite_one_more_consultant_and_nobody_else(network):
    room = make_room(network)
    county_doctor = room.people["county_doctor"]

    consultation_invite(consultation=room.consultation, actor=room.doctor, user=county_doctor)

    assert room.consultation.participants.filter(user=county_doctor).exists()
    with pytest.raises(ConsultationError) as error:
        consultation_invite(
            consultation=room.consultation, actor=room.expert, user=room.people["specialist2"]
        )
    assert error.value.status == 403


def test_it_goes_live_when_a_participant_joins_after_a_consultant_accepted(network):
    room = make_room(network)

    went_live = consultation_join(consultation=room.consultation, actor=room.doctor, ip="10.0.0.1")

    room.consultation.refresh_from_db()
    assert went_live
    assert room.consultation.state == State.LIVE
    join = AuditEvent.objects.get(action="consultation.join")
    assert join.object_id == str(room.consultation.uuid)
    assert join.actor == room.doctor
    assert join.ip_address == "10.0.0.1"


def test_it_requests_a_consultation_from_a_referral(network):
    people = make_people(network)
    study = ingest_study(network["clinic"])
    referral = accepted_referral(network, people, study)

    c = consultation_request(
        actor=people["specialist"], referral=referral, consultants=[people["expert"]]
    )

    assert c.referral == referral
    assert c.institution == network["county"]
    assert list(c.studies.all()) == [study]
    assert c.patient == study.patient


# --- the room ----------------------------------------------------------------------------


def test_it_numbers_messages_in_order_and_a_resend_does_not_duplicate(network):
    room = make_room(network, live=True)
    start = room.consultation.last_seq

    first = say(room, room.doctor, "您好", "c-1")
    second = say(room, room.specialist, "请看第 12 层", "c-2")
    again = say(room, room.doctor, "您好", "c-1")

    assert (first.message.seq, second.message.seq) == (start + 1, start + 2)
    assert again.created is False
    assert again.message.pk == first.message.pk
    assert ConsultationMessage.objects.filter(client_msg_id="c-1").count() == 1
    with pytest.raises(ConsultationError) as error:
        say(room, room.specialist, "mine", "c-1")
    assert error.value.code == "id_taken"


def test_it_keeps_a_snapshot_in_the_archive_under_the_consultation(network):
    room = make_room(network, live=True)

    posted = message_post(
        consultation=room.consultation,
        actor=room.expert,
        client_msg_id="snap-1",
        kind=Kind.SNAPSHOT,
        text="看这里",
        snapshot_data_url=png_data_url(),
    )

    key = f"consultation/{room.consultation.uuid}/{posted.message.seq}.png"
    assert posted.message.snapshot_key == key
    with get_store().open(key) as stream:
        assert stream.read().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("data_url", "code"),
    [
        ("data:image/jpeg;base64,AAAA", "snapshot_not_png"),
        ("data:image/png;base64,not base64!", "snapshot_not_png"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(), "snapshot_not_png"),
        (
            "data:image/png;base64,"
            + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * (2 * 1024 * 1024)).decode(),
            "snapshot_too_large",
        ),
    ],
)
def test_it_refuses_a_snapshot_that_is_not_a_small_png(network, data_url, code):
    room = make_room(network, live=True)
    before = room.consultation.last_seq

    with pytest.raises(ConsultationError) as error:
        message_post(
            consultation=room.consultation,
            actor=room.expert,
            client_msg_id="snap-bad",
            kind=Kind.SNAPSHOT,
            snapshot_data_url=data_url,
        )

    assert error.value.code == code
    room.consultation.refresh_from_db()
    assert room.consultation.last_seq == before


def test_it_stores_an_annotation_with_the_study_and_refuses_other_images(network):
    room = make_room(network, live=True)
    image = first_image(room.study)

    posted = message_post(
        consultation=room.consultation,
        actor=room.specialist,
        client_msg_id="ann-1",
        kind=Kind.ANNOTATION,
        annotation={"kind": "arrow", "points": [{"x": 10, "y": 12}, {"x": 40, "y": 30}], **image},
    )

    annotation = Annotation.objects.get()
    assert annotation.message == posted.message
    assert annotation.study == room.study
    assert annotation.sop_instance_uid == image["sop"]
    assert posted.message.payload["points"] == [{"x": 10.0, "y": 12.0}, {"x": 40.0, "y": 30.0}]
    other = ingest_study(network["clinic"], patient_id="P-other")
    with pytest.raises(ConsultationError) as error:
        message_post(
            consultation=room.consultation,
            actor=room.specialist,
            client_msg_id="ann-2",
            kind=Kind.ANNOTATION,
            annotation={
                "kind": "text",
                "points": [{"x": 1, "y": 1}],
                "text": "x",
                **first_image(other),
            },
        )
    assert error.value.code == "foreign_image"


# --- conclusion and cancellation ----------------------------------------------------------------


def test_it_lets_only_the_lead_conclude_and_seals_the_conclusion(network):
    room = make_room(network, live=True)

    with pytest.raises(ConsultationError) as error:
        consultation_conclude(consultation=room.consultation, actor=room.expert, conclusion="x")
    assert error.value.code == "not_lead"

    c = consultation_conclude(
        consultation=room.consultation,
        actor=room.specialist,
        conclusion="考虑良性结节，建议 6 个月复查",
    )

    c.refresh_from_db()
    assert c.state == State.CONCLUDED
    assert c.concluded_by == room.specialist
    assert signing.verify(c)
    c.conclusion += "（改）"
    assert not signing.verify(c)
    with pytest.raises(ConsultationError) as error:
        say(room, room.doctor, "late", "late-1")
    assert error.value.code == "consultation_closed"


def test_it_ends_study_access_after_the_grace_period_once_concluded(network):
    room = make_room(network, live=True)
    consultation_conclude(consultation=room.consultation, actor=room.specialist, conclusion="良性")

    assert can_view(room.expert, room.study)
    study_access_revoke_due(now=timezone.now() + dt.timedelta(hours=73))
    assert not can_view(room.expert, room.study)
    # The consultation itself stays readable by its participants.
    assert access_consultation(room.expert, room.consultation.uuid)


def test_it_joins_the_conclusion_to_the_referral_and_the_patient_record(network):
    people = make_people(network)
    study = ingest_study(network["clinic"])
    referral = accepted_referral(network, people, study)
    c = consultation_request(
        actor=people["specialist"], referral=referral, consultants=[people["expert"]]
    )
    consultation_accept(consultation=c, actor=people["expert"])
    consultation_join(consultation=c, actor=people["expert"])

    consultation_conclude(consultation=c, actor=people["expert"], conclusion="建议手术")

    event = ReferralEvent.objects.get(referral=referral, kind="consultation_concluded")
    assert event.actor == people["expert"]
    # A colleague at the requesting institution reads it in the patient's record...
    colleague = people["specialist2"]
    assert list(patient_consultations(colleague, study.patient)) == [c]
    # ...an outsider does not.
    assert not patient_consultations(people["outsider"], study.patient).exists()


def test_it_lets_the_requester_cancel_with_a_reason_and_schedules_the_end_of_access(network):
    room = make_room(network)

    with pytest.raises(ConsultationError):
        consultation_cancel(consultation=room.consultation, actor=room.doctor, reason=" ")
    consultation_cancel(consultation=room.consultation, actor=room.doctor, reason="患者已转院")

    room.consultation.refresh_from_db()
    assert room.consultation.state == State.CANCELLED
    grants = StudyGrant.objects.filter(
        source="consultation", source_ref=str(room.consultation.uuid)
    )
    assert grants.exists()
    assert all(g.revoke_after is not None for g in grants)
    assert room_participant(room.expert, room.consultation.uuid) is None


def test_it_writes_the_transitions_into_the_transcript(network):
    room = make_room(network, live=True)
    consultation_conclude(consultation=room.consultation, actor=room.specialist, conclusion="好")

    events = list(
        ConsultationMessage.objects.filter(consultation=room.consultation, kind=Kind.SYSTEM)
        .order_by("seq")
        .values_list("payload__event", flat=True)
    )
    assert events == ["requested", "accepted", "accepted", "started", "concluded"]
    seqs = list(
        ConsultationMessage.objects.filter(consultation=room.consultation).values_list(
            "seq", flat=True
        )
    )
    assert seqs == list(range(1, len(seqs) + 1))
