"""The synthetic DICOM generator: valid Part 10 files, plausible pictures, stable bytes."""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    TwelveLeadECGWaveformStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from studies.synthetic import (
    NODULE_CENTER_MM,
    PatientSpec,
    ct_nodule_instances,
    ct_study,
    dataset_to_bytes,
    demo_patients,
    dr_chest_study,
    ecg_study,
    mr_study,
    national_id_check_digit,
    study_for_modality,
    study_spec,
    us_study,
    write_datasets,
)


@pytest.fixture
def patient() -> PatientSpec:
    return demo_patients()[0]


def roundtrip(datasets: Iterator[Dataset]) -> list[Dataset]:
    """Serialise every dataset to Part 10 bytes and read it back, as an archive would."""
    result = []
    for ds in datasets:
        raw = dataset_to_bytes(ds)
        assert raw[128:132] == b"DICM"
        result.append(pydicom.dcmread(io.BytesIO(raw)))
    return result


def pixel_bytes(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames", 1))
    return ds.Rows * ds.Columns * ds.SamplesPerPixel * ds.BitsAllocated // 8 * frames


def hu_at(ds: Dataset, x_mm: float, y_mm: float, half: int = 0) -> float:
    """Return the mean HU of the pixels around patient position (x, y) on an axial slice."""
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    col = round((x_mm - float(ds.ImagePositionPatient[0])) / col_spacing)
    row = round((y_mm - float(ds.ImagePositionPatient[1])) / row_spacing)
    return float(hu[row - half : row + half + 1, col - half : col + half + 1].mean())


SMALL = {
    "CT": (ct_study, {"slices": 8, "size": 64}, CTImageStorage, 8),
    "DX": (dr_chest_study, {"size": 128, "views": ("PA", "LL")}, None, 2),
    "MR": (mr_study, {"slices": 4, "size": 64}, MRImageStorage, 4),
    "US": (us_study, {"cine_frames": 3}, None, 2),
    "ECG": (ecg_study, {}, TwelveLeadECGWaveformStorage, 1),
}


@pytest.mark.parametrize("modality", sorted(SMALL))
def test_it_writes_part10_files_that_read_back(patient: PatientSpec, modality: str) -> None:
    generator, kwargs, sop_class, count = SMALL[modality]
    datasets = roundtrip(generator(patient, **kwargs))

    assert len(datasets) == count
    study_uid = study_spec(patient, modality).study_uid
    for ds in datasets:
        meta = ds.file_meta
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.MediaStorageSOPClassUID == ds.SOPClassUID
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.ImplementationClassUID
        if sop_class is not None:
            assert ds.SOPClassUID == sop_class
        assert ds.Modality == modality
        assert ds.StudyInstanceUID == study_uid
        assert ds.SpecificCharacterSet == "GB18030"
        assert ds.AccessionNumber
        assert ds.StudyDate
        assert ds.StudyTime
        assert ds.StudyDescription
        assert ds.SeriesDescription
        assert str(ds.ReferringPhysicianName)
        assert ds.InstitutionName
        if "PixelData" in ds:
            assert len(ds.PixelData) == pixel_bytes(ds)
    assert len({ds.SOPInstanceUID for ds in datasets}) == count
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert sorted(ds.InstanceNumber for ds in datasets) == list(range(1, count + 1))


def test_it_shows_air_body_lung_and_bone_at_plausible_hu(patient: PatientSpec) -> None:
    slices = roundtrip(ct_study(patient, slices=24, size=128))
    middle = slices[12]

    assert middle.RescaleIntercept == -1024
    assert middle.RescaleSlope == 1
    assert middle.PixelRepresentation == 0
    assert middle.BitsStored == 12
    assert int(middle.pixel_array.max()) < 2**12
    assert -1030 <= hu_at(middle, -160, -160, half=2) <= -970  # air, corner of the field
    assert 20 <= hu_at(middle, 20, -20, half=2) <= 70  # heart
    assert 20 <= hu_at(middle, 147, 0, half=1) <= 70  # lateral chest wall
    assert -880 <= hu_at(middle, -100, 10, half=2) <= -820  # right lung
    assert -880 <= hu_at(middle, 100, 10, half=2) <= -820  # left lung
    assert 650 <= hu_at(middle, 0, 70, half=2) <= 1000  # vertebral body


def test_it_puts_the_nodule_on_the_middle_slices_only(patient: PatientSpec) -> None:
    slices = roundtrip(ct_study(patient, slices=60, size=96))
    with_nodule = ct_nodule_instances(60)

    assert list(with_nodule) == [30, 31, 32]  # 15 mm at 5 mm slices, centred on slice 60//2
    for ds in slices:
        value = hu_at(ds, *NODULE_CENTER_MM)
        if ds.InstanceNumber in with_nodule:
            assert value > -100, ds.InstanceNumber
        else:
            assert value < -700, ds.InstanceNumber


def test_it_lays_ct_slices_out_in_patient_space(patient: PatientSpec) -> None:
    slices = roundtrip(ct_study(patient, slices=10, size=64))
    z = [float(ds.ImagePositionPatient[2]) for ds in slices]

    assert np.allclose(np.diff(z), -float(slices[0].SliceThickness))
    assert [float(ds.SliceLocation) for ds in slices] == z
    for ds in slices:
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert ds.BodyPartExamined == "CHEST"
        assert ds.FrameOfReferenceUID == slices[0].FrameOfReferenceUID
        assert [float(v) for v in ds.WindowCenter] == [40, -600]
        assert ds.Rows == ds.Columns == 64


def test_it_makes_the_default_120_slice_ct_in_under_five_seconds(patient: PatientSpec) -> None:
    started = time.perf_counter()
    sizes = [len(dataset_to_bytes(ds)) for ds in ct_study(patient)]
    elapsed = time.perf_counter() - started

    assert len(sizes) == 120
    assert min(sizes) > 512 * 512 * 2
    assert elapsed < 5.0


def test_it_builds_slices_lazily_for_long_series(patient: PatientSpec) -> None:
    series = ct_study(patient, slices=400, size=64)
    first, second = itertools.islice(series, 2)

    assert float(first.SliceThickness) == 0.75
    assert first.InstanceNumber == 1
    assert second.InstanceNumber == 2
    assert len(ct_nodule_instances(400)) > len(ct_nodule_instances(120))


def test_it_writes_a_dr_chest_film_with_dark_lungs(patient: PatientSpec) -> None:
    pa, lateral = roundtrip(dr_chest_study(patient, size=256, views=("PA", "LL")))

    for ds in (pa, lateral):
        assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.BitsAllocated == 16
        assert ds.BitsStored == 12
        assert int(ds.pixel_array.max()) < 2**12
    assert [pa.ViewPosition, lateral.ViewPosition] == ["PA", "LL"]
    image = pa.pixel_array.astype(float)
    lung, spine, air = image[110, 70], image[110, 128], image[5, 5]
    assert air < lung < spine


def test_it_fills_sixteen_bits_when_asked(patient: PatientSpec) -> None:
    (ds,) = roundtrip(dr_chest_study(patient, size=128, bits_stored=16))

    assert ds.BitsStored == 16
    assert ds.HighBit == 15
    assert int(ds.pixel_array.max()) > 2**12


def test_it_writes_a_brain_mr_series(patient: PatientSpec) -> None:
    slices = roundtrip(mr_study(patient))

    assert len(slices) == 20
    assert {ds.SOPClassUID for ds in slices} == {MRImageStorage}
    assert (slices[0].Rows, slices[0].Columns) == (256, 256)
    centre = slices[10].pixel_array[118:138, 80:100].astype(float)
    assert centre.mean() > 400  # brain, not background
    assert slices[10].pixel_array[:10, :10].mean() < 60


def test_it_writes_rgb_ultrasound_and_a_cine_loop(patient: PatientSpec) -> None:
    still, cine = roundtrip(us_study(patient, cine_frames=5))

    assert still.SOPClassUID == UltrasoundImageStorage
    assert still.PhotometricInterpretation == "RGB"
    assert still.SamplesPerPixel == 3
    assert (still.Rows, still.Columns, still.PlanarConfiguration) == (480, 640, 0)
    assert len(still.PixelData) == 640 * 480 * 3
    rgb = still.pixel_array.astype(int)
    assert np.any(np.abs(rgb[..., 0] - rgb[..., 2]) > 100)  # colour flow, not just grey
    assert cine.SOPClassUID == UltrasoundMultiFrameImageStorage
    assert cine.NumberOfFrames == 5
    assert cine.FrameIncrementPointer == Tag("FrameTime")
    assert len(cine.PixelData) == 5 * 640 * 480 * 3
    assert cine.pixel_array.shape == (5, 480, 640, 3)
    assert not np.array_equal(cine.pixel_array[0], cine.pixel_array[1])


def test_it_writes_a_twelve_lead_ecg(patient: PatientSpec) -> None:
    (ds,) = roundtrip(ecg_study(patient, heart_rate=72))
    group = ds.WaveformSequence[0]
    leads = ds.waveform_array(0)

    assert leads.shape == (5000, 12)
    assert group.SamplingFrequency == 500
    assert group.WaveformSampleInterpretation == "SS"
    labels = [ch.ChannelSourceSequence[0].CodeMeaning for ch in group.ChannelDefinitionSequence]
    assert labels[:3] == ["Lead I", "Lead II", "Lead III"]
    assert labels[-1] == "Lead V6"
    lead_i, lead_ii, lead_iii = leads[:, 0], leads[:, 1], leads[:, 2]
    assert np.max(np.abs(lead_iii - (lead_ii - lead_i))) <= 2  # Einthoven, up to rounding
    assert np.max(np.abs(leads[:, 3:6].sum(axis=1))) <= 3
    r_waves = (lead_ii[1:] > 600) & (lead_ii[:-1] <= 600)
    assert 11 <= int(r_waves.sum()) <= 13  # 72 beats a minute for 10 s


def test_it_round_trips_every_demo_name_through_gb18030() -> None:
    for person in demo_patients():
        raw = dataset_to_bytes(next(ecg_study(person)))
        ds = pydicom.dcmread(io.BytesIO(raw))

        assert person.dicom_name.encode("gb18030") in raw
        assert str(ds.PatientName) == person.dicom_name
        assert ds.PatientName.family_name == person.family_name
        assert ds.PatientName.given_name == person.given_name
        assert ds.PatientID == person.patient_id
        assert ds.IssuerOfPatientID == person.issuer
        assert ds.OtherPatientIDsSequence[0].PatientID == person.national_id
        assert ds.StudyDescription == "常规十二导联心电图"


def test_it_needs_gb18030_not_gbk_for_a_rare_character() -> None:
    rare = next(p for p in demo_patients() if p.given_name == "䶮")

    with pytest.raises(UnicodeEncodeError):
        rare.dicom_name.encode("gbk")


def test_it_lists_about_twenty_demo_patients_with_valid_ids() -> None:
    patients = demo_patients()

    assert 18 <= len(patients) <= 24
    assert len({(p.issuer, p.patient_id) for p in patients}) == len(patients)
    for p in patients:
        assert len(p.national_id) == 18
        assert p.national_id[-1] == national_id_check_digit(p.national_id[:17])
        assert p.national_id[6:14] == p.birth_date.strftime("%Y%m%d")
        assert int(p.national_id[16]) % 2 == (1 if p.sex == "M" else 0)
    by_person: dict[str, set[str]] = {}
    for p in patients:
        by_person.setdefault(p.national_id, set()).add(p.issuer)
    assert any(len(issuers) > 1 for issuers in by_person.values())  # one person, two hospitals
    ids = [p.patient_id for p in patients]
    shared = {i for i in ids if ids.count(i) > 1}
    assert shared  # one PatientID at two hospitals names two people
    for patient_id in shared:
        assert len({p.national_id for p in patients if p.patient_id == patient_id}) > 1


def test_it_gives_identical_bytes_for_the_same_seed(patient: PatientSpec) -> None:
    def make(seed: int | None) -> list[bytes]:
        series = itertools.chain(
            ct_study(patient, slices=3, size=64, seed=seed),
            mr_study(patient, slices=2, size=64, seed=seed),
            us_study(patient, width=128, height=96, cine_frames=2, seed=seed),
            ecg_study(patient, seed=seed),
            dr_chest_study(patient, size=64, seed=seed),
        )
        return [dataset_to_bytes(ds) for ds in series]

    def uids(files: list[bytes]) -> set[str]:
        return {pydicom.dcmread(io.BytesIO(raw)).SOPInstanceUID for raw in files}

    assert make(7) == make(7)
    assert study_spec(patient, "MR", seed=7) == study_spec(patient, "MR", seed=7)  # not "now"
    assert uids(make(7)).isdisjoint(uids(make(8)))
    assert uids(make(None)).isdisjoint(uids(make(None)))
    assert (
        study_spec(patient, "CT", seed=7).study_uid != study_spec(patient, "CT", seed=8).study_uid
    )


def test_it_uses_the_given_study_date_and_study(patient: PatientSpec) -> None:
    (ds,) = ecg_study(patient, study_date=date(2024, 5, 6))
    (at_time,) = ecg_study(patient, study_date=datetime(2024, 5, 6, 1, 30, tzinfo=UTC))
    study = study_spec(patient, "CT", seed=3, description="胸部低剂量CT")
    first = next(ct_study(patient, slices=2, size=64, study=study))

    assert ds.StudyDate == "20240506"
    assert (at_time.StudyDate, at_time.StudyTime) == ("20240506", "093000")
    assert first.StudyInstanceUID == study.study_uid
    assert first.StudyDescription == "胸部低剂量CT"
    with pytest.raises(ValueError, match="another patient"):
        next(ct_study(demo_patients()[3], slices=2, size=64, study=study))


def test_it_dispatches_by_modality(patient: PatientSpec) -> None:
    (dr,) = study_for_modality("dr", patient, size=64)
    (ecg,) = study_for_modality("ECG", patient)

    assert dr.Modality == "DX"
    assert ecg.Modality == "ECG"
    with pytest.raises(ValueError, match="modality"):
        study_for_modality("PET", patient)


def test_it_writes_files_named_by_sop_instance_uid(patient: PatientSpec, tmp_path: Path) -> None:
    paths = write_datasets(mr_study(patient, slices=3, size=64), tmp_path / "mr")

    assert len(paths) == 3
    for path in paths:
        ds = pydicom.dcmread(path)
        assert path.name == f"{ds.SOPInstanceUID}.dcm"
