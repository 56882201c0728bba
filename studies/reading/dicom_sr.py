"""A final report as a DICOM Basic Text SR, stored in its study beside the Encapsulated PDF.

The PDF is for people; the SR is for systems: a HIS, a PACS or another hub
reads the findings and impression as text, knows who verified them and when,
and which images they were written about, without parsing a PDF.

The object follows PS3.3 A.35.1 Basic Text SR IOD with the content of TID 2000
(Basic Diagnostic Imaging Report): a CONTAINER titled "Diagnostic imaging
report" (LOINC 18748-4) holding the language (TID 1204), the observer (TID
1002), a Findings and an Impressions container with one TEXT item each. The SR
Document General module names the verifying observer (the signer), the
reading institution and the signing time, lists every instance of the study
as the evidence (Current Requested Procedure Evidence Sequence), and for an
addendum references the report it amends (Predecessor Documents Sequence).

Its UIDs and bytes are derived from the report, so storing it twice stores
nothing new. Text is UTF-8 (ISO_IR 192): Chinese as written.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from studies.models import Instance, Report
from studies.reading.dicom_common import (
    BASIC_TEXT_SR_STORAGE,
    ENCAPSULATED_PDF_STORAGE,
    report_object,
)

# The study's reports (this SR, the Encapsulated PDF) are not evidence of what was read.
REPORT_SOP_CLASSES = (BASIC_TEXT_SR_STORAGE, ENCAPSULATED_PDF_STORAGE)
SR_SERIES_NUMBER = 9002
REPORT_TITLE = ("18748-4", "LN", "Diagnostic imaging report")
LANGUAGE = ("121049", "DCM", "Language of Content Item and Descendants")
CHINESE = ("zh-CN", "RFC5646", "Chinese (China)")
OBSERVER_TYPE = ("121005", "DCM", "Observer Type")
PERSON = ("121006", "DCM", "Person")
PERSON_NAME = ("121008", "DCM", "Person Observer Name")
FINDINGS = ("121070", "DCM", "Findings")
FINDING = ("121071", "DCM", "Finding")
IMPRESSIONS = ("121072", "DCM", "Impressions")
IMPRESSION = ("121073", "DCM", "Impression")


def sr_series_uid(study_uid: str) -> str:
    """Return the UID of the study's SR report series (one for every report of the study)."""
    return str(generate_uid(entropy_srcs=["regional-imaging-cloud/report-sr-series", study_uid]))


def sr_sop_instance_uid(report: Report) -> str:
    """Return the SOP Instance UID of the report's SR (the same every time)."""
    return str(generate_uid(entropy_srcs=["regional-imaging-cloud/report-sr", str(report.uuid)]))


def _code(value: tuple[str, str, str]) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value
    return code


def _item(relationship: str, value_type: str, concept: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code(concept)]
    return item


def _text(concept: tuple[str, str, str], text: str) -> Dataset:
    item = _item("CONTAINS", "TEXT", concept)
    item.TextValue = text
    return item


def _section(title: tuple[str, str, str], entry: tuple[str, str, str], text: str) -> Dataset:
    section = _item("CONTAINS", "CONTAINER", title)
    section.ContinuityOfContent = "SEPARATE"
    section.ContentSequence = [_text(entry, text)] if text.strip() else []
    return section


def person_name(user: Any) -> str:
    """Return a user's name as a DICOM PN: family^given, Chinese as written."""
    if user is None:
        return ""
    family, given = (user.last_name or "").strip(), (user.first_name or "").strip()
    if family or given:
        return f"{family}^{given}" if given else family
    return str(user.get_username())


