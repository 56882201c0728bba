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


# --- In the browser: a new study appears without a reload -------------------------------------


@pytest.fixture
def redis_hub(settings, redis_url, tmp_path):
    """A daphne of our own whose channel layer is the test's Redis, as this process's is."""
    import os

    from tests.fixtures.browser import _database_url_from_settings, start_daphne, stop_daphne

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }
    }
    env = dict(os.environ)
    env.update(DATABASE_URL=_database_url_from_settings(), REDIS_URL=redis_url)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    server = start_daphne(env, log_dir=tmp_path)
    yield server.url
    stop_daphne(server)


def off_the_loop(function, *args, **kwargs):
    """Run ``function`` in a worker thread: Playwright's sync API holds an event loop on this
    thread, where the services' after-commit ``async_to_sync`` sends would be refused."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    def run():
        try:
            return function(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=60)


@pytest.mark.browser
def test_it_shows_a_new_study_and_a_claim_on_an_open_worklist(
    redis_hub, file_archive, make_page, settings
):
    from tests.fixtures.browser import screenshot

    region = make_reading_region()
    first = ingest(region["clinic"], region.clinic_doctor, patient_id="FIRST")
    page = make_page()
    page.context.add_cookies(
        [{"name": "sessionid", "value": session_of(region.specialist2), "url": redis_hub}]
    )
    page.goto(f"{redis_hub}/worklist/")
    page.wait_for_selector('#live-state[data-state="live"]')
    assert page.locator("tr[data-task]").count() == 1

    study = off_the_loop(ingest, region["other_clinic"], None, patient_id="NEW", priority="STAT")
    task = ReadingTask.objects.get(study=study)
    row = page.wait_for_selector(f'tr[data-task="{task.uuid}"]')
    assert PATIENT_DISPLAY in row.inner_text()
    # An emergency goes to the top.
    assert page.locator("tr[data-task]").first.get_attribute("data-task") == str(task.uuid)

    off_the_loop(reading_task_claim, task=task, user=region.specialist)
    page.wait_for_function(
        "id => document.querySelector(`tr[data-task='${id}']`)?.innerText.includes('王主任')",
        arg=str(task.uuid),
    )
    screenshot(page, "reading-worklist-live")
    assert page.locator("tr[data-task]").count() == 2
    assert ReadingTask.objects.get(study=first).claimed_by is None
