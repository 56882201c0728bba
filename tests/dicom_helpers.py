"""Small builders of DICOM bytes and STOW-RS bodies for tests."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

BOUNDARY = "test-boundary-7d3a"


def bundled_file_bytes(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None, name
    with open(path, "rb") as handle:
        return handle.read()


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_small(
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    patient_id: str = "P-1",
    patient_name: str | None = None,
) -> Dataset:
    """Return pydicom's CT_small with fresh UIDs (or the ones given)."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = patient_id
    if patient_name is not None:
        ds.SpecificCharacterSet = "GB18030"
        ds.PatientName = patient_name
    return ds


def multipart(parts: Iterable[bytes], *, boundary: str = BOUNDARY) -> bytes:
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        body += part + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def stow_content_type(boundary: str = BOUNDARY) -> str:
    return f'multipart/related; type="application/dicom"; boundary={boundary}'


def random_uid() -> str:
    return "2.25." + str(uuid.uuid4().int)
