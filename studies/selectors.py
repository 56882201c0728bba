"""Reads of the archive's index, filtered by what the caller may see.

``visible_*`` return querysets for lists; ``access_*_by_uid`` fetch one object
and raise ``Http404`` when it does not exist *or* the caller may not see it,
so an answer never confirms that another institution's study exists.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from regional_cloud.permissions import filter_by_permission
from studies.models import Instance, Series, Study

VIEW_STUDY = "studies.view_study"


def visible_studies(user: Any) -> QuerySet[Study]:
    """Return the studies ``user`` may see (object permissions only)."""
    return filter_by_permission(Study.objects.all(), user, VIEW_STUDY)


def visible_series(user: Any) -> QuerySet[Series]:
    """Return the series of the studies ``user`` may see."""
    return Series.objects.filter(study__in=visible_studies(user).values("pk"))


def visible_instances(user: Any) -> QuerySet[Instance]:
    """Return the instances of the studies ``user`` may see."""
    return Instance.objects.filter(study__in=visible_studies(user).values("pk"))


def access_study_by_uid(user: Any, study_uid: str) -> Study:
    """Return the study with this Study Instance UID if ``user`` may see it, else 404."""
    study = (
        visible_studies(user)
        .filter(study_instance_uid=study_uid)
        .select_related("patient", "origin")
        .first()
    )
    if study is None:
        raise Http404("no such study")
    return study


def access_series_by_uid(user: Any, study_uid: str, series_uid: str) -> Series:
    """Return the series if it belongs to that study and ``user`` may see the study, else 404."""
    study = access_study_by_uid(user, study_uid)
    series = Series.objects.filter(study=study, series_instance_uid=series_uid).first()
    if series is None:
        raise Http404("no such series")
    series.study = study
    return series


def access_instance_by_uid(user: Any, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    """Return the instance at this study/series/SOP path if ``user`` may see it, else 404."""
    series = access_series_by_uid(user, study_uid, series_uid)
    instance = Instance.objects.filter(series=series, sop_instance_uid=sop_uid).first()
    if instance is None:
        raise Http404("no such instance")
    instance.series = series
    instance.study = series.study
    return instance
