"""The archive put beside the index work (studies/ingest_put.py): rows commit only
after their object is durable, and a put that fails late leaves nothing behind.

Transactional tests, so that the index transaction really commits (or rolls back).
"""

from __future__ import annotations

import hashlib
import io
import time
from typing import Any, BinaryIO

import pytest
from django.db import connection

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from studies import failure
from studies.archive import ArchiveStore, ArchiveUnavailableError
from studies.archive.base import StoredObject
from studies.archive.local import LocalFolderStore
from studies.ingest import Outcome, ReceivedFile, Sender, instances_ingest
from studies.models import Instance, Patient, Study
from tests.dicom_helpers import ct_small, to_bytes
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("file_archive")]


class SlowStore(LocalFolderStore):
    """A folder store whose put takes ``delay`` seconds and fails for ``failing`` SOP UIDs."""

    def __init__(self, root: Any, events: list[str], delay: float, failing: set[str]):
        super().__init__(root)
        self.events = events
        self.delay = delay
        self.failing = failing

    def put(
        self,
        key: str,
        source: BinaryIO,
        *,
        size: int | None = None,
        sha256: str | None = None,
        overwrite: bool = False,
    ) -> StoredObject:
        time.sleep(self.delay)
        if any(uid in key for uid in self.failing):
            self.events.append("put failed")
            raise ArchiveUnavailableError("the disk is full")
        stored = super().put(key, source, size=size, sha256=sha256, overwrite=overwrite)
        self.events.append("put durable")
        return stored


@pytest.fixture
def sender(network: dict[str, Any]) -> Sender:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    return Sender(user=user, institution=network["clinic"])


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the instance INSERT and the COMMIT of the index transaction, in order."""
    recorded: list[str] = []
    commit = connection.commit

    def recording_commit() -> None:
        recorded.append("commit")
        commit()

    def recording_execute(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith(f'INSERT INTO "{Instance._meta.db_table}"'):
            recorded.append("instance insert")
        return execute(sql, params, many, context)

    monkeypatch.setattr(connection, "commit", recording_commit)
    wrapper = connection.execute_wrapper(recording_execute)
    wrapper.__enter__()
    yield recorded
    wrapper.__exit__(None, None, None)


def slow_store(
    monkeypatch: pytest.MonkeyPatch,
    file_archive: ArchiveStore,
    events: list[str],
    *,
    delay: float,
    failing: set[str] | None = None,
) -> SlowStore:
    assert isinstance(file_archive, LocalFolderStore)
    store = SlowStore(file_archive.root, events, delay, failing or set())
    monkeypatch.setattr("studies.ingest.get_store", lambda: store)
    return store


def received(data: bytes) -> ReceivedFile:
    return ReceivedFile(
        stream=io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


def test_it_writes_the_rows_while_the_object_is_put_and_commits_after_it_is_durable(
    monkeypatch: pytest.MonkeyPatch,
    file_archive: ArchiveStore,
    events: list[str],
    sender: Sender,
):
    store = slow_store(monkeypatch, file_archive, events, delay=0.3)
    data = to_bytes(ct_small())
    events.clear()  # the fixtures' own commits

    report = instances_ingest(files=[received(data)], sender=sender)

    assert [r.outcome for r in report.results] == [Outcome.STORED]
    assert events.index("instance insert") < events.index("put durable") < events.index("commit")
    with store.open(Instance.objects.get().archive_key) as stored:
        assert stored.read() == data


def test_a_put_that_fails_after_the_rows_were_written_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
    file_archive: ArchiveStore,
    events: list[str],
    sender: Sender,
):
    ds = ct_small()
    store = slow_store(monkeypatch, file_archive, events, delay=0.3, failing={ds.SOPInstanceUID})

    report = instances_ingest(files=[received(to_bytes(ds))], sender=sender)

    [result] = report.results
    assert result.outcome is Outcome.REFUSED
    assert result.code == "archive_unavailable"
    assert result.failure_reason == failure.OUT_OF_RESOURCES
    assert events.index("instance insert") < events.index("put failed")
    assert not Instance.objects.exists()
    assert not Study.objects.exists()
    assert not Patient.objects.exists()
    assert list(store.iter_keys()) == []
    assert not AuditEvent.objects.filter(action="study.ingest").exists()
    assert AuditEvent.objects.filter(action="ingest.refused").count() == 1


@pytest.mark.parametrize("failing_index", [0, 1])
def test_a_failed_put_refuses_only_its_instance(
    monkeypatch: pytest.MonkeyPatch,
    file_archive: ArchiveStore,
    events: list[str],
    sender: Sender,
    failing_index: int,
):
    # The first put is waited for while staging the second; the last one only
    # before the COMMIT, after the rows were written: both end the same way.
    first = ct_small()
    datasets = [first, ct_small(study_uid=first.StudyInstanceUID)]
    failing = datasets[failing_index].SOPInstanceUID
    store = slow_store(monkeypatch, file_archive, events, delay=0.2, failing={failing})

    report = instances_ingest(files=[received(to_bytes(ds)) for ds in datasets], sender=sender)

    outcomes = {r.sop_instance_uid: r.outcome for r in report.results}
    kept = datasets[1 - failing_index].SOPInstanceUID
    assert outcomes == {kept: Outcome.STORED, failing: Outcome.REFUSED}
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [kept]
    study = Study.objects.get()
    assert study.number_of_instances == 1
    assert list(store.iter_keys()) == [Instance.objects.get().archive_key]
    assert AuditEvent.objects.filter(action="study.ingest").count() == 1


def test_other_bytes_under_a_stored_uid_leave_no_object(
    monkeypatch: pytest.MonkeyPatch,
    file_archive: ArchiveStore,
    events: list[str],
    sender: Sender,
):
    # The put starts before the look-up finds the stored UID: its object goes again.
    ds = ct_small()
    first = to_bytes(ds)
    ds.PatientName = "Other^Bytes"
    store = slow_store(monkeypatch, file_archive, events, delay=0.05)
    assert instances_ingest(files=[received(first)], sender=sender).results[0].ok

    [again] = instances_ingest(files=[received(first)], sender=sender).results
    [other] = instances_ingest(files=[received(to_bytes(ds))], sender=sender).results

    assert again.outcome is Outcome.ALREADY_STORED
    assert other.failure_reason == failure.DUPLICATE_SOP_INSTANCE
    assert list(store.iter_keys()) == [Instance.objects.get().archive_key]
