"""The report PDF (Chinese text, HR mark, link to the images) and its copy in the archive."""

from __future__ import annotations

import io
import subprocess
import time
from datetime import date
from pathlib import Path

import pydicom
import pytest
from django.test import TestCase

from hospitals.services import institution_update
from regional_cloud.models import AuditEvent
from studies.archive import get_store
from studies.models import Instance, ReadingTask, Report
from studies.reading.dicom_report import ENCAPSULATED_PDF_STORAGE, report_archive
from studies.reading.dicom_sr import BASIC_TEXT_SR_STORAGE, sr_sop_instance_uid
from studies.reading.pdf import render_report_pdf
from studies.reading.services import (
    reading_task_claim,
    report_addendum_save,
    report_save,
    report_sign,
)
from tests.dicomweb_helpers import multipart_parts
from tests.reading_helpers import PATIENT_DISPLAY, ingest, make_reading_region, task_of

pytestmark = pytest.mark.django_db

FINDINGS = "右肺上叶尖段见一实性结节，大小约 6 mm × 5 mm，边界清楚。"
IMPRESSION = "右肺上叶实性结节，建议 6 个月后低剂量CT复查。"


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=30
    )
    return result.stdout.decode("utf-8")


@pytest.fixture
def region():
    return make_reading_region()


def sign(task: ReadingTask, user, *, critical: bool = False) -> Report:
    reading_task_claim(task=task, user=user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        report = report_save(
            task=task, user=user, findings=FINDINGS, impression=IMPRESSION, critical=critical
        )
        return report_sign(report=report, user=user)


@pytest.mark.usefixtures("file_archive")
def test_it_prints_the_chinese_report_with_the_hr_mark_and_the_image_link(
    region, tmp_path, settings
):
    settings.SITE_URL = "https://imaging.example.cn"
    institution_update(
        institution=region["clinic"],
        data={
            "hr_scope": "province",
            "hr_valid_from": date(2026, 1, 1),
            "hr_valid_until": date(2027, 12, 31),
        },
    )
    study = ingest(region["clinic"], region.clinic_doctor)
    report = sign(task_of(study), region.specialist, critical=True)

    started = time.perf_counter()
    pdf = render_report_pdf(report)
    elapsed = time.perf_counter() - started
    print(f"report PDF: {len(pdf)} bytes in {elapsed * 1000:.0f} ms")

    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf, tmp_path)
    assert PATIENT_DISPLAY in text
    assert region["county"].name in text  # the reading institution's header
    assert region["clinic"].name in text
    assert "HR" in text
    assert "本省HR" in text  # the scope, in the region's language
    assert "右肺上叶尖段" in text
    assert "建议 6 个月后" in text
    assert "王主任" in text  # the signer
    assert report.content_sha256 in text.replace("\n", "").replace(" ", "")
    assert f"https://imaging.example.cn/viewer/{study.study_instance_uid}/" in text
    # Same report, same bytes: storing it twice stores nothing new.
    assert render_report_pdf(report) == pdf


@pytest.mark.usefixtures("file_archive")
def test_it_leaves_out_the_hr_mark_when_the_qualification_does_not_cover_the_study(
    region, tmp_path
):
    institution_update(
        institution=region["clinic"],
        data={
            "hr_scope": "province",
            "hr_valid_from": date(2020, 1, 1),
            "hr_valid_until": date(2025, 12, 31),
        },
    )
    study = ingest(region["clinic"], region.clinic_doctor, study_date="20261101")
    report = sign(task_of(study), region.specialist)

    text = pdf_text(render_report_pdf(report), tmp_path)
    assert PATIENT_DISPLAY in text
    assert "本省HR" not in text


