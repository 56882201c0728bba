"""Consultations on the patient's page, and requesting one from a study shown there."""

from __future__ import annotations

import pytest
from django.urls import reverse

from referrals.consultation.models import Consultation
from referrals.consultation.services import consultation_conclude, consultation_join
from tests.consultation_helpers import make_room
from tests.referral_helpers import accepted_referral, ingest_study, make_people

pytestmark = pytest.mark.django_db


def patient_page(client, patient) -> str:
    response = client.get(reverse("patient_detail", args=[patient.uuid]))
    assert response.status_code == 200
    return response.content.decode()


def concluded_room(network):
    room = make_room(network, live=True)
    consultation_join(consultation=room.consultation, actor=room.expert)
    consultation_conclude(
        consultation=room.consultation, actor=room.specialist, conclusion="考虑炎性结节，三月后复查"
    )
    room.consultation.refresh_from_db()
    return room


def test_it_lists_a_concluded_consultation_on_the_patient_page(network, client_for):
    room = concluded_room(network)
    page = patient_page(client_for(room.doctor), room.study.patient)

    assert f'data-consultation="{room.consultation.uuid}"' in page
    assert "考虑炎性结节，三月后复查" in page
    transcript = reverse("consultation_transcript", args=[room.consultation.uuid])
    assert transcript in page
    # Who took part, and where they work.
    assert "王主任" in page
    assert network["county"].name in page
    # A colleague of the requesting clinic reads it too (the conclusion joins the record).
    colleague = patient_page(client_for(room.people["doctor2"]), room.study.patient)
    assert "考虑炎性结节，三月后复查" in colleague


def test_it_lists_neither_open_consultations_nor_ones_the_reader_may_not_see(network, client_for):
    room = concluded_room(network)
    still_open = make_room(network)
    Consultation.objects.filter(pk=still_open.consultation.pk).update(patient=room.study.patient)
    # A county specialist who sees the patient through a referral, but took no part.
    accepted_referral(network, room.people, room.study)
    reader = room.people["specialist2"]
    page = patient_page(client_for(reader), room.study.patient)

    assert "考虑炎性结节" not in page
    assert f'data-consultation="{room.consultation.uuid}"' not in page
    mine = patient_page(client_for(room.doctor), room.study.patient)
    assert f'data-consultation="{still_open.consultation.uuid}"' not in mine
    # Someone who may not see the patient gets nothing at all.
    outsider = client_for(room.people["outsider"])
    assert (
        outsider.get(reverse("patient_detail", args=[room.study.patient.uuid])).status_code == 404
    )


def test_it_offers_a_consultation_on_each_study_of_the_patient_page(network, client_for):
    people = make_people(network)
    study = ingest_study(network["clinic"], patient_id="P-consult-button")
    doctor = client_for(people["doctor"])
    url = reverse("consultation_create")

    page = patient_page(doctor, study.patient)
    link = f"{url}?study={study.uuid}"
    assert link in page

    form = doctor.get(link)
    assert form.status_code == 200
    assert f'data-study="{study.study_instance_uid}"' in form.content.decode()
    response = doctor.post(
        url, {"study": str(study.uuid), "consultants": [people["specialist"].pk], "question": "?"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    consultation = Consultation.objects.get(requested_by=people["doctor"])
    assert list(consultation.studies.all()) == [study]


def test_it_refuses_a_consultation_on_a_study_the_user_may_not_see(network, client_for):
    people = make_people(network)
    study = ingest_study(network["clinic"], patient_id="P-not-yours")
    outsider = client_for(people["outsider"])
    url = reverse("consultation_create")

    for reference in (str(study.uuid), study.study_instance_uid):
        assert outsider.get(url, {"study": reference}).status_code == 404
        posted = outsider.post(
            url,
            {"study": reference, "consultants": [people["specialist"].pk], "question": "?"},
        )
        assert posted.status_code == 404
    assert not Consultation.objects.exists()
