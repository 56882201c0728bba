"""The worklist: what a specialist sees, in what order, filtered; claims, expiry and races."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from regional_cloud.models import AuditEvent
from studies.access import REPORT, VIEW, study_access_grant
from studies.models import ReadingTask, StudyGrant
from studies.reading.services import (
    ClaimHeld,
    reading_claims_expire,
    reading_task_claim,
    reading_task_release,
)
from tests.reading_helpers import PATIENT_DISPLAY, ingest, make_reading_region, task_of

pytestmark = pytest.mark.usefixtures("file_archive")


@pytest.fixture
def region(db):
    return make_reading_region()


def api_rows(client: Client, **params) -> list[dict]:
    response = client.get("/api/worklist/", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.django_db
def test_it_lists_the_pools_unread_studies_with_what_a_reader_needs(region, client_for):
    study = ingest(region["clinic"], region.clinic_doctor, accession="ACC-7")
    task = task_of(study)

    rows = api_rows(client_for(region.specialist))

    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == str(task.uuid)
    assert row["study_instance_uid"] == study.study_instance_uid
    assert row["priority"] == "routine"
    assert row["status"] == "unread"
    assert row["origin"]["name"] == region["clinic"].name
    assert row["modality"] == "CT"
    assert row["patient"]["name"] == PATIENT_DISPLAY
    assert row["patient"]["sex"] == "M"
    assert row["patient"]["age"]  # 1970-03-15 to 2026-11-01
    assert "56" in row["patient"]["age"]
    assert row["description"] == "胸部CT平扫"
    assert row["accession_number"] == "ACC-7"
    assert row["claim"] is None
    assert row["shared"] is False
    assert row["viewer_url"] == f"/viewer/{study.study_instance_uid}/"
    assert row["read_url"] == f"/read/{study.study_instance_uid}/"
    assert row["waiting_minutes"] >= 0


@pytest.mark.django_db
def test_it_shows_the_worklist_page_to_specialists_only(region, client_for):
    study = ingest(region["clinic"], region.clinic_doctor)

    page = client_for(region.specialist).get("/worklist/")
    assert page.status_code == 200
    html = page.content.decode()
    assert PATIENT_DISPLAY in html
    assert f"/viewer/{study.study_instance_uid}/" in html
    assert AuditEvent.objects.filter(action="worklist.read", actor=region.specialist).exists()

    assert client_for(region.clinic_doctor).get("/worklist/").status_code == 403
    assert Client().get("/worklist/").status_code == 302  # to the login page


@pytest.mark.django_db
def test_it_shows_nothing_of_other_institutions(region, client_for):
    study = ingest(region["clinic"], region.clinic_doctor)
    task = task_of(study)

    outsider = client_for(region.outsider)
    assert api_rows(outsider) == []
    assert PATIENT_DISPLAY not in outsider.get("/worklist/").content.decode()
    assert outsider.get(f"/api/worklist/{task.uuid}/").status_code == 404
    assert outsider.get(f"/read/{study.study_instance_uid}/").status_code == 404
    assert outsider.post(f"/api/worklist/{task.uuid}/claim/").status_code == 404
    assert outsider.post(f"/read/{study.study_instance_uid}/claim/").status_code == 404
    # A clinic doctor sees the study but has no worklist item for it.
    assert api_rows(client_for(region.clinic_doctor)) == []
    assert (
        client_for(region.centre_specialist).get(f"/api/worklist/{task.uuid}/").status_code == 404
    )


@pytest.mark.django_db
def test_it_puts_emergencies_first_then_the_longest_waiting(region, client_for):
    old = task_of(ingest(region["clinic"], region.clinic_doctor, patient_id="OLD"))
    new = task_of(ingest(region["clinic"], region.clinic_doctor, patient_id="NEW"))
    urgent = task_of(
        ingest(region["clinic"], region.clinic_doctor, patient_id="URG", priority="HIGH")
    )
    stat = task_of(ingest(region["other_clinic"], None, patient_id="STAT", priority="STAT"))
    now = timezone.now()
    ReadingTask.objects.filter(pk=old.pk).update(routed_at=now - timedelta(hours=5))
    ReadingTask.objects.filter(pk=new.pk).update(routed_at=now - timedelta(hours=1))
    ReadingTask.objects.filter(pk=urgent.pk).update(routed_at=now - timedelta(minutes=5))
    ReadingTask.objects.filter(pk=stat.pk).update(routed_at=now)

    rows = api_rows(client_for(region.specialist))

    assert [r["id"] for r in rows] == [str(t.uuid) for t in (stat, urgent, old, new)]
    assert rows[2]["waiting_minutes"] >= 299


@pytest.mark.django_db
def test_it_filters_and_searches(region, client_for):
    a = task_of(
        ingest(
            region["clinic"],
            region.clinic_doctor,
            patient_id="A1",
            accession="X-1",
            study_date="20261001",
            patient_name="张^三",
        )
    )
    b = task_of(
        ingest(
            region["other_clinic"],
            None,
            patient_id="B2",
            accession="X-2",
            study_date="20261105",
            priority="STAT",
            patient_name="李^四",
        )
    )
    client = client_for(region.specialist)

    def ids(**params):
        return [r["id"] for r in api_rows(client, **params)]

    assert ids() == [str(b.uuid), str(a.uuid)]
    assert ids(priority="emergency") == [str(b.uuid)]
    assert ids(modality="CT") == [str(b.uuid), str(a.uuid)]
    assert ids(modality="MR") == []
    assert ids(origin=str(region["clinic"].uuid)) == [str(a.uuid)]
    assert ids(origin="not-a-uuid") == []
    assert ids(date_from="2026-11-01") == [str(b.uuid)]
    assert ids(date_to="2026-10-31") == [str(a.uuid)]
    assert ids(q="张") == [str(a.uuid)]
    assert ids(q="B2") == [str(b.uuid)]
    assert ids(q="x-1") == [str(a.uuid)]
    assert ids(id=str(a.uuid)) == [str(a.uuid)]
    ReadingTask.objects.filter(pk=a.pk).update(status="final")
    assert ids() == [str(b.uuid)]
    assert ids(status="final") == [str(a.uuid)]
    assert ids(status="all") == [str(b.uuid), str(a.uuid)]
    # The page applies the same filters.
    html = client.get("/worklist/", {"q": "李"}).content.decode()
    assert "李四" in html
    assert "张三" not in html


@pytest.mark.django_db
def test_it_lists_a_study_shared_with_one_reader(region, client_for):
    study = ingest(region["clinic"], region.clinic_doctor)
    task = task_of(study)
    assert api_rows(client_for(region.centre_specialist)) == []

    study_access_grant(
        study=study,
        grantee=region.centre_specialist,
        codenames=[VIEW, REPORT],
        source=StudyGrant.Source.CONSULTATION,
        source_ref="c-1",
    )

    rows = api_rows(client_for(region.centre_specialist))
    assert [r["id"] for r in rows] == [str(task.uuid)]
    assert rows[0]["shared"] is True


@pytest.mark.django_db
def test_it_shows_who_holds_a_claim_and_refuses_a_second_reader(region, client_for):
    study = ingest(region["clinic"], region.clinic_doctor)
    task = task_of(study)
    wang, li = client_for(region.specialist), client_for(region.specialist2)

    claimed = wang.post(f"/api/worklist/{task.uuid}/claim/")
    assert claimed.status_code == 200
    assert claimed.json()["claim"]["mine"] is True

    row = api_rows(li)[0]
    assert row["claim"] == {
        "holder": "王主任",
        "mine": False,
        "expires_at": row["claim"]["expires_at"],
    }
    assert "王主任" in li.get("/worklist/").content.decode()
    refused = li.post(f"/api/worklist/{task.uuid}/claim/")
    assert refused.status_code == 409
    assert refused.json()["error"] == "claim_held"
    assert refused.json()["holder"] == "王主任"
    assert "王主任" in refused.json()["detail"]
    page = li.post(f"/read/{study.study_instance_uid}/claim/")
    assert page.status_code == 409
    assert "王主任" in page.content.decode()
    assert li.post(f"/api/worklist/{task.uuid}/release/").status_code == 409

    # Claiming again renews; releasing frees it for the next reader.
    assert wang.post(f"/api/worklist/{task.uuid}/claim/").status_code == 200
    assert wang.post(f"/api/worklist/{task.uuid}/release/").json()["claim"] is None
    assert li.post(f"/api/worklist/{task.uuid}/claim/").status_code == 200
    actions = list(
        AuditEvent.objects.filter(study_uid=study.study_instance_uid, action__startswith="reading.")
        .order_by("id")
        .values_list("action", "actor_username")
    )
    assert actions == [
        ("reading.claim", "wang"),
        ("reading.release", "wang"),
        ("reading.claim", "li"),
    ]


@pytest.mark.django_db
def test_it_treats_an_expired_claim_as_free_and_clears_it(region, settings):
    settings.READING_CLAIM_MINUTES = 30
    task = task_of(ingest(region["clinic"], region.clinic_doctor))
    reading_task_claim(task=task, user=region.specialist)
    with pytest.raises(ClaimHeld):
        reading_task_claim(task=task, user=region.specialist2)

    ReadingTask.objects.filter(pk=task.pk).update(
        claim_expires_at=timezone.now() - timedelta(seconds=1)
    )
    task.refresh_from_db()
    assert not task.claim_active()
    taken = reading_task_claim(task=task, user=region.specialist2)
    assert taken.claimed_by == region.specialist2
    assert taken.claim_expires_at > timezone.now() + timedelta(minutes=29)

    ReadingTask.objects.filter(pk=task.pk).update(
        claim_expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert reading_claims_expire() == 1
    task.refresh_from_db()
    assert task.claimed_by is None
    assert reading_claims_expire() == 0
    assert AuditEvent.objects.filter(
        action="reading.claim_expired", object_id=str(task.uuid)
    ).exists()
    # Releasing a claim nobody holds is fine.
    reading_task_release(task=task, user=region.specialist)


@pytest.mark.django_db(transaction=True)
def test_it_gives_a_study_to_exactly_one_of_two_readers_claiming_at_once(file_archive):
    region = make_reading_region()
    task = task_of(ingest(region["clinic"], region.clinic_doctor))
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def claim(user):
        try:
            barrier.wait(timeout=10)
            reading_task_claim(task=task, user=user)
            outcomes[user.username] = "won"
        except ClaimHeld as error:
            outcomes[user.username] = f"held by {error.holder}"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=claim, args=(u,)) for u in (region.specialist, region.specialist2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["li", "wang"]
    assert list(outcomes.values()).count("won") == 1
    task.refresh_from_db()
    winner = task.claimed_by.username
    loser = "li" if winner == "wang" else "wang"
    assert outcomes[loser] == f"held by {task.claimed_by.first_name}"
    assert AuditEvent.objects.filter(action="reading.claim", object_id=str(task.uuid)).count() == 1


@pytest.mark.django_db
def test_it_pages_the_worklist_and_keeps_the_filters(region, client_for, monkeypatch):
    import re

    from studies import reading_api, reading_views

    monkeypatch.setattr(reading_views, "WORKLIST_LIMIT", 3)
    monkeypatch.setattr(reading_api, "LIST_LIMIT", 3)
    mine = [
        task_of(ingest(region["clinic"], region.clinic_doctor, patient_id=f"P{n}"))
        for n in range(5)
    ]
    task_of(ingest(region["other_clinic"], None, patient_id="OTHER"))  # filtered out
    client = client_for(region.specialist)
    origin = str(region["clinic"].uuid)
    expected = [str(t.uuid) for t in mine]  # all routine: oldest first

    def page_rows(html: str) -> list[str]:
        return re.findall(r'<tr data-task="([0-9a-f-]+)"', html)

    first = client.get("/worklist/", {"origin": origin}).content.decode()
    assert page_rows(first) == expected[:3]
    assert re.search(r"1–3\D+5", first)  # rows 1–3 of 5, in either language
    next_link = re.search(r'rel="next" href="\?([^"]+)"', first)
    assert next_link, "no link to the next page"
    query = next_link.group(1).replace("&amp;", "&")
    assert f"origin={origin}" in query
    assert query.endswith("page=2")

    second = client.get(f"/worklist/?{query}").content.decode()
    assert page_rows(second) == expected[3:]
    assert 'rel="next"' not in second
    previous = re.search(r'rel="prev" href="\?([^"]+)"', second)
    assert previous
    assert f"origin={origin}" in previous.group(1)
    # Past the end or not a number: the last page, the first page.
    assert (
        page_rows(client.get("/worklist/", {"origin": origin, "page": 99}).content.decode())
        == (expected[3:])
    )
    assert (
        page_rows(client.get("/worklist/", {"origin": origin, "page": "x"}).content.decode())
        == (expected[:3])
    )

    # The API pages the same way.
    data = client.get("/api/worklist/", {"origin": origin, "page": 2}).json()
    assert (data["count"], data["page"], data["pages"]) == (5, 2, 2)
    assert [r["id"] for r in data["results"]] == expected[3:]
    # Without paging (one page), the page reads as before.
    monkeypatch.setattr(reading_views, "WORKLIST_LIMIT", 200)
    single = client.get("/worklist/", {"origin": origin}).content.decode()
    assert page_rows(single) == expected
    assert "worklist-pager" not in single
