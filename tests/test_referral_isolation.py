"""Isolation of referrals, the patient index and recognition (issue 5).

Every page and endpoint of these features is found by walking the URL
resolver — a route added later is walked too. For every role of an unrelated
institution (the region's other clinic, its referral centre and bureau, and
another region's hospitals) against every object, the answer is 403 or 404, and
no list, count or search gives anything away. The receiving specialist cannot
open the studies before accepting (DICOMweb included), and access ends when
the referral has closed and its grace period is over.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from hospitals.models import Role, Tier
from referrals.models import RecognitionDecision, Referral
from referrals.recognition import recognition_decide, recognition_rule_seed
from referrals.services import referral_arrive, referral_complete, referral_submit
from regional_cloud.permissions import filter_by_permission
from studies.access import study_access_revoke_due
from studies.identity import patient_link_by_national_id
from studies.models import ReadingTask, RoutingRule, StudyGrant
from studies.reading.routing import route_after_ingest
from tests.factories import make_institution, make_region, make_user
from tests.referral_helpers import (
    accepted_referral,
    can_view,
    ingest_study,
    make_people,
    up_referral,
)

NAMES = ("referral_", "patient_", "api-referral", "api-patient", "api-recognition")
UNRELATED_ROLES = [
    Role.CLINIC_DOCTOR,
    Role.SPECIALIST,
    Role.TECHNICIAN,
    Role.INSTITUTION_ADMIN,
    Role.REGIONAL_ADMIN,
    Role.BUREAU_ANALYST,
]


def feature_routes() -> list[URLPattern]:
    """Return every URL pattern of referrals, the patient index and recognition."""

    def walk(patterns: list[Any]) -> list[URLPattern]:
        found: list[URLPattern] = []
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                found += walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and (pattern.name or "").startswith(NAMES):
                found.append(pattern)
        return found

    return walk(get_resolver().url_patterns)


def path_for(pattern: URLPattern, world: dict[str, Any], *, real: bool = True) -> str:
    """Build the route's path for the world's object (or an unknown one of the same kind)."""
    kwargs: dict[str, str] = {}
    for arg in pattern.pattern.regex.groupindex:
        name = pattern.name or ""
        if arg == "study_uid":
            value = world["study"].study_instance_uid if real else "1.2.3.999.1"
        elif arg == "patient_uuid" or name.startswith("api-patient"):
            value = str(world["study"].patient.uuid)
        elif name == "api-recognition-repeat":
            value = str(world["decision"].uuid)
        else:
            value = str(world["referral"].uuid)
        kwargs[arg] = value if real or arg == "study_uid" else str(uuid.uuid4())
    return reverse(pattern.name, kwargs=kwargs)


def secrets(world: dict[str, Any]) -> list[str]:
    """What must never reach an unrelated user: identities, UIDs, UUIDs of the objects."""
    study = world["study"]
    return [
        "张三",
        "张^三",
        "100023",
        study.study_instance_uid,
        str(study.patient.uuid),
        str(world["referral"].uuid),
        str(world["draft"].uuid),
        str(world["decision"].uuid),
    ]


@pytest.fixture
def world(network: dict[str, Any], file_archive: Any) -> dict[str, Any]:
    """A referral up with a study, accepted and decided on, plus unrelated institutions."""
    people = make_people(network)
    recognition_rule_seed(region=network["region"])
    study = ingest_study(network["clinic"], "100023", patient_name="张^三", modality="CT")
    patient_link_by_national_id(patient=study.patient, national_id="990101196803120017", actor=None)
    referral = accepted_referral(network, people, study)
    draft = up_referral(network, people, study)
    decision = recognition_decide(
        study=study,
        actor=people["specialist"],
        institution=network["county"],
        decision=RecognitionDecision.Decision.NOT_RECOGNIZED,
        reasons=["condition_changed"],
    )
    other_region = make_region()
    far_county = make_institution(region=other_region, tier=Tier.COUNTY_HOSPITAL)
    far_clinic = make_institution(region=other_region, tier=Tier.TOWNSHIP_CLINIC, hub=far_county)
    unrelated = [
        network["other_clinic"],
        network["centre"],
        network["bureau"],
        far_county,
        far_clinic,
    ]
    return {
        "network": network,
        "people": people,
        "study": study,
        "referral": referral,
        "draft": draft,
        "decision": decision,
        "unrelated": unrelated,
    }


def assert_no_leak(response: Any, world: dict[str, Any], where: str, asked: str = "") -> None:
    """Fail if the answer holds a secret the caller did not type in the request itself.

    Pages echo the address asked for (the language switch's "next", a search box's
    value): that tells the caller nothing new.
    """
    content = response.content.decode(errors="replace")
    for secret in secrets(world):
        if secret in asked:
            continue
        assert secret not in content, f"{where} leaks {secret!r}"


@pytest.mark.django_db
def test_it_finds_the_routes_of_this_feature():
    names = {p.name for p in feature_routes()}
    assert {
        "referral_list",
        "referral_detail",
        "referral_accept",
        "patient_detail",
        "api-referral-list",
        "api-referral-accept",
        "api-patient-link",
        "api-recognition",
        "api-recognition-quality",
        "api-recognition-repeat",
    } <= names


@pytest.mark.django_db
@pytest.mark.parametrize("role", UNRELATED_ROLES)
def test_every_role_of_an_unrelated_institution_gets_403_or_404_and_no_leak(world, role):
    routes = feature_routes()
    for institution in world["unrelated"]:
        user = make_user(institution=institution, role=role)
        client = Client()
        client.force_login(user)
        for pattern in routes:
            has_object = bool(pattern.pattern.regex.groupindex)
            for method in ("get", "post"):
                path = path_for(pattern, world)
                where = f"{role}@{institution.code} {method.upper()} {path}"
                response = getattr(client, method)(path, **_body(pattern, world, method))
                assert_no_leak(response, world, where, asked=path)
                if not has_object:
                    _check_list(pattern, response, world, where, method)
                elif response.status_code == 405:
                    # A method the route never takes: the same answer as for no object at all.
                    unknown = getattr(client, method)(path_for(pattern, world, real=False))
                    assert unknown.status_code == 405, where
                else:
                    assert response.status_code in {403, 404}, (where, response.status_code)
        _check_searches(client, world, f"{role}@{institution.code}")
    assert Referral.objects.count() == 2, "nothing was created"
    assert RecognitionDecision.objects.count() == 1


def _body(pattern: URLPattern, world: dict[str, Any], method: str) -> dict[str, Any]:
    """A plausible body for each write, aimed at the world's objects."""
    if method != "post":
        return {}
    study = world["study"]
    payloads: dict[str, dict[str, Any]] = {
        "api-referral-list": {
            "patient": str(study.patient.uuid),
            "to_institution": str(world["network"]["county"].uuid),
            "direction": "up",
            "studies": [study.study_instance_uid],
            "submit": True,
        },
        "referral_create": {
            "patient": str(study.patient.uuid),
            "direction": "up",
            "to_institution": str(world["network"]["county"].uuid),
            "urgency": "routine",
            "studies": [study.study_instance_uid],
            "clinical_question": "x",
            "intent": "submit",
        },
        "api-recognition": {"decision": "not_recognized", "reasons": ["emergency"]},
        "api-recognition-quality": {"status": "failed"},
        "api-recognition-repeat": {"repeat_study": study.study_instance_uid},
        "api-patient-link": {"national_id": "990101196803120017"},
        "patient_link": {"method": "national_id", "national_id": "990101196803120017"},
        "api-referral-reject": {"reason": "x"},
        "api-referral-cancel": {"reason": "x"},
        "referral_cancel": {"cancel-reason": "x"},
        "referral_reject": {"reject-reason": "x"},
    }
    data = payloads.get(pattern.name or "", {})
    if (pattern.name or "").startswith("api-"):
        return {"data": json.dumps(data), "content_type": "application/json"}
    return {"data": data}


