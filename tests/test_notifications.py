"""Notifications: a critical result or a final report reaches the requesting doctors at once,
in the browser (live, over Redis) and through the outside channels; seeing it is recorded."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client, TestCase

from regional_cloud import notifications
from regional_cloud.models import AuditEvent, Notification
from studies.models import Report
from studies.reading.services import (
    reading_task_claim,
    report_mark_preliminary,
    report_save,
    report_sign,
)
from tests.reading_helpers import PATIENT_DISPLAY, ingest, make_reading_region, task_of


class FakeSmsGateway:
    """Stands in for the SMS provider (outside the product): records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, str]] = []

    def __call__(self, notification: Notification) -> None:
        # What a real gateway would send: the title and the link, never the body.
        self.sent.append((notification.recipient_id, notification.kind, notification.title))


@pytest.fixture
def sms():
    gateway = FakeSmsGateway()
    notifications.CHANNELS.append(gateway)
    yield gateway
    notifications.CHANNELS.remove(gateway)


@pytest.fixture
def region(db):
    return make_reading_region()


@pytest.fixture
def task(region, file_archive):
    # Sent by the clinic's technician: the uploader is told too.
    return task_of(ingest(region["clinic"], region.clinic_technician))


def write(task, user, *, critical: bool) -> Report:
    reading_task_claim(task=task, user=user)
    return report_save(
        task=task,
        user=user,
        findings="右侧大量气胸，右肺压缩约80%。",
        impression="右侧张力性气胸。",
        critical=critical,
    )


@pytest.mark.django_db
def test_it_tells_the_requesting_doctors_of_a_critical_result_at_once(region, task, sms):
    report = write(task, region.specialist, critical=True)
    assert not Notification.objects.exists()  # a draft is not yet released

    with TestCase.captureOnCommitCallbacks(execute=True):
        report_mark_preliminary(report=report, user=region.specialist)

    report.refresh_from_db()
    assert report.critical_notified_at is not None
    sent = Notification.objects.filter(kind="report_critical")
    expected = {region.clinic_doctor.pk, region.clinic_doctor2.pk, region.clinic_technician.pk}
    assert {n.recipient_id for n in sent} == expected
    for notification in sent:
        assert PATIENT_DISPLAY not in notification.title
        assert PATIENT_DISPLAY in notification.body
        assert notification.url == f"/reports/{report.uuid}/"
    assert {(r, k) for r, k, _t in sms.sent} == {(pk, "report_critical") for pk in expected}
    assert all(PATIENT_DISPLAY not in title for _r, _k, title in sms.sent)
    assert AuditEvent.objects.filter(
        action="report.critical_notify", object_id=str(report.uuid)
    ).exists()


@pytest.mark.django_db
def test_it_sends_a_critical_result_once_and_the_final_report_after_signing(region, task, sms):
    report = write(task, region.specialist, critical=True)
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_mark_preliminary(report=report, user=region.specialist)
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_sign(report=report, user=region.specialist)

    kinds = sorted(k for _r, k, _t in sms.sent)
    assert kinds == ["report_critical"] * 3 + ["report_final"] * 3
    assert not Notification.objects.filter(recipient=region.other_clinic_doctor).exists()
    assert not Notification.objects.filter(recipient=region.specialist).exists()


@pytest.mark.django_db
def test_it_notifies_a_critical_result_signed_straight_from_draft(region, task, sms):
    report = write(task, region.specialist, critical=True)
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_sign(report=report, user=region.specialist)

    assert Notification.objects.filter(kind="report_critical").count() == 3
    report.refresh_from_db()
    assert report.critical_notified_at is not None


@pytest.mark.django_db
def test_it_records_when_a_requesting_doctor_first_opens_a_critical_result(
    region, task, sms, client_for
):
    report = write(task, region.specialist, critical=True)
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_mark_preliminary(report=report, user=region.specialist)

    # The reader's own opening is not "seen".
    client_for(region.specialist2).get(f"/reports/{report.uuid}/")
    report.refresh_from_db()
    assert report.critical_seen_at is None

    doctor = client_for(region.clinic_doctor)
    assert doctor.get(f"/reports/{report.uuid}/").status_code == 200
    report.refresh_from_db()
    first_seen = report.critical_seen_at
    assert first_seen is not None
    assert first_seen >= report.critical_notified_at
    seen = AuditEvent.objects.get(action="report.critical_seen", object_id=str(report.uuid))
    assert seen.actor == region.clinic_doctor
    # Opening the report marks the doctor's notification seen, not the colleagues'.
    assert Notification.objects.get(recipient=region.clinic_doctor).seen_at is not None
    assert Notification.objects.get(recipient=region.clinic_doctor2).seen_at is None

    client_for(region.clinic_doctor2).get(f"/reports/{report.uuid}/")
    report.refresh_from_db()
    assert report.critical_seen_at == first_seen


