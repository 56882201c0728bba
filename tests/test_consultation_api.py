"""The consultation API and pages: who sees what, requests, answers, the record, the PDF."""

from __future__ import annotations

import base64
import io

import pytest
from django.urls import reverse
from PIL import Image
from rest_framework.test import APIClient

from referrals.consultation.messages import message_post
from referrals.consultation.services import consultation_conclude, consultation_join
from tests.consultation_helpers import make_room
from tests.referral_helpers import ingest_study, make_people

pytestmark = pytest.mark.django_db


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


ROUTES = [
    "api-consultation-detail",
    "api-consultation-accept",
    "api-consultation-decline",
    "api-consultation-cancel",
    "api-consultation-conclude",
    "api-consultation-messages",
    "api-consultation-annotations",
]


def test_it_shows_a_consultation_to_participants_and_nobody_else(network):
    room = make_room(network)
    url = reverse("api-consultation-detail", args=[room.consultation.uuid])

    mine = api(room.expert).get(url)
    assert mine.status_code == 200
    assert mine.json()["state"] == "scheduled"
    assert {p["user"] for p in mine.json()["participants"]} == {
        room.doctor.username,
        room.specialist.username,
        room.expert.username,
    }
    assert mine.json()["studies"] == [room.study.study_instance_uid]
    for other in (room.people["doctor2"], room.people["outsider"]):
        assert api(other).get(url).status_code == 404
    assert api(room.people["outsider"]).get(reverse("api-consultation-list")).json()["count"] == 0


def test_it_refuses_anonymous_callers_on_every_consultation_route(network):
    room = make_room(network)
    anonymous = api()
    for name in ROUTES:
        url = reverse(name, args=[room.consultation.uuid])
        for method in ("get", "post"):
            assert getattr(anonymous, method)(url).status_code in {401, 403}, (name, method)
    assert anonymous.get(reverse("api-consultation-list")).status_code in {401, 403}
    patient = reverse("api-patient-consultations", args=[room.study.patient.uuid])
    assert anonymous.get(patient).status_code in {401, 403}


