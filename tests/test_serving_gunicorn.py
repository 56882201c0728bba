"""The production HTTP server: gunicorn (gthread workers, WSGI) serving the hub.

The server is started with the command README's deployment section gives
(``gunicorn -c regional_cloud/gunicorn.conf.py``, through benchmarks.hub, the
same function the archive benchmark uses) against the test database; STOW-RS
and WADO-RS go through it over real HTTP, and a large STOW is checked to be
streamed (the worker's peak memory stays far below the body's size).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from benchmarks import hub as hubs
from benchmarks.data import copies, generated_body, new_boundary, stow_content_type, write_ct
from hospitals.models import Role
from hospitals.services import api_token_create
from studies.multipart import MultipartReader, parse_content_type
from tests.dicom_helpers import random_uid, to_bytes
from tests.dicomweb_helpers import ct
from tests.factories import make_network, make_user
from tests.fixtures.browser import _database_url_from_settings

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("transactional_db")]
DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'


@pytest.fixture
def gunicorn_hub(transactional_db: None, tmp_path: Path) -> Iterator[hubs.HubServer]:
    """gunicorn on a free port serving the test database, one worker of four threads.

    One per test: the database is flushed between tests, which gives content
    types new ids that a running server would still hold in its cache.
    """
    directory = tmp_path / "gunicorn"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        DATABASE_URL=_database_url_from_settings(),
        ARCHIVE_URL=f"file://{directory / 'archive'}",
        DJANGO_SETTINGS_MODULE="regional_cloud.settings",
    )
    server = hubs.start_gunicorn(env, directory, workers=1, threads=4)
    yield server
    server.stop()


@pytest.fixture
def token() -> str:
    network = make_network()
    doctor = make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR)
    return api_token_create(user=doctor, name="gunicorn test")[1]


def stow(hub: hubs.HubServer, token: str, payloads: list[bytes]) -> requests.Response:
    boundary = new_boundary()
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
            for p in payloads
        )
        + f"--{boundary}--\r\n".encode()
    )
    return requests.post(
        f"{hub.url}/dicom-web/studies",
        data=body,
        headers={
            "Content-Type": stow_content_type(boundary),
            "Accept": DICOM_JSON,
            "Authorization": f"Bearer {token}",
        },
        timeout=120,
    )


def parts_of(response: requests.Response) -> list[bytes]:
    _media, params = parse_content_type(response.headers["Content-Type"])
    reader = MultipartReader(io.BytesIO(response.content), params["boundary"])
    out = []
    for part in reader.parts():
        out.append(part.stream.read())
        part.close()
    return out


def test_gunicorn_stores_and_retrieves_a_series(gunicorn_hub: hubs.HubServer, token: str) -> None:
    study, series = random_uid(), random_uid()
    payloads = [
        to_bytes(ct(study_uid=study, series_uid=series, InstanceNumber=n)) for n in (1, 2, 3)
    ]

    stored = stow(gunicorn_hub, token, payloads)

    assert stored.status_code == 200, stored.text
    assert len(stored.json()["00081199"]["Value"]) == 3
    retrieved = requests.get(
        f"{gunicorn_hub.url}/dicom-web/studies/{study}/series/{series}",
        headers={"Accept": MULTIPART_DICOM, "Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.headers["Content-Type"].startswith(MULTIPART_DICOM)
    assert parts_of(retrieved) == payloads  # byte-identical, in instance order
    # Sized in advance from the index: sent as it is read, without chunked framing.
    assert "chunked" not in retrieved.headers.get("Transfer-Encoding", "")
    assert int(retrieved.headers["Content-Length"]) == len(retrieved.content)


def test_gunicorn_answers_an_anonymous_caller_401(gunicorn_hub: hubs.HubServer) -> None:
    response = requests.get(f"{gunicorn_hub.url}/dicom-web/studies", timeout=30)

    assert response.status_code == 401


def test_a_large_stow_through_gunicorn_is_streamed_not_buffered(
    gunicorn_hub: hubs.HubServer, token: str, tmp_path: Path
) -> None:
    """150 MB in one request raises the worker's peak memory by far less than that."""
    [worker] = gunicorn_hub.serving_pids()
    if not hubs.reset_peak_rss(worker):
        pytest.skip("this kernel does not let us reset a process's peak memory (clear_refs)")
    series = write_ct(tmp_path / "ct", slices=1)
    template = series.slices[0]
    size = template.path.stat().st_size
    count = round(150e6 / size)
    boundary = new_boundary()
    body = generated_body(boundary, lambda: copies(template, series, 77, count), count, size)
    rss_before = hubs.proc_status_kb(worker, "VmRSS")

    response = requests.post(
        f"{gunicorn_hub.url}/dicom-web/studies",
        data=body,
        headers={
            "Content-Type": stow_content_type(boundary),
            "Accept": DICOM_JSON,
            "Authorization": f"Bearer {token}",
        },
        timeout=280,
    )

    assert response.status_code == 200, response.text[:500]
    assert len(response.json()["00081199"]["Value"]) == count
    rise_mb = (hubs.proc_status_kb(worker, "VmHWM") - rss_before) / 1024
    # A server that held the body would rise by 150 MB or more; streamed, the
    # rise is buffers and what ingest keeps per instance until its commit.
    assert rise_mb < 80, f"peak memory rose {rise_mb:.0f} MB for a {len(body) / 1e6:.0f} MB STOW"
