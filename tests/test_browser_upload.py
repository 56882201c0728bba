"""A clinic doctor uploads files, a zip and a photo in Chromium, through dropped connections."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hospitals.models import Role
from studies.models import Instance, Study, UploadChunk
from tests.dicom_helpers import ct_small, to_bytes
from tests.factories import PASSWORD, make_network, make_user
from tests.fixtures.archive import file_archive  # noqa: F401 - fixture
from tests.fixtures.browser import screenshot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("file_archive"),
]

CHUNK = 16 * 1024
FINAL = {"stored", "already_stored", "partial", "refused", "failed"}


@pytest.fixture(autouse=True)
def fast_and_small(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.UPLOAD_CHUNK_SIZE = CHUNK


@pytest.fixture
def doctor() -> Any:
    network = make_network()
    network["clinic"].name = "石桥镇卫生院"
    network["clinic"].save(update_fields=["name"])
    return make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR, first_name="李明")


def log_in(page: Any, base: str, username: str) -> None:
    """Sign in and follow the home page's link to the upload page."""
    page.goto(f"{base}/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
    page.get_by_test_id("upload-link").click()
    wait_until_ready(page)


def wait_until_ready(page: Any) -> None:
    """Wait for the upload module to have wired the page (a file chosen earlier is lost)."""
    page.locator('[data-testid="dropzone"][data-ready="true"]').wait_for()


def payload(name: str, data: bytes, mime: str = "application/dicom") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


def rows(page: Any) -> Any:
    return page.locator("[data-testid=upload-row]")


def wait_until_finished(page: Any, count: int, timeout: float = 60_000) -> None:
    page.wait_for_function(
        """([count, final]) => {
            const rows = document.querySelectorAll('[data-testid=upload-row]');
            return rows.length === count && [...rows].every(r => final.includes(r.dataset.state));
        }""",
        arg=[count, sorted(FINAL)],
        timeout=timeout,
    )


def row_named(page: Any, name: str) -> Any:
    return rows(page).filter(has=page.locator(".upload-list__name", has_text=name))


def test_it_uploads_files_and_a_zip_through_a_dropped_connection(
    page: Any, live_hub: str, doctor: Any
) -> None:
    first, second = ct_small(patient_name="王^小东"), ct_small(patient_id="P-2")
    first_bytes, second_bytes = to_bytes(first), to_bytes(second)
    assert len(first_bytes) > 2 * CHUNK  # three chunks each
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("光盘/IM0001", to_bytes(ct_small(patient_id="Z-1")))
        archive.writestr("光盘/IM0002", to_bytes(ct_small(patient_id="Z-1")))
        archive.writestr("光盘/说明.txt", "不是影像".encode())
    attempts: dict[str, int] = {}

    def flaky(route: Any) -> None:
        # The first attempt at each second chunk dies on the way, as on a bad line.
        url = route.request.url
        attempts[url] = attempts.get(url, 0) + 1
        if attempts[url] == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    log_in(page, live_hub, doctor.username)
    screenshot(page, "upload-empty")
    page.route("**/api/uploads/*/chunks/1", flaky)
    page.get_by_test_id("file-input").set_input_files(
        [
            payload("胸片-王小东.dcm", first_bytes),
            payload("CT_P2.dcm", second_bytes),
            payload("损坏的文件.dcm", b"\x00" * 200 + b"not a dicom file"),
            payload("光盘.zip", zipped.getvalue(), "application/zip"),
        ]
    )

    wait_until_finished(page, 4)
    screenshot(page, "upload-done")
    assert row_named(page, "胸片-王小东.dcm").get_attribute("data-state") == "stored"
    assert row_named(page, "CT_P2.dcm").get_attribute("data-state") == "stored"
    broken = row_named(page, "损坏的文件.dcm")
    assert broken.get_attribute("data-state") == "refused"
    assert "DICOM" in broken.locator(".upload-note").inner_text()
    zip_row = row_named(page, "光盘.zip")
    assert zip_row.get_attribute("data-state") == "partial"  # one entry of three refused
    zip_row.locator("summary").click()
    entries = zip_row.locator(".upload-members li")
    assert entries.count() == 3
    assert zip_row.locator('.upload-members li[data-outcome="stored"]').count() == 2
    refused_entry = zip_row.locator('.upload-members li[data-outcome="refused"]')
    assert "说明.txt" in refused_entry.inner_text()
    for bar in page.locator("[data-testid=upload-row] .bar").all():
        assert bar.get_attribute("aria-valuenow") == "100"
    assert page.get_by_test_id("overall-bar").get_attribute("aria-valuenow") == "100"
    assert "4" in page.get_by_test_id("overall-label").inner_text()
    screenshot(page, "upload-zip-details")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "upload-done-phone")

    # Every second chunk failed once and went through on the retry.
    assert len(attempts) >= 3
    assert all(count == 2 for count in attempts.values())
    assert Instance.objects.count() == 4
    assert {s.origin_id for s in Study.objects.all()} == {doctor.memberships.get().institution_id}
    assert not UploadChunk.objects.exists()


def test_it_resumes_an_upload_after_the_page_is_reloaded(
    page: Any, live_hub: str, doctor: Any, tmp_path: Path
) -> None:
    ds = ct_small()
    # A file on disk, so choosing it again gives the same modification time, as in real life.
    file = tmp_path / "续传.dcm"
    file.write_bytes(to_bytes(ds))
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page while uploading?"
    log_in(page, live_hub, doctor.username)
    # The line goes down for the last chunk: it never gets through.
    page.route("**/api/uploads/*/chunks/2", lambda route: route.abort("internetdisconnected"))
    page.get_by_test_id("file-input").set_input_files([file])
    deadline = time.monotonic() + 30
    while UploadChunk.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert UploadChunk.objects.count() == 2
    # The row says it lost the connection and will try again.
    page.wait_for_function("document.querySelector('.upload-note').textContent.length > 0")
    screenshot(page, "upload-retrying")

    page.unroute("**/api/uploads/*/chunks/2")
    page.reload()
    wait_until_ready(page)
    assert not page.locator("#upload-resume-hint").is_hidden()
    sent: list[str] = []
    page.on(
        "request", lambda request: sent.append(request.url) if "/chunks/" in request.url else None
    )
    page.get_by_test_id("file-input").set_input_files([file])

    wait_until_finished(page, 1)
    assert rows(page).first.get_attribute("data-state") == "stored"
    assert [url.rsplit("/", 1)[1] for url in sent] == ["2"]
    assert Instance.objects.filter(sop_instance_uid=ds.SOPInstanceUID).exists()


def test_it_stores_a_photo_of_a_film(page: Any, live_hub: str, doctor: Any) -> None:
    rng = np.random.default_rng(5)
    image = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    log_in(page, live_hub, doctor.username)

    page.get_by_test_id("photo-link").click()
    form = page.get_by_test_id("photo-form")
    form.wait_for()
    form.locator("input[name=photo]").set_input_files([payload("胸片.png", buffer.getvalue())])
    form.locator("input[name=patient_name]").fill("张三")
    form.locator("input[name=patient_id]").fill("MZ-001")
    form.locator("select[name=patient_sex]").select_option("F")
    form.locator("input[name=patient_birth_date]").fill("1961-05-02")
    form.locator("input[name=description]").fill("胸部正位片")
    screenshot(page, "upload-photo-form")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()

    page.locator(".alert-success").wait_for()
    screenshot(page, "upload-photo-stored")
    instance = Instance.objects.get()
    assert instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.7"
    assert instance.study.patient.patient_name == "张三"
