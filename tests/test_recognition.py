"""Mutual recognition (互认): the region's rules as data, the reasons in words, the decisions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from hospitals.models import Alliance, HRScope, Role, Tier
from referrals.models import (
    ExamPrice,
    ModalityWindow,
    QualityStatus,
    RecognitionDecision,
    RecognitionRule,
)
from referrals.recognition import evaluate_recognition, recognition_rule_seed
from regional_cloud.models import AuditEvent
from tests.factories import make_institution, make_user
from tests.referral_helpers import accepted_referral, ingest_study, make_people


@pytest.fixture
def region_network(network: dict[str, Any], file_archive: Any) -> dict[str, Any]:
    """The test network with the region's rule, HR marks and a county medical community."""
    county, centre = network["county"], network["centre"]
    county.hr_scope, county.hr_valid_from, county.hr_valid_until = (
        HRScope.CITY,
        dt.date(2020, 1, 1),
        dt.date(2099, 12, 31),
    )
    county.save()
    centre.hr_scope = HRScope.PROVINCE
    centre.save()
    network["rule"] = recognition_rule_seed(region=network["region"])
    network["second_county"] = make_institution(
        region=network["region"], tier=Tier.COUNTY_HOSPITAL, hub=centre
    )
    return network


@pytest.fixture
def people(region_network: dict[str, Any]) -> dict[str, Any]:
    people = make_people(region_network)
    people["second_county"] = make_user(
        institution=region_network["second_county"], role=Role.SPECIALIST
    )
    return people


def join_community(*institutions: Any) -> Alliance:
    community = Alliance.objects.create(
        region=institutions[0].region, name="青溪县医共体", kind=Alliance.Kind.COMMUNITY
    )
    for institution in institutions:
        institution.alliances.add(community)
    return community


def quality(study: Any, status: str) -> None:
    QualityStatus.objects.update_or_create(study=study, defaults={"status": status})


def verdict(study: Any, institution: Any, **kw: Any) -> tuple[bool, dict[str, bool]]:
    evaluation = evaluate_recognition(study, institution, **kw)
    return evaluation.recognizable, {c.code: c.passed for c in evaluation.checks}


# --- the rules engine ----------------------------------------------------------------------


@pytest.mark.django_db
def test_it_recognizes_inside_a_medical_community_without_an_hr_mark(region_network):
    study = ingest_study(region_network["clinic"], modality="DX", days_ago=20)
    quality(study, "passed")
    county = region_network["county"]
    assert verdict(study, county) == (
        False,
        {"level": False, "hr": False, "window": True, "quality": True},
    )

    join_community(region_network["clinic"], county)

    assert verdict(study, county) == (True, {"alliance": True, "window": True, "quality": True})
    message = evaluate_recognition(study, county).checks[0].message
    assert "青溪县医共体" in message
    region_network["rule"].within_alliance = False
    region_network["rule"].save()
    assert verdict(study, county)[0] is False, "the alliance rule is the region's data"


@pytest.mark.django_db
def test_it_lets_lower_levels_accept_higher_levels_with_a_valid_hr_mark(region_network):
    study = ingest_study(region_network["county"], "ZY-1", modality="CT", days_ago=10)
    quality(study, "passed")
    clinic = region_network["clinic"]

    assert verdict(study, clinic) == (
        True,
        {"level": True, "hr": True, "window": True, "quality": True},
    )

    rule = region_network["rule"]
    rule.lower_accepts_higher = False
    rule.save()
    assert verdict(study, clinic)[1]["level"] is False


@pytest.mark.django_db
def test_it_recognizes_between_same_level_hospitals_when_the_region_says_so(region_network):
    study = ingest_study(region_network["county"], "ZY-1", modality="MR", days_ago=10)
    quality(study, "passed")
    other = region_network["second_county"]
    assert verdict(study, other)[0] is True
    region_network["rule"].same_level = False
    region_network["rule"].save()
    assert verdict(study, other)[1]["level"] is False


@pytest.mark.django_db
def test_it_checks_the_hr_scope_and_its_validity_on_the_study_date(region_network):
    county = region_network["county"]
    study = ingest_study(county, "ZY-1", modality="CT", days_ago=10)
    quality(study, "passed")
    clinic = region_network["clinic"]

    county.hr_valid_until = timezone.localdate() - dt.timedelta(days=30)
    county.hr_valid_from = dt.date(2020, 1, 1)
    county.save()
    recognizable, checks = verdict(study, clinic)
    assert (recognizable, checks["hr"]) == (False, False)
    old = ingest_study(county, "ZY-2", modality="CT", days_ago=60)
    quality(old, "passed")
    assert verdict(old, clinic)[1]["hr"] is True, "valid on *its* study date"

    county.hr_valid_until = dt.date(2099, 1, 1)
    county.save()
    rule = region_network["rule"]
    rule.required_hr_scope = HRScope.PROVINCE
    rule.save()
    assert verdict(study, clinic)[1]["hr"] is False, "city HR is below the provincial HR asked"
    assert verdict(study, clinic, on=timezone.localdate())[0] is False


