"""Ingest under concurrency: several clients sending one study at the same moment.

Each thread has its own database connection and commits its own transactions,
as the server's worker threads and processes do, so the row locks, the
``ON CONFLICT`` inserts and the incremented counters meet for real.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from studies import failure
from studies.dicom_parse import parse_instance
from studies.ingest import IngestReport, Outcome, ReceivedFile, Sender, instances_ingest
from studies.models import Instance, Series, Study
from tests.dicom_helpers import ct_small, random_uid, to_bytes
from tests.factories import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("file_archive")]

THREADS = 4


def received(data: bytes) -> ReceivedFile:
    return ReceivedFile(
        stream=io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


def in_threads(work: list[Callable[[], IngestReport]]) -> list[IngestReport]:
    """Run each callable in its own thread, all released at once; return their reports."""
    start = threading.Barrier(len(work))
    reports: list[IngestReport | BaseException] = [RuntimeError("not run")] * len(work)

    def run(index: int) -> None:
        try:
            start.wait()
            reports[index] = work[index]()
        except BaseException as exc:  # reported by the main thread
            reports[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for report in reports:
        if isinstance(report, BaseException):
            raise report
    return reports  # type: ignore[return-value]


@pytest.fixture
def sender(network: dict[str, Any]) -> Sender:
    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    return Sender(user=user, institution=network["clinic"])


def test_counters_are_exact_after_four_clients_send_one_study(sender: Sender):
    # A new study: every thread's first instance races to create the patient, the
    # study and two series; then they all add to the same counters.
    study, series = random_uid(), [random_uid(), random_uid()]
    per_thread = 6
    payloads = [
        [
            to_bytes(ct_small(study_uid=study, series_uid=series[(t + i) % 2]))
            for i in range(per_thread)
        ]
        for t in range(THREADS)
    ]

    def one_per_request(datas: list[bytes]) -> Callable[[], IngestReport]:
        def work() -> IngestReport:
            merged = IngestReport()
            for data in datas:
                merged.results += instances_ingest(files=[received(data)], sender=sender).results
            return merged

        return work

    reports = in_threads([one_per_request(datas) for datas in payloads])

    assert all(r.outcome is Outcome.STORED for report in reports for r in report.results)
    row = Study.objects.get(study_instance_uid=study)
    instances = Instance.objects.filter(study=row)
    assert instances.count() == THREADS * per_thread
    assert row.number_of_instances == THREADS * per_thread
    assert row.size_bytes == sum(len(d) for datas in payloads for d in datas)
    assert row.number_of_series == 2
    assert row.modalities_in_study == "CT"
    for one in Series.objects.filter(study=row):
        assert one.number_of_instances == instances.filter(series=one).count()
        assert one.size_bytes == sum(
            instances.filter(series=one).values_list("size_bytes", flat=True)
        )
    ingests = AuditEvent.objects.filter(action="study.ingest", study_uid=study)
    assert ingests.count() == THREADS * per_thread


def test_a_new_series_of_another_modality_sent_concurrently_is_counted(sender: Sender):
    study = random_uid()
    modalities = ["CT", "MR", "CT", "MR"]

    def work(modality: str) -> Callable[[], IngestReport]:
        ds = ct_small(study_uid=study)
        ds.Modality = modality
        data = to_bytes(ds)
        return lambda: instances_ingest(files=[received(data)], sender=sender)

    in_threads([work(m) for m in modalities])

    row = Study.objects.get(study_instance_uid=study)
    assert row.number_of_series == 4
    assert row.modalities_in_study == "CT\\MR"
    assert row.number_of_instances == 4


def test_the_same_instance_sent_by_four_clients_at_once_is_stored_once(sender: Sender):
    data = to_bytes(ct_small())

    reports = in_threads(
        [lambda: instances_ingest(files=[received(data)], sender=sender)] * THREADS
    )

    outcomes = sorted(r.outcome for report in reports for r in report.results)
    assert Outcome.REFUSED not in outcomes
    assert Instance.objects.count() == 1
    assert Study.objects.get().number_of_instances == 1
    assert Study.objects.get().size_bytes == len(data)


def test_other_bytes_under_one_uid_at_once_one_wins_the_rest_get_0x0111_and_audit(
    sender: Sender,
):
    sop, study, series = random_uid(), random_uid(), random_uid()
    datas = []
    for n in range(THREADS):
        ds = ct_small(study_uid=study, series_uid=series, sop_uid=sop)
        ds.InstanceNumber = n + 1  # other bytes under the same SOP Instance UID
        datas.append(to_bytes(ds))

    def work(data: bytes) -> Callable[[], IngestReport]:
        return lambda: instances_ingest(files=[received(data)], sender=sender)

    reports = in_threads([work(d) for d in datas])

    results = [r for report in reports for r in report.results]
    assert sum(r.outcome is Outcome.STORED for r in results) == 1
    refused = [r for r in results if r.outcome is Outcome.REFUSED]
    assert len(refused) == THREADS - 1
    assert {r.failure_reason for r in refused} == {failure.DUPLICATE_SOP_INSTANCE}
    assert Instance.objects.count() == 1
    assert Study.objects.get().number_of_instances == 1
    conflicts = AuditEvent.objects.filter(action="instance.duplicate_conflict", object_id=sop)
    assert conflicts.count() == THREADS - 1


def test_a_many_instance_request_indexes_each_instance_with_its_own_metadata(sender: Sender):
    # Staged instances keep only text until the index transaction: what reaches the
    # rows must still be each instance's own DICOM JSON and the study's attributes.
    study, series = random_uid(), random_uid()
    datas = [
        to_bytes(ct_small(study_uid=study, series_uid=series, patient_name="王^小东"))
        for _ in range(5)
    ]
    report = instances_ingest(files=[received(d) for d in datas], sender=sender)

    assert [r.outcome for r in report.results] == [Outcome.STORED] * 5
    for data in datas:
        parsed = parse_instance(io.BytesIO(data))
        row = Instance.objects.get(sop_instance_uid=parsed.sop_instance_uid)
        assert row.metadata == parsed.json
        assert row.instance_number == int(parsed.text("InstanceNumber"))
    row = Study.objects.select_related("patient").get(study_instance_uid=study)
    assert row.patient.patient_name == parsed.text("PatientName")
    assert row.metadata["00100010"] == parsed.json["00100010"]
    assert Series.objects.get(series_instance_uid=series).metadata["00080060"] == {
        "vr": "CS",
        "Value": ["CT"],
    }


def test_a_new_study_takes_its_attributes_from_the_requests_first_instance(sender: Sender):
    # Rows are created in UID order (so concurrent requests lock alike), but the
    # study and series attributes must still be those of the first instance sent.
    study = random_uid()
    first = ct_small(study_uid=study, series_uid="1.2.826.0.1.9")
    first.AccessionNumber, first.SeriesDescription = "ACC-FIRST", "first"
    second = ct_small(study_uid=study, series_uid="1.2.826.0.1.1")
    second.AccessionNumber = "ACC-SECOND"
    third = ct_small(study_uid=study, series_uid="1.2.826.0.1.9")
    third.SeriesDescription = "third"

    report = instances_ingest(
        files=[received(to_bytes(ds)) for ds in (first, second, third)], sender=sender
    )

    assert [r.outcome for r in report.results] == [Outcome.STORED] * 3
    assert Study.objects.get(study_instance_uid=study).accession_number == "ACC-FIRST"
    assert Series.objects.get(series_instance_uid="1.2.826.0.1.9").series_description == "first"
