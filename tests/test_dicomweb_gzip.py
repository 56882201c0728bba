"""DICOM JSON answers are gzipped for clients that take gzip; pixels and objects are not."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from hospitals.models import Role
from tests.dicom_helpers import random_uid
from tests.dicomweb_helpers import ct, ingest
from tests.factories import make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("file_archive")]

JSON = "application/dicom+json"


@pytest.fixture
def setup(network: dict[str, Any], client_for: Any) -> dict[str, Any]:
    owner = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    study_uid, series_uid = random_uid(), random_uid()
    sops = [random_uid() for _ in range(6)]
    ingest(
        *(ct(study_uid=study_uid, series_uid=series_uid, sop_uid=sop) for sop in sops),
        user=owner,
        institution=network["clinic"],
    )
    series = f"/dicom-web/studies/{study_uid}/series/{series_uid}"
    return {
        "client": client_for(owner),
        "series": series,
        "instance": f"{series}/instances/{sops[0]}",
    }


@pytest.mark.parametrize("path", ["{series}/metadata", "{series}/instances", "{instance}/metadata"])
def test_dicom_json_is_gzipped_when_the_client_takes_it(setup: dict[str, Any], path: str):
    url = path.format(**setup)
    client = setup["client"]
    plain = client.get(url, headers={"Accept": JSON})
    packed = client.get(url, headers={"Accept": JSON, "Accept-Encoding": "gzip, deflate, br"})

    assert plain.status_code == packed.status_code == 200
    assert not plain.has_header("Content-Encoding")
    assert packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    assert packed["Content-Type"].startswith(JSON)
    body = gzip.decompress(packed.getvalue())
    assert json.loads(body) == json.loads(plain.getvalue())
    assert len(packed.getvalue()) * 4 < len(body)


def test_frames_are_sent_as_they_are(setup: dict[str, Any]):
    response = setup["client"].get(
        f"{setup['instance']}/frames/1",
        headers={
            "Accept": 'multipart/related; type="application/octet-stream"',
            "Accept-Encoding": "gzip",
        },
    )
    assert response.status_code == 200
    assert not response.has_header("Content-Encoding")
