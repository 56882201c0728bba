"""The live worklist over the real channel layer (Redis): ids only, to the right readers only."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from studies.access import REPORT, VIEW, study_access_grant
from studies.models import ReadingTask, StudyGrant
from studies.reading.services import reading_task_claim, reading_task_release
from tests.reading_helpers import PATIENT_DISPLAY, ingest, make_reading_region

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_layer(settings, redis_url):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def session_of(user) -> str | None:
    """Sign ``user`` in (outside the event loop: it writes a session row)."""
    return None if user is None else logged_in(user).cookies["sessionid"].value


def socket_for(session: str | None) -> WebsocketCommunicator:
    from regional_cloud.asgi import application

    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if session is not None:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, "/ws/worklist/", headers=headers)


def test_it_announces_new_studies_and_claims_to_the_pool_by_id(redis_layer, file_archive):
    region = make_reading_region()
    assert type(get_channel_layer()).__name__ == "RedisChannelLayer"
    sessions = {
        name: session_of(getattr(region, name))
        for name in ("specialist", "specialist2", "outsider", "centre_specialist")
    }

    async def scenario() -> None:
        wang = socket_for(sessions["specialist"])
        li = socket_for(sessions["specialist2"])
        outsider = socket_for(sessions["outsider"])
        centre = socket_for(sessions["centre_specialist"])
        for socket in (wang, li, outsider, centre):
            assert (await socket.connect())[0]

        study = await sync_to_async(ingest)(region["clinic"], region.clinic_doctor)
        task = await sync_to_async(ReadingTask.objects.get)(study=study)
        for socket in (wang, li):
            message = await socket.receive_json_from(timeout=5)
            assert message == {"type": "changed", "task": str(task.uuid), "event": "routed"}
            assert PATIENT_DISPLAY not in json.dumps(message, ensure_ascii=False)
        assert await outsider.receive_nothing(timeout=0.5)
        assert await centre.receive_nothing(timeout=0.2)

        await sync_to_async(reading_task_claim)(task=task, user=region.specialist)
        assert (await li.receive_json_from(timeout=5))["event"] == "claimed"
        assert (await wang.receive_json_from(timeout=5))["event"] == "claimed"
        await sync_to_async(reading_task_release)(task=task, user=region.specialist)
        assert (await li.receive_json_from(timeout=5))["event"] == "released"

        # A study shared with one reader reaches that reader's own group.
        def share() -> None:
            study_access_grant(
                study=study,
                grantee=region.centre_specialist,
                codenames=[VIEW, REPORT],
                source=StudyGrant.Source.REFERRAL,
                source_ref="r-1",
            )
            reading_task_claim(task=task, user=region.specialist2)

        await sync_to_async(share)()
        assert (await centre.receive_json_from(timeout=5))["event"] == "claimed"
        assert await outsider.receive_nothing(timeout=0.5)
        for socket in (wang, li, outsider, centre):
            await socket.disconnect()

    async_to_sync(scenario)()


def test_it_closes_the_socket_of_anyone_but_a_specialist(redis_layer, file_archive):
    region = make_reading_region()
    sessions = [session_of(u) for u in (None, region.clinic_doctor, region.clinic_technician)]

    async def scenario() -> None:
        for session in sessions:
            socket = socket_for(session)
            connected, _code = await socket.connect()
            assert not connected, session

    async_to_sync(scenario)()


def test_it_lets_the_page_fetch_the_announced_row_through_the_permission_filter(
    redis_layer, file_archive
):
    region = make_reading_region()
    study = ingest(region["clinic"], region.clinic_doctor)
    task = ReadingTask.objects.get(study=study)

    row = logged_in(region.specialist).get("/api/worklist/", {"id": str(task.uuid)}).json()
    assert [r["id"] for r in row["results"]] == [str(task.uuid)]
    hidden = logged_in(region.outsider).get("/api/worklist/", {"id": str(task.uuid)}).json()
    assert hidden["results"] == []