@pytest.mark.usefixtures("file_archive")
def test_it_serves_the_pdf_with_addenda_to_the_clinic(region, client_for, tmp_path):
    study = ingest(region["clinic"], region.clinic_doctor)
    task = task_of(study)
    report = sign(task, region.specialist)
    reading_task_claim(task=task, user=region.specialist)
    with TestCase.captureOnCommitCallbacks(execute=True):
        addendum = report_addendum_save(
            report=report,
            user=region.specialist,
            findings="补充所见：左肺下叶钙化灶。",
            impression="无需处理。",
        )
        report_sign(report=addendum, user=region.specialist)

    response = client_for(region.clinic_doctor).get(f"/reports/{report.uuid}/pdf/?download=1")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="report-{report.uuid}.pdf"'
    assert "no-store" in response["Cache-Control"]
    text = pdf_text(response.content, tmp_path)
    assert "右肺上叶尖段" in text
    assert "左肺下叶钙化灶" in text


def test_it_stores_the_final_report_in_the_study_as_an_encapsulated_pdf(
    region, archive, client_for
):
    study = ingest(region["clinic"], region.clinic_doctor)
    report = sign(task_of(study), region.specialist)  # archived after commit

    report.refresh_from_db()
    assert report.archived_sop_instance_uid
    instance = Instance.objects.select_related("series").get(
        sop_instance_uid=report.archived_sop_instance_uid
    )
    assert instance.study_id == study.pk
    assert instance.sop_class_uid == ENCAPSULATED_PDF_STORAGE
    assert instance.series.modality == "DOC"
    study.refresh_from_db()
    assert study.origin == region["clinic"]
    assert "DOC" in study.modalities
    assert ReadingTask.objects.filter(study=study).count() == 1  # not routed again
    with get_store().open(instance.archive_key) as stored:
        ds = pydicom.dcmread(io.BytesIO(stored.read()))
    assert ds.SOPClassUID == ENCAPSULATED_PDF_STORAGE
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert ds.PatientID == study.patient.patient_id
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(ds.EncapsulatedDocument).startswith(b"%PDF")
    assert ds.VerificationFlag == "VERIFIED"
    # Storing it again changes nothing.
    again = report_archive(report=report, reader=region.specialist)
    assert again.pdf.outcome == "already_stored", again
    assert Instance.objects.filter(study=study, sop_class_uid=ENCAPSULATED_PDF_STORAGE).count() == 1
    # The audit names the reader and the reading institution; ingest recorded the origin.
    archived = AuditEvent.objects.filter(
        action="report.archive", object_id=str(report.uuid)
    ).first()
    assert archived.actor == region.specialist
    assert archived.institution_uuid == region["county"].uuid
    assert archived.detail["sent_as"] == str(region["clinic"].uuid)

    # Other systems fetch it with the study over DICOMweb.
    clinic = client_for(region.clinic_doctor)
    listing = clinic.get(
        f"/dicom-web/studies/{study.study_instance_uid}/instances",
        HTTP_ACCEPT="application/dicom+json",
    )
    assert listing.status_code == 200, listing.content[:500]
    sop_classes = {item["00080016"]["Value"][0] for item in listing.json()}
    assert ENCAPSULATED_PDF_STORAGE in sop_classes
    retrieved = clinic.get(
        f"/dicom-web/studies/{study.study_instance_uid}/series/{instance.series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}",
        HTTP_ACCEPT='multipart/related; type="application/dicom"',
    )
    assert retrieved.status_code == 200
    body = b"".join(retrieved.streaming_content) if retrieved.streaming else retrieved.content
    assert b"%PDF" in body
    outsider = client_for(region.outsider)
    hidden = outsider.get(
        f"/dicom-web/studies/{study.study_instance_uid}/instances",
        HTTP_ACCEPT="application/dicom+json",
    )
    assert hidden.status_code == 404


def sr_items(ds: pydicom.Dataset) -> dict[str, list[str]]:
    """Return the TEXT values under each CONTAINER of an SR, by the container's code."""
    found: dict[str, list[str]] = {}
    for item in ds.ContentSequence:
        if item.ValueType == "CONTAINER":
            code = item.ConceptNameCodeSequence[0].CodeValue
            found[code] = [child.TextValue for child in item.get("ContentSequence", [])]
    return found