@pytest.mark.django_db
def test_it_applies_the_modality_window_against_the_study_age(region_network):
    join_community(region_network["clinic"], region_network["county"])
    county = region_network["county"]
    study = ingest_study(region_network["clinic"], modality="DX", days_ago=100)
    quality(study, "passed")

    recognizable, checks = verdict(study, county)
    assert (recognizable, checks["window"]) == (False, False)
    message = {c.code: c.message for c in evaluate_recognition(study, county).checks}["window"]
    assert "100" in message
    assert "90" in message

    ModalityWindow.objects.filter(rule=region_network["rule"], modality="DX").update(
        validity_days=120
    )
    assert verdict(study, county)[0] is True, "windows are the region's data"
    later = timezone.localdate() + dt.timedelta(days=30)
    assert verdict(study, county, on=later)[0] is False
    odd = ingest_study(region_network["clinic"], "P-2", modality="OT", days_ago=1)
    quality(odd, "passed")
    assert verdict(odd, county)[1]["window"] is False, "no window, no recognition"


@pytest.mark.django_db
def test_it_requires_quality_control_as_the_region_rules(region_network):
    join_community(region_network["clinic"], region_network["county"])
    county = region_network["county"]
    study = ingest_study(region_network["clinic"], modality="US", days_ago=5)

    assert verdict(study, county)[1]["quality"] is False, "unknown does not pass by default"
    RecognitionRule.objects.filter(pk=region_network["rule"].pk).update(unknown_quality_passes=True)
    assert verdict(study, county)[0] is True
    quality(study, "failed")
    assert verdict(study, county)[1]["quality"] is False


@pytest.mark.django_db
def test_it_does_not_recognize_an_institutions_own_study(region_network):
    study = ingest_study(region_network["clinic"], modality="DX")
    assert verdict(study, region_network["clinic"]) == (False, {"own_study": False})


@pytest.mark.django_db
def test_a_region_without_a_rule_is_judged_by_the_seed_defaults(network, file_archive):
    study = ingest_study(network["county"], "ZY-1", modality="CT", days_ago=170)
    assert not RecognitionRule.objects.exists()
    assert verdict(study, network["clinic"])[1]["window"] is True
    assert (
        verdict(study, network["clinic"], on=timezone.localdate() + dt.timedelta(days=20))[1][
            "window"
        ]
        is False
    )


# --- decisions through the API -------------------------------------------------------------


def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def shared(region_network: dict[str, Any], people: dict[str, Any]) -> Any:
    """A clinic CT the county may open (accepted referral), recognizable inside the community."""
    join_community(region_network["clinic"], region_network["county"])
    study = ingest_study(region_network["clinic"], "100023", modality="CT", body_part="CHEST")
    quality(study, "passed")
    accepted_referral(region_network, people, study)
    ExamPrice.objects.create(region=region_network["region"], modality="CT", price_yuan="320")
    ExamPrice.objects.create(
        region=region_network["region"], modality="CT", body_part="chest", price_yuan="280.00"
    )
    return study


def url(study: Any) -> str:
    return f"/api/recognition/{study.study_instance_uid}/"


@pytest.mark.django_db
def test_it_records_recognition_with_the_saving_from_the_price_table(people, shared):
    specialist = api(people["specialist"])
    state = specialist.get(url(shared)).json()
    assert state["evaluation"]["recognizable"] is True
    assert state["can_decide"] is True
    assert {r["code"] for r in state["reasons"]} >= {"condition_changed", "too_old", "other"}

    made = specialist.post(url(shared), {"decision": "recognized"}, format="json")

    assert made.status_code == 201, made.json()
    assert made.json()["saving_yuan"] == "280.00", "the body part's own price wins"
    decision = RecognitionDecision.objects.get()
    assert decision.saving_yuan == Decimal("280.00")
    assert decision.evaluation["recognizable"] is True
    audit = AuditEvent.objects.filter(action="recognition.decide").get()
    assert audit.study_uid == shared.study_instance_uid
    assert "张" not in str(audit.detail)
    assert [d["decision"] for d in specialist.get(url(shared)).json()["decisions"]] == [
        "recognized"
    ]


@pytest.mark.django_db
def test_it_records_non_recognition_with_coded_reasons_and_links_the_repeat(
    region_network, people, shared
):
    specialist = api(people["specialist"])
    made = specialist.post(
        url(shared),
        {
            "decision": "not_recognized",
            "reasons": ["other", "condition_changed"],
            "other_text": "疼痛加重",
        },
        format="json",
    )
    assert made.status_code == 201, made.json()
    body = made.json()
    assert body["reasons"] == ["condition_changed", "other"]
    assert body["saving_yuan"] is None
    assert body["other_text"] == "疼痛加重"

    repeat = ingest_study(region_network["county"], "ZY-9", modality="CT")
    from studies.identity import patient_link_confirm

    patient_link_confirm(patient=repeat.patient, other=shared.patient, actor=None)
    stranger = ingest_study(region_network["county"], "ZY-10", modality="CT")
    link = f"/api/recognition/decisions/{body['uuid']}/repeat/"
    refused = specialist.post(link, {"repeat_study": stranger.study_instance_uid})
    assert refused.status_code == 400
    assert refused.json()["code"] == "repeat_other_patient"
    linked = specialist.post(link, {"repeat_study": repeat.study_instance_uid})
    assert linked.status_code == 200, linked.json()
    assert RecognitionDecision.objects.get().repeat_study_id == repeat.pk
    assert (
        api(people["outsider"]).post(link, {"repeat_study": repeat.study_instance_uid}).status_code
        == 404
    )


