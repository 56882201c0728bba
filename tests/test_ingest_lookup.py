"""The index look-up of a whole request (studies.ingest_sql.index_lookup): one
statement per chunk of instances, and every instance judged as if asked alone."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from django.db import connection

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from studies import failure, ingest_sql
from studies.archive import ArchiveStore
from studies.ingest import Outcome, ReceivedFile, Sender, instances_ingest
from studies.models import Instance, Study
from tests.dicom_helpers import ct_small, to_bytes
from tests.factories import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("file_archive")]


@pytest.fixture
def sender(network: dict[str, Any]) -> Sender:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    return Sender(user=user, institution=network["clinic"])


def received(data: bytes) -> ReceivedFile:
    return ReceivedFile(
        stream=io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


class Lookups:
    """Count the look-up statements a request runs."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.startswith("SELECT k.n,"):
            self.count += 1
        return execute(sql, params, many, context)


@pytest.mark.parametrize("chunk", [ingest_sql.LOOKUP_CHUNK, 2])
def test_a_request_mixing_new_stored_and_conflicting_instances(
    monkeypatch: pytest.MonkeyPatch,
    file_archive: ArchiveStore,
    sender: Sender,
    chunk: int,
):
    monkeypatch.setattr(ingest_sql, "LOOKUP_CHUNK", chunk)
    first = ct_small()
    study, series = first.StudyInstanceUID, first.SeriesInstanceUID
    stored = [first, *(ct_small(study_uid=study, series_uid=series) for _ in range(2))]
    assert all(
        r.ok
        for r in instances_ingest(
            files=[received(to_bytes(ds)) for ds in stored], sender=sender
        ).results
    )
    other_bytes = ct_small(study_uid=study, series_uid=series, sop_uid=stored[1].SOPInstanceUID)
    other_bytes.PatientName = "Other^Bytes"
    new = [ct_small(study_uid=study, series_uid=series) for _ in range(3)]
    files = [stored[0], new[0], other_bytes, new[1], stored[2], new[2]]
    lookups = Lookups()

    with connection.execute_wrapper(lookups):
        report = instances_ingest(files=[received(to_bytes(ds)) for ds in files], sender=sender)

    assert [r.outcome for r in report.results] == [
        Outcome.ALREADY_STORED,
        Outcome.STORED,
        Outcome.REFUSED,
        Outcome.STORED,
        Outcome.ALREADY_STORED,
        Outcome.STORED,
    ]
    assert report.results[2].failure_reason == failure.DUPLICATE_SOP_INSTANCE
    assert lookups.count == -(-len(files) // chunk)  # one statement per chunk
    assert Study.objects.get().number_of_instances == 6
    # The other bytes' object went again; every stored object has its row.
    keys = set(Instance.objects.values_list("archive_key", flat=True))
    assert set(file_archive.iter_keys()) == keys
    assert AuditEvent.objects.filter(action="instance.duplicate_conflict").count() == 1
