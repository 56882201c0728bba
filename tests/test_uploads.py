"""Browser uploads through /api/uploads/: chunked, resumable, zips, and what is left behind."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from regional_cloud.permissions import filter_by_permission
from studies.archive import get_store
from studies.models import Instance, Study, UploadChunk, UploadSession
from studies.uploads.services import uploads_cleanup
from tests.dicom_helpers import ct_small, to_bytes
from tests.factories import make_user
from tests.fixtures.archive import archive, file_archive  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

CHUNK = 16 * 1024
API = "/api/uploads/"


@pytest.fixture(autouse=True)
def small_chunks(settings: Any) -> None:
    settings.UPLOAD_CHUNK_SIZE = CHUNK


@pytest.fixture(autouse=True)
def own_archive(request: pytest.FixtureRequest) -> None:
    """Every test gets an empty archive: its own folder, unless it runs on both stores."""
    if "archive" not in request.fixturenames:
        request.getfixturevalue("file_archive")


@pytest.fixture
def doctor(network: dict[str, Any]) -> Any:
    return make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)


@pytest.fixture
def doctor_client(client_for: Any, doctor: Any) -> Client:
    return client_for(doctor)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def start(client: Client, *, name: str, size: int, **extra: Any) -> Any:
    body: dict[str, Any] = {"file_name": name, "size": size}
    body.update(extra.pop("body", {}))
    return client.post(API, body, content_type="application/json", **extra)


def put(client: Client, uuid: str, index: int, body: bytes, digest: str | None = None) -> Any:
    return client.put(
        f"{API}{uuid}/chunks/{index}",
        data=body,
        content_type="application/octet-stream",
        HTTP_X_CHUNK_SHA256=digest or sha(body),
    )


def complete(client: Client, uuid: str) -> Any:
    return client.post(f"{API}{uuid}/complete")


def upload(client: Client, data: bytes, *, name: str = "ct.dcm") -> Any:
    """Upload ``data`` whole, chunk by chunk, and return the completion response."""
    created = start(client, name=name, size=len(data))
    assert created.status_code == 201, created.content
    uuid = created.json()["uuid"]
    for index, chunk in enumerate(split(data)):
        assert put(client, uuid, index, chunk).status_code == 201
    return complete(client, uuid)


def upload_keys() -> list[str]:
    return list(get_store().iter_keys("uploads/"))


def dicom(**kwargs: Any) -> tuple[Any, bytes]:
    ds = ct_small(**kwargs)
    return ds, to_bytes(ds)


@pytest.mark.usefixtures("archive")
def test_it_uploads_a_dicom_in_chunks_and_indexes_it_for_the_uploaders_institution(
    doctor_client: Client, doctor: Any, network: dict[str, Any]
):
    ds, data = dicom(patient_name="李^四")
    created = start(doctor_client, name="胸部 CT.dcm", size=len(data))
    assert created.status_code == 201, created.content
    session = created.json()
    assert session["chunk_size"] == CHUNK
    assert session["chunk_count"] == len(split(data)) >= 3
    assert session["received"] == []

    for index, chunk in enumerate(split(data)):
        assert put(doctor_client, session["uuid"], index, chunk).status_code == 201
    response = complete(doctor_client, session["uuid"])

    assert response.status_code == 200, response.content
    result = response.json()
    assert result["kind"] == "file"
    assert result["summary"] == {"stored": 1, "already_stored": 0, "refused": 0}
    assert result["results"][0]["name"] == "胸部 CT.dcm"
    assert result["results"][0]["sop_instance_uid"] == ds.SOPInstanceUID
    instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert instance.study.origin == network["clinic"]
    assert instance.study.patient.patient_name == "李^四"
    with get_store().open(instance.archive_key) as stored:
        assert stored.read() == data
    visible = filter_by_permission(Study.objects.all(), doctor, "studies.view_study")
    assert list(visible) == [instance.study]
    # Nothing of the upload is left but its session row with the result.
    assert upload_keys() == []
    assert not UploadChunk.objects.exists()
    assert UploadSession.objects.get(uuid=session["uuid"]).state == UploadSession.State.COMPLETE
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"upload.start", "upload.complete", "study.ingest"} <= actions


def test_it_resumes_by_sending_only_the_missing_chunks(doctor_client: Client):
    ds, data = dicom()
    chunks = split(data)
    uuid = start(doctor_client, name="ct.dcm", size=len(data)).json()["uuid"]
    for index in (0, 2):
        assert put(doctor_client, uuid, index, chunks[index]).status_code == 201

    status = doctor_client.get(f"{API}{uuid}/").json()
    assert status["received"] == [0, 2]
    assert status["received_bytes"] == len(chunks[0]) + len(chunks[2])
    assert status["missing"] == [1, *range(3, len(chunks))]
    early = complete(doctor_client, uuid)
    assert early.status_code == 409
    assert early.json()["code"] == "missing_chunks"
    assert early.json()["missing"] == status["missing"]
    assert UploadSession.objects.get(uuid=uuid).state == UploadSession.State.OPEN

    for index in status["missing"]:
        assert put(doctor_client, uuid, index, chunks[index]).status_code == 201
    response = complete(doctor_client, uuid)

    assert response.status_code == 200
    assert response.json()["summary"]["stored"] == 1
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


def test_it_accepts_the_same_chunk_twice(doctor_client: Client):
    _ds, data = dicom()
    chunks = split(data)
    uuid = start(doctor_client, name="ct.dcm", size=len(data)).json()["uuid"]

    first = put(doctor_client, uuid, 1, chunks[1])
    again = put(doctor_client, uuid, 1, chunks[1])

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == {"index": 1, "created": False}
    assert UploadChunk.objects.filter(session__uuid=uuid).count() == 1


@pytest.mark.usefixtures("archive")
def test_it_refuses_other_bytes_for_a_chunk_already_received(doctor_client: Client):
    _ds, data = dicom()
    chunks = split(data)
    uuid = start(doctor_client, name="ct.dcm", size=len(data)).json()["uuid"]
    assert put(doctor_client, uuid, 0, chunks[0]).status_code == 201

    other = b"x" * len(chunks[0])
    response = put(doctor_client, uuid, 0, other)

    assert response.status_code == 409
    assert response.json()["code"] == "chunk_conflict"
    with get_store().open(f"uploads/{uuid}/0") as stored:
        assert stored.read() == chunks[0]


def test_it_refuses_a_chunk_damaged_on_the_way(doctor_client: Client):
    _ds, data = dicom()
    chunk = split(data)[0]
    uuid = start(doctor_client, name="ct.dcm", size=len(data)).json()["uuid"]

    response = put(doctor_client, uuid, 0, chunk, digest=sha(chunk[:-1] + b"?"))

    assert response.status_code == 400
    assert response.json()["code"] == "chunk_damaged"
    assert response.json()["reason"]
    assert upload_keys() == []


def test_it_refuses_chunks_out_of_range_or_too_long(doctor_client: Client):
    _ds, data = dicom()
    uuid = start(doctor_client, name="ct.dcm", size=len(data)).json()["uuid"]

    beyond = put(doctor_client, uuid, len(split(data)), b"abc")
    too_long = put(doctor_client, uuid, 0, b"a" * (CHUNK + 1))

    assert beyond.status_code == 400
    assert beyond.json()["code"] == "bad_chunk_index"
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "bad_chunk_size"


@pytest.mark.usefixtures("archive")
def test_it_refuses_a_wrong_total_size_and_keeps_nothing(doctor_client: Client):
    ds, data = dicom()
    chunks = split(data)
    created = start(doctor_client, name="ct.dcm", size=len(data) + 1).json()
    assert created["chunk_count"] == len(chunks)  # the last chunk comes one byte short
    for index, chunk in enumerate(chunks):
        assert put(doctor_client, created["uuid"], index, chunk).status_code == 201

    response = complete(doctor_client, created["uuid"])

    assert response.status_code == 400
    assert response.json()["code"] == "size_mismatch"
    assert str(len(data)) in response.json()["reason"]
    assert upload_keys() == []
    assert not UploadChunk.objects.exists()
    assert not Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()
    session = UploadSession.objects.get(uuid=created["uuid"])
    assert session.state == UploadSession.State.FAILED
    # The failure is final and says why, again.
    again = complete(doctor_client, created["uuid"])
    assert again.status_code == 400
    assert again.json()["code"] == "size_mismatch"
    assert put(doctor_client, created["uuid"], 0, chunks[0]).status_code == 409


@pytest.mark.usefixtures("archive")
def test_it_refuses_a_file_whose_sha256_differs_from_the_declared_one(doctor_client: Client):
    _ds, data = dicom()
    created = start(
        doctor_client, name="ct.dcm", size=len(data), body={"sha256": sha(data + b"other")}
    ).json()
    for index, chunk in enumerate(split(data)):
        put(doctor_client, created["uuid"], index, chunk)

    response = complete(doctor_client, created["uuid"])

    assert response.status_code == 400
    assert response.json()["code"] == "sha256_mismatch"
    assert upload_keys() == []
    assert not Instance.objects.exists()
    assert AuditEvent.objects.filter(action="upload.failed", outcome="denied").exists()


def test_it_accepts_a_declared_sha256_that_matches(doctor_client: Client):
    _ds, data = dicom()
    created = start(doctor_client, name="ct.dcm", size=len(data), body={"sha256": sha(data)})
    uuid = created.json()["uuid"]
    for index, chunk in enumerate(split(data)):
        put(doctor_client, uuid, index, chunk)

    response = complete(doctor_client, uuid)

    assert response.status_code == 200
    assert response.json()["sha256"] == sha(data)


def test_it_answers_a_second_completion_with_the_same_result(doctor_client: Client):
    _ds, data = dicom()
    first = upload(doctor_client, data)
    uuid = UploadSession.objects.get().uuid

    second = complete(doctor_client, str(uuid))

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert Instance.objects.count() == 1


def test_it_answers_busy_during_a_completion_and_takes_over_an_abandoned_one(
    doctor_client: Client,
):
    _ds, data = dicom()
    uuid = start(doctor_client, name="ct.dcm", size=len(data)).json()["uuid"]
    for index, chunk in enumerate(split(data)):
        put(doctor_client, uuid, index, chunk)
    # Another request claimed it; then its process died.
    UploadSession.objects.filter(uuid=uuid).update(state=UploadSession.State.ASSEMBLING)

    busy = complete(doctor_client, uuid)
    UploadSession.objects.filter(uuid=uuid).update(updated_at=timezone.now() - timedelta(hours=3))
    taken_over = complete(doctor_client, uuid)

    assert busy.status_code == 409
    assert busy.json()["code"] == "busy"
    assert taken_over.status_code == 200
    assert taken_over.json()["summary"]["stored"] == 1


def test_it_reports_an_instance_already_stored(doctor_client: Client):
    _ds, data = dicom()
    upload(doctor_client, data)

    again = upload(doctor_client, data)

    assert again.status_code == 200
    assert again.json()["results"][0]["outcome"] == "already_stored"


def test_it_reports_a_file_that_is_not_dicom_as_refused_with_a_reason(doctor_client: Client):
    response = upload(doctor_client, "病历说明,不是影像".encode() * 50, name="说明.txt")

    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["outcome"] == "refused"
    assert result["code"] == "not_dicom"
    assert result["name"] == "说明.txt"
    assert "DICOM" in result["reason"]
    assert upload_keys() == []


def test_it_refuses_an_empty_file(doctor_client: Client):
    response = start(doctor_client, name="empty.dcm", size=0)

    assert response.status_code == 400


def make_zip(entries: dict[str, bytes], **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, **kwargs) as zipped:
        for name, data in entries.items():
            if name.endswith("/"):
                zipped.writestr(zipfile.ZipInfo(name), b"")
            else:
                zipped.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.usefixtures("archive")
def test_it_expands_a_zip_and_reports_each_entry(doctor_client: Client, network: dict[str, Any]):
    first, first_bytes = dicom(patient_id="Z-1")
    _second, second_bytes = dicom(
        patient_id="Z-1", study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID
    )
    data = make_zip(
        {
            "患者A/": b"",
            "患者A/CT/IM0001": first_bytes,
            "患者A/CT/IM0002.dcm": second_bytes,
            "患者A/说明.txt": "不是影像".encode(),
            "DICOMDIR": b"index of the CD",
            "__MACOSX/患者A/._IM0001": b"resource fork",
            ".DS_Store": b"finder",
        }
    )

    response = upload(doctor_client, data, name="患者A.zip")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["kind"] == "zip"
    assert body["summary"] == {"stored": 2, "already_stored": 0, "refused": 1}
    by_name = {r["name"]: r for r in body["results"]}
    assert set(by_name) == {"患者A/CT/IM0001", "患者A/CT/IM0002.dcm", "患者A/说明.txt"}
    assert by_name["患者A/CT/IM0001"]["outcome"] == "stored"
    assert by_name["患者A/说明.txt"]["outcome"] == "refused"
    assert by_name["患者A/说明.txt"]["reason"]
    study = Study.objects.get(study_instance_uid=first.StudyInstanceUID)
    assert study.origin == network["clinic"]
    assert study.number_of_instances == 2
    assert body["study_instance_uids"] == [first.StudyInstanceUID]
    assert upload_keys() == []


def test_it_reads_gbk_names_of_zips_made_on_chinese_windows(doctor_client: Client):
    _ds, data = dicom()
    gbk = "胸片.dcm".encode("gbk")
    placeholder = b"X" * (len(gbk) - 4) + b".dcm"
    # What a Windows zip tool writes: GBK bytes, no UTF-8 flag (Python would set the flag).
    zipped = make_zip({placeholder.decode(): data}).replace(placeholder, gbk)

    response = upload(doctor_client, zipped, name="cd.zip")

    assert response.json()["results"][0]["name"] == "胸片.dcm"


@pytest.mark.usefixtures("archive")
def test_it_refuses_a_zip_bomb_and_keeps_nothing(doctor_client: Client, settings: Any):
    settings.UPLOAD_ZIP_MAX_BYTES = 1024 * 1024
    _ds, dicom_bytes = dicom()
    data = make_zip({"a.dcm": dicom_bytes, "zeros.bin": bytes(20 * 1024 * 1024)})
    assert len(data) < 100 * 1024  # twenty megabytes of zeros deflate to almost nothing

    response = upload(doctor_client, data, name="bomb.zip")

    assert response.status_code == 400
    assert response.json()["code"] == "zip_too_large"
    assert not Instance.objects.exists()
    assert upload_keys() == []
    assert list(get_store().iter_keys("dicom/")) == []


def test_it_refuses_a_zip_with_too_many_entries(doctor_client: Client, settings: Any):
    settings.UPLOAD_ZIP_MAX_MEMBERS = 3
    data = make_zip({f"{i}.dcm": b"x" for i in range(5)})

    response = upload(doctor_client, data, name="many.zip")

    assert response.status_code == 400
    assert response.json()["code"] == "zip_too_many_members"


def test_it_refuses_a_damaged_zip(doctor_client: Client):
    _ds, dicom_bytes = dicom()
    data = make_zip({"a.dcm": dicom_bytes})[:-40]

    response = upload(doctor_client, data, name="broken.zip")

    assert response.status_code == 400
    assert response.json()["code"] == "zip_unreadable"
    assert not Instance.objects.exists()


def test_it_refuses_people_who_may_not_send_studies(client_for: Any, network: dict[str, Any]):
    analyst = make_user(institution=network["bureau"], role=Role.BUREAU_ANALYST)
    nobody = make_user()
    for user in (analyst, nobody):
        client = client_for(user)
        assert start(client, name="ct.dcm", size=100).status_code == 403
        assert client.get("/upload/").status_code == 403
    assert Client().post(API, {}, content_type="application/json").status_code in {401, 403}
    assert not UploadSession.objects.exists()


def test_it_needs_the_csrf_token_from_a_browser_session(doctor: Any):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(doctor)

    refused = start(browser, name="ct.dcm", size=100)
    browser.get("/upload/")  # sets the CSRF cookie, as the page does
    token = browser.cookies["csrftoken"].value
    accepted = start(browser, name="ct.dcm", size=100, HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403
    assert accepted.status_code == 201


def test_it_hides_another_users_upload(
    doctor_client: Client, client_for: Any, network: dict[str, Any]
):
    _ds, data = dicom()
    uuid = start(doctor_client, name="ct.dcm", size=len(data)).json()["uuid"]
    colleague = client_for(make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR))
    other = client_for(make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR))

    for client in (colleague, other):
        assert client.get(f"{API}{uuid}/").status_code == 404
        assert put(client, uuid, 0, split(data)[0]).status_code == 404
        assert complete(client, uuid).status_code == 404
    assert doctor_client.get(f"{API}{uuid}/").status_code == 200
    assert not UploadChunk.objects.exists()


def test_it_sends_for_the_institution_named_by_a_person_with_several(
    client_for: Any, network: dict[str, Any]
):
    from hospitals.services import membership_grant

    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    membership_grant(user=user, institution=network["county"], role=Role.SPECIALIST)
    client = client_for(user)
    _ds, data = dicom()

    unnamed = start(client, name="ct.dcm", size=len(data))
    named = start(
        client, name="ct.dcm", size=len(data), HTTP_X_INSTITUTION=str(network["county"].uuid)
    )

    assert unnamed.status_code == 403
    assert named.status_code == 201
    assert named.json()["institution"] == str(network["county"].uuid)
    uuid = named.json()["uuid"]
    for index, chunk in enumerate(split(data)):
        put(client, uuid, index, chunk)
    assert complete(client, uuid).status_code == 200
    assert Study.objects.get().origin == network["county"]


@pytest.mark.usefixtures("archive")
def test_it_cleans_up_stale_uploads_and_their_chunks(doctor_client: Client):
    _ds, data = dicom()
    chunks = split(data)
    stale = start(doctor_client, name="old.dcm", size=len(data)).json()["uuid"]
    fresh = start(doctor_client, name="new.dcm", size=len(data)).json()["uuid"]
    put(doctor_client, stale, 0, chunks[0])
    put(doctor_client, fresh, 0, chunks[0])
    UploadSession.objects.filter(uuid=stale).update(updated_at=timezone.now() - timedelta(hours=25))
    orphan = "uploads/8f14e45f-ceea-467f-a0e6-3c8a5d5e1d2b/0"
    get_store().put(orphan, io.BytesIO(b"left by a crash"))

    removed = uploads_cleanup()

    assert removed == 1
    assert not UploadSession.objects.filter(uuid=stale).exists()
    assert sorted(upload_keys()) == [f"uploads/{fresh}/0"]
    assert doctor_client.get(f"{API}{fresh}/").json()["received"] == [0]


def test_it_cleans_up_from_the_management_command(doctor_client: Client):
    _ds, data = dicom()
    uuid = start(doctor_client, name="old.dcm", size=len(data)).json()["uuid"]
    put(doctor_client, uuid, 0, split(data)[0])
    UploadSession.objects.filter(uuid=uuid).update(updated_at=timezone.now() - timedelta(days=2))
    out = io.StringIO()

    call_command("uploads_cleanup", stdout=out)

    assert "1 expired" in out.getvalue()
    assert upload_keys() == []
    assert not UploadSession.objects.exists()


def test_it_cleans_up_from_the_celery_task(doctor_client: Client):
    from studies.uploads.tasks import uploads_cleanup_task

    uuid = start(doctor_client, name="old.dcm", size=10).json()["uuid"]
    put(doctor_client, uuid, 0, b"0123456789")
    UploadSession.objects.filter(uuid=uuid).update(updated_at=timezone.now() - timedelta(days=2))

    assert uploads_cleanup_task.delay().get() == 1
    assert upload_keys() == []
