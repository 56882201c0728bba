"""Where reading things live in the browser, in one place.

The viewer's route belongs to another part of the product and may not be
registered yet, so its address is built here rather than reversed.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse


def viewer_path(study_uid: str) -> str:
    """Return the path of the image viewer for a study."""
    return f"/viewer/{study_uid}/"


def viewer_url(study_uid: str) -> str:
    """Return the viewer's absolute address, for links printed on reports."""
    return f"{settings.SITE_URL}{viewer_path(study_uid)}"


def read_path(study_uid: str) -> str:
    """Return the reading page (worklist item and report editor) of a study."""
    return reverse("reading-read", args=[study_uid])


def report_path(report_uuid: object) -> str:
    return reverse("report-detail", args=[report_uuid])


def report_pdf_path(report_uuid: object) -> str:
    return reverse("report-pdf", args=[report_uuid])
