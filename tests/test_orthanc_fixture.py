"""The Orthanc fixture gives a real, authenticated Orthanc with DICOMweb."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import requests
from orthanc_api_client import ChangeType
from pydicom.data import get_testdata_file

from tests.fixtures.orthanc import Orthanc

pytestmark = [pytest.mark.orthanc, pytest.mark.timeout(90)]

CT_SMALL_STUDY_UID = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


def _ct_small() -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    with open(path, "rb") as handle:
        return handle.read()


def _changes_until(orthanc: Orthanc, change_type: str, since: int, timeout: float) -> list[str]:
    """Return ids of resources with ``change_type`` after ``since``, waiting for one."""
    deadline = time.monotonic() + timeout
    while True:
        changes, _last, _done = orthanc.client.get_changes(since=since, limit=1000)
        found = [c.resource_id for c in changes if c.change_type == change_type]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_it_stores_an_upload_and_reports_the_study_stable(orthanc: Orthanc) -> None:
    _changes, since, _done = orthanc.client.get_changes()

    instance_ids = orthanc.client.upload(_ct_small())

    assert len(instance_ids) == 1
    assert instance_ids[0] in orthanc.client.instances.get_all_ids()
    study_id = orthanc.client.get_json(f"instances/{instance_ids[0]}/study")["ID"]
    assert _changes_until(orthanc, ChangeType.STABLE_STUDY, since, timeout=30) == [study_id]


def test_it_refuses_requests_without_credentials(orthanc: Orthanc) -> None:
    anonymous = requests.get(f"{orthanc.url}/instances", timeout=5)
    wrong = requests.get(f"{orthanc.url}/instances", auth=(orthanc.user, "wrong"), timeout=5)

    assert anonymous.status_code == 401
    assert wrong.status_code == 401


def test_it_serves_dicomweb(orthanc: Orthanc) -> None:
    orthanc.client.upload(_ct_small())
    response = requests.get(
        f"{orthanc.url}/dicom-web/studies",
        auth=(orthanc.user, orthanc.password),
        headers={"Accept": "application/dicom+json"},
        timeout=5,
    )

    assert response.status_code == 200
    study_uids = [study["0020000D"]["Value"][0] for study in response.json()]
    assert CT_SMALL_STUDY_UID in study_uids


def test_it_takes_extra_config_such_as_a_dicomweb_server(
    orthanc_factory: Callable[..., Orthanc],
) -> None:
    edge = orthanc_factory(
        {"DicomWeb": {"Servers": {"hub": ["http://127.0.0.1:9/dicom-web/", "u", "p"]}}},
        name="second-edge",
        aet="EDGE2",
    )

    assert edge.client.get_json("dicom-web/servers") == ["hub"]
    assert edge.client.get_system()["DicomAet"] == "EDGE2"
    assert edge.client.get_system()["Name"] == "second-edge"
