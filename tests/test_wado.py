"""WADO-RS on both archive stores: objects, metadata, bulk data, frames, rendered, thumbnails."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
import pytest
from django.test import Client
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_color_lut

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from studies.models import Instance, Study
from tests.dicom_helpers import bundled_file_bytes, random_uid, to_bytes
from tests.dicomweb_helpers import ct, ingest, multipart_parts, sha256
from tests.factories import make_user
from tests.fixtures.archive import archive  # noqa: F401 - fixture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("archive")]

DICOM_MULTIPART = 'multipart/related; type="application/dicom"'
OCTET_MULTIPART = 'multipart/related; type="application/octet-stream"'


@pytest.fixture
def owner(network: dict[str, Any]) -> Any:
    return make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)


@pytest.fixture
def client(client_for: Any, owner: Any) -> Client:
    return client_for(owner)


@pytest.fixture
def outsider_client(client_for: Any, network: dict[str, Any]) -> Client:
    return client_for(make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR))


@pytest.fixture
def store(owner: Any, network: dict[str, Any]) -> Any:
    def _store(*objects: Any) -> None:
        ingest(*objects, user=owner, institution=network["clinic"])

    return _store


def fresh(name: str, **attributes: Any) -> Dataset:
    """Return a bundled pydicom file with fresh UIDs (the bundled ones are shared)."""
    ds = pydicom.dcmread(io.BytesIO(bundled_file_bytes(name)))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = random_uid(), random_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = random_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def instance_url(ds: Dataset) -> str:
    return (
        f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def frames(client: Client, ds: Dataset, frame_list: str, accept: str = OCTET_MULTIPART) -> Any:
    return client.get(f"{instance_url(ds)}/frames/{frame_list}", headers={"Accept": accept})


def image(response: Any) -> Image.Image:
    assert response.status_code == 200, response.content
    picture = Image.open(io.BytesIO(response.content))
    picture.load()
    return picture


# --- retrieve ------------------------------------------------------------------------


def test_it_retrieves_a_study_byte_for_byte_as_a_stream(client: Client, store: Any):
    study, first, second = random_uid(), random_uid(), random_uid()
    objects = [
        to_bytes(ct(study_uid=study, series_uid=first, SeriesNumber=1, InstanceNumber=1)),
        to_bytes(ct(study_uid=study, series_uid=first, SeriesNumber=1, InstanceNumber=2)),
        to_bytes(ct(study_uid=study, series_uid=second, SeriesNumber=2, Modality="MR")),
    ]
    store(*objects)
    response = client.get(f"/dicom-web/studies/{study}", headers={"Accept": DICOM_MULTIPART})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith(DICOM_MULTIPART)
    parts = multipart_parts(response)
    assert [sha256(body) for _h, body in parts] == [sha256(o) for o in objects]
    assert parts[0][0]["content-type"] == ("application/dicom; transfer-syntax=1.2.840.10008.1.2.1")
    series = client.get(f"/dicom-web/studies/{study}/series/{second}")
    assert [sha256(b) for _h, b in multipart_parts(series)] == [sha256(objects[2])]


def test_it_retrieves_an_instance_in_its_stored_syntax(client: Client, store: Any):
    ds = fresh("JPEG2000.dcm")
    data = to_bytes(ds)
    store(data)
    for accept in (
        DICOM_MULTIPART,
        f"{DICOM_MULTIPART}; transfer-syntax=*",
        f"{DICOM_MULTIPART}; transfer-syntax=1.2.840.10008.1.2.4.91",
        "*/*",
    ):
        response = client.get(instance_url(ds), headers={"Accept": accept})
        assert [sha256(b) for _h, b in multipart_parts(response)] == [sha256(data)], accept
    single = client.get(instance_url(ds), headers={"Accept": "application/dicom"})
    assert single["Content-Type"].startswith("application/dicom")
    assert sha256(b"".join(single.streaming_content)) == sha256(data)


@pytest.mark.parametrize(
    "accept",
    [
        f"{DICOM_MULTIPART}; transfer-syntax=1.2.840.10008.1.2.4.50",
        "application/dicom+json",
        "image/jpeg",
        "application/zip",
    ],
)
def test_it_answers_406_when_nothing_acceptable_can_be_sent(
    client: Client, store: Any, accept: str
):
    ds = ct()
    store(ds)
    response = client.get(f"/dicom-web/studies/{ds.StudyInstanceUID}", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.json()["error"]


def test_every_route_is_404_for_an_outsider_and_for_unknown_uids(
    client: Client, outsider_client: Client, store: Any
):
    ds = ct()
    store(ds)
    study = f"/dicom-web/studies/{ds.StudyInstanceUID}"
    series = f"{study}/series/{ds.SeriesInstanceUID}"
    instance = instance_url(ds)
    routes = [
        study,
        f"{study}/metadata",
        f"{study}/thumbnail",
        series,
        f"{series}/metadata",
        f"{series}/thumbnail",
        instance,
        f"{instance}/metadata",
        f"{instance}/frames/1",
        f"{instance}/frames/1/rendered",
        f"{instance}/rendered",
        f"{instance}/thumbnail",
        f"{instance}/bulk/7FE00010",
    ]
    for url in routes:
        assert client.get(url).status_code == 200, url
        hidden = outsider_client.get(url)
        assert hidden.status_code == 404, url
        unknown = client.get(url.replace(ds.SOPInstanceUID, random_uid()))
        if ds.SOPInstanceUID in url:
            assert unknown.status_code == 404, url
        assert Client().get(url).status_code == 401, url
    assert client.get(f"/dicom-web/studies/{random_uid()}").status_code == 404
    other_series = f"{study}/series/{random_uid()}/instances/{ds.SOPInstanceUID}"
    assert client.get(other_series).status_code == 404


def test_a_frame_follows_a_grant_to_one_user_and_its_revocation(
    client_for: Any, network: dict[str, Any], store: Any
):
    """Frames check the grant in their one statement: a user's own grant, not a group's."""
    from studies.access import study_access_grant, study_access_revoke

    ds = ct()
    store(ds)
    url = f"{instance_url(ds)}/frames/1"
    reader = make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR)
    reader_client = client_for(reader)
    assert reader_client.get(url).status_code == 404
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    study_access_grant(
        study=study, grantee=reader, codenames=["view_study"], source="test", source_ref="1"
    )
    assert reader_client.get(url).status_code == 200
    # Another permission on the study opens nothing.
    study_access_revoke(source="test", source_ref="1")
    study_access_grant(
        study=study, grantee=reader, codenames=["report_study"], source="test", source_ref="2"
    )
    assert reader_client.get(url).status_code == 404
    # An inactive user is refused whatever they were granted.
    study_access_grant(
        study=study, grantee=reader, codenames=["view_study"], source="test", source_ref="3"
    )
    assert reader_client.get(url).status_code == 200
    reader.is_active = False
    reader.save(update_fields=["is_active"])
    assert reader_client.get(url).status_code in (401, 404)


# --- metadata and bulk data ----------------------------------------------------------


def test_metadata_has_absolute_bulk_data_uris_that_answer(client: Client, store: Any):
    ds = ct()
    store(ds)
    response = client.get(f"{instance_url(ds)}/metadata")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    [metadata] = response.json()
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert uri == f"http://testserver{instance_url(ds)}/bulk/7FE00010"
    assert metadata["00100020"]["Value"] == ["P-1"]
    assert metadata["00083002"]["Value"] == ["1.2.840.10008.1.2.1"]
    bulk = client.get(uri.removeprefix("http://testserver"))
    [(_headers, body)] = multipart_parts(bulk)
    assert body == ds.PixelData
    raw = client.get(
        uri.removeprefix("http://testserver"), headers={"Accept": "application/octet-stream"}
    )
    assert b"".join(raw.streaming_content) == ds.PixelData


def test_metadata_at_study_and_series_level_lists_every_instance(client: Client, store: Any):
    study, first, second = random_uid(), random_uid(), random_uid()
    datasets = [
        ct(study_uid=study, series_uid=first),
        ct(study_uid=study, series_uid=first),
        ct(study_uid=study, series_uid=second),
    ]
    store(*datasets)
    study_meta = client.get(f"/dicom-web/studies/{study}/metadata")
    assert study_meta.status_code == 200
    found = json_list(study_meta)
    assert {m["00080018"]["Value"][0] for m in found} == {d.SOPInstanceUID for d in datasets}
    for item in found:
        sop = item["00080018"]["Value"][0]
        series = item["0020000E"]["Value"][0]
        assert item["7FE00010"]["BulkDataURI"].endswith(
            f"/studies/{study}/series/{series}/instances/{sop}/bulk/7FE00010"
        )
    series_meta = json_list(client.get(f"/dicom-web/studies/{study}/series/{second}/metadata"))
    assert [m["00080018"]["Value"][0] for m in series_meta] == [datasets[2].SOPInstanceUID]
    refused = client.get(f"/dicom-web/studies/{study}/metadata", headers={"Accept": "text/html"})
    assert refused.status_code == 406


def json_list(response: Any) -> list[dict[str, Any]]:
    import json

    assert response.status_code == 200, response
    return json.loads(b"".join(response.streaming_content))


def test_bulk_data_of_a_compressed_object_is_its_frames_as_stored(client: Client, store: Any):
    ds = fresh("SC_rgb_rle_2frame.dcm")
    store(ds)
    response = client.get(f"{instance_url(ds)}/bulk/7FE00010")
    parts = multipart_parts(response)
    assert [body for _h, body in parts] == list(generate_frames(ds.PixelData, number_of_frames=2))
    assert parts[0][0]["content-type"].startswith("image/dicom-rle")
    assert client.get(f"{instance_url(ds)}/bulk/00100010x").status_code == 404
    assert client.get(f"{instance_url(ds)}/bulk/00091001").status_code == 404


# --- frames --------------------------------------------------------------------------


def test_frames_of_a_native_ct_are_its_pixel_bytes(client: Client, store: Any):
    ds = ct()
    store(ds)
    response = frames(client, ds, "1")
    assert response.status_code == 200
    assert response["Content-Type"].startswith(OCTET_MULTIPART)
    [(headers, body)] = multipart_parts(response)
    assert body == ds.PixelData
    assert headers["content-type"] == (
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    )
    # No Accept, or a wildcard, gets the default: uncompressed bytes.
    for accept in ("*/*", 'multipart/related; type="*/*"'):
        assert multipart_parts(frames(client, ds, "1", accept))[0][1] == ds.PixelData


def test_frames_of_a_native_multiframe_object_are_read_by_range(client: Client, store: Any):
    ds = fresh("rtdose.dcm")  # implicit VR, 15 frames of 32 bits
    store(ds)
    size = ds.Rows * ds.Columns * 4
    instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert instance.pixel_data_offset is not None
    parts = multipart_parts(frames(client, ds, "3,1,15"))
    expected = [ds.PixelData[(n - 1) * size : n * size] for n in (3, 1, 15)]
    assert [body for _h, body in parts] == expected


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("JPEG2000.dcm", 1),
        ("MR_small_RLE.dcm", 1),
        ("SC_rgb_rle_2frame.dcm", 2),
        ("SC_rgb_jpeg_dcmtk.dcm", 1),
    ],
)
def test_compressed_frames_are_decoded_on_the_server(
    client: Client, store: Any, name: str, frame: int
):
    ds = fresh(name)
    store(ds)
    [(headers, body)] = multipart_parts(frames(client, ds, str(frame)))
    expected = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) > 1:
        expected = expected[frame - 1]
    assert body == expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    assert headers["content-type"].startswith("application/octet-stream")


def test_compressed_frames_are_sent_as_stored_when_asked_for(client: Client, store: Any):
    ds = fresh("JPEG2000.dcm")
    store(ds)
    stored = next(generate_frames(ds.PixelData, number_of_frames=1))
    for accept in (
        'multipart/related; type="image/jp2"',
        'multipart/related; type="image/jp2"; transfer-syntax=1.2.840.10008.1.2.4.91',
        f"{OCTET_MULTIPART}; transfer-syntax=*",
    ):
        response = frames(client, ds, "1", accept)
        assert response["Content-Type"].startswith('multipart/related; type="image/jp2"'), accept
        [(headers, body)] = multipart_parts(response)
        assert body == stored
        assert headers["content-type"] == "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.91"
    assert frames(client, ds, "1", 'multipart/related; type="image/jpeg"').status_code == 406
    native = ct()
    store(native)
    assert frames(client, native, "1", 'multipart/related; type="image/jp2"').status_code == 406


@pytest.mark.parametrize(
    ("frame_list", "status"), [("0", 400), ("2", 404), ("a", 400), ("1,", 400)]
)
def test_bad_frame_numbers(client: Client, store: Any, frame_list: str, status: int):
    ds = ct()
    store(ds)
    assert frames(client, ds, frame_list).status_code == status


def test_an_object_without_pixels_has_no_frames(client: Client, store: Any):
    ds = ct()
    del ds.PixelData
    store(ds)
    assert frames(client, ds, "1").status_code == 404
    assert client.get(f"{instance_url(ds)}/rendered").status_code == 404


# --- rendered and thumbnails ---------------------------------------------------------


def test_rendered_is_a_jpeg_by_default_and_a_png_on_request(client: Client, store: Any):
    ds = ct()
    store(ds)
    jpeg = client.get(f"{instance_url(ds)}/rendered")
    assert jpeg["Content-Type"] == "image/jpeg"
    assert image(jpeg).format == "JPEG"
    assert image(jpeg).size == (128, 128)
    png = client.get(f"{instance_url(ds)}/rendered", headers={"Accept": "image/png"})
    assert png["Content-Type"] == "image/png"
    assert image(png).mode == "L"
    frame = client.get(f"{instance_url(ds)}/frames/1/rendered", headers={"Accept": "image/*"})
    assert image(frame).format == "JPEG"
    gif = client.get(f"{instance_url(ds)}/rendered", headers={"Accept": "image/gif"})
    assert gif.status_code == 406


def test_the_window_changes_the_pixels(client: Client, store: Any):
    ds = ct()
    store(ds)

    def pixels(**params: str) -> np.ndarray:
        response = client.get(
            f"{instance_url(ds)}/rendered", params, headers={"Accept": "image/png"}
        )
        return np.asarray(image(response))

    narrow, wide = pixels(window="40,80,linear"), pixels(window="40,4000")
    assert not np.array_equal(narrow, wide)
    # A narrow window saturates more pixels at black or white.
    assert np.isin(narrow, (0, 255)).sum() > np.isin(wide, (0, 255)).sum()
    assert not np.array_equal(pixels(window="40,400,sigmoid"), pixels(window="40,400"))
    default = pixels()
    assert default.min() < default.max()
    small = pixels(viewport="64,32")
    assert small.shape == (32, 32)
    for bad in ({"window": "40"}, {"window": "a,b"}, {"window": "40,0"}, {"viewport": "0,10"}):
        response = client.get(f"{instance_url(ds)}/rendered", bad)
        assert response.status_code == 400, bad
    assert client.get(f"{instance_url(ds)}/rendered", {"quality": "101"}).status_code == 400
    low = client.get(f"{instance_url(ds)}/rendered", {"quality": "5"})
    high = client.get(f"{instance_url(ds)}/rendered", {"quality": "95"})
    assert len(low.content) < len(high.content)


def test_monochrome1_is_inverted(client: Client, store: Any):
    study = random_uid()
    two = ct(study_uid=study, WindowCenter=40, WindowWidth=400)
    one = ct(study_uid=study, WindowCenter=40, WindowWidth=400)
    one.PhotometricInterpretation = "MONOCHROME1"
    store(two, one)

    def pixels(ds: Dataset) -> np.ndarray:
        response = client.get(f"{instance_url(ds)}/rendered", headers={"Accept": "image/png"})
        return np.asarray(image(response)).astype(int)

    assert np.array_equal(pixels(one), 255 - pixels(two))


def test_colour_and_multiframe_objects_render(client: Client, store: Any):
    rgb = fresh("SC_rgb_rle_2frame.dcm")
    ybr = fresh("SC_rgb_jpeg_dcmtk.dcm")
    store(rgb, ybr)
    png = {"Accept": "image/png"}
    first = image(client.get(f"{instance_url(rgb)}/frames/1/rendered", headers=png))
    second = image(client.get(f"{instance_url(rgb)}/frames/2/rendered", headers=png))
    assert first.mode == "RGB"
    assert np.array_equal(np.asarray(first), rgb.pixel_array[0])
    assert not np.array_equal(np.asarray(first), np.asarray(second))
    assert client.get(f"{instance_url(rgb)}/frames/3/rendered").status_code == 404
    assert client.get(f"{instance_url(rgb)}/frames/1,2/rendered").status_code == 400
    decoded = np.asarray(
        image(client.get(f"{instance_url(ybr)}/rendered", headers={"Accept": "image/png"}))
    ).astype(int)
    assert np.abs(decoded - ybr.pixel_array.astype(int)).max() <= 2  # YBR shown as RGB


def test_palette_colour_and_native_multiframe_objects_render(client: Client, store: Any):
    palette = fresh("examples_palette.dcm")
    dose = fresh("rtdose.dcm")
    store(palette, dose)
    png = {"Accept": "image/png"}
    shown = np.asarray(image(client.get(f"{instance_url(palette)}/rendered", headers=png)))
    expected = apply_color_lut(palette.pixel_array, palette).astype(float) * 255 / 65535
    assert shown.shape == (*palette.pixel_array.shape, 3)
    assert np.abs(shown - expected).max() <= 1
    last = image(client.get(f"{instance_url(dose)}/frames/15/rendered", headers=png))
    first = image(client.get(f"{instance_url(dose)}/frames/1/rendered", headers=png))
    assert last.size == (dose.Columns, dose.Rows)
    assert not np.array_equal(np.asarray(first), np.asarray(last))


def test_thumbnails_at_every_level(client: Client, store: Any):
    study, series = random_uid(), random_uid()
    store(
        *(ct(study_uid=study, series_uid=series, InstanceNumber=n) for n in (1, 2, 3)),
        fresh("JPEG2000.dcm", StudyInstanceUID=study, PatientID="P-1"),
    )
    urls = [
        f"/dicom-web/studies/{study}/thumbnail",
        f"/dicom-web/studies/{study}/series/{series}/thumbnail",
    ]
    ds = Instance.objects.filter(series__series_instance_uid=series).first()
    assert ds is not None
    urls.append(
        f"/dicom-web/studies/{study}/series/{series}/instances/{ds.sop_instance_uid}/thumbnail"
    )
    for url in urls:
        picture = image(client.get(url))
        assert picture.format == "JPEG"
        assert max(picture.size) <= 128
    big = fresh("JPEG2000.dcm")
    store(big)
    picture = image(client.get(f"{instance_url(big)}/thumbnail"))
    assert picture.size == (32, 128)  # 1024 x 256, shrunk to fit 128 x 128
    assert image(client.get(f"{instance_url(big)}/thumbnail", {"viewport": "64,64"})).size == (
        16,
        64,
    )


# --- audit ---------------------------------------------------------------------------


def test_each_retrieval_writes_one_audit_row_with_references_only(
    client: Client, store: Any, owner: Any
):
    ds = ct(PatientName="Li^Si")
    store(ds)
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    reads = {
        "study.retrieve": f"/dicom-web/studies/{ds.StudyInstanceUID}",
        "study.metadata": f"{instance_url(ds)}/metadata",
        "study.frames": f"{instance_url(ds)}/frames/1",
        "study.rendered": f"{instance_url(ds)}/rendered",
        "study.bulk": f"{instance_url(ds)}/bulk/7FE00010",
        "study.thumbnail": f"/dicom-web/studies/{ds.StudyInstanceUID}/thumbnail",
    }
    for action, url in reads.items():
        before = AuditEvent.objects.count()
        response = client.get(url)
        assert response.status_code == 200, url
        if response.streaming:
            b"".join(response.streaming_content)
        assert AuditEvent.objects.count() == before + 1, url
        event = AuditEvent.objects.latest("pk")
        assert event.action == action
        assert event.actor == owner
        assert event.study_uid == ds.StudyInstanceUID
        assert event.object_id == str(study.uuid)
        assert event.patient_ref == str(study.patient.uuid)
        assert "Li" not in str(event.detail)
