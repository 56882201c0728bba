"""The fast DICOM JSON (studies.dicom_json) gives exactly pydicom's answer."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from studies import dicom_parse
from studies.ingest import INDEX_KEYWORDS
from studies.synthetic import ct_study, dataset_to_bytes, demo_patients

# pydicom/data: test_files/ (the broken files among them) and charset_files/ (chrX1, chrX2, …).
BUNDLED = Path(pydicom.data.get_testdata_file("CT_small.dcm")).parent.parent  # type: ignore[arg-type]


def pydicom_json(dataset: Dataset) -> dict[str, Any]:
    """The answer before studies.dicom_json: every element through pydicom."""
    light = Dataset()
    bulk: dict[str, Any] = {}
    for tag in dataset.keys():  # noqa: SIM118 - keeps deferred values deferred
        raw = dataset.get_item(tag, keep_deferred=True)
        if dicom_parse._is_bulk(tag, raw):
            bulk[f"{tag:08X}"] = dicom_parse._element_json(dataset, tag)
        else:
            light.add(dataset[tag])
    result = light.to_json_dict(
        bulk_data_threshold=dicom_parse.DEFER_SIZE, bulk_data_element_handler=dicom_parse._bulk
    )
    result.update(bulk)
    return dict(sorted(result.items()))


# What parse_instance's checks read (and so have pydicom convert) before the JSON is made.
READ_FIRST = [
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "Rows",
    "Columns",
    "BitsAllocated",
    "SamplesPerPixel",
    "NumberOfFrames",
    "ImageType",
]


def both(data: bytes) -> tuple[Any, Any]:
    answers = []
    for convert in (pydicom_json, dicom_parse.dataset_json):
        dataset = pydicom.dcmread(io.BytesIO(data), defer_size=dicom_parse.DEFER_SIZE, force=True)
        dicom_parse._fix_mislabelled_charset(dataset)
        for keyword in READ_FIRST:
            try:
                dataset.get(keyword)
            except Exception:  # noqa: S112 - a broken element is the JSON's to refuse
                continue
        try:
            # Compared as encoded text: 512 == 512.0 in Python, not in the JSON a client reads.
            answers.append(json.dumps(convert(dataset)))
        except Exception as exc:  # a refusal must stay a refusal
            answers.append(type(exc).__name__)
    return answers[0], answers[1]


@pytest.mark.parametrize(
    "path",
    sorted(p for p in BUNDLED.rglob("*") if p.is_file()),
    ids=lambda p: str(p.relative_to(BUNDLED)),
)
def test_it_matches_pydicom_on_every_bundled_file(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before, after = both(path.read_bytes())
    assert after == before


def test_it_matches_pydicom_on_the_chinese_demo_patients() -> None:
    for patient in demo_patients()[:4]:
        data = dataset_to_bytes(next(iter(ct_study(patient, slices=1))))
        before, after = both(data)
        assert after == before
        assert json.loads(after)["00100010"]["Value"][0]["Alphabetic"] == patient.dicom_name


def edge_cases() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "", "AXIAL"]  # an empty value inside a multi-value
    ds.PatientName = "Doe^John=杜^约翰=Doe"
    ds.ReferringPhysicianName = ""
    ds.OtherPatientNames = ["A^B", "C^D=="]
    ds.PatientID = "  id with spaces  "
    ds.StudyDescription = "héllo"
    ds.SeriesDescription = "a\\b "
    ds.ImageComments = "one \\ value "
    ds.SliceThickness = " 1.5 "
    ds.ImagePositionPatient = ["1", "-2.5e1", "3"]
    ds.InstanceNumber = "7"
    ds.SeriesNumber = ""
    ds.Rows = 4
    ds.LargestImagePixelValue = 3  # US or SS in the dictionary
    ds.RedPaletteColorLookupTableDescriptor = [256, 0, 16]
    ds.RescaleSlope = "1"
    ds.add_new(0x00181310, "US", [0, 4, 4, 0])  # Acquisition Matrix
    ds.add_new(0x00180088, "DS", "")  # Spacing Between Slices, empty
    ds.add_new(0x00090010, "LO", "PRIVATE CREATOR")
    ds.add_new(0x00091001, "LO", "private value")
    ds.add_new(0x00280034, "IS", ["1", "1"])  # Pixel Aspect Ratio in the wrong VR
    ds.add_new(0x00180050, "DS", "1.0")
    ds.StudyInstanceUID = UID("1.2.3.4\x00")
    return ds


def part10(ds: Dataset, syntax: UID) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_it_matches_pydicom_on_edge_cases(syntax: UID) -> None:
    before, after = both(part10(edge_cases(), syntax))
    assert after.startswith("{")
    assert after == before


# What ingest reads with ParsedInstance.text(), and a few multi-valued ones.
TEXT_KEYWORDS = [*INDEX_KEYWORDS, "PatientID", "ImageType", "OtherPatientNames", "Modality"]


def texts(data: bytes) -> tuple[Any, Any]:
    """Each keyword's text read from the DICOM JSON, and as pydicom converts it."""
    try:
        parsed = dicom_parse.parse_instance(io.BytesIO(data))
    except dicom_parse.InvalidInstance:
        return None, None
    from_json = {k: parsed.text(k) for k in TEXT_KEYWORDS}
    return from_json, {k: parsed.dataset_text(k) for k in TEXT_KEYWORDS}


@pytest.mark.parametrize(
    "path",
    sorted(p for p in BUNDLED.rglob("*.dcm") if p.is_file()),
    ids=lambda p: str(p.relative_to(BUNDLED)),
)
def test_text_read_from_the_json_is_pydicoms_text(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_json, from_pydicom = texts(path.read_bytes())
    assert from_json == from_pydicom


def test_text_read_from_the_json_is_pydicoms_text_for_the_demo_and_edge_cases() -> None:
    ds = edge_cases()
    ds.StudyInstanceUID = UID("1.2.3.4")
    ds.SeriesInstanceUID = UID("1.2.3.5")
    ds.SOPInstanceUID = UID("1.2.3.6")
    ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.InstanceNumber = "007"
    edge = part10(ds, ExplicitVRLittleEndian)
    demo = [dataset_to_bytes(next(iter(ct_study(p, slices=1)))) for p in demo_patients()[:4]]
    for data in [edge, *demo]:
        from_json, from_pydicom = texts(data)
        assert from_json is not None
        assert from_json == from_pydicom
    assert texts(edge)[0] == {**texts(edge)[0], "InstanceNumber": "007"}
