"""The referral and patient-index API: the whole way, bad input, races, and who sees what."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from referrals.models import Referral
from referrals.services import referral_submit
from regional_cloud.models import AuditEvent, Notification
from studies.access import study_access_revoke_due
from studies.models import Patient, RegionalPerson
from tests.referral_helpers import (
    accepted_referral,
    can_view,
    ingest_study,
    make_people,
    up_referral,
)

State = Referral.State
NATIONAL_ID = "990101196803120017"


@pytest.fixture
def people(network: dict[str, Any], file_archive: Any) -> dict[str, Any]:
    return make_people(network)


@pytest.fixture
def study(network: dict[str, Any], people: dict[str, Any]) -> Any:
    return ingest_study(network["clinic"], "100023", patient_name="张^三")


def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def create_payload(network: dict[str, Any], study: Any, **kw: Any) -> dict[str, Any]:
    return {
        "patient": str(study.patient.uuid),
        "to_institution": str(network["county"].uuid),
        "direction": "up",
        "studies": [study.study_instance_uid],
        "clinical_question": "右肺结节，请会诊",
        **kw,
    }


@pytest.mark.django_db
def test_it_walks_a_referral_up_and_ends_access_after_the_grace_period(network, people, study):
    doctor, specialist = api(people["doctor"]), api(people["specialist"])

    created = doctor.post(
        "/api/referrals/", create_payload(network, study, submit=True), format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["state"] == "submitted"
    assert [e["kind"] for e in body["events"]] == ["created", "submitted"]
    uuid = body["uuid"]

    incoming = specialist.get("/api/referrals/?box=incoming").json()
    assert [r["uuid"] for r in incoming["results"]] == [uuid]
    detail = specialist.get(f"/api/referrals/{uuid}/").json()
    assert detail["studies"] == [], "before acceptance the studies stay closed"
    assert detail["studies_attached"] == 1
    assert set(detail["actions"]) == {"accept", "reject"}

    accepted = specialist.post(f"/api/referrals/{uuid}/accept/")
    assert accepted.status_code == 200
    assert [s["study_instance_uid"] for s in accepted.json()["studies"]] == [
        study.study_instance_uid
    ]
    when = (timezone.now() + dt.timedelta(days=2)).isoformat()
    assert specialist.post(f"/api/referrals/{uuid}/schedule/", {"when": when}).status_code == 200
    assert specialist.post(f"/api/referrals/{uuid}/arrive/").status_code == 200
    done = specialist.post(f"/api/referrals/{uuid}/complete/", {"note": "已手术"})
    assert done.status_code == 200
    assert done.json()["state"] == "completed"

    events = doctor.get(f"/api/referrals/{uuid}/events/").json()
    assert events["state"] == "completed"
    assert [e["kind"] for e in events["events"]] == [
        "created",
        "submitted",
        "accepted",
        "scheduled",
        "arrived",
        "completed",
    ]
    assert events["events"][2]["actor"] == "王主任"
    assert can_view(people["specialist"], study), "the grace period"
    call_command("referral_housekeeping", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert can_view(people["specialist"], study), "housekeeping keeps access within grace"
    study_access_revoke_due(now=timezone.now() + dt.timedelta(hours=73))
    assert not can_view(people["specialist"], study)
    assert specialist.get(f"/api/referrals/{uuid}/").json()["studies"] == []


@pytest.mark.django_db
def test_it_notifies_after_commit(network, people, study, django_capture_on_commit_callbacks):
    referral = up_referral(network, people, study)
    with django_capture_on_commit_callbacks(execute=True):
        api(people["doctor"]).post(f"/api/referrals/{referral.uuid}/submit/")
    told = set(Notification.objects.values_list("recipient__username", flat=True))
    assert told == {people["specialist"].username, people["specialist2"].username}
    note = Notification.objects.filter(recipient=people["specialist"]).get()
    assert note.kind == "referral_submitted"
    assert note.url == f"/referrals/{referral.uuid}/"
    assert "张" not in note.title, "titles name no patient"
    with django_capture_on_commit_callbacks(execute=True):
        api(people["specialist"]).post(f"/api/referrals/{referral.uuid}/accept/")
    assert Notification.objects.filter(
        recipient=people["doctor"], kind="referral_accepted"
    ).exists()


@pytest.mark.django_db
def test_it_offers_the_targets_the_network_rules_allow(network, people, study):
    up = api(people["doctor"]).get("/api/referrals/targets/?direction=up").json()
    assert {(t["institution"]["uuid"], t["needs_skip_reason"]) for t in up} == {
        (str(network["county"].uuid), False),
        (str(network["centre"].uuid), True),
    }
    down = api(people["doctor"]).get("/api/referrals/targets/?direction=down").json()
    assert down == [], "a clinic cannot refer down"
    county_down = api(people["county_doctor"]).get("/api/referrals/targets/?direction=down")
    assert {t["institution"]["uuid"] for t in county_down.json()} == {
        str(network["clinic"].uuid),
        str(network["other_clinic"].uuid),
    }
    bureau_user = make_bureau_user(network)
    assert api(bureau_user).get("/api/referrals/targets/?direction=up").status_code == 403


def make_bureau_user(network: dict[str, Any]) -> Any:
    from hospitals.models import Role
    from tests.factories import make_user

    return make_user(institution=network["bureau"], role=Role.BUREAU_ANALYST)


@pytest.mark.django_db
def test_it_needs_a_reason_to_skip_a_level(network, people, study):
    doctor = api(people["doctor"])
    to_centre = create_payload(network, study, to_institution=str(network["centre"].uuid))
    refused = doctor.post("/api/referrals/", to_centre, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "skip_without_reason"
    to_centre["skip_reason"] = "需要PET-CT"
    assert doctor.post("/api/referrals/", to_centre, format="json").status_code == 201


def _snapshot() -> list[tuple[Any, ...]]:
    rows = Referral.objects.values_list("uuid", "state", "accepted_by_id", "closed_at")
    return [*sorted(rows), ("events", Referral.objects.filter(events__isnull=False).count())]


BAD_CREATES = [
    ("refer down from a clinic", 400, "not_down"),
    ("refer to oneself", 400, "to_itself"),
    ("attach another institution's study", 400, "study_not_visible"),
    ("attach an unknown study", 400, "study_not_visible"),
    ("down without a plan", 400, "down_without_plan"),
    ("another institution's patient", 400, None),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "status", "code"), BAD_CREATES)
def test_it_refuses_bad_referrals_with_a_reason_and_creates_nothing(
    network, people, study, case, status, code
):
    foreign = ingest_study(network["other_clinic"], "X-9")
    county_study = ingest_study(network["county"], "ZY-1")
    payload = create_payload(network, study)
    user = people["doctor"]
    if case == "refer down from a clinic":
        payload.update(
            direction="down",
            to_institution=str(network["other_clinic"].uuid),
            treatment_summary="x",
            follow_up_plan="y",
        )
    elif case == "refer to oneself":
        payload["to_institution"] = str(network["clinic"].uuid)
    elif case == "attach another institution's study":
        payload["studies"] = [study.study_instance_uid, foreign.study_instance_uid]
    elif case == "attach an unknown study":
        payload["studies"] = ["1.2.3.4.5.6.7"]
    elif case == "down without a plan":
        user = people["county_doctor"]
        payload.update(
            patient=str(county_study.patient.uuid),
            studies=[county_study.study_instance_uid],
            direction="down",
            to_institution=str(network["clinic"].uuid),
        )
    elif case == "another institution's patient":
        payload.update(patient=str(foreign.patient.uuid), studies=[])
    before = _snapshot()

    response = api(user).post("/api/referrals/", payload, format="json")

    assert response.status_code == status, response.json()
    if code:
        assert response.json()["code"] == code
        assert response.json()["detail"]
    assert _snapshot() == before


ILLEGAL = [
    ("accept twice", "accept", 409),
    ("accept a cancelled referral", "accept", 409),
    ("accept a draft, unseen by the receiver", "accept", 404),
    ("complete before arrival", "complete", 409),
    ("reject without a reason", "reject", 400),
    ("schedule in the past", "schedule", 400),
    ("the sender accepts", "accept", 403),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "action", "status"), ILLEGAL)
def test_it_answers_illegal_transitions_with_a_reason_and_changes_nothing(
    network, people, study, case, action, status
):
    referral = up_referral(network, people, study)
    actor = people["specialist2"]
    payload: dict[str, Any] = {}
    if not case.startswith("accept a draft"):
        referral_submit(referral=referral, actor=people["doctor"])
    if case == "accept twice":
        assert (
            api(people["specialist"]).post(f"/api/referrals/{referral.uuid}/accept/").status_code
            == 200
        )
    elif case == "accept a cancelled referral":
        api(people["doctor"]).post(
            f"/api/referrals/{referral.uuid}/cancel/", {"reason": "患者拒绝"}
        )
    elif case == "reject without a reason":
        payload = {"reason": ""}
    elif case == "schedule in the past":
        api(people["specialist"]).post(f"/api/referrals/{referral.uuid}/accept/")
        payload = {"when": (timezone.now() - dt.timedelta(days=1)).isoformat()}
    elif case == "the sender accepts":
        actor = people["doctor"]
    before = _snapshot()
    grants_before = can_view(people["specialist2"], study)

    response = api(actor).post(f"/api/referrals/{referral.uuid}/{action}/", payload)

    assert response.status_code == status, response.json()
    assert response.json()["detail"]
    if status != 404:
        assert response.json()["code"]
    assert _snapshot() == before
    assert can_view(people["specialist2"], study) == grants_before


@pytest.mark.django_db(transaction=True)
def test_two_specialists_accepting_at_once_through_the_api_exactly_one_wins(network, file_archive):
    people = make_people(network)
    study = ingest_study(network["clinic"], "100023")
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def accept(user: Any) -> None:
        client = api(user)
        barrier.wait()
        try:
            statuses.append(client.post(f"/api/referrals/{referral.uuid}/accept/").status_code)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=accept, args=(people[name],))
        for name in ("specialist", "specialist2")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200, 409]
    referral.refresh_from_db()
    assert referral.state == State.ACCEPTED
    assert referral.events.filter(kind="accepted").count() == 1


@pytest.mark.django_db
def test_it_lists_a_referral_to_its_two_sides_only(network, people, study):
    referral = accepted_referral(network, people, study)
    for name, box, expected in [
        ("doctor", "sent", [str(referral.uuid)]),
        ("doctor2", "sent", [str(referral.uuid)]),
        ("specialist2", "incoming", [str(referral.uuid)]),
        ("outsider", "all", []),
        ("expert", "all", []),
    ]:
        listed = api(people[name]).get(f"/api/referrals/?box={box}").json()
        assert [r["uuid"] for r in listed["results"]] == expected, name
        assert listed["count"] == len(expected), name
    for name in ("outsider", "expert"):
        assert api(people[name]).get(f"/api/referrals/{referral.uuid}/").status_code == 404


@pytest.mark.django_db
def test_it_audits_reading_a_referral(network, people, study):
    referral = up_referral(network, people, study)
    api(people["doctor"]).get(f"/api/referrals/{referral.uuid}/")
    row = AuditEvent.objects.filter(action="referral.view").get()
    assert row.object_id == str(referral.uuid)
    assert "张" not in str(row.detail)


# --- the patient index ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_searches_only_the_doctors_own_patients(network, people, study):
    ingest_study(network["other_clinic"], "100023", patient_name="张^三")
    found = api(people["doctor"]).get("/api/patients/?q=张").json()
    assert [p["uuid"] for p in found] == [str(study.patient.uuid)]
    assert api(people["doctor"]).get("/api/patients/?q=100023").json()[0]["patient_id"] == "100023"
    assert api(people["specialist"]).get("/api/patients/?q=张").json() == []
    assert api(people["outsider"]).get("/api/patients/?q=张").json()[0]["uuid"] != str(
        study.patient.uuid
    )


@pytest.mark.django_db
def test_it_shows_a_linked_persons_studies_elsewhere_only_where_a_grant_allows(
    network, people, study
):
    county_study = ingest_study(network["county"], "ZY20240311", patient_name="张^三")
    same_id_elsewhere = ingest_study(network["other_clinic"], "100023", patient_name="刘^芳")
    doctor = api(people["doctor"])
    url = f"/api/patients/{study.patient.uuid}/"
    for user, patient in [("doctor", study.patient), ("county_doctor", county_study.patient)]:
        linked = api(people[user]).post(
            f"/api/patients/{patient.uuid}/link/", {"national_id": NATIONAL_ID}, format="json"
        )
        assert linked.status_code == 200, linked.json()

    before = doctor.get(url)
    assert [s["study_instance_uid"] for s in before.json()["studies"]] == [study.study_instance_uid]
    assert county_study.study_instance_uid not in before.content.decode(), "no hint, no count"
    assert same_id_elsewhere.study_instance_uid not in before.content.decode()

    down = api(people["county_doctor"]).post(
        "/api/referrals/",
        {
            "patient": str(county_study.patient.uuid),
            "to_institution": str(network["clinic"].uuid),
            "direction": "down",
            "studies": [county_study.study_instance_uid],
            "treatment_summary": "抗感染治疗后好转",
            "follow_up_plan": "一个月后复查胸片",
            "submit": True,
        },
        format="json",
    )
    assert down.status_code == 201, down.json()
    assert (
        api(people["doctor"]).post(f"/api/referrals/{down.json()['uuid']}/accept/").status_code
        == 200
    )

    after = doctor.get(url).json()
    assert {s["study_instance_uid"] for s in after["studies"]} == {
        study.study_instance_uid,
        county_study.study_instance_uid,
    }
    assert [r["issuer"]["uuid"] for r in after["records"]] == [str(network["county"].uuid)]
    assert same_id_elsewhere.study_instance_uid not in str(after), "never linked by PatientID"


@pytest.mark.django_db
def test_it_never_keeps_the_national_id_in_clear(network, people, study):
    response = api(people["doctor"]).post(
        f"/api/patients/{study.patient.uuid}/link/", {"national_id": NATIONAL_ID}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["linked"] is True
    assert NATIONAL_ID not in response.content.decode()
    for row in AuditEvent.objects.all():
        assert NATIONAL_ID not in str(row.detail) + row.object_id + row.patient_ref
    person = RegionalPerson.objects.get()
    assert NATIONAL_ID not in person.national_id_hash
    patient = Patient.objects.get(pk=study.patient.pk)
    assert NATIONAL_ID not in (patient.national_id_hash + patient.patient_id)
    bad = api(people["doctor"]).post(
        f"/api/patients/{study.patient.uuid}/link/", {"national_id": "123"}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "identity"


@pytest.mark.django_db
def test_it_links_two_records_the_doctor_can_both_see_on_confirmation(network, people, study):
    county_study = ingest_study(network["county"], "ZY20240311", patient_name="张^三")
    referral = accepted_referral(network, people, study)
    specialist = api(people["specialist"])
    url = f"/api/patients/{county_study.patient.uuid}/link/"

    hidden = ingest_study(network["other_clinic"], "77", patient_name="张^三")
    refused = specialist.post(url, {"other": str(hidden.patient.uuid)}, format="json")
    assert refused.status_code == 400, "a record the doctor cannot see"
    confirmed = specialist.post(url, {"other": str(study.patient.uuid)}, format="json")

    assert confirmed.status_code == 200
    assert [r["uuid"] for r in confirmed.json()["records"]] == [str(study.patient.uuid)]
    assert Patient.objects.get(pk=study.patient.pk).link_method == "confirmed"
    assert api(people["outsider"]).post(url, {"other": str(study.patient.uuid)}).status_code == 404
    assert referral.patient_id == study.patient.pk