def _evidence(report: Report) -> list[Dataset]:
    """Return the Hierarchical SOP Instance Reference of the study's images (PS3.3 C.17.2.1)."""
    study_uid = report.study.study_instance_uid
    rows = (
        Instance.objects.filter(study=report.study)
        .exclude(sop_class_uid__in=REPORT_SOP_CLASSES)
        .order_by("series__series_number", "series_id", "instance_number", "pk")
        .values_list("series__series_instance_uid", "sop_class_uid", "sop_instance_uid")
    )
    by_series: dict[str, list[Dataset]] = {}
    for series_uid, sop_class, sop_uid in rows:
        ref = Dataset()
        ref.ReferencedSOPClassUID = sop_class
        ref.ReferencedSOPInstanceUID = sop_uid
        by_series.setdefault(series_uid, []).append(ref)
    if not by_series:
        return []
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.ReferencedSeriesSequence = []
    for series_uid, refs in by_series.items():
        series = Dataset()
        series.SeriesInstanceUID = series_uid
        series.ReferencedSOPSequence = refs
        study.ReferencedSeriesSequence.append(series)
    return [study]


def _predecessor(report: Report) -> list[Dataset]:
    """For an addendum: the SR of the report it amends, which it supersedes in part."""
    if report.amends is None:
        return []
    ref = Dataset()
    ref.ReferencedSOPClassUID = BASIC_TEXT_SR_STORAGE
    ref.ReferencedSOPInstanceUID = sr_sop_instance_uid(report.amends)
    series = Dataset()
    series.SeriesInstanceUID = sr_series_uid(report.study.study_instance_uid)
    series.ReferencedSOPSequence = [ref]
    study = Dataset()
    study.StudyInstanceUID = report.study.study_instance_uid
    study.ReferencedSeriesSequence = [series]
    return [study]


def basic_text_sr_dataset(report: Report, *, instance_number: int) -> Dataset:
    """Return the Basic Text SR carrying a final ``report`` (or addendum)."""
    study = report.study
    signed = timezone.localtime(report.signed_at or report.updated_at)
    sop_uid = sr_sop_instance_uid(report)
    institution = report.task.reading_institution.name[:64]
    signer = person_name(report.signed_by)

    ds = report_object(report, sop_class_uid=BASIC_TEXT_SR_STORAGE, sop_instance_uid=sop_uid)
    # SR Document Series (C.17.1) and General Equipment (C.7.5.1)
    ds.Modality = "SR"
    ds.SeriesInstanceUID = sr_series_uid(study.study_instance_uid)
    ds.SeriesNumber = SR_SERIES_NUMBER
    ds.SeriesDescription = "Structured report"
    ds.ReferencedPerformedProcedureStepSequence = []
    ds.Manufacturer = "Regional Imaging Cloud"
    ds.InstitutionName = institution
    # SR Document General (C.17.2)
    ds.InstanceNumber = instance_number
    ds.ContentDate = signed.strftime("%Y%m%d")
    ds.ContentTime = signed.strftime("%H%M%S")
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED" if report.is_final else "UNVERIFIED"
    if report.is_final:
        observer = Dataset()
        observer.VerifyingObserverName = signer
        observer.VerifyingObserverIdentificationCodeSequence = []
        observer.VerifyingOrganization = institution
        observer.VerificationDateTime = signed.strftime("%Y%m%d%H%M%S")
        ds.VerifyingObserverSequence = [observer]
    ds.PerformedProcedureCodeSequence = []
    evidence = _evidence(report)
    if evidence:
        ds.CurrentRequestedProcedureEvidenceSequence = evidence
    predecessor = _predecessor(report)
    if predecessor:
        ds.PredecessorDocumentsSequence = predecessor
    # SR Document Content (C.17.3): TID 2000
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code(REPORT_TITLE)]
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2000"
    ds.ContentTemplateSequence = [template]
    language = _item("HAS CONCEPT MOD", "CODE", LANGUAGE)
    language.ConceptCodeSequence = [_code(CHINESE)]
    observer_type = _item("HAS OBS CONTEXT", "CODE", OBSERVER_TYPE)
    observer_type.ConceptCodeSequence = [_code(PERSON)]
    observer_name = _item("HAS OBS CONTEXT", "PNAME", PERSON_NAME)
    observer_name.PersonName = signer
    ds.ContentSequence = [
        language,
        observer_type,
        observer_name,
        _section(FINDINGS, FINDING, report.findings),
        _section(IMPRESSIONS, IMPRESSION, report.impression),
    ]
    return ds
