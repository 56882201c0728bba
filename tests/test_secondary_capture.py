"""A photo of a film or an ECG strip becomes a DICOM Secondary Capture image in the archive."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from django.test import Client
from PIL import Image

from hospitals.models import Role
from studies.archive import get_store
from studies.models import Instance, Study
from studies.uploads.sc import PhotoDetails, build_secondary_capture, read_photo
from tests.factories import make_user
from tests.fixtures.archive import archive, file_archive  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

URL = "/upload/photo/"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
SECRET = "SecretPhone-GPS-7F3A"


@pytest.fixture(autouse=True)
def own_archive(request: pytest.FixtureRequest) -> None:
    if "archive" not in request.fixturenames:
        request.getfixturevalue("file_archive")


@pytest.fixture
def doctor_client(client_for: Any, network: dict[str, Any]) -> Client:
    return client_for(make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR))


def noise(size: tuple[int, int], mode: str = "RGB", seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1}[mode]
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


def encoded(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def exif_with_gps(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = SECRET  # Make
    exif[0x0110] = SECRET  # Model
    exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (31.0, 13.0, 42.0)
    gps[3] = "E"
    gps[4] = (121.0, 28.0, 5.0)
    return exif


def post_photo(client: Client, data: bytes, *, name: str = "photo.png", **fields: Any) -> Any:
    form = {
        "kind": "film",
        "patient_name": "张^三丰",
        "patient_id": "MZ-20260001",
        "patient_sex": "M",
        "patient_birth_date": "1958-03-09",
        "description": "胸部正位片",
        "accession_number": "A123",
    }
    form.update(fields)
    upload = io.BytesIO(data)
    upload.name = name
    return client.post(URL, {**form, "photo": upload})


def stored_object() -> tuple[Instance, bytes, pydicom.Dataset]:
    instance = Instance.objects.get()
    with get_store().open(instance.archive_key) as stored:
        raw = stored.read()
    return instance, raw, pydicom.dcmread(io.BytesIO(raw))


@pytest.mark.usefixtures("archive")
def test_it_wraps_a_png_with_a_chinese_name_and_keeps_its_pixels_exactly(
    doctor_client: Client, network: dict[str, Any]
):
    image = noise((123, 77))

    response = post_photo(doctor_client, encoded(image, "PNG"))

    assert response.status_code == 302, response.content.decode()[:2000]
    instance, _raw, ds = stored_object()
    assert instance.sop_class_uid == SC_CLASS
    assert ds.SOPClassUID == SC_CLASS
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "张^三丰"
    assert ds.PatientID == "MZ-20260001"
    assert ds.PatientSex == "M"
    assert ds.PatientBirthDate == "19580309"
    assert ds.StudyDescription == "胸部正位片"
    assert ds.AccessionNumber == "A123"
    assert ds.Modality == "OT"
    assert ds.ConversionType == "DF"
    assert ds.LossyImageCompression == "00"
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration) == (
        "RGB",
        3,
        0,
    )
    assert (ds.Rows, ds.Columns) == (77, 123)
    assert np.array_equal(ds.pixel_array, np.asarray(image))
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    assert study.origin == network["clinic"]
    assert study.patient.patient_name == "张^三丰"
    assert study.modalities_in_study == "OT"


def test_it_wraps_a_jpeg_without_its_exif_and_upright(doctor_client: Client):
    image = noise((64, 40), seed=3)
    # Orientation 6: the camera was turned; the picture is shown rotated 90° clockwise.
    data = encoded(image, "JPEG", quality=92, exif=exif_with_gps(orientation=6))
    assert SECRET.encode() in data

    response = post_photo(doctor_client, data, name="ecg.jpg", kind="ecg", patient_name="李四")

    assert response.status_code == 302
    _instance, raw, ds = stored_object()
    assert SECRET.encode() not in raw
    assert b"Exif" not in raw
    assert str(ds.PatientName) == "李四"
    assert ds.ConversionType == "SD"
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"
    assert (ds.Rows, ds.Columns) == (64, 40)
    decoded = Image.open(io.BytesIO(data))
    upright = decoded.transpose(Image.Transpose.ROTATE_270).convert("RGB")
    assert np.array_equal(ds.pixel_array, np.asarray(upright))


def test_it_keeps_a_grey_png_grey(doctor_client: Client):
    image = noise((31, 17), mode="L")

    response = post_photo(doctor_client, encoded(image, "PNG"))

    assert response.status_code == 302
    _instance, _raw, ds = stored_object()
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert (ds.BitsAllocated, ds.SamplesPerPixel) == (8, 1)
    assert np.array_equal(ds.pixel_array, np.asarray(image))


def test_it_keeps_sixteen_bit_grey_as_sixteen_bits():
    values = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    data = encoded(Image.fromarray(values), "PNG")

    pixels = read_photo(io.BytesIO(data), size=len(data))
    ds = build_secondary_capture(pixels, PhotoDetails(patient_name="王五", patient_id="X"))

    assert ds.BitsAllocated == 16
    assert np.array_equal(ds.pixel_array, values)


def test_it_flattens_transparency_onto_white():
    image = Image.new("RGBA", (4, 2), (0, 0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0, 255))
    data = encoded(image, "PNG")

    pixels = read_photo(io.BytesIO(data), size=len(data))

    assert pixels.data[:6] == bytes([255, 0, 0, 255, 255, 255])


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"%PDF-1.4 not a photo", "report.pdf"),
        ("一张图片".encode() * 20, "photo.png"),
        (encoded(noise((8, 8)), "GIF"), "anim.gif"),
    ],
)
def test_it_refuses_what_is_not_a_jpeg_or_png(doctor_client: Client, data: bytes, name: str):
    response = post_photo(doctor_client, data, name=name)

    assert response.status_code == 400
    assert "JPEG" in response.content.decode()
    assert not Instance.objects.exists()


def test_it_refuses_a_truncated_image(doctor_client: Client):
    data = encoded(noise((200, 200)), "JPEG")[:1500]

    response = post_photo(doctor_client, data, name="cut.jpg")

    assert response.status_code == 400
    assert not Instance.objects.exists()


def test_it_refuses_too_many_pixels_and_too_many_bytes(doctor_client: Client, settings: Any):
    data = encoded(noise((100, 100)), "PNG")
    settings.UPLOAD_PHOTO_MAX_PIXELS = 5000
    assert post_photo(doctor_client, data).status_code == 413
    settings.UPLOAD_PHOTO_MAX_PIXELS = 50_000_000
    settings.UPLOAD_PHOTO_MAX_BYTES = len(data) - 1
    assert post_photo(doctor_client, data).status_code == 413
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("patient_name", "张\\三"), ("patient_id", ""), ("patient_birth_date", "2999-01-01")],
)
def test_it_refuses_bad_patient_details(doctor_client: Client, field: str, value: str):
    response = post_photo(doctor_client, encoded(noise((8, 8)), "PNG"), **{field: value})

    assert response.status_code == 400
    assert not Instance.objects.exists()


def test_it_shows_the_form_only_to_people_who_send_studies(
    client_for: Any, doctor_client: Client, network: dict[str, Any]
):
    analyst = client_for(make_user(institution=network["bureau"], role=Role.BUREAU_ANALYST))

    assert doctor_client.get(URL).status_code == 200
    assert analyst.get(URL).status_code == 403
    assert post_photo(analyst, encoded(noise((8, 8)), "PNG")).status_code == 403
    assert Client().get(URL).status_code == 302
    assert not Instance.objects.exists()


def test_it_gives_every_photo_new_uids(doctor_client: Client):
    data = encoded(noise((8, 8)), "PNG")

    post_photo(doctor_client, data)
    post_photo(doctor_client, data)

    assert Study.objects.count() == 2
    assert Study.objects.values("patient").distinct().count() == 1


def test_it_sends_for_the_institution_chosen_by_a_person_with_several(
    client_for: Any, network: dict[str, Any]
):
    from hospitals.services import membership_grant

    user = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    membership_grant(user=user, institution=network["county"], role=Role.TECHNICIAN)
    client = client_for(user)
    data = encoded(noise((8, 8)), "PNG")

    unnamed = post_photo(client, data)
    named = post_photo(client, data, institution=str(network["county"].uuid))

    assert unnamed.status_code == 400
    assert named.status_code == 302
    assert Study.objects.get().origin == network["county"]
