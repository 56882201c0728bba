"""The referral and patient pages: create, answer, timeline, patient index, errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from referrals.models import Referral
from referrals.services import referral_submit
from regional_cloud.models import AuditEvent
from studies.identity import patient_link_by_national_id
from tests.referral_helpers import accepted_referral, ingest_study, make_people, up_referral

NATIONAL_ID = "990101196803120017"


@pytest.fixture
def people(network: dict[str, Any], file_archive: Any) -> dict[str, Any]:
    return make_people(network)


@pytest.fixture
def study(network: dict[str, Any], people: dict[str, Any]) -> Any:
    return ingest_study(network["clinic"], "100023", patient_name="张^三")


@pytest.mark.django_db
def test_it_lets_a_clinic_doctor_pick_a_patient_and_send_a_referral(
    client_for, network, people, study
):
    ingest_study(network["other_clinic"], "100023", patient_name="刘^芳")
    doctor = client_for(people["doctor"])

    pick = doctor.get("/referrals/new/?q=100023")
    assert pick.status_code == 200
    assert "张三" in pick.content.decode()
    assert "刘芳" not in pick.content.decode(), "another clinic's patient with the same ID"

    form = doctor.get(f"/referrals/new/?patient={study.patient.uuid}")
    html = form.content.decode()
    assert form.status_code == 200
    assert f'value="{network["county"].uuid}" data-direction="up"' in html
    assert f'value="{network["centre"].uuid}" data-direction="up" data-needs-skip="1"' in html
    assert str(network["other_clinic"].uuid) not in html
    assert study.study_instance_uid in html

    sent = doctor.post(
        "/referrals/new/",
        {
            "patient": str(study.patient.uuid),
            "direction": "up",
            "to_institution": str(network["county"].uuid),
            "urgency": "urgent",
            "studies": [study.study_instance_uid],
            "clinical_question": "右肺结节，请会诊",
            "intent": "submit",
        },
    )
    referral = Referral.objects.get()
    assert sent.status_code == 302
    assert sent["Location"] == f"/referrals/{referral.uuid}/"
    assert referral.state == Referral.State.SUBMITTED
    assert list(referral.studies.all()) == [study]
    listing = doctor.get("/referrals/").content.decode()
    assert f'data-referral="{referral.uuid}"' in listing


@pytest.mark.django_db
def test_it_shows_why_a_referral_was_refused_and_creates_nothing(
    client_for, network, people, study
):
    response = client_for(people["doctor"]).post(
        "/referrals/new/",
        {
            "patient": str(study.patient.uuid),
            "direction": "up",
            "to_institution": str(network["centre"].uuid),
            "urgency": "routine",
            "clinical_question": "疑难病例",
            "intent": "submit",
        },
    )
    assert response.status_code == 400
    assert "Skipping a level needs a reason." in response.content.decode() or (
        "跳" in response.content.decode()
    )
    assert not Referral.objects.exists()


@pytest.mark.django_db
def test_a_specialist_answers_from_the_referral_page(client_for, network, people, study):
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    specialist = client_for(people["specialist"])
    page = specialist.get(f"/referrals/{referral.uuid}/")
    html = page.content.decode()
    assert 'data-action="accept"' in html
    assert 'data-testid="studies-closed"' in html, "closed until accepted"
    assert f'data-study-uid="{study.study_instance_uid}"' not in html

    accepted = specialist.post(f"/referrals/{referral.uuid}/accept/")
    assert accepted.status_code == 302
    html = specialist.get(f"/referrals/{referral.uuid}/").content.decode()
    assert f'data-study-uid="{study.study_instance_uid}"' in html, "the recognition panel"
    assert "/static/js/recognition-panel.js" in html
    assert f"/viewer/{study.study_instance_uid}/" in html

    again = specialist.post(f"/referrals/{referral.uuid}/accept/")
    assert again.status_code == 409
    assert 'data-testid="referral-error"' in again.content.decode()

    when = (timezone.localtime() + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert (
        specialist.post(
            f"/referrals/{referral.uuid}/schedule/", {"schedule-when": when}
        ).status_code
        == 302
    )
    referral.refresh_from_db()
    assert referral.state == Referral.State.SCHEDULED
    timeline = specialist.get(f"/referrals/{referral.uuid}/").content.decode()
    for kind in ("created", "submitted", "accepted", "scheduled"):
        assert f"rf-event--{kind}" in timeline
    assert 'data-events-url="/api/referrals/' in timeline


@pytest.mark.django_db
def test_a_rejection_needs_a_reason_on_the_page_too(client_for, network, people, study):
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    specialist = client_for(people["specialist"])
    refused = specialist.post(f"/referrals/{referral.uuid}/reject/", {"reject-reason": ""})
    assert refused.status_code == 400
    referral.refresh_from_db()
    assert referral.state == Referral.State.SUBMITTED
    done = specialist.post(f"/referrals/{referral.uuid}/reject/", {"reject-reason": "资料不全"})
    assert done.status_code == 302
    referral.refresh_from_db()
    assert (referral.state, referral.rejection_reason) == (Referral.State.REJECTED, "资料不全")


@pytest.mark.django_db
def test_the_receiving_side_refers_back_down_with_a_plan(client_for, network, people, study):
    county_study = ingest_study(network["county"], "ZY20240311", patient_name="张^三")
    for patient in (study.patient, county_study.patient):
        patient_link_by_national_id(patient=patient, national_id=NATIONAL_ID, actor=None)
    referral = accepted_referral(network, people, study)
    specialist = client_for(people["specialist"])
    html = specialist.get(f"/referrals/{referral.uuid}/").content.decode()
    link = f"/referrals/new/?patient={county_study.patient.uuid}&amp;direction=down"
    assert link in html

    form = specialist.get(link.replace("&amp;", "&")).content.decode()
    assert f'value="{network["clinic"].uuid}" data-direction="down"' in form
    sent = specialist.post(
        "/referrals/new/",
        {
            "patient": str(county_study.patient.uuid),
            "direction": "down",
            "to_institution": str(network["clinic"].uuid),
            "urgency": "routine",
            "studies": [county_study.study_instance_uid],
            "clinical_question": "转回社区随访",
            "treatment_summary": "抗感染治疗10天，病灶吸收",
            "follow_up_plan": "一个月后复查胸片",
            "intent": "submit",
        },
    )
    assert sent.status_code == 302
    down = Referral.objects.get(direction="down")
    clinic_page = client_for(people["doctor"]).get(f"/referrals/{down.uuid}/").content.decode()
    assert "一个月后复查胸片" in clinic_page
    assert 'data-action="accept"' in clinic_page


@pytest.mark.django_db
def test_the_patient_pages_search_open_and_link(client_for, network, people, study):
    doctor = client_for(people["doctor"])
    found = doctor.get("/patients/?q=张").content.decode()
    assert f'data-patient="{study.patient.uuid}"' in found
    assert AuditEvent.objects.filter(action="patient.search").exists()
    assert "张" not in str(AuditEvent.objects.filter(action="patient.search").first().detail)

    page = doctor.get(f"/patients/{study.patient.uuid}/")
    assert page.status_code == 200
    assert 'data-testid="national-id-form"' in page.content.decode()

    bad = doctor.post(
        f"/patients/{study.patient.uuid}/link/",
        {"method": "national_id", "national_id": "99010119680312"},
    )
    assert bad.status_code == 400
    assert "99010119680312" not in bad.content.decode(), "the typed number is not sent back"

    linked = doctor.post(
        f"/patients/{study.patient.uuid}/link/",
        {"method": "national_id", "national_id": NATIONAL_ID},
    )
    assert linked.status_code == 302
    page = doctor.get(f"/patients/{study.patient.uuid}/").content.decode()
    assert NATIONAL_ID not in page
    study.patient.refresh_from_db()
    assert study.patient.person_id is not None

    for outsider in ("outsider", "expert", "specialist"):
        assert (
            client_for(people[outsider]).get(f"/patients/{study.patient.uuid}/").status_code == 404
        )


@pytest.mark.django_db
def test_pages_of_others_referrals_are_404(client_for, network, people, study):
    referral = accepted_referral(network, people, study)
    for name in ("outsider", "expert"):
        client = client_for(people[name])
        assert client.get(f"/referrals/{referral.uuid}/").status_code == 404
        assert (
            client.post(f"/referrals/{referral.uuid}/cancel/", {"cancel-reason": "x"}).status_code
            == 404
        )
    referral.refresh_from_db()
    assert referral.state == Referral.State.ACCEPTED
