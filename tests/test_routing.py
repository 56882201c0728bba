"""Routing: a stored study lands in the right reading pool, once, with its grants audited."""

from __future__ import annotations

import pytest
from django.test import Client

from hospitals.models import Role
from hospitals.services import institution_role_group
from regional_cloud.models import AuditEvent
from regional_cloud.permissions import has_object_permission
from studies.ingest import AFTER_INGEST
from studies.models import ReadingTask, RoutingRule, StudyGrant
from studies.reading.routing import route_after_ingest, study_route
from tests.reading_helpers import (
    ct_dataset,
    ingest,
    make_clinic_without_hub,
    make_reading_region,
    task_of,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("file_archive")]


@pytest.fixture
def region():
    return make_reading_region()


def test_it_registers_routing_after_ingest():
    assert route_after_ingest in AFTER_INGEST


def test_it_routes_a_clinic_study_to_its_hubs_specialists(region):
    study = ingest(region["clinic"], region.clinic_doctor)

    task = task_of(study)
    assert task.reading_institution == region["county"]
    assert task.rule is None
    assert task.priority == "routine"
    assert task.status == ReadingTask.Status.UNREAD
    for user in (region.specialist, region.specialist2):
        assert has_object_permission(user, "studies.report_study", study)
        assert has_object_permission(user, "studies.view_study", study)
    for user in (region.centre_specialist, region.outsider, region.other_clinic_doctor):
        assert not has_object_permission(user, "studies.report_study", study)
        assert not has_object_permission(user, "studies.view_study", study)
    # The clinic's doctors see their study but do not report it.
    assert has_object_permission(region.clinic_doctor, "studies.view_study", study)
    assert not has_object_permission(region.clinic_doctor, "studies.report_study", study)


def test_it_audits_the_route_and_every_grant(region):
    study = ingest(region["clinic"], region.clinic_doctor)
    task = task_of(study)

    route = AuditEvent.objects.get(action="study.route", study_uid=study.study_instance_uid)
    assert route.object_id == str(task.uuid)
    assert route.institution_uuid == region["county"].uuid
    assert route.patient_ref == str(study.patient.uuid)
    grants = AuditEvent.objects.filter(
        action="study.access_grant", study_uid=study.study_instance_uid, detail__source="routing"
    )
    assert sorted(g.detail["codename"] for g in grants) == ["report_study", "view_study"]
    group = institution_role_group(region["county"], Role.SPECIALIST)
    assert all(g.detail["grantee"] == f"group:{group.name}" for g in grants)
    assert (
        StudyGrant.objects.filter(study=study, source="routing", source_ref=str(task.uuid)).count()
        == 2
    )
    # References only: the audit trail never holds the patient's name.
    for row in AuditEvent.objects.filter(study_uid=study.study_instance_uid):
        assert "王" not in str(row.detail)


def test_it_sends_a_county_hospitals_own_study_to_its_own_specialists(region):
    study = ingest(region["county"], region.specialist)

    assert task_of(study).reading_institution == region["county"]
    assert not has_object_permission(region.centre_specialist, "studies.report_study", study)


def test_it_applies_the_first_matching_rule(region):
    RoutingRule.objects.create(
        region=region["region"], order=20, modality="CT", reading_institution=region["county"]
    )
    first = RoutingRule.objects.create(
        region=region["region"], order=10, modality="CT", reading_institution=region["centre"]
    )
    RoutingRule.objects.create(
        region=region["region"], order=5, modality="MR", reading_institution=region["county"]
    )

    study = ingest(region["clinic"], region.clinic_doctor)

    task = task_of(study)
    assert task.reading_institution == region["centre"]
    assert task.rule == first
    assert has_object_permission(region.centre_specialist, "studies.report_study", study)
    assert not has_object_permission(region.specialist, "studies.report_study", study)


def test_it_matches_rules_by_origin_and_priority_and_skips_inactive_ones(region):
    RoutingRule.objects.create(
        region=region["region"],
        order=1,
        reading_institution=region["centre"],
        is_active=False,
    )
    RoutingRule.objects.create(
        region=region["region"],
        order=2,
        origin=region["other_clinic"],
        reading_institution=region["centre"],
    )
    RoutingRule.objects.create(
        region=region["region"],
        order=3,
        priority="emergency",
        reading_institution=region["centre"],
    )

    routine = ingest(region["clinic"], region.clinic_doctor, patient_id="A")
    stat = ingest(region["clinic"], region.clinic_doctor, patient_id="B", priority="STAT")
    other = ingest(region["other_clinic"], region.other_clinic_doctor, patient_id="C")

    assert task_of(routine).reading_institution == region["county"]
    assert task_of(stat).reading_institution == region["centre"]
    assert task_of(stat).priority == "emergency"
    assert task_of(other).reading_institution == region["centre"]


