"""Referral rules, transitions, and the study access that follows them."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from hospitals.models import Role
from referrals.models import Referral
from referrals.rules import ReferralError
from referrals.services import (
    referral_accept,
    referral_arrive,
    referral_cancel,
    referral_complete,
    referral_create,
    referral_reject,
    referral_schedule,
    referral_submit,
    referrals_expire_due,
)
from regional_cloud.models import AuditEvent
from regional_cloud.permissions import filter_by_permission
from studies.access import study_access_revoke_due
from studies.identity import patient_link_by_national_id
from studies.ingest import ReceivedFile, Sender, instances_ingest
from studies.models import Patient, Study
from tests.dicom_helpers import ct_small, to_bytes
from tests.factories import make_user

State = Referral.State


def ingest_study(institution: Any, patient_id: str = "P-1", study_date: str = "") -> Study:
    ds = ct_small(patient_id=patient_id)
    ds.StudyDate = study_date or timezone.localdate().strftime("%Y%m%d")
    data = to_bytes(ds)
    report = instances_ingest(
        files=[ReceivedFile(io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())],
        sender=Sender(user=None, institution=institution),
    )
    assert not report.refused, report.results
    return Study.objects.get(study_instance_uid=ds.StudyInstanceUID)


def can_view(user: Any, study: Study) -> bool:
    return filter_by_permission(
        Study.objects.filter(pk=study.pk), user, "studies.view_study"
    ).exists()


@pytest.fixture
def people(network: dict[str, Any], file_archive: Any) -> dict[str, Any]:
    return {
        "doctor": make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR),
        "specialist": make_user(institution=network["county"], role=Role.SPECIALIST),
        "specialist2": make_user(institution=network["county"], role=Role.SPECIALIST),
        "county_doctor": make_user(institution=network["county"], role=Role.CLINIC_DOCTOR),
        "expert": make_user(institution=network["centre"], role=Role.SPECIALIST),
        "outsider": make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR),
    }


@pytest.fixture
def study(network: dict[str, Any], people: dict[str, Any]) -> Study:
    return ingest_study(network["clinic"])


def up_referral(
    network: dict[str, Any], people: dict[str, Any], study: Study, **kw: Any
) -> Referral:
    return referral_create(
        actor=people["doctor"],
        from_institution=network["clinic"],
        to_institution=kw.pop("to", network["county"]),
        patient=study.patient,
        direction="up",
        studies=kw.pop("studies", [study]),
        clinical_question="右肺结节，请会诊",
        **kw,
    )


@pytest.mark.django_db
def test_it_walks_the_whole_way_and_access_follows(network, people, study):
    referral = up_referral(network, people, study)
    assert not can_view(people["specialist"], study)
    referral_submit(referral=referral, actor=people["doctor"])
    assert not can_view(people["specialist"], study), "before acceptance no access"
    referral_accept(referral=referral, actor=people["specialist"])
    assert can_view(people["specialist"], study)
    assert can_view(people["specialist2"], study), "the receiving specialists' group"
    assert not can_view(people["outsider"], study)
    referral_schedule(
        referral=referral, actor=people["specialist"], when=timezone.now() + dt.timedelta(days=1)
    )
    referral_arrive(referral=referral, actor=people["specialist"])
    referral_complete(referral=referral, actor=people["specialist"])
    referral.refresh_from_db()
    assert referral.state == State.COMPLETED
    assert can_view(people["specialist"], study), "grace period"
    study_access_revoke_due(now=timezone.now() + dt.timedelta(hours=73))
    assert not can_view(people["specialist"], study), "after the grace period, access ends"
    assert can_view(people["doctor"], study), "the origin keeps its access"
    kinds = list(referral.events.values_list("kind", flat=True))
    assert kinds == ["created", "submitted", "accepted", "scheduled", "arrived", "completed"]
    assert AuditEvent.objects.filter(action="study.access_grant").exists()
    assert AuditEvent.objects.filter(action="study.access_revoke").exists()


@pytest.mark.django_db
def test_priors_within_the_look_back_are_shared_and_older_ones_are_not(network, people, study):
    recent = ingest_study(network["clinic"])
    old_day = (timezone.localdate() - dt.timedelta(days=800)).strftime("%Y%m%d")
    old = ingest_study(network["clinic"], study_date=old_day)
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    referral_accept(referral=referral, actor=people["specialist"])
    assert can_view(people["specialist"], recent)
    assert not can_view(people["specialist"], old)


@pytest.mark.django_db
def test_priors_of_a_linked_person_at_another_institution_follow(network, people, study):
    elsewhere = ingest_study(network["other_clinic"], patient_id="OTHER-9")
    national_id = "990101196803120017"
    patient_link_by_national_id(patient=study.patient, national_id=national_id, actor=None)
    patient_link_by_national_id(patient=elsewhere.patient, national_id=national_id, actor=None)
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    referral_accept(referral=referral, actor=people["specialist"])
    assert can_view(people["specialist"], elsewhere)


@pytest.mark.django_db
def test_the_same_patient_id_elsewhere_is_not_the_same_person(network, people, study):
    same_id_elsewhere = ingest_study(network["other_clinic"], patient_id="P-1")
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    referral_accept(referral=referral, actor=people["specialist"])
    assert not can_view(people["specialist"], same_id_elsewhere)


@pytest.mark.django_db
def test_closing_keeps_access_granted_by_other_reasons(network, people, study):
    first = up_referral(network, people, study)
    second = up_referral(network, people, study)
    for referral in (first, second):
        referral_submit(referral=referral, actor=people["doctor"])
        referral_accept(referral=referral, actor=people["specialist"])
    referral_cancel(referral=first, actor=people["doctor"], reason="病情好转")
    study_access_revoke_due(now=timezone.now() + dt.timedelta(days=10))
    assert can_view(people["specialist"], study), "the second referral still grants it"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("case", "status"),
    [("accept twice", 409), ("accept cancelled", 409), ("reject without reason", 400)],
)
def test_illegal_transitions_change_nothing(network, people, study, case, status):
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    if case == "accept twice":
        referral_accept(referral=referral, actor=people["specialist"])
        action = lambda: referral_accept(referral=referral, actor=people["specialist2"])  # noqa: E731
    elif case == "accept cancelled":
        referral_cancel(referral=referral, actor=people["doctor"], reason="患者拒绝")
        action = lambda: referral_accept(referral=referral, actor=people["specialist"])  # noqa: E731
    else:
        action = lambda: referral_reject(referral=referral, actor=people["specialist"], reason=" ")  # noqa: E731
    before = Referral.objects.get(pk=referral.pk)
    events = referral.events.count()
    with pytest.raises(ReferralError) as raised:
        action()
    assert raised.value.status == status
    after = Referral.objects.get(pk=referral.pk)
    assert (after.state, after.accepted_by_id) == (before.state, before.accepted_by_id)
    assert referral.events.count() == events


@pytest.mark.django_db
def test_network_rules(network, people, study):
    with pytest.raises(ReferralError) as raised:
        up_referral(network, people, study, to=network["clinic"])
    assert raised.value.code == "to_itself"
    with pytest.raises(ReferralError) as raised:
        referral_create(
            actor=people["doctor"],
            from_institution=network["clinic"],
            to_institution=network["other_clinic"],
            patient=study.patient,
            direction="down",
            treatment_summary="x",
            follow_up_plan="y",
        )
    assert raised.value.code == "not_down"
    with pytest.raises(ReferralError) as raised:
        up_referral(network, people, study, to=network["centre"])
    assert raised.value.code == "skip_without_reason"
    assert up_referral(network, people, study, to=network["centre"], skip_reason="需要PET-CT")
    with pytest.raises(ReferralError) as raised:
        up_referral(network, people, study, to=network["bureau"])
    assert Referral.objects.count() == 1


@pytest.mark.django_db
def test_attaching_another_institutions_study_is_refused(network, people, study):
    foreign = ingest_study(network["other_clinic"])
    with pytest.raises(ReferralError) as raised:
        up_referral(network, people, study, studies=[study, foreign])
    assert raised.value.code == "study_not_visible"
    assert Referral.objects.count() == 0


@pytest.mark.django_db
def test_down_referral_needs_a_plan_and_goes_to_a_lower_level(network, people, study):
    county_study = ingest_study(network["county"], patient_id="ZY-1")
    common = {
        "actor": people["county_doctor"],
        "from_institution": network["county"],
        "to_institution": network["clinic"],
        "patient": county_study.patient,
        "direction": "down",
        "studies": [county_study],
    }
    with pytest.raises(ReferralError) as raised:
        referral_create(**common)
    assert raised.value.code == "down_without_plan"
    referral = referral_create(
        **common, treatment_summary="术后恢复良好", follow_up_plan="三个月后复查CT"
    )
    referral_submit(referral=referral, actor=people["county_doctor"])
    referral_accept(referral=referral, actor=people["doctor"])
    assert can_view(people["doctor"], county_study)


@pytest.mark.django_db
def test_unanswered_referrals_expire(network, people, study):
    referral = up_referral(network, people, study, urgency="emergency")
    referral_submit(referral=referral, actor=people["doctor"])
    assert referrals_expire_due(now=timezone.now() + dt.timedelta(minutes=10)) == 0
    assert referrals_expire_due(now=timezone.now() + dt.timedelta(minutes=31)) == 1
    referral.refresh_from_db()
    assert referral.state == State.EXPIRED


@pytest.mark.django_db
def test_only_the_receiving_side_may_answer(network, people, study):
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    with pytest.raises(ReferralError) as raised:
        referral_accept(referral=referral, actor=people["outsider"])
    assert raised.value.status == 403
    with pytest.raises(ReferralError):
        referral_accept(referral=referral, actor=people["expert"])


@pytest.mark.django_db(transaction=True)
def test_two_specialists_accepting_at_once_exactly_one_wins(network, people, study):
    referral = up_referral(network, people, study)
    referral_submit(referral=referral, actor=people["doctor"])
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept(user: Any) -> None:
        barrier.wait()
        try:
            referral_accept(referral=referral, actor=user)
            outcomes.append("won")
        except ReferralError as exc:
            outcomes.append(f"lost {exc.status}")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=accept, args=(people[n],)) for n in ("specialist", "specialist2")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["lost 409", "won"]
    assert referral.events.filter(kind="accepted").count() == 1


@pytest.mark.django_db
def test_referrals_are_visible_only_to_their_two_institutions(network, people, study):
    referral = up_referral(network, people, study)
    visible = lambda user: filter_by_permission(  # noqa: E731
        Referral.objects.all(), user, "referrals.view_referral"
    ).count()
    assert visible(people["doctor"]) == 1
    assert visible(people["specialist"]) == 0, "a draft stays with the sender"
    referral_submit(referral=referral, actor=people["doctor"])
    assert visible(people["specialist"]) == 1
    assert visible(people["outsider"]) == 0
    assert visible(people["expert"]) == 0
    assert Patient.objects.count() == 1
