"""Fixity and reconcile find every difference between the archive and the index."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from hospitals.models import Role
from regional_cloud.models import AuditEvent
from studies.archive import ArchiveStore
from studies.models import Instance
from tests.dicom_helpers import ct_small, multipart, stow_content_type, to_bytes
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(archive: ArchiveStore, network: dict[str, Any], client_for: Any) -> list[Instance]:
    client = client_for(make_user(institution=network["clinic"], role=Role.CLINIC_DOCTOR))
    body = multipart(to_bytes(ct_small()) for _ in range(3))
    response = client.post("/dicom-web/studies", data=body, content_type=stow_content_type())
    assert response.status_code == 200
    return list(Instance.objects.order_by("pk"))


def run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_it_passes_on_an_intact_archive(stored: list[Instance]):
    assert "3 checked, 0 mismatched" in run("fixity")
    assert "0 rows without object, 0 objects without row" in run("reconcile")
    assert AuditEvent.objects.filter(action="archive.fixity", outcome="success").exists()


def test_fixity_reports_a_corrupted_object(stored: list[Instance], archive: ArchiveStore):
    victim = stored[1]
    archive.put(victim.archive_key, io.BytesIO(b"rotten bits"), overwrite=True)
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("fixity", stdout=out)
    assert f"MISMATCH {victim.archive_key}" in out.getvalue()
    assert AuditEvent.objects.filter(action="archive.fixity", outcome="failed").exists()


def test_fixity_samples(stored: list[Instance]):
    assert "2 checked" in run("fixity", "--sample", "2")


def test_reconcile_finds_rows_without_objects_and_orphans(
    stored: list[Instance], archive: ArchiveStore
):
    archive.delete(stored[0].archive_key)
    archive.put("dicom/1.2/3.4/5.6/0123456789abcdef.dcm", io.BytesIO(b"orphan"))
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("reconcile", stdout=out)
    text = out.getvalue()
    assert f"ROW WITHOUT OBJECT {stored[0].archive_key}" in text
    assert "OBJECT WITHOUT ROW dicom/1.2/3.4/5.6/0123456789abcdef.dcm" in text


def test_reconcile_deletes_orphans_only_when_asked(stored: list[Instance], archive: ArchiveStore):
    orphan = "dicom/1.2/3.4/5.6/0123456789abcdef.dcm"
    archive.put(orphan, io.BytesIO(b"orphan"))
    run("reconcile")
    assert archive.exists(orphan)
    text = run("reconcile", "--delete-orphans", "--grace", "0")
    assert "(deleted)" in text
    assert not archive.exists(orphan)
    assert all(archive.exists(i.archive_key) for i in stored)
