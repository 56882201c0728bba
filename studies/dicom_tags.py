"""Which attributes belong to which query level (PS3.18 10.6.3.3, Tables 10.6.3-3..5)."""

from __future__ import annotations

from typing import Any

# Patient and study attributes answered at the study level.
STUDY_LEVEL_TAGS = frozenset(
    {
        "00080005",  # SpecificCharacterSet
        "00080020",  # StudyDate
        "00080030",  # StudyTime
        "00080050",  # AccessionNumber
        "00080090",  # ReferringPhysicianName
        "00080201",  # TimezoneOffsetFromUTC
        "00081030",  # StudyDescription
        "00100010",  # PatientName
        "00100020",  # PatientID
        "00100021",  # IssuerOfPatientID
        "00100030",  # PatientBirthDate
        "00100040",  # PatientSex
        "0020000D",  # StudyInstanceUID
        "00200010",  # StudyID
    }
)

SERIES_LEVEL_TAGS = frozenset(
    {
        "00080005",  # SpecificCharacterSet
        "00080060",  # Modality
        "00080021",  # SeriesDate
        "00080031",  # SeriesTime
        "0008103E",  # SeriesDescription
        "00180015",  # BodyPartExamined
        "0020000E",  # SeriesInstanceUID
        "00200011",  # SeriesNumber
        "00400244",  # PerformedProcedureStepStartDate
        "00400245",  # PerformedProcedureStepStartTime
    }
)

INSTANCE_LEVEL_TAGS = frozenset(
    {
        "00080005",  # SpecificCharacterSet
        "00080016",  # SOPClassUID
        "00080018",  # SOPInstanceUID
        "00200013",  # InstanceNumber
        "00280010",  # Rows
        "00280011",  # Columns
        "00280100",  # BitsAllocated
        "00280008",  # NumberOfFrames
    }
)


def pick(dicom_json: dict[str, Any], tags: frozenset[str]) -> dict[str, Any]:
    """Return the entries of ``dicom_json`` whose tags are in ``tags``."""
    return {tag: value for tag, value in dicom_json.items() if tag in tags}