def fetch_sr(client, study_uid: str, sop_uid: str | None = None) -> pydicom.Dataset:
    """Find a report SR of the study (QIDO-RS) and retrieve it (WADO-RS), as any system would."""
    listing = client.get(
        f"/dicom-web/studies/{study_uid}/instances",
        {"SOPClassUID": BASIC_TEXT_SR_STORAGE},
        HTTP_ACCEPT="application/dicom+json",
    )
    assert listing.status_code == 200, listing.content[:500]
    found = {
        item["00080018"]["Value"][0]: item["0020000E"]["Value"][0]
        for item in listing.json()
        if item["00080016"]["Value"][0] == BASIC_TEXT_SR_STORAGE
    }
    assert found, "no SR in the study"
    sop_uid = sop_uid or next(iter(found))
    retrieved = client.get(
        f"/dicom-web/studies/{study_uid}/series/{found[sop_uid]}/instances/{sop_uid}",
        HTTP_ACCEPT='multipart/related; type="application/dicom"',
    )
    assert retrieved.status_code == 200
    [(_headers, body)] = multipart_parts(retrieved)
    return pydicom.dcmread(io.BytesIO(body))


def test_it_stores_the_final_report_as_a_basic_text_sr_that_others_can_read(
    region, archive, client_for
):
    study = ingest(region["clinic"], region.clinic_doctor)
    task = task_of(study)
    report = sign(task, region.specialist)
    report.refresh_from_db()
    images = set(
        Instance.objects.filter(study=study)
        .exclude(sop_class_uid__in=[ENCAPSULATED_PDF_STORAGE, BASIC_TEXT_SR_STORAGE])
        .values_list("sop_instance_uid", flat=True)
    )
    assert images

    ds = fetch_sr(client_for(region.clinic_doctor), study.study_instance_uid)
    assert ds.SOPClassUID == BASIC_TEXT_SR_STORAGE
    assert ds.SOPInstanceUID == sr_sop_instance_uid(report)
    assert ds.Modality == "SR"
    assert ds.StudyInstanceUID == study.study_instance_uid
    assert ds.PatientID == study.patient.patient_id
    assert str(ds.PatientName) == study.patient.patient_name
    assert ds.CompletionFlag == "COMPLETE"
    assert ds.VerificationFlag == "VERIFIED"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "18748-4"
    # The text, in Chinese as written, under Findings and Impressions (TID 2000).
    assert sr_items(ds) == {"121070": [FINDINGS], "121072": [IMPRESSION]}
    observer = ds.VerifyingObserverSequence[0]
    assert "王主任" in str(observer.VerifyingObserverName)
    assert observer.VerifyingOrganization == region["county"].name
    # It names the study's images as what was read, and nothing else.
    [evidence] = ds.CurrentRequestedProcedureEvidenceSequence
    assert evidence.StudyInstanceUID == study.study_instance_uid
    referenced = {
        ref.ReferencedSOPInstanceUID
        for series in evidence.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert referenced == images
    # Stored again: nothing new.
    again = report_archive(report=report, reader=region.specialist)
    assert again.sr.outcome == "already_stored"
    assert Instance.objects.filter(study=study, sop_class_uid=BASIC_TEXT_SR_STORAGE).count() == 1

    # An addendum is a second SR that names the first as its predecessor.
    reading_task_claim(task=task, user=region.specialist)
    with TestCase.captureOnCommitCallbacks(execute=True):
        addendum = report_addendum_save(
            report=report,
            user=region.specialist,
            findings="补充：左肺下叶钙化灶。",
            impression="无需处理。",
        )
        report_sign(report=addendum, user=region.specialist)
    second = fetch_sr(
        client_for(region.clinic_doctor), study.study_instance_uid, sr_sop_instance_uid(addendum)
    )
    assert second.InstanceNumber == 2
    assert sr_items(second)["121070"] == ["补充：左肺下叶钙化灶。"]
    predecessor = second.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert predecessor.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    # Others may not: the study is not theirs.
    hidden = client_for(region.outsider).get(
        f"/dicom-web/studies/{study.study_instance_uid}/instances",
        HTTP_ACCEPT="application/dicom+json",
    )
    assert hidden.status_code == 404
