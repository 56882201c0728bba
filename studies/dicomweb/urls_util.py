"""Absolute URLs of DICOMweb resources, as answered in RetrieveURL and BulkDataURI."""

from __future__ import annotations

from django.http import HttpRequest


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/dicom-web")


def study_url(request: HttpRequest, study_uid: str) -> str:
    return f"{base_url(request)}/studies/{study_uid}"


def series_url(request: HttpRequest, study_uid: str, series_uid: str) -> str:
    return f"{study_url(request, study_uid)}/series/{series_uid}"


def instance_url(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{series_url(request, study_uid, series_uid)}/instances/{sop_uid}"
