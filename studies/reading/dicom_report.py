"""A final report stored in the archive as a DICOM Encapsulated PDF, in its own study.

Beside it goes the same report as a Basic Text SR (``studies.reading.dicom_sr``),
for systems that read text rather than PDF; both in one ingest request.

Other systems (a HIS, another hub, OHIF) then fetch the report with the images
through QIDO-RS/WADO-RS. The object follows PS3.3 A.45.1 Encapsulated PDF IOD:
Patient and General Study modules copied from the index, an Encapsulated
Document Series (Modality DOC, one series per study for all its reports), SC
Equipment (ConversionType WSD) and the Encapsulated Document module (C.24.2).

Why the study's *origin* institution is the sender: the archive records one
origin per study and ingest refuses a Study Instance UID whose origin is
another institution (that rule keeps one hospital from adding objects to
another's study). The report belongs in that study, so ``report_archive``
ingests it as sent for the origin, while the audit row ``report.archive``
names the reader who signed it and the reading institution. The PDF's bytes
and UIDs are deterministic, so storing a report twice stores nothing new.
"""

from __future__ import annotations

import hashlib
import io
import logging
import uuid as uuid_module
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent
from studies.ingest import InstanceResult, ReceivedFile, Sender, instances_ingest
from studies.models import Report
from studies.reading.dicom_common import ENCAPSULATED_PDF_STORAGE, report_object
from studies.reading.dicom_sr import basic_text_sr_dataset
from studies.reading.pdf import render_report_pdf

logger = logging.getLogger(__name__)

REPORT_SERIES_NUMBER = 9001
# LOINC 18748-4 "Diagnostic imaging study" report (PS3.16 CID 7001 uses it for reports).
REPORT_CONCEPT = ("18748-4", "LN", "Diagnostic imaging report")


def report_series_uid(study_uid: str) -> str:
    """Return the UID of the study's report series (the same for every report of it)."""
    return str(generate_uid(entropy_srcs=["regional-imaging-cloud/report-series", study_uid]))


def report_sop_instance_uid(report: Report) -> str:
    """Return the report's SOP Instance UID: its UUID as a 2.25 UID (PS3.5 B.2)."""
    return f"2.25.{uuid_module.UUID(str(report.uuid)).int}"


def report_instance_number(report: Report) -> int:
    """Return the report's number in its study: 1 for the first signed, then its addenda."""
    return (
        1
        + Report.objects.filter(
            study=report.study, state=Report.State.FINAL, signed_at__lt=report.signed_at
        ).count()
    )


def encapsulated_pdf_dataset(report: Report, pdf: bytes) -> Dataset:
    """Return the Encapsulated PDF object carrying ``report``."""
    study = report.study
    signed = timezone.localtime(report.signed_at or report.updated_at)
    sop_uid = report_sop_instance_uid(report)

    ds = report_object(report, sop_class_uid=ENCAPSULATED_PDF_STORAGE, sop_instance_uid=sop_uid)
    # Encapsulated Document Series (C.24.1)
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = report_series_uid(study.study_instance_uid)
    ds.SeriesNumber = REPORT_SERIES_NUMBER
    ds.SeriesDescription = "Report"
    # General Equipment (C.7.5.1) and SC Equipment (C.8.6.1)
    ds.Manufacturer = "Regional Imaging Cloud"
    ds.InstitutionName = report.task.reading_institution.name[:64]
    ds.ConversionType = "WSD"
    # Encapsulated Document (C.24.2)
    ds.InstanceNumber = report_instance_number(report)
    ds.ContentDate = signed.strftime("%Y%m%d")
    ds.ContentTime = signed.strftime("%H%M%S")
    ds.AcquisitionDateTime = signed.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"
    ds.DocumentTitle = "Addendum" if report.is_addendum else "Imaging report"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = REPORT_CONCEPT
    ds.ConceptNameCodeSequence = [concept]
    ds.VerificationFlag = "VERIFIED" if report.is_final else "UNVERIFIED"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


def _part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@dataclass(frozen=True)
class ArchivedReport:
    """What ingest answered for the report's two objects."""

    pdf: InstanceResult
    sr: InstanceResult

    @property
    def ok(self) -> bool:
        return self.pdf.ok and self.sr.ok


def _received(data: bytes, name: str) -> ReceivedFile:
    return ReceivedFile(
        stream=io.BytesIO(data), size=len(data), sha256=hashlib.sha256(data).hexdigest(), name=name
    )


def report_archive(*, report: Report, reader: Any) -> ArchivedReport:
    """Store a final report in its study as an Encapsulated PDF and a Basic Text SR.

    Both go in one ingest request: its index rows are written all or nothing.
    """
    report = Report.objects.select_related(
        "study",
        "study__patient",
        "study__origin",
        "task__reading_institution",
        "amends",
        "signed_by",
    ).get(pk=report.pk)
    if report.state != Report.State.FINAL:
        raise ValueError("only a final report goes into the archive")
    pdf = render_report_pdf(report, with_later_addenda=False)
    number = report_instance_number(report)
    pdf_object = encapsulated_pdf_dataset(report, pdf)
    sr_object = basic_text_sr_dataset(report, instance_number=number)
    study = report.study
    ingest = instances_ingest(
        files=[
            _received(_part10(pdf_object), f"report-{report.uuid}.dcm"),
            _received(_part10(sr_object), f"report-{report.uuid}-sr.dcm"),
        ],
        sender=Sender(user=reader, institution=study.origin),
        expected_study_uid=study.study_instance_uid,
    )
    by_uid = {r.sop_instance_uid: r for r in ingest.results}
    archived = ArchivedReport(
        pdf=by_uid.get(str(pdf_object.SOPInstanceUID), ingest.results[0]),
        sr=by_uid.get(str(sr_object.SOPInstanceUID), ingest.results[-1]),
    )
    result = archived.pdf
    with transaction.atomic():
        if archived.ok:
            Report.objects.filter(pk=report.pk).update(
                archived_sop_instance_uid=result.sop_instance_uid, archived_at=timezone.now()
            )
        audit(
            action="report.archive",
            actor=reader,
            institution=report.task.reading_institution,
            object_type="report",
            object_id=report.uuid,
            study_uid=study.study_instance_uid,
            patient_ref=study.patient.uuid,
            outcome=AuditEvent.Outcome.SUCCESS if archived.ok else AuditEvent.Outcome.FAILED,
            detail={
                "sop_instance_uid": result.sop_instance_uid,
                "outcome": str(result.outcome),
                "code": result.code,
                "sr_sop_instance_uid": archived.sr.sop_instance_uid,
                "sr_outcome": str(archived.sr.outcome),
                "sr_code": archived.sr.code,
                "sent_as": str(study.origin.uuid),
            },
        )
    return archived


def report_archive_after_sign(report_id: int, user_id: int) -> None:
    """Store a just-signed report (after commit); a failure is logged and retried later."""
    try:
        report = Report.objects.get(pk=report_id)
        reader = get_user_model().objects.get(pk=user_id)
        report_archive(report=report, reader=reader)
    except Exception:
        logger.exception("storing report %s in the archive failed", report_id)


def reports_archive_pending() -> int:
    """Store every final report not yet in the archive (the periodic retry); return how many."""
    stored = 0
    for report in Report.objects.filter(
        state=Report.State.FINAL, archived_at__isnull=True
    ).select_related("signed_by")[:100]:
        try:
            if report_archive(report=report, reader=report.signed_by).ok:
                stored += 1
        except Exception:
            logger.exception("storing report %s in the archive failed", report.uuid)
    return stored