@pytest.mark.django_db
def test_it_lists_and_opens_a_users_own_notifications(region, task, sms, client_for):
    report = write(task, region.specialist, critical=True)
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_mark_preliminary(report=report, user=region.specialist)
    mine = Notification.objects.get(recipient=region.clinic_doctor)
    theirs = Notification.objects.get(recipient=region.clinic_doctor2)
    doctor = client_for(region.clinic_doctor)

    listing = doctor.get("/api/notifications/").json()
    assert listing["unread"] == 1
    assert [n["uuid"] for n in listing["results"]] == [str(mine.uuid)]
    page = doctor.get("/notifications/").content.decode()
    assert mine.title in page
    assert doctor.get(f"/notifications/{theirs.uuid}/").status_code == 404
    assert doctor.post(f"/api/notifications/{theirs.uuid}/seen/").status_code == 404

    opened = doctor.get(f"/notifications/{mine.uuid}/")
    assert opened.status_code == 302
    assert opened["Location"] == f"/reports/{report.uuid}/"
    mine.refresh_from_db()
    assert mine.seen_at is not None
    assert doctor.get("/api/notifications/").json()["unread"] == 0
    # The badge in the navigation shows the count on every page.
    home = client_for(region.clinic_doctor2).get("/my-studies/").content.decode()
    assert 'id="notif-count" data-unread="1"' in home


@pytest.mark.django_db
def test_it_keeps_going_when_an_outside_channel_fails(region, task, sms):
    def broken(notification: Notification) -> None:
        raise ConnectionError("gateway down")

    notifications.CHANNELS.insert(0, broken)
    try:
        report = write(task, region.specialist, critical=True)
        with TestCase.captureOnCommitCallbacks(execute=True):
            report_mark_preliminary(report=report, user=region.specialist)
    finally:
        notifications.CHANNELS.remove(broken)

    assert Notification.objects.count() == 3
    assert len(sms.sent) == 3


@pytest.mark.django_db
def test_it_shows_a_clinic_its_studies_with_their_report_status(region, task, client_for):
    doctor = client_for(region.clinic_doctor)
    page = doctor.get("/my-studies/")
    assert page.status_code == 200
    html = page.content.decode()
    assert PATIENT_DISPLAY in html
    assert 'data-status="waiting"' in html

    report = write(task, region.specialist, critical=False)
    assert 'data-status="in_progress"' in doctor.get("/my-studies/").content.decode()
    with TestCase.captureOnCommitCallbacks(execute=True):
        report_sign(report=report, user=region.specialist)
    html = doctor.get("/my-studies/").content.decode()
    assert 'data-status="final"' in html
    assert f"/reports/{report.uuid}/" in html
    assert f"/reports/{report.uuid}/pdf/" in html
    assert f"/viewer/{task.study.study_instance_uid}/" in html
    # Another clinic's doctor and an outsider see none of it.
    assert (
        PATIENT_DISPLAY
        not in client_for(region.other_clinic_doctor).get("/my-studies/").content.decode()
    )
    assert PATIENT_DISPLAY not in client_for(region.outsider).get("/my-studies/").content.decode()


@pytest.mark.django_db
def test_it_lets_a_clinic_doctor_raise_the_priority(region, task, client_for):
    uid = task.study.study_instance_uid
    response = client_for(region.clinic_doctor).post(
        f"/my-studies/{uid}/priority/", {"priority": "emergency"}
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.priority == "emergency"
    assert AuditEvent.objects.filter(
        action="reading.priority_raise", object_id=str(task.uuid)
    ).exists()
    # Never lower, and never by someone else.
    client_for(region.clinic_doctor).post(f"/my-studies/{uid}/priority/", {"priority": "urgent"})
    task.refresh_from_db()
    assert task.priority == "emergency"
    assert (
        client_for(region.other_clinic_doctor)
        .post(f"/my-studies/{uid}/priority/", {"priority": "emergency"})
        .status_code
        == 404
    )
    assert (
        client_for(region.specialist)
        .post(f"/my-studies/{uid}/priority/", {"priority": "emergency"})
        .status_code
        == 404
    )


# --- Live delivery over the real channel layer (Redis) -----------------------------------------


def redis_layer(settings, redis_url: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }


def socket_for(client: Client | None, path: str) -> WebsocketCommunicator:
    from regional_cloud.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


@pytest.mark.django_db(transaction=True)
def test_it_pushes_a_notification_to_the_recipients_browser(settings, redis_url, file_archive):
    redis_layer(settings, redis_url)
    region = make_reading_region()
    task = task_of(ingest(region["clinic"], region.clinic_technician))
    doctor = Client()
    doctor.force_login(region.clinic_doctor)
    colleague = Client()
    colleague.force_login(region.other_clinic_doctor)

    async def scenario() -> None:
        mine = socket_for(doctor, "/ws/notifications/")
        other = socket_for(colleague, "/ws/notifications/")
        assert (await mine.connect())[0]
        assert (await other.connect())[0]
        assert await mine.receive_json_from(timeout=5) == {"type": "unread", "unread": 0}
        assert await other.receive_json_from(timeout=5) == {"type": "unread", "unread": 0}

        def release() -> Report:
            report = write(task, region.specialist, critical=True)
            return report_mark_preliminary(report=report, user=region.specialist)

        report = await sync_to_async(release)()
        message = await mine.receive_json_from(timeout=5)
        assert message["type"] == "notification"
        assert message["unread"] == 1
        assert message["notification"]["kind"] == "report_critical"
        assert message["notification"]["url"] == f"/reports/{report.uuid}/"
        assert await other.receive_nothing(timeout=0.5)
        await mine.disconnect()
        await other.disconnect()

        anonymous = socket_for(None, "/ws/notifications/")
        connected, _code = await anonymous.connect()
        assert not connected

    async_to_sync(scenario)()
