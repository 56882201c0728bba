"""Celery tasks of browser uploads. Schedule ``uploads_cleanup_task`` hourly with beat."""

from __future__ import annotations

from celery import shared_task

from studies.uploads.services import uploads_cleanup


@shared_task(name="studies.uploads.cleanup")
def uploads_cleanup_task() -> int:
    """Delete expired upload sessions and their chunks; idempotent, safe to overlap."""
    return uploads_cleanup()
