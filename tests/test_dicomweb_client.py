"""An independent DICOMweb client (PyPI dicomweb-client) against a live hub, over HTTP Basic."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.encaps import generate_frames

from hospitals.models import Role
from tests.dicom_helpers import bundled_file_bytes, random_uid
from tests.dicomweb_helpers import ct
from tests.factories import PASSWORD, make_network, make_user
from tests.fixtures.archive import archive  # noqa: F401 - fixture

pytestmark = [pytest.mark.usefixtures("archive", "transactional_db")]


@pytest.fixture
def client_as(live_server: Any) -> Iterator[Callable[..., DICOMwebClient]]:
    """Return ``client_as(user, password=PASSWORD)``: a DICOMweb client speaking HTTP Basic."""
    sessions: list[requests.Session] = []

    def _client_as(user: Any, password: str = PASSWORD) -> DICOMwebClient:
        session = requests.Session()
        session.auth = (user.username, password)
        # One request per connection: a kept-alive connection keeps its server
        # thread, and that thread its database connection (CONN_MAX_AGE), which
        # would stop pytest-django dropping the test database at the end.
        session.headers["Connection"] = "close"
        sessions.append(session)
        return DICOMwebClient(url=f"{live_server.url}/dicom-web", session=session)

    yield _client_as
    for session in sessions:
        session.close()


@pytest.fixture
def users() -> dict[str, Any]:
    network = make_network()
    return {
        "owner": make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR),
        "outsider": make_user(institution=network["other_clinic"], role=Role.CLINIC_DOCTOR),
    }


def test_a_dicomweb_client_stores_searches_and_retrieves(
    client_as: Callable[..., DICOMwebClient], users: dict[str, Any]
):
    client = client_as(users["owner"])
    study, series = random_uid(), random_uid()
    datasets = [
        ct(study_uid=study, series_uid=series, InstanceNumber=n, AccessionNumber="ACC-9")
        for n in (1, 2)
    ]
    compressed = pydicom.dcmread(io.BytesIO(bundled_file_bytes("JPEG2000.dcm")))
    compressed.StudyInstanceUID, compressed.SeriesInstanceUID = study, random_uid()
    compressed.SOPInstanceUID = compressed.file_meta.MediaStorageSOPInstanceUID = random_uid()
    compressed.PatientID = "P-1"

    # STOW-RS
    response = client.store_instances([*datasets, compressed])
    stored = [item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence]
    assert sorted(stored) == sorted(d.SOPInstanceUID for d in [*datasets, compressed])

    # QIDO-RS
    [found] = client.search_for_studies(search_filters={"AccessionNumber": "ACC-9"})
    assert found["0020000D"]["Value"] == [study]
    assert found["00201208"]["Value"] == [3]
    assert sorted(found["00080061"]["Value"]) == ["CT", "NM"]
    assert client.search_for_studies(search_filters={"PatientID": "nobody"}) == []
    paged = client.search_for_studies(limit=1, offset=0, fields=["StudyDescription"])
    assert len(paged) == 1
    series_found = client.search_for_series(study_instance_uid=study)
    assert {s["0020000E"]["Value"][0] for s in series_found} == {
        series,
        compressed.SeriesInstanceUID,
    }
    instances = client.search_for_instances(
        study_instance_uid=study, series_instance_uid=series, fields=["all"]
    )
    assert [i["00080018"]["Value"][0] for i in instances] == [d.SOPInstanceUID for d in datasets]

    # WADO-RS: objects
    retrieved = client.retrieve_study(study)
    assert sorted(r.SOPInstanceUID for r in retrieved) == sorted(stored)
    one = client.retrieve_instance(study, series, datasets[0].SOPInstanceUID)
    assert one.PixelData == datasets[0].PixelData
    assert one.PatientName == datasets[0].PatientName

    # WADO-RS: metadata, frames, rendered
    metadata = client.retrieve_instance_metadata(study, series, datasets[0].SOPInstanceUID)
    assert metadata["7FE00010"]["BulkDataURI"].endswith(
        f"/instances/{datasets[0].SOPInstanceUID}/bulk/7FE00010"
    )
    [frame] = client.retrieve_instance_frames(study, series, datasets[0].SOPInstanceUID, [1])
    assert frame == datasets[0].PixelData
    [frame] = client.retrieve_instance_frames(
        study,
        series,
        datasets[0].SOPInstanceUID,
        [1],
        media_types=("application/octet-stream",),
    )
    assert frame == datasets[0].PixelData
    compressed_args = (study, compressed.SeriesInstanceUID, compressed.SOPInstanceUID, [1])
    [decoded] = client.retrieve_instance_frames(*compressed_args)
    expected = compressed.pixel_array
    assert decoded == expected.astype(expected.dtype.newbyteorder("<")).tobytes()
    [as_stored] = client.retrieve_instance_frames(
        *compressed_args, media_types=(("image/jp2", "1.2.840.10008.1.2.4.91"),)
    )
    assert as_stored == next(generate_frames(compressed.PixelData, number_of_frames=1))
    png = client.retrieve_instance_rendered(
        study, series, datasets[0].SOPInstanceUID, media_types=("image/png",)
    )
    picture = Image.open(io.BytesIO(png))
    assert picture.format == "PNG"
    assert picture.size == (128, 128)
    jpeg = client.retrieve_instance_rendered(
        study, series, datasets[0].SOPInstanceUID, params={"window": "40,400", "quality": "80"}
    )
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    assert np.asarray(Image.open(io.BytesIO(jpeg))).std() > 0


def test_an_outsider_finds_nothing_and_retrieves_nothing(
    client_as: Callable[..., DICOMwebClient], users: dict[str, Any]
):
    owner = client_as(users["owner"])
    ds = ct()
    owner.store_instances([ds])
    outsider = client_as(users["outsider"])
    assert outsider.search_for_studies() == []
    with pytest.raises(requests.HTTPError) as raised:
        outsider.retrieve_study(ds.StudyInstanceUID)
    assert raised.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as raised:
        outsider.search_for_series(study_instance_uid=ds.StudyInstanceUID)
    assert raised.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as raised:
        client_as(users["owner"], "wrong password").search_for_studies()
    assert raised.value.response.status_code == 401
