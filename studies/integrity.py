"""Fixity and reconciliation: proof that the archive holds exactly what the index says.

Fixity re-hashes stored objects and compares them with the SHA-256 recorded at
ingest. Reconcile compares the two sides as sets: index rows whose object is
gone, and objects no row refers to (orphans, e.g. from a request that failed
between the archive put and the commit of its rows).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db.models import QuerySet

from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent
from studies.archive import ArchiveError, ArchiveNotFoundError, ArchiveStore, get_store
from studies.models import Instance

CHUNK = 1000
DICOM_PREFIX = "dicom/"


@dataclass
class FixityReport:
    checked: int = 0
    mismatched: list[str] = field(default_factory=list)  # archive keys
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatched or self.missing or self.unreadable)


def fixity_check(*, sample: int | None = None, study_uid: str | None = None) -> FixityReport:
    """Re-hash every object (or a random sample of ``sample``) and report each mismatch."""
    rows: QuerySet[Instance] = Instance.objects.all()
    if study_uid:
        rows = rows.filter(study__study_instance_uid=study_uid)
    rows = rows.order_by("?")[:sample] if sample is not None else rows.order_by("pk")
    store = get_store()
    report = FixityReport()
    for key, sha256, size in rows.values_list("archive_key", "sha256", "size_bytes").iterator(
        chunk_size=CHUNK
    ):
        report.checked += 1
        try:
            actual = _hash_and_size(store, key)
        except ArchiveNotFoundError:
            report.missing.append(key)
            continue
        except ArchiveError:
            report.unreadable.append(key)
            continue
        if actual != (sha256, size):
            report.mismatched.append(key)
    audit(
        action="archive.fixity",
        object_type="archive",
        outcome=AuditEvent.Outcome.SUCCESS if report.ok else AuditEvent.Outcome.FAILED,
        detail={
            "checked": report.checked,
            "mismatched": len(report.mismatched),
            "missing": len(report.missing),
            "unreadable": len(report.unreadable),
            "sample": sample,
        },
    )
    return report


def _hash_and_size(store: ArchiveStore, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in store.iter_chunks(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


@dataclass
class ReconcileReport:
    objects: int = 0
    rows: int = 0
    rows_without_object: list[str] = field(default_factory=list)
    objects_without_row: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.rows_without_object or self.objects_without_row)


def reconcile(*, delete_orphans: bool = False, grace_seconds: float = 60.0) -> ReconcileReport:
    """Compare archive keys and index rows; optionally delete orphans that stay orphans.

    An object may be an orphan for a moment while its request commits, so an
    orphan is deleted only if, ``grace_seconds`` after it was first seen, still
    no row refers to it.
    """
    report = ReconcileReport()
    seen: set[int] = set()  # 8-byte digests of keys with rows: small at millions of keys
    for chunk in _chunks(get_store().iter_keys(DICOM_PREFIX)):
        report.objects += len(chunk)
        indexed = set(
            Instance.objects.filter(archive_key__in=chunk).values_list("archive_key", flat=True)
        )
        for key in chunk:
            if key in indexed:
                seen.add(_short(key))
            else:
                report.objects_without_row.append(key)
    for key in (
        Instance.objects.order_by("pk")
        .values_list("archive_key", flat=True)
        .iterator(chunk_size=CHUNK)
    ):
        report.rows += 1
        if _short(key) not in seen:
            report.rows_without_object.append(key)
    if delete_orphans and report.objects_without_row:
        time.sleep(grace_seconds)
        still = set(report.objects_without_row) - set(
            Instance.objects.filter(archive_key__in=report.objects_without_row).values_list(
                "archive_key", flat=True
            )
        )
        store = get_store()
        for key in sorted(still):
            store.delete(key)
            report.deleted.append(key)
    audit(
        action="archive.reconcile",
        object_type="archive",
        outcome=AuditEvent.Outcome.SUCCESS if report.ok else AuditEvent.Outcome.FAILED,
        detail={
            "objects": report.objects,
            "rows": report.rows,
            "rows_without_object": len(report.rows_without_object),
            "objects_without_row": len(report.objects_without_row),
            "deleted": len(report.deleted),
        },
    )
    return report


def _short(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _chunks(keys: Iterator[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
