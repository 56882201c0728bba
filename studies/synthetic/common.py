"""What every synthetic object shares: the study, its UIDs, the common modules, Part 10 bytes."""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from .patients import NATIONAL_ID_ISSUER, PatientSpec

CHINA_TZ = timezone(timedelta(hours=8))
CHARACTER_SET = "GB18030"
MANUFACTURER = "RIC Synthetic"
DEMO_INSTITUTION_NAME = "青溪县人民医院"
DEMO_REFERRING_PHYSICIAN = "王^建华"

# Bump the version to get new UIDs for everything when the pictures change.
_NAMESPACE = "regional-imaging-cloud/synthetic/v1"
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=[_NAMESPACE, "implementation-class"])
IMPLEMENTATION_VERSION_NAME = "RIC_SYNTH_1"

DEFAULT_DESCRIPTIONS = {
    "CT": "胸部CT平扫",
    "DX": "胸部X线摄影",
    "MR": "头颅MR平扫",
    "US": "腹部超声检查",
    "ECG": "常规十二导联心电图",
}


def _digest_int(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


@dataclass(frozen=True)
class StudySpec:
    """One study of one patient; a seeded study yields the same UIDs and bytes every time."""

    patient: PatientSpec
    modality: str
    study_uid: str
    accession: str
    study_datetime: datetime
    description: str
    institution_name: str
    referring_physician: str
    seed: int | None

    def uid(self, *parts: object) -> str:
        """Return a UID for a series or instance of this study, named by `parts`."""
        if self.seed is None:
            return str(generate_uid())
        return str(generate_uid(entropy_srcs=[_NAMESPACE, self.study_uid, *map(str, parts)]))

    def rng(self, *parts: object) -> np.random.Generator:
        """Return a random generator for the pixels of `parts`, seeded when the study is."""
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng(_digest_int(self.study_uid, *parts))

    def at(self, seconds: float) -> datetime:
        """Return the study time plus `seconds`, for series and content times."""
        return self.study_datetime + timedelta(seconds=seconds)


def _study_datetime(study_date: date | datetime | None, n: int, seeded: bool) -> datetime:
    if isinstance(study_date, datetime):
        if study_date.tzinfo is None:
            return study_date.replace(tzinfo=CHINA_TZ)
        return study_date.astimezone(CHINA_TZ)
    clock = time(8 + n % 10, n // 10 % 60, n // 600 % 60, tzinfo=CHINA_TZ)
    if study_date is not None:
        return datetime.combine(study_date, clock)
    if seeded:
        return datetime.combine(date(2025, 1, 1) + timedelta(days=n // 36000 % 365), clock)
    return datetime.now(CHINA_TZ).replace(microsecond=0)


def study_spec(
    patient: PatientSpec,
    modality: str,
    *,
    seed: int | None = 0,
    study_date: date | datetime | None = None,
    description: str | None = None,
    institution_name: str = DEMO_INSTITUTION_NAME,
    referring_physician: str = DEMO_REFERRING_PHYSICIAN,
) -> StudySpec:
    """Return the study a generator makes for `patient`.

    With an integer seed the StudyInstanceUID, accession and (unless given) the date
    depend only on (issuer, PatientID, modality, seed): use another seed for another
    study of the same patient. With seed=None everything is random and dated now.
    """
    modality = modality.upper()
    seeded = seed is not None
    key = (_NAMESPACE, patient.issuer, patient.patient_id, modality, seed)
    n = _digest_int(*key) if seeded else secrets.randbits(63)
    study_uid = generate_uid(entropy_srcs=[*map(str, key), "study"]) if seeded else generate_uid()
    return StudySpec(
        patient=patient,
        modality=modality,
        study_uid=str(study_uid),
        accession=f"RIC{n % 10**12:012d}",
        study_datetime=_study_datetime(study_date, n, seeded),
        description=description or DEFAULT_DESCRIPTIONS.get(modality, modality),
        institution_name=institution_name,
        referring_physician=referring_physician,
        seed=seed,
    )


def resolve_study(
    patient: PatientSpec, modality: str, study: StudySpec | None, **kwargs: Any
) -> StudySpec:
    """Return `study` when the caller gave one, else the study made from `kwargs`."""
    if study is None:
        return study_spec(patient, modality, **kwargs)
    if study.patient != patient:
        raise ValueError("the study belongs to another patient")
    return study


def item(**elements: Any) -> Dataset:
    """Return a sequence item holding `elements` (keyword=value)."""
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def code(value: str, scheme: str, meaning: str) -> Dataset:
    """Return a Code Sequence item (PS3.3 Table 8.8-1)."""
    return item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _da(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def _tm(moment: datetime) -> str:
    return moment.strftime("%H%M%S")


def base_dataset(
    study: StudySpec,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    series_uid: str,
    series_number: int,
    series_description: str,
    instance_number: int,
    content_time: datetime,
    modality: str | None = None,
) -> Dataset:
    """Return a dataset with File Meta, SOP Common, Patient, General Study/Series/Equipment."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = CHARACTER_SET
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da(content_time), _tm(content_time)
    ds.TimezoneOffsetFromUTC = "+0800"

    patient = study.patient
    ds.PatientName = patient.dicom_name
    ds.PatientID = patient.patient_id
    ds.IssuerOfPatientID = patient.issuer
    ds.PatientBirthDate = patient.birth_date.strftime("%Y%m%d")
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{patient.age_on(study.study_datetime.date()):03d}Y"
    # The resident ID travels as an "other" ID so the hub can link records across issuers.
    ds.OtherPatientIDsSequence = [
        item(
            PatientID=patient.national_id,
            IssuerOfPatientID=NATIONAL_ID_ISSUER,
            TypeOfPatientID="TEXT",
        )
    ]

    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate, ds.StudyTime = _da(study.study_datetime), _tm(study.study_datetime)
    ds.AccessionNumber = study.accession
    ds.StudyID = study.accession[-8:]
    ds.StudyDescription = study.description
    ds.ReferringPhysicianName = study.referring_physician

    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDate, ds.SeriesTime = _da(content_time), _tm(content_time)
    ds.SeriesDescription = series_description
    ds.Modality = modality or study.modality

    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = f"Phantom {ds.Modality}"
    ds.InstitutionName = study.institution_name
    ds.InstanceNumber = instance_number
    ds.ContentDate, ds.ContentTime = _da(content_time), _tm(content_time)
    return ds


def set_pixels(ds: Dataset, pixels: npt.NDArray[Any], *, bits_stored: int) -> None:
    """Fill the Image Pixel module from `pixels`: (rows, cols) grey or (.., rows, cols, 3) RGB.

    uint16 becomes MONOCHROME2 in 16 allocated bits, uint8 with a last axis of 3 becomes
    RGB colour-by-pixel; a leading axis on RGB is the frame axis of a multi-frame image.
    """
    rgb = pixels.ndim >= 3 and pixels.shape[-1] == 3
    multi_frame = pixels.ndim == (4 if rgb else 3)
    rows, cols = pixels.shape[-3:-1] if rgb else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    if multi_frame:
        ds.NumberOfFrames = pixels.shape[0]
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    data = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    ds.add_new(0x7FE00010, "OW" if ds.BitsAllocated > 8 else "OB", data)


def expected_pixel_bytes(ds: Dataset) -> int:
    """Return rows x columns x samples x bits/8 x frames, the length Pixel Data must have."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return int(ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8 * frames)


def dataset_to_bytes(ds: Dataset) -> bytes:
    """Return `ds` as a DICOM Part 10 file (preamble, file meta, Explicit VR Little Endian)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_datasets(datasets: Iterable[Dataset], directory: Path | str) -> list[Path]:
    """Write each dataset to `directory`/<SOPInstanceUID>.dcm and return the paths."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        path.write_bytes(dataset_to_bytes(ds))
        paths.append(path)
    return paths