def _check_list(
    pattern: URLPattern, response: Any, world: dict[str, Any], where: str, method: str
) -> None:
    name = pattern.name
    if method == "post":
        # Creating from another institution's patient or study: refused, nothing made.
        assert response.status_code in {400, 403, 404, 405}, (where, response.status_code)
        return
    if name == "api-referral-targets":
        assert response.status_code in {400, 403}, where  # no direction / not a sender
        return
    assert response.status_code in {200, 403}, (where, response.status_code)
    if response.status_code == 403:
        return
    if name == "api-referral-list":
        body = response.json()
        assert (body["count"], body["results"]) == (0, []), where
    elif name == "api-patient-list":
        assert response.json() == [], where


def _check_searches(client: Client, world: dict[str, Any], who: str) -> None:
    """Search by name and by PatientID, and ask for the patient by UUID: nothing comes back."""
    patient = world["study"].patient
    for path in [
        "/api/patients/?q=张",
        "/api/patients/?q=100023",
        "/patients/?q=张",
        "/patients/?q=100023",
        "/referrals/new/?q=100023",
        "/api/referrals/?box=incoming",
        "/api/referrals/?state=accepted",
        "/referrals/?state=accepted",
    ]:
        response = client.get(path)
        assert response.status_code in {200, 403}, (who, path)
        assert_no_leak(response, world, f"{who} {path}", asked=path)
    assert client.get(f"/referrals/new/?patient={patient.uuid}").status_code in {403, 404}, who
    qido = client.get("/dicom-web/studies", HTTP_ACCEPT="application/dicom+json")
    assert qido.status_code in {200, 204, 403}, who
    assert_no_leak(qido, world, f"{who} QIDO")
    metadata = client.get(f"/dicom-web/studies/{world['study'].study_instance_uid}/metadata")
    assert metadata.status_code in {403, 404}, who