def test_it_ignores_rules_of_other_regions(region):
    RoutingRule.objects.create(
        region=region.outsider_county.region, order=1, reading_institution=region.outsider_county
    )
    study = ingest(region["clinic"], region.clinic_doctor)
    assert task_of(study).reading_institution == region["county"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("STAT", "emergency"), ("HIGH", "urgent"), ("ROUTINE", "routine"), ("LOW", "routine")],
)
def test_it_takes_the_priority_from_the_requested_procedure_priority(region, value, expected):
    study = ingest(region["clinic"], region.clinic_doctor, priority=value)
    assert task_of(study).priority == expected


def test_it_reads_the_priority_inside_the_request_attributes_sequence(region):
    from pydicom.dataset import Dataset

    ds = ct_dataset()
    item = Dataset()
    item.RequestedProcedurePriority = "STAT"
    item.RequestedProcedureID = "RP1"
    ds.RequestAttributesSequence = [item]

    study = ingest(region["clinic"], region.clinic_doctor, datasets=[ds])

    assert task_of(study).priority == "emergency"


def test_it_routes_a_study_once(region):
    first = ct_dataset()
    study = ingest(region["clinic"], region.clinic_doctor, datasets=[first])
    task = task_of(study)

    # More instances of the same study, and a second call: nothing changes.
    more = ct_dataset(study_uid=first.StudyInstanceUID)
    ingest(region["clinic"], region.clinic_doctor, datasets=[more])
    again = study_route(study_uid=study.study_instance_uid)

    assert again == task
    assert ReadingTask.objects.filter(study=study).count() == 1
    assert (
        AuditEvent.objects.filter(action="study.route", study_uid=study.study_instance_uid).count()
        == 1
    )
    assert StudyGrant.objects.filter(study=study, source="routing").count() == 2


def test_it_records_a_study_no_one_can_read(region):
    lonely = make_clinic_without_hub(region["region"])

    study = ingest(lonely)

    assert not ReadingTask.objects.filter(study=study).exists()
    failed = AuditEvent.objects.get(action="study.route", study_uid=study.study_instance_uid)
    assert failed.outcome == AuditEvent.Outcome.FAILED
    assert failed.detail == {"reason": "no_reading_institution"}


def test_it_lets_a_regional_admin_edit_rules_of_their_region_only(region, client_for):
    from hospitals.services import membership_grant

    admin_user = region.clinic_doctor.__class__.objects.create_user(
        username="regadmin", password="x-pass-123", is_staff=True
    )
    membership_grant(user=admin_user, institution=region["county"], role=Role.REGIONAL_ADMIN)
    from django.contrib.auth.models import Permission

    admin_user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["add_routingrule", "view_routingrule", "change_routingrule"]
        )
    )
    mine = RoutingRule.objects.create(
        region=region["region"], order=1, modality="US", reading_institution=region["county"]
    )
    theirs = RoutingRule.objects.create(
        region=region.outsider_county.region, order=1, reading_institution=region.outsider_county
    )
    client: Client = client_for(admin_user)

    listing = client.get("/admin/studies/routingrule/")
    assert listing.status_code == 200
    assert f"/admin/studies/routingrule/{mine.pk}/change/" in listing.content.decode()
    assert client.get(f"/admin/studies/routingrule/{theirs.pk}/change/").status_code in {302, 404}

    response = client.post(
        "/admin/studies/routingrule/add/",
        {
            "region": region["region"].pk,
            "order": 5,
            "modality": "MR",
            "priority": "",
            "reading_institution": region["centre"].pk,
            "is_active": "on",
            "note": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    rule = RoutingRule.objects.get(modality="MR")
    assert AuditEvent.objects.filter(
        action="routing_rule.create", object_id=str(rule.uuid)
    ).exists()
    refused = client.post(
        "/admin/studies/routingrule/add/",
        {
            "region": region["region"].pk,
            "order": 6,
            "reading_institution": region.outsider_county.pk,
            "is_active": "on",
        },
    )
    assert refused.status_code == 200  # the form comes back with an error
    assert not RoutingRule.objects.filter(order=6).exists()