BAD_DECISIONS = [
    ({"decision": "not_recognized"}, "reason_missing"),
    ({"decision": "not_recognized", "reasons": ["other"]}, "other_without_text"),
    ({"decision": "not_recognized", "reasons": ["other"], "other_text": "字" * 201}, None),
    (
        {"decision": "not_recognized", "reasons": ["too_old"], "other_text": "x"},
        "text_without_other",
    ),
    ({"decision": "recognized", "reasons": ["emergency"]}, "reason_with_recognized"),
    ({"decision": "not_recognized", "reasons": ["no_such_reason"]}, None),
    ({"decision": "maybe"}, None),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("payload", "code"), BAD_DECISIONS)
def test_it_refuses_a_bad_decision_with_400_and_records_nothing(people, shared, payload, code):
    response = api(people["specialist"]).post(url(shared), payload, format="json")
    assert response.status_code == 400, response.json()
    if code:
        assert response.json()["code"] == code
    assert not RecognitionDecision.objects.exists()


@pytest.mark.django_db
def test_it_takes_exactly_two_hundred_characters_of_other_text(people, shared):
    response = api(people["specialist"]).post(
        url(shared),
        {"decision": "not_recognized", "reasons": ["other"], "other_text": "字" * 200},
        format="json",
    )
    assert response.status_code == 201


@pytest.mark.django_db
def test_it_refuses_recognizing_what_the_rules_do_not_recognize(people, shared):
    quality(shared, "failed")
    specialist = api(people["specialist"])
    assert specialist.get(url(shared)).json()["evaluation"]["recognizable"] is False
    response = specialist.post(url(shared), {"decision": "recognized"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "not_recognizable"
    ok = specialist.post(
        url(shared), {"decision": "not_recognized", "reasons": ["issuer_failed_qc"]}, format="json"
    )
    assert ok.status_code == 201


@pytest.mark.django_db
def test_only_a_doctor_at_another_institution_who_sees_the_study_decides(
    region_network, people, shared
):
    origin = api(people["doctor"])
    state = origin.get(url(shared)).json()
    assert state["can_decide"] is False
    assert state["evaluation"]["checks"][0]["code"] == "own_study"
    refused = origin.post(url(shared), {"decision": "recognized"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "own_study"
    for name in ("outsider", "expert", "second_county"):
        assert api(people[name]).get(url(shared)).status_code == 404, name
        assert api(people[name]).post(url(shared), {"decision": "recognized"}).status_code == 404
    technician = make_user(institution=region_network["county"], role=Role.TECHNICIAN)
    # The referral opened the study to the county's specialists, not to its technicians.
    assert api(technician).post(url(shared), {"decision": "recognized"}).status_code == 404
    assert not RecognitionDecision.objects.exists()


@pytest.mark.django_db
def test_the_origin_sees_decisions_on_its_study_and_a_third_institution_does_not(
    region_network, people, shared
):
    api(people["specialist"]).post(url(shared), {"decision": "recognized"}, format="json")
    assert len(api(people["doctor"]).get(url(shared)).json()["decisions"]) == 1
    # The centre gets the study through its own referral, and learns nothing of the county's.
    from referrals.services import referral_accept, referral_create, referral_submit

    to_centre = referral_create(
        actor=people["doctor"],
        from_institution=region_network["clinic"],
        to_institution=region_network["centre"],
        patient=shared.patient,
        direction="up",
        studies=[shared],
        skip_reason="需要专家会诊",
    )
    referral_submit(referral=to_centre, actor=people["doctor"])
    referral_accept(referral=to_centre, actor=people["expert"])
    centre_view = api(people["expert"]).get(url(shared)).json()
    assert centre_view["decisions"] == []


@pytest.mark.django_db
def test_quality_control_is_set_by_the_origin_or_the_regions_qc_centre(
    region_network, people, shared
):
    endpoint = url(shared) + "quality/"
    assert api(people["doctor2"]).post(endpoint, {"status": "failed"}).status_code == 200
    assert QualityStatus.objects.get(study=shared).status == "failed"
    refused = api(people["specialist"]).post(endpoint, {"status": "passed"})
    assert refused.status_code == 403, "the receiving county is no QC reviewer"
    assert api(people["outsider"]).post(endpoint, {"status": "passed"}).status_code == 404
    assert QualityStatus.objects.get(study=shared).status == "failed"
    assert AuditEvent.objects.filter(action="study.quality_set").count() == 1
