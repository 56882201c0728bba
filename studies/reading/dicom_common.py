"""What every DICOM object carrying a report shares: file meta, SOP Common, Patient, Study.

The Encapsulated PDF (``dicom_report``) and the Basic Text SR (``dicom_sr``)
both go into the report's study; both copy the patient and study from the
index, so ingest files them with the same patient and study as the images.
"""

from __future__ import annotations

from django.utils import timezone
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from studies.models import Report

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
BASIC_TEXT_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.11"


def report_object(report: Report, *, sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """Return a dataset with the file meta, SOP Common (C.12.1), Patient (C.7.1.1) and
    General Study (C.7.2.1) modules of an object carrying ``report``."""
    study = report.study
    patient = study.patient
    signed = timezone.localtime(report.signed_at or report.updated_at)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: Chinese names and titles as they are
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate = signed.strftime("%Y%m%d")
    ds.InstanceCreationTime = signed.strftime("%H%M%S")
    # As the archive indexed them, so ingest files the object with the same patient.
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.patient_birth_date
    ds.PatientSex = patient.patient_sex
    ds.StudyInstanceUID = study.study_instance_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.ReferringPhysicianName = study.referring_physician_name
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.study_description
    return ds