def read_by_the_centre(network: dict[str, Any], study: Any) -> None:
    """Route the clinic's study as a region that has its imaging centre read clinic films.

    Ingest routes after commit, which a test transaction never reaches: route here,
    so the county's radiologists hold no reading-pool access to the study.
    """
    RoutingRule.objects.create(
        region=network["region"], origin=network["clinic"], reading_institution=network["centre"]
    )
    route_after_ingest([study.study_instance_uid])
    assert ReadingTask.objects.get(study=study).reading_institution == network["centre"]


@pytest.mark.django_db
def test_before_acceptance_the_receiving_specialist_cannot_open_the_studies(network, file_archive):
    people = make_people(network)
    study = ingest_study(network["clinic"], "100023", patient_name="张^三")
    read_by_the_centre(network, study)
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    specialist = Client()
    specialist.force_login(people["specialist"])
    uid = study.study_instance_uid

    assert not filter_by_permission(
        study.__class__.objects.filter(pk=study.pk), people["specialist"], "studies.view_study"
    ).exists()
    assert specialist.get(f"/dicom-web/studies/{uid}/metadata").status_code == 404
    listed = specialist.get("/dicom-web/studies", HTTP_ACCEPT="application/dicom+json")
    assert uid not in listed.content.decode()
    assert specialist.get(f"/api/recognition/{uid}/").status_code == 404
    detail = specialist.get(f"/api/referrals/{referral.uuid}/").json()
    assert (detail["studies"], detail["studies_attached"]) == ([], 1)

    assert specialist.post(f"/api/referrals/{referral.uuid}/accept/").status_code == 200
    assert specialist.get(f"/dicom-web/studies/{uid}/metadata").status_code == 200
    assert (
        uid
        in specialist.get(
            "/dicom-web/studies", HTTP_ACCEPT="application/dicom+json"
        ).content.decode()
    )


@pytest.mark.django_db
def test_after_revocation_access_ends_everywhere(network, file_archive):
    people = make_people(network)
    study = ingest_study(network["clinic"], "100023", patient_name="张^三")
    read_by_the_centre(network, study)
    referral = accepted_referral(network, people, study)
    specialist = Client()
    specialist.force_login(people["specialist"])
    uid = study.study_instance_uid
    assert specialist.get(f"/dicom-web/studies/{uid}/metadata").status_code == 200

    referral_arrive(referral=referral, actor=people["specialist"])
    referral_complete(referral=referral, actor=people["specialist"])
    assert can_view(people["specialist"], study), "within the grace period"
    study_access_revoke_due(now=timezone.now() + dt.timedelta(hours=73))

    assert not can_view(people["specialist"], study)
    assert specialist.get(f"/dicom-web/studies/{uid}/metadata").status_code == 404
    assert (
        uid
        not in specialist.get(
            "/dicom-web/studies", HTTP_ACCEPT="application/dicom+json"
        ).content.decode()
    )
    assert specialist.get(f"/api/recognition/{uid}/").status_code == 404
    page = specialist.get(f"/referrals/{referral.uuid}/")
    assert page.status_code == 200, "the referral itself stays readable to its two sides"
    assert f'data-study-uid="{uid}"' not in page.content.decode()
    assert specialist.get(f"/api/referrals/{referral.uuid}/").json()["studies"] == []


@pytest.mark.django_db
def test_the_reading_pools_own_access_is_a_separate_reason_a_referral_does_not_end(
    network, file_archive
):
    """By default the county reads its clinics' studies; a referral adds and ends only its own."""
    people = make_people(network)
    study = ingest_study(network["clinic"], "100023", patient_name="张^三")
    route_after_ingest([study.study_instance_uid])
    assert can_view(people["specialist"], study), "the county reads for its clinics"
    referral = accepted_referral(network, people, study)
    referral_arrive(referral=referral, actor=people["specialist"])
    referral_complete(referral=referral, actor=people["specialist"])
    study_access_revoke_due(now=timezone.now() + dt.timedelta(hours=73))

    referral_grants = StudyGrant.objects.filter(source_ref=str(referral.uuid))
    assert referral_grants.exists()
    assert not referral_grants.filter(revoked_at__isnull=True).exists()
    assert can_view(people["specialist"], study), "the reading assignment still stands"
    assert not can_view(people["county_doctor"], study)