def test_it_requests_accepts_and_concludes_through_the_api(network):
    people = make_people(network)
    study = ingest_study(network["clinic"], patient_id="P-api")

    created = api(people["doctor"]).post(
        reverse("api-consultation-list"),
        {
            "studies": [study.study_instance_uid],
            "consultants": [people["specialist"].username, people["expert"].username],
            "lead": people["expert"].username,
            "question": "请会诊",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    uuid = created.json()["uuid"]
    assert created.json()["lead"] == people["expert"].username

    accepted = api(people["expert"]).post(reverse("api-consultation-accept", args=[uuid]))
    assert accepted.status_code == 200
    assert "join" in accepted.json()["actions"]
    early = api(people["expert"]).post(
        reverse("api-consultation-conclude", args=[uuid]), {"conclusion": "x"}, format="json"
    )
    assert early.status_code == 409
    assert early.json()["code"] == "illegal_transition"

    from referrals.consultation.models import Consultation

    consultation_join(consultation=Consultation.objects.get(uuid=uuid), actor=people["expert"])
    concluded = api(people["expert"]).post(
        reverse("api-consultation-conclude", args=[uuid]),
        {"conclusion": "良性可能大"},
        format="json",
    )
    assert concluded.status_code == 200
    assert concluded.json()["state"] == "concluded"
    assert concluded.json()["seal_valid"] is True

    record = api(people["doctor2"]).get(
        reverse("api-patient-consultations", args=[study.patient.uuid])
    )
    assert record.status_code == 200
    assert [c["uuid"] for c in record.json()] == [uuid]
    assert record.json()[0]["conclusion"] == "良性可能大"


def test_it_refuses_consultants_the_caller_may_not_invite(network):
    people = make_people(network)
    study = ingest_study(network["clinic"], patient_id="P-x")
    response = api(people["doctor"]).post(
        reverse("api-consultation-list"),
        {"studies": [study.study_instance_uid], "consultants": ["nobody-here"]},
        format="json",
    )
    assert response.status_code == 400


def test_it_serves_the_transcript_since_a_sequence_number(network):
    room = make_room(network, live=True)
    for i in range(3):
        message_post(
            consultation=room.consultation,
            actor=room.doctor,
            client_msg_id=f"t-{i}",
            kind="text",
            text=f"第{i}句",
        )
    url = reverse("api-consultation-messages", args=[room.consultation.uuid])

    everything = api(room.specialist).get(url).json()
    later = api(room.specialist).get(url, {"after": everything[-2]["seq"]}).json()

    assert [m["seq"] for m in everything] == list(range(1, len(everything) + 1))
    assert [m["text"] for m in later] == ["第2句"]


def test_it_exports_the_transcript_as_pdf_to_participants_only(network, client_for):
    room = make_room(network, live=True)
    png = io.BytesIO()
    Image.new("L", (32, 32), 200).save(png, format="PNG")
    message_post(
        consultation=room.consultation,
        actor=room.expert,
        client_msg_id="s-1",
        kind="snapshot",
        snapshot_data_url="data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
    )
    message_post(
        consultation=room.consultation,
        actor=room.doctor,
        client_msg_id="t-1",
        kind="text",
        text="患者既往有吸烟史",
    )
    consultation_conclude(consultation=room.consultation, actor=room.specialist, conclusion="良性")
    url = reverse("consultation_transcript", args=[room.consultation.uuid])

    response = client_for(room.expert).get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert b"STSong-Light" in response.content
    assert client_for(room.people["outsider"]).get(url).status_code == 404


def test_it_serves_a_snapshot_to_participants_only(network, client_for):
    room = make_room(network, live=True)
    png = io.BytesIO()
    Image.new("L", (16, 16), 90).save(png, format="PNG")
    posted = message_post(
        consultation=room.consultation,
        actor=room.expert,
        client_msg_id="s-1",
        kind="snapshot",
        snapshot_data_url="data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
    )
    url = reverse("consultation_snapshot", args=[room.consultation.uuid, posted.message.seq])

    response = client_for(room.doctor).get(url)

    assert response.status_code == 200
    assert response.content == png.getvalue()
    assert client_for(room.people["outsider"]).get(url).status_code == 404


def test_it_opens_the_room_to_accepted_participants_only(network, client_for):
    room = make_room(network, accept=False)
    url = reverse("consultation_room", args=[room.consultation.uuid])

    assert client_for(room.doctor).get(url).status_code == 200
    invited = client_for(room.expert).get(url)
    assert invited.status_code == 302
    assert invited["Location"] == reverse("consultation_detail", args=[room.consultation.uuid])
    assert client_for(room.people["outsider"]).get(url).status_code == 404


def test_it_lets_an_invited_consultant_accept_from_the_page(network, client_for):
    room = make_room(network, accept=False)
    page = client_for(room.expert)
    detail = page.get(reverse("consultation_detail", args=[room.consultation.uuid]))
    assert detail.status_code == 200
    assert 'data-action="accept"' in detail.content.decode()

    response = page.post(reverse("consultation_accept", args=[room.consultation.uuid]))

    assert response.status_code == 302
    assert response["Location"] == reverse("consultation_room", args=[room.consultation.uuid])


def test_it_requests_a_consultation_from_the_study_page_form(network, client_for):
    people = make_people(network)
    study = ingest_study(network["clinic"], patient_id="P-form")
    page = client_for(people["doctor"])
    url = reverse("consultation_create")

    form = page.get(url, {"study": study.study_instance_uid})
    assert form.status_code == 200
    response = page.post(
        url,
        {
            "study": study.study_instance_uid,
            "consultants": [people["specialist"].pk],
            "question": "请会诊",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert (
        client_for(people["outsider"]).get(url, {"study": study.study_instance_uid}).status_code
        == 404
    )
