"""Image reads are audited once per (user, series) per opening, not once per frame."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from studies.dicomweb import read_audit
from studies.models import Study
from tests.dicom_helpers import random_uid
from tests.dicomweb_helpers import ct, ingest
from tests.factories import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("file_archive")]

OCTET_MULTIPART = 'multipart/related; type="application/octet-stream"'
SLICES = 8
READS = 400


@pytest.fixture
def owner(network: dict[str, Any]) -> Any:
    return make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)


@pytest.fixture
def series(owner: Any, network: dict[str, Any]) -> dict[str, Any]:
    study_uid, series_uid = random_uid(), random_uid()
    sops = [random_uid() for _ in range(SLICES)]
    ingest(
        *(ct(study_uid=study_uid, series_uid=series_uid, sop_uid=sop) for sop in sops),
        user=owner,
        institution=network["clinic"],
    )
    base = f"/dicom-web/studies/{study_uid}/series/{series_uid}/instances"
    return {"study": study_uid, "series": series_uid, "urls": [f"{base}/{sop}" for sop in sops]}


def rows(action: str, study_uid: str) -> int:
    return AuditEvent.objects.filter(action=action, study_uid=study_uid).count()


def read_frames(client: Client, urls: list[str], count: int) -> None:
    for n in range(count):
        response = client.get(
            f"{urls[n % len(urls)]}/frames/1", headers={"Accept": OCTET_MULTIPART}
        )
        assert response.status_code == 200
        response.getvalue()  # the whole body, streamed or not


def test_one_row_per_opening_of_a_series_however_many_frames(
    client_for: Any, owner: Any, series: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    client = client_for(owner)
    study_uid = series["study"]
    assert client.get(f"/viewer/{study_uid}/").status_code == 200
    assert rows("study.view", study_uid) == 1

    read_frames(client, series["urls"], 1)
    assert rows("study.frames", study_uid) == 1
    event = AuditEvent.objects.filter(action="study.frames").latest("pk")
    assert event.actor == owner
    assert event.object_id == str(Study.objects.get(study_instance_uid=study_uid).uuid)
    assert event.detail["series_instance_uid"] == series["series"]

    # The 2nd to the 400th frame of the same opening add nothing.
    read_frames(client, series["urls"], READS - 1)
    assert rows("study.frames", study_uid) == 1

    # A rendered read is another kind of read: one row for it too, then none.
    for url in series["urls"][:3]:
        assert client.get(f"{url}/rendered").status_code == 200
    assert rows("study.rendered", study_uid) == 1

    # A later opening of the viewer is audited again, with its first frame read.
    assert client.get(f"/viewer/{study_uid}/").status_code == 200
    assert rows("study.view", study_uid) == 2
    read_frames(client, series["urls"], 20)
    assert rows("study.frames", study_uid) == 2

    # A client without the viewer page: audited again once the window has passed.
    real_clock = read_audit._clock
    monkeypatch.setattr(read_audit, "_clock", lambda: real_clock() + read_audit.READ_AUDIT_WINDOW)
    read_frames(client, series["urls"], 20)
    assert rows("study.frames", study_uid) == 3


def test_each_reader_is_audited_on_their_own(
    client_for: Any, owner: Any, series: dict[str, Any], network: dict[str, Any]
):
    colleague = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    read_frames(client_for(owner), series["urls"], 5)
    read_frames(client_for(colleague), series["urls"], 5)

    actors = set(
        AuditEvent.objects.filter(action="study.frames", study_uid=series["study"]).values_list(
            "actor", flat=True
        )
    )
    assert actors == {owner.pk, colleague.pk}


def test_a_read_whose_row_failed_is_audited_by_the_next_one(
    client_for: Any, owner: Any, series: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    client = client_for(owner)
    real_audit = read_audit.audit

    def failing(**kwargs: Any) -> Any:
        raise RuntimeError("audit store away")

    monkeypatch.setattr(read_audit, "audit", failing)
    client.raise_request_exception = False
    response = client.get(f"{series['urls'][0]}/frames/1", headers={"Accept": OCTET_MULTIPART})
    assert response.status_code == 500  # no row, no image
    monkeypatch.setattr(read_audit, "audit", real_audit)

    read_frames(client, series["urls"], 3)
    assert rows("study.frames", series["study"]) == 1


def test_an_outsider_reads_nothing_and_leaves_no_marker(
    client_for: Any, series: dict[str, Any], network: dict[str, Any]
):
    outsider = make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR)
    response = client_for(outsider).get(
        f"{series['urls'][0]}/frames/1", headers={"Accept": OCTET_MULTIPART}
    )
    assert response.status_code == 404
    assert rows("study.frames", series["study"]) == 0


def test_every_read_is_audited_when_the_markers_are_away(
    client_for: Any, owner: Any, series: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    class Away:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise ConnectionError("cache away")

            return fail

    monkeypatch.setattr(read_audit, "markers", lambda: Away())
    client = client_for(owner)
    assert client.get(f"/viewer/{series['study']}/").status_code == 200
    read_frames(client, series["urls"], 3)
    assert rows("study.frames", series["study"]) == 3


def test_the_markers_are_shared_through_redis_when_the_hub_has_it(settings: Any):
    if not settings.REDIS_URL:
        pytest.skip("the hub runs without Redis here")
    store = read_audit.markers()
    assert type(store).__name__ == "RedisCache"
    store.set("read-audit:probe", 1, 5)
    assert read_audit.markers().get("read-audit:probe") == 1
