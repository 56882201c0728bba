"""STOW-RS and the ingest pipeline, through the HTTP endpoint."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client
from pydicom.data import get_charset_files

from hospitals.models import Membership, Role
from hospitals.services import edge_node_create
from regional_cloud.models import AuditEvent
from regional_cloud.permissions import filter_by_permission
from studies.archive import get_store
from studies.models import Instance, Patient, Study
from tests.dicom_helpers import (
    bundled_file_bytes,
    ct_small,
    multipart,
    random_uid,
    stow_content_type,
    to_bytes,
)
from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("archive")]


def stow(client: Client, body: bytes, *, url: str = "/dicom-web/studies", **extra: Any):
    return client.post(url, data=body, content_type=stow_content_type(), **extra)


@pytest.fixture
def clinic_doctor(network: dict[str, Any]) -> Any:
    return make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)


@pytest.fixture
def doctor_client(client_for: Any, clinic_doctor: Any) -> Client:
    return client_for(clinic_doctor)


def referenced(response: Any) -> list[str]:
    items = response.json().get("00081199", {}).get("Value", [])
    return [item["00081155"]["Value"][0] for item in items]


def failed(response: Any) -> list[int]:
    items = response.json().get("00081198", {}).get("Value", [])
    return [item["00081197"]["Value"][0] for item in items]


def test_it_stores_an_instance_and_indexes_it(doctor_client: Client, network: dict[str, Any]):
    ds = ct_small(patient_name="王^小东")
    data = to_bytes(ds)
    response = stow(doctor_client, multipart([data]))
    assert response.status_code == 200, response.content
    assert referenced(response) == [ds.SOPInstanceUID]
    instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert instance.study.origin == network["clinic"]
    assert instance.size_bytes == len(data)
    with get_store().open(instance.archive_key) as stored:
        assert stored.read() == data
    assert instance.study.patient.patient_name == "王^小东"
    assert instance.study.number_of_instances == 1
    assert instance.study.modalities_in_study == "CT"
    assert AuditEvent.objects.filter(action="study.ingest", study_uid=ds.StudyInstanceUID).exists()


def test_it_is_idempotent_for_the_same_bytes(doctor_client: Client):
    data = to_bytes(ct_small())
    first = stow(doctor_client, multipart([data]))
    second = stow(doctor_client, multipart([data]))
    assert first.status_code == second.status_code == 200
    assert Instance.objects.count() == 1
    assert len(list(get_store().iter_keys("dicom/"))) == 1


def test_it_refuses_other_bytes_under_a_stored_uid_with_409_and_audits(doctor_client: Client):
    ds = ct_small()
    stow(doctor_client, multipart([to_bytes(ds)]))
    ds.StudyDescription = "changed"
    response = stow(doctor_client, multipart([to_bytes(ds)]))
    assert response.status_code == 409
    assert failed(response) == [0x0111]
    assert Instance.objects.count() == 1
    assert AuditEvent.objects.filter(
        action="instance.duplicate_conflict", outcome="denied", object_id=ds.SOPInstanceUID
    ).exists()


def test_it_takes_the_origin_from_the_sender_not_the_tags(doctor_client: Client, network: dict):
    ds = ct_small(patient_name="赵^六")
    ds.InstitutionName = network["centre"].name
    stow(doctor_client, multipart([to_bytes(ds)]))
    assert Study.objects.get().origin == network["clinic"]


def test_it_grants_the_origin_and_nobody_else(doctor_client: Client, network: dict[str, Any]):
    ds = ct_small()
    stow(doctor_client, multipart([to_bytes(ds)]))
    colleague = make_user(institution=network["clinic"], role=Role.TECHNICIAN)
    outsider = make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR)
    analyst = make_user(institution=network["bureau"], role=Role.BUREAU_ANALYST)
    visible = Study.objects.all()
    assert filter_by_permission(visible, colleague, "studies.view_study").count() == 1
    assert filter_by_permission(visible, outsider, "studies.view_study").count() == 0
    assert filter_by_permission(visible, analyst, "studies.view_study").count() == 0


def test_it_refuses_a_study_uid_that_differs_from_the_url(doctor_client: Client):
    ds = ct_small()
    response = stow(
        doctor_client, multipart([to_bytes(ds)]), url=f"/dicom-web/studies/{random_uid()}"
    )
    assert response.status_code == 409
    assert failed(response) == [0xA900]
    assert Instance.objects.count() == 0


def test_it_answers_202_when_some_instances_fail(doctor_client: Client):
    good = to_bytes(ct_small())
    response = stow(doctor_client, multipart([good, b"not dicom at all"]))
    assert response.status_code == 202
    assert len(referenced(response)) == 1
    assert failed(response) == [0xC000]


@pytest.mark.parametrize(
    "name",
    [
        "badVR.dcm",
        "MR_truncated.dcm",
        "rtplan_truncated.dcm",
        "meta_missing_tsyntax.dcm",
        "no_meta.dcm",
        "ExplVR_BigEndNoMeta.dcm",
        "JPEGLSNearLossless_08.dcm",
    ],
)
def test_it_refuses_every_broken_file_bundled_with_pydicom(doctor_client: Client, name: str):
    response = stow(doctor_client, multipart([bundled_file_bytes(name)]))
    assert response.status_code in (400, 409), response.content
    assert failed(response), response.json()
    assert response.json()["00081198"]["Value"][0]["00000902"]["Value"][0]
    assert Instance.objects.count() == 0
    assert list(get_store().iter_keys("dicom/")) == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "empty"),
        (b"\0" * 128 + b"DICM", "only the preamble"),
    ],
)
def test_it_refuses_degenerate_files(doctor_client: Client, body: bytes, why: str):
    response = stow(doctor_client, multipart([body]))
    assert response.status_code == 400, why
    assert Instance.objects.count() == 0


def test_it_refuses_uids_over_64_characters(doctor_client: Client):
    ds = ct_small(sop_uid="1." + "2" * 70)
    response = stow(doctor_client, multipart([to_bytes(ds)]))
    assert response.status_code == 409
    assert Instance.objects.count() == 0


def test_it_refuses_a_broken_multipart_body_with_400_and_keeps_nothing(doctor_client: Client):
    good = to_bytes(ct_small())
    body = multipart([good])[:-10]  # no closing boundary
    response = stow(doctor_client, body)
    assert response.status_code == 400
    assert "Malformed" in response.json()["error"] or "multipart" in response.json()["error"]
    assert Instance.objects.count() == 0
    assert list(get_store().iter_keys("dicom/")) == []


def test_it_refuses_a_wrong_boundary(doctor_client: Client):
    response = doctor_client.post(
        "/dicom-web/studies",
        data=multipart([to_bytes(ct_small())]),
        content_type='multipart/related; type="application/dicom"; boundary=other',
    )
    assert response.status_code == 400


def test_it_answers_413_for_a_declared_length_of_2_gb(doctor_client: Client, settings: Any):
    settings.STOW_MAX_BYTES = 1024 * 1024 * 1024
    response = doctor_client.post(
        "/dicom-web/studies",
        data=b"x",
        content_type=stow_content_type(),
        headers={"Content-Length": str(2 * 1024**3)},
    )
    assert response.status_code == 413


def test_it_answers_415_for_other_media_types(doctor_client: Client):
    response = doctor_client.post("/dicom-web/studies", data=b"{}", content_type="application/json")
    assert response.status_code == 415
    response = doctor_client.post(
        "/dicom-web/studies",
        data=b"",
        content_type='multipart/related; type="application/dicom+json"; boundary=x',
    )
    assert response.status_code == 415


def test_anonymous_gets_401_with_a_challenge():
    response = stow(Client(), multipart([to_bytes(ct_small())]))
    assert response.status_code == 401
    assert "Basic" in response["WWW-Authenticate"]
    assert Instance.objects.count() == 0


def test_it_accepts_http_basic(network: dict[str, Any]):
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    credentials = base64.b64encode(f"{user.username}:{PASSWORD}".encode()).decode()
    response = stow(
        Client(), multipart([to_bytes(ct_small())]), HTTP_AUTHORIZATION=f"Basic {credentials}"
    )
    assert response.status_code == 200
    wrong = base64.b64encode(f"{user.username}:nope".encode()).decode()
    response = stow(
        Client(), multipart([to_bytes(ct_small())]), HTTP_AUTHORIZATION=f"Basic {wrong}"
    )
    assert response.status_code == 401


def test_it_accepts_an_edge_token_and_the_origin_is_the_edges(network: dict[str, Any]):
    issued = edge_node_create(institution=network["other_clinic"], name="orthanc-1")
    response = stow(
        Client(), multipart([to_bytes(ct_small())]), HTTP_AUTHORIZATION=f"Bearer {issued.token}"
    )
    assert response.status_code == 200
    assert Study.objects.get().origin == network["other_clinic"]
    response = stow(Client(), multipart([to_bytes(ct_small())]), HTTP_AUTHORIZATION="Bearer edge_x")
    assert response.status_code == 401


def test_an_edge_sends_only_for_its_own_institution(network: dict[str, Any]):
    issued = edge_node_create(institution=network["other_clinic"], name="orthanc-1")
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {issued.token}"}
    named = f"/dicom-web/studies?institution={network['clinic'].uuid}"
    response = stow(Client(), multipart([to_bytes(ct_small())]), url=named, **bearer)
    assert response.status_code == 403
    own = f"/dicom-web/studies?institution={network['other_clinic'].uuid}"
    response = stow(Client(), multipart([to_bytes(ct_small())]), url=own, **bearer)
    assert response.status_code == 200
    # The edge's service identity no longer a member: its token sends nothing.
    Membership.objects.filter(user=issued.edge_node.service_user).update(is_active=False)
    response = stow(Client(), multipart([to_bytes(ct_small())]), **bearer)
    assert response.status_code == 403
    assert Instance.objects.count() == 1


def test_a_bureau_analyst_may_not_send(client_for: Any, network: dict[str, Any]):
    analyst = make_user(institution=network["bureau"], role=Role.BUREAU_ANALYST)
    response = stow(client_for(analyst), multipart([to_bytes(ct_small())]))
    assert response.status_code == 403
    assert Instance.objects.count() == 0


def test_chinese_names_round_trip_byte_identical(doctor_client: Client):
    for name in ("chrX1.dcm", "chrX2.dcm"):
        with open(get_charset_files(name)[0], "rb") as handle:
            data = handle.read()
        response = stow(doctor_client, multipart([data]))
        assert response.status_code == 200, response.content
        instance = Instance.objects.get(sop_instance_uid=referenced(response)[0])
        with get_store().open(instance.archive_key) as stored:
            assert stored.read() == data
    names = set(Patient.objects.values_list("patient_name", flat=True))
    assert names == {"Wang^XiaoDong=王^小東", "Wang^XiaoDong=王^小东"}


def test_a_study_split_over_requests_keeps_one_study(doctor_client: Client):
    study, series = random_uid(), random_uid()
    for _ in range(3):
        data = to_bytes(ct_small(study_uid=study, series_uid=series))
        assert stow(doctor_client, multipart([data])).status_code == 200
    row = Study.objects.get(study_instance_uid=study)
    assert row.number_of_instances == 3
    assert row.number_of_series == 1
    assert row.size_bytes == sum(Instance.objects.values_list("size_bytes", flat=True))


def test_another_institution_cannot_append_to_a_study(network: dict[str, Any], client_for: Any):
    first = client_for(make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR))
    second = client_for(make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR))
    study = random_uid()
    assert stow(first, multipart([to_bytes(ct_small(study_uid=study))])).status_code == 200
    response = stow(second, multipart([to_bytes(ct_small(study_uid=study))]))
    assert response.status_code == 409
    assert Instance.objects.count() == 1


def test_no_patient_data_reaches_the_logs(doctor_client: Client, caplog: Any):
    caplog.set_level("DEBUG")
    stow(doctor_client, multipart([to_bytes(ct_small(patient_name="李^四"))]))
    stow(doctor_client, multipart([bundled_file_bytes("badVR.dcm")]))
    assert "李" not in caplog.text
    assert "P-1" not in caplog.text


def test_large_request_is_streamed(doctor_client: Client):
    # 40 instances in one request: everything indexed at once.
    study = random_uid()
    body = multipart(to_bytes(ct_small(study_uid=study)) for _ in range(40))
    response = stow(doctor_client, body, url=f"/dicom-web/studies/{study}")
    assert response.status_code == 200
    assert Study.objects.get().number_of_instances == 40
    assert len(list(get_store().iter_keys("dicom/"))) == 40


def test_it_keys_objects_flat_and_still_serves_the_older_layout(doctor_client: Client):
    ds = ct_small()
    data = to_bytes(ds)
    assert stow(doctor_client, multipart([data])).status_code == 200
    instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    folder, name = instance.archive_key.rsplit("/", 1)
    assert folder == f"dicom/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}"
    assert name == f"{ds.SOPInstanceUID}.{instance.sha256[:16]}.dcm"
    # A row stored under the older layout (a folder per instance) keeps its key.
    store = get_store()
    legacy = f"{folder}/{ds.SOPInstanceUID}/{instance.sha256[:16]}.dcm"
    with store.open(instance.archive_key) as stored:
        store.put(legacy, stored, size=instance.size_bytes, sha256=instance.sha256)
    store.delete(instance.archive_key)
    Instance.objects.filter(pk=instance.pk).update(archive_key=legacy)
    url = (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    response = doctor_client.get(url)
    assert response.status_code == 200
    assert data in b"".join(response.streaming_content)
