"""Periodic reading jobs (Celery beat): clear expired claims, store reports the archive missed.

Both are idempotent and take no arguments; run them every minute or so.
"""

from __future__ import annotations

from celery import shared_task

from studies.reading.dicom_report import reports_archive_pending
from studies.reading.services import reading_claims_expire


@shared_task(name="studies.reading.expire_claims")
def expire_claims() -> int:
    """Clear claims past their time (the worklist already treats them as free)."""
    return reading_claims_expire()


@shared_task(name="studies.reading.archive_pending_reports")
def archive_pending_reports() -> int:
    """Store final reports whose archive copy failed after signing."""
    return reports_archive_pending()
