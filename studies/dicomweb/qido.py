"""QIDO-RS (PS3.18 10.6): search for studies, series and instances.

Answers come from the index and the DICOM JSON cached in it at ingest; no
archive object is read. Results are what the caller may see, nothing else: a
study of another institution is simply absent from a list, and a search
inside it (``/studies/{uid}/series``) is a 404 like an unknown UID.

An empty result is ``200 []``: PS3.18 allows 204 too, but an empty array is
what every client parses without a special case. Without ``limit`` (or with
one above ``MAX_LIMIT``) at most ``MAX_LIMIT`` results come back, and a
``Warning: 299`` header says when more could be requested with ``offset``.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import F, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe

from regional_cloud.audit import audit
from studies.dicom_tags import INSTANCE_LEVEL_TAGS, SERIES_LEVEL_TAGS, STUDY_LEVEL_TAGS
from studies.dicomweb.auth import dicomweb_view
from studies.dicomweb.http import DICOM_JSON, accepts_json, answers_errors
from studies.dicomweb.matching import INSTANCE, SERIES, STUDY, Query, parse_query
from studies.dicomweb.urls_util import base_url
from studies.models import Instance, Series, Study
from studies.selectors import (
    access_series_by_uid,
    access_study_by_uid,
    visible_instances,
    visible_series,
    visible_studies,
)

MAX_LIMIT = 1000
WARNING_MORE = '299 regional-cloud "There are additional results that can be requested"'
WARNING_FUZZY = (
    '299 regional-cloud "The fuzzymatching parameter is not supported. '
    'Only literal matching has been performed."'
)
UIDS = frozenset({"0020000D", "0020000E"})


@dicomweb_view
@require_safe
@answers_errors
def search_studies(request: HttpRequest) -> HttpResponse:
    """GET /studies: search every study the caller may see."""
    accepts_json(request)
    query = parse_query(request.GET, level=STUDY, max_limit=MAX_LIMIT)
    rows = (
        visible_studies(request.user)
        .filter(query.condition)
        .order_by(F("study_date").desc(), F("study_time").desc(), "-pk")
        .values(
            "study_instance_uid",
            "modalities_in_study",
            "number_of_series",
            "number_of_instances",
            metadata_text=Cast("metadata", TextField()),
        )
    )
    page, more = _page(rows, query)
    base = base_url(request)
    body = "[" + ",".join(_study_json(row, base) for row in page) + "]"
    return _answer(request, len(page), body.encode("utf-8"), query, more, level=STUDY)


@dicomweb_view
@require_safe
@answers_errors
def search_series(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    """GET /series and /studies/{study}/series."""
    accepts_json(request)
    query = parse_query(request.GET, level=SERIES, max_limit=MAX_LIMIT)
    study = None
    if study_uid is None:
        series: QuerySet[Series] = visible_series(request.user)
    else:
        study = access_study_by_uid(request.user, study_uid)
        series = Series.objects.filter(study=study)
    rows = (
        series.filter(query.condition)
        .order_by("study_id", F("series_number").asc(nulls_last=True), "pk")
        .values(
            "series_instance_uid",
            "metadata",
            "number_of_instances",
            "study__study_instance_uid",
            "study__metadata",
        )
    )
    page, more = _page(rows, query)
    base = base_url(request)
    results = [_series_result(row, query, base, all_studies=study is None) for row in page]
    return _answer(request, len(results), _dumps(results), query, more, level=SERIES, study=study)


@dicomweb_view
@require_safe
@answers_errors
def search_instances(
    request: HttpRequest, study_uid: str | None = None, series_uid: str | None = None
) -> HttpResponse:
    """GET /instances, /studies/{study}/instances and /studies/{study}/series/{series}/instances."""
    accepts_json(request)
    query = parse_query(request.GET, level=INSTANCE, max_limit=MAX_LIMIT)
    study = None
    if study_uid is None:
        instances: QuerySet[Instance] = visible_instances(request.user)
        extra = SERIES_LEVEL_TAGS | STUDY_LEVEL_TAGS
    elif series_uid is None:
        study = access_study_by_uid(request.user, study_uid)
        instances = Instance.objects.filter(study=study)
        extra = SERIES_LEVEL_TAGS
    else:
        series = access_series_by_uid(request.user, study_uid, series_uid)
        study = series.study
        instances = Instance.objects.filter(series=series)
        extra = frozenset()
    rows = (
        instances.filter(query.condition)
        .order_by("study_id", "series_id", F("instance_number").asc(nulls_last=True), "pk")
        .values(
            "sop_instance_uid",
            "metadata",
            "series__series_instance_uid",
            "study__study_instance_uid",
        )
    )
    page, more = _page(rows, query)
    base = base_url(request)
    results = [_instance_result(row, query, base, extra) for row in page]
    return _answer(request, len(results), _dumps(results), query, more, level=INSTANCE, study=study)


def _page(rows: QuerySet[Any, Any], query: Query) -> tuple[list[dict[str, Any]], bool]:
    """Return one page of rows and whether more follow (one extra row is fetched to know)."""
    page = list(rows[query.offset : query.offset + query.limit + 1])
    return page[: query.limit], len(page) > query.limit


def _dumps(results: list[dict[str, Any]]) -> bytes:
    return json.dumps(results, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _answer(
    request: HttpRequest,
    count: int,
    body: bytes,
    query: Query,
    more: bool,
    *,
    level: str,
    study: Study | None = None,
) -> HttpResponse:
    # A search shows names and IDs: it is a read of patient data. The query's
    # values may be names too, so only the attribute names are recorded.
    audit(
        action="study.search",
        actor=request.user,
        object_type="study" if study else "",
        object_id=study.uuid if study else "",
        patient_ref=study.patient.uuid if study else "",
        study_uid=study.study_instance_uid if study else "",
        request=request,
        detail={"level": level, "results": count, "keys": sorted(set(query.keys))},
    )
    response = HttpResponse(body, content_type=DICOM_JSON)
    warnings = []
    if more and query.capped:
        warnings.append(WARNING_MORE)
    if query.fuzzy:
        warnings.append(WARNING_FUZZY)
    if warnings:
        response["Warning"] = ", ".join(warnings)
    return response


def _element(vr: str, values: list[Any]) -> dict[str, Any]:
    return {"vr": vr, "Value": values} if values else {"vr": vr}


def _included(
    result: dict[str, Any], query: Query, *sources: dict[str, Any], bulk_free: bool = False
) -> dict[str, Any]:
    """Add the includefield attributes found in ``sources`` (first source wins)."""
    for source in sources:
        wanted = source.keys() if query.include_all else query.includefields & source.keys()
        for tag in wanted:
            element = source[tag]
            if bulk_free and isinstance(element, dict) and "BulkDataURI" in element:
                continue
            result.setdefault(tag, element)
    return dict(sorted(result.items()))


def _study_json(row: dict[str, Any], base: str) -> str:
    """PS3.18 Table 10.6.3-3: the study's attributes plus the counts and its URL, as JSON text.

    The cached attributes are spliced in as the database returns them, never
    decoded: parsing a thousand studies' JSON would cost more than the query.
    None of the tags added here is among the cached study-level tags.
    """
    uid = row["study_instance_uid"]
    modalities = [m for m in row["modalities_in_study"].split("\\") if m]
    added = {
        "00080056": _element("CS", ["ONLINE"]),  # InstanceAvailability
        "00080061": _element("CS", modalities),
        "00081190": _element("UR", [f"{base}/studies/{uid}"]),
        "00201206": _element("IS", [row["number_of_series"]]),
        "00201208": _element("IS", [row["number_of_instances"]]),
    }
    cached = (row["metadata_text"] or "").strip()
    if '"0020000D"' not in cached:
        added["0020000D"] = _element("UI", [uid])
    head = json.dumps(added, ensure_ascii=False, separators=(",", ":"))
    if cached in ("", "{}"):
        return head
    return head[:-1] + "," + cached[1:]


def _series_result(
    row: dict[str, Any], query: Query, base: str, *, all_studies: bool
) -> dict[str, Any]:
    """PS3.18 Table 10.6.3-4: the series' attributes plus its count and URL."""
    study_uid = row["study__study_instance_uid"]
    uid = row["series_instance_uid"]
    study_meta = row["study__metadata"] or {}
    result = dict(row["metadata"])
    if all_studies:
        # A search over all series also answers the study's attributes.
        for tag, element in study_meta.items():
            result.setdefault(tag, element)
    result["0020000D"] = _element("UI", [study_uid])
    result["0020000E"] = _element("UI", [uid])
    result["00201209"] = _element("IS", [row["number_of_instances"]])
    result["00081190"] = _element("UR", [f"{base}/studies/{study_uid}/series/{uid}"])
    return _included(result, query, study_meta)


def _instance_result(
    row: dict[str, Any], query: Query, base: str, extra: frozenset[str]
) -> dict[str, Any]:
    """PS3.18 Table 10.6.3-5: the instance's attributes (and the wider scope's) plus its URL."""
    metadata: dict[str, Any] = row["metadata"]
    wanted = INSTANCE_LEVEL_TAGS | UIDS | extra
    result = {tag: element for tag, element in metadata.items() if tag in wanted}
    study_uid = row["study__study_instance_uid"]
    series_uid = row["series__series_instance_uid"]
    uid = row["sop_instance_uid"]
    result["0020000D"] = _element("UI", [study_uid])
    result["0020000E"] = _element("UI", [series_uid])
    result["00080018"] = _element("UI", [uid])
    result["00081190"] = _element(
        "UR", [f"{base}/studies/{study_uid}/series/{series_uid}/instances/{uid}"]
    )
    return _included(result, query, metadata, bulk_free=True)
