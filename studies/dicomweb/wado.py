"""WADO-RS (PS3.18 10.4): retrieve studies, series, instances, metadata and bulk data.

Objects are streamed from the archive as stored — the original bytes, chunk by
chunk, so a study is never held whole in memory. Without a transfer-syntax
parameter (or with ``*``) the stored syntax is sent; the hub does not
transcode, so asking for another syntax is a 406.

Metadata is the DICOM JSON cached at ingest, its ``bulk:<tag>`` placeholders
turned into absolute BulkDataURIs under ``.../instances/{sop}/bulk/{tag path}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pydicom
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from regional_cloud.audit import audit
from studies.archive import ArchiveIntegrityError, ArchiveStore, get_store
from studies.dicom_parse import BULK_PLACEHOLDER
from studies.dicomweb.auth import dicomweb_view
from studies.dicomweb.frames import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    MEDIA_TYPES,
    OCTET_STREAM,
    audit_read,
    local_copy,
    pixel_info,
    range_readable,
    stored_frame,
)
from studies.dicomweb.http import (
    DicomwebError,
    OutPart,
    accepts_json,
    answers_errors,
    json_response,
    multipart_part_type,
    multipart_response,
    not_acceptable,
    parse_accept,
    stream_json_array,
    streaming,
)
from studies.dicomweb.urls_util import base_url
from studies.models import Instance, Study
from studies.selectors import access_instance_by_uid, access_series_by_uid, access_study_by_uid

DICOM = "application/dicom"
RANGE_CHUNK = 4 * 1024 * 1024
# Objects are read and sent a megabyte at a time: one read and one send per
# typical CT or MR slice, with memory bounded for a large multi-frame object.
READ_CHUNK = 1024 * 1024
_TAG_PATH_RE = re.compile(r"[0-9A-Fa-f]{8}(?:/\d{1,6}/[0-9A-Fa-f]{8})*")


# --- retrieve --------------------------------------------------------------------------


def negotiate_dicom(request: HttpRequest, syntaxes: set[str], *, single: bool) -> bool:
    """Return True for multipart, False for a bare application/dicom body; 406 otherwise."""
    for media_range in parse_accept(request.headers.get("Accept")):
        syntax = media_range.params.get("transfer-syntax")
        if syntax not in (None, "*") and syntaxes != {syntax}:
            continue
        if multipart_part_type(media_range) in ("*/*", DICOM):
            return True
        if single and media_range.media_type == DICOM:
            return False
    raise not_acceptable(
        _(
            'Objects are sent as multipart/related; type="application/dicom" in the '
            "transfer syntax they were stored in; this hub does not transcode."
        )
    )


def _instances_in_order(instances: QuerySet[Instance]) -> list[Any]:
    return list(
        instances.order_by(
            F("series__series_number").asc(nulls_last=True),
            "series_id",
            F("instance_number").asc(nulls_last=True),
            "pk",
        ).values("archive_key", "transfer_syntax_uid", "size_bytes", "sop_instance_uid")
    )


def _retrieve(
    request: HttpRequest,
    study: Study,
    instances: QuerySet[Instance],
    *,
    single: bool,
    **detail: Any,
) -> HttpResponse:
    rows = _instances_in_order(instances)
    multipart = negotiate_dicom(request, {r["transfer_syntax_uid"] for r in rows}, single=single)
    audit(
        action="study.retrieve",
        actor=request.user,
        object_type="study",
        object_id=study.uuid,
        patient_ref=study.patient.uuid,
        study_uid=study.study_instance_uid,
        request=request,
        detail={"instances": len(rows), **detail},
    )
    store = get_store()
    if not multipart:
        row = rows[0]
        response = StreamingHttpResponse(
            object_chunks(store, row["archive_key"], row["size_bytes"]),
            content_type=f"{DICOM}; transfer-syntax={row['transfer_syntax_uid']}",
        )
        response["Content-Length"] = str(row["size_bytes"])
        return streaming(response)
    # A list of sized parts: the response announces its Content-Length and each
    # object is opened only when its turn comes.
    parts = [
        OutPart(
            f"{DICOM}; transfer-syntax={row['transfer_syntax_uid']}",
            object_chunks(store, row["archive_key"], row["size_bytes"]),
            {"Content-Length": str(row["size_bytes"])},
            size=row["size_bytes"],
        )
        for row in rows
    ]
    return multipart_response(parts, part_type=DICOM)


def object_chunks(store: ArchiveStore, key: str, size: int) -> Iterator[bytes]:
    """Yield exactly the ``size`` bytes the index records for the object, a chunk at a time.

    The object is opened on the first ``next()``. The response promised
    ``size`` bytes: an object shorter than its index row (a damaged archive)
    aborts the response with an error rather than send a malformed body.
    """
    with store.open(key) as stream:
        remaining = size
        while remaining > 0:
            chunk = stream.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise ArchiveIntegrityError(f"{key}: shorter than the {size} bytes indexed")
            remaining -= len(chunk)
            yield chunk


@dicomweb_view
@require_safe
@answers_errors
def retrieve_study(request: HttpRequest, study_uid: str) -> HttpResponse:
    """GET /studies/{study}: every instance of the study."""
    study = access_study_by_uid(request.user, study_uid)
    return _retrieve(request, study, Instance.objects.filter(study=study), single=False)


@dicomweb_view
@require_safe
@answers_errors
def retrieve_series(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    series = access_series_by_uid(request.user, study_uid, series_uid)
    return _retrieve(
        request,
        series.study,
        Instance.objects.filter(series=series),
        single=False,
        series_instance_uid=series_uid,
    )


@dicomweb_view
@require_safe
@answers_errors
def retrieve_instance(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    instance = access_instance_by_uid(request.user, study_uid, series_uid, sop_uid)
    return _retrieve(
        request,
        instance.study,
        Instance.objects.filter(pk=instance.pk),
        single=True,
        sop_instance_uid=sop_uid,
    )


# --- metadata --------------------------------------------------------------------------


def absolute_bulk(dataset: dict[str, Any], url: str, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return DICOM JSON with ``bulk:`` placeholders made URLs under ``url``/bulk/."""
    out: dict[str, Any] = {}
    for tag, element in dataset.items():
        if not isinstance(element, dict):
            out[tag] = element
            continue
        uri = element.get("BulkDataURI")
        if isinstance(uri, str) and uri.startswith(BULK_PLACEHOLDER):
            element = {**element, "BulkDataURI": f"{url}/bulk/{'/'.join((*path, tag))}"}
        elif element.get("vr") == "SQ" and element.get("Value"):
            element = {
                **element,
                "Value": [
                    absolute_bulk(item, url, (*path, tag, str(index)))
                    for index, item in enumerate(element["Value"])
                ],
            }
        out[tag] = element
    return out


def _metadata(
    request: HttpRequest,
    study: Study,
    instances: QuerySet[Instance],
    *,
    single: bool = False,
    **detail: Any,
) -> HttpResponse:
    """Answer the instances' metadata; a study's or series' is streamed instance by instance."""
    accepts_json(request)
    audit(
        action="study.metadata",
        actor=request.user,
        object_type="study",
        object_id=study.uuid,
        patient_ref=study.patient.uuid,
        study_uid=study.study_instance_uid,
        request=request,
        detail=detail,
    )
    base = f"{base_url(request)}/studies/{study.study_instance_uid}/series"
    rows = instances.order_by(
        "series_id", F("instance_number").asc(nulls_last=True), "pk"
    ).values_list(
        "metadata", "sop_instance_uid", "series__series_instance_uid", "transfer_syntax_uid"
    )

    def items() -> Iterator[dict[str, Any]]:
        for metadata, sop_uid, series_uid, syntax in rows.iterator(chunk_size=200):
            result = absolute_bulk(metadata, f"{base}/{series_uid}/instances/{sop_uid}")
            # Available Transfer Syntax UID: what a retrieve without transcoding gives.
            result["00083002"] = {"vr": "UI", "Value": [syntax]}
            yield dict(sorted(result.items()))

    if single:
        return json_response(list(items()))
    return stream_json_array(items())


@dicomweb_view
@require_safe
@answers_errors
def study_metadata(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = access_study_by_uid(request.user, study_uid)
    return _metadata(request, study, Instance.objects.filter(study=study))


@dicomweb_view
@require_safe
@answers_errors
def series_metadata(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    series = access_series_by_uid(request.user, study_uid, series_uid)
    return _metadata(
        request,
        series.study,
        Instance.objects.filter(series=series),
        series_instance_uid=series_uid,
    )


@dicomweb_view
@require_safe
@answers_errors
def instance_metadata(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    instance = access_instance_by_uid(request.user, study_uid, series_uid, sop_uid)
    return _metadata(
        request,
        instance.study,
        Instance.objects.filter(pk=instance.pk),
        single=True,
        sop_instance_uid=sop_uid,
    )


# --- bulk data -------------------------------------------------------------------------


def negotiate_bulk(request: HttpRequest) -> bool:
    """Return True for multipart (the default), False for a bare octet-stream body; else 406."""
    for media_range in parse_accept(request.headers.get("Accept")):
        if multipart_part_type(media_range) in ("*/*", OCTET_STREAM):
            return True
        if media_range.media_type == OCTET_STREAM:
            return False
    raise not_acceptable(_("Bulk data is sent as application/octet-stream."))


def _pixel_parts(instance: Instance) -> tuple[str, Iterator[OutPart]]:
    """Return the part type and parts of the Pixel Data value (frames as stored if compressed)."""
    info = pixel_info(instance)
    if range_readable(instance, info):
        total = info.frame_size * info.frames
        start = int(instance.pixel_data_offset or 0)
        store = get_store()

        def chunks() -> Iterator[bytes]:
            for offset in range(0, total, RANGE_CHUNK):
                yield store.read_range(
                    instance.archive_key, start + offset, min(RANGE_CHUNK, total - offset)
                )

        content_type = f"{OCTET_STREAM}; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
        return OCTET_STREAM, iter([OutPart(content_type, chunks())])
    if info.native:
        # Deflated or bit-packed: the value is only reachable by reading the object.
        return OCTET_STREAM, iter([OutPart(OCTET_STREAM, [_element_bytes(instance, "7FE00010")])])
    media = MEDIA_TYPES[info.transfer_syntax]

    def frames() -> Iterator[OutPart]:
        with local_copy(instance) as source:
            for number in range(1, info.frames + 1):
                data = stored_frame(source, info, number)
                yield OutPart(f"{media}; transfer-syntax={info.transfer_syntax}", [data])

    return media, frames()


def _element_bytes(instance: Instance, tag_path: str) -> bytes:
    """Return the raw value of the element at ``tag_path`` (``tag`` or ``seq/index/tag/...``)."""
    steps = tag_path.split("/")
    with local_copy(instance) as source:
        source.seek(0)
        dataset: Dataset = pydicom.dcmread(source)
    try:
        for index in range(0, len(steps) - 1, 2):
            dataset = dataset[Tag(int(steps[index], 16))].value[int(steps[index + 1])]
        element = dataset.get_item(Tag(int(steps[-1], 16)))
    except (KeyError, IndexError, TypeError, AttributeError):
        element = None
    if element is None or element.value is None:
        raise DicomwebError(404, _("The instance has no such bulk data element."))
    value = element.value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value).encode("utf-8")


@dicomweb_view
@require_safe
@answers_errors
def bulkdata(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, tag_path: str
) -> HttpResponse:
    """GET .../instances/{sop}/bulk/{tag}[/{index}/{tag}...]: one bulk data value."""
    instance = access_instance_by_uid(request.user, study_uid, series_uid, sop_uid)
    if not _TAG_PATH_RE.fullmatch(tag_path):
        raise DicomwebError(404, _("No such bulk data element."))
    tag_path = tag_path.upper()
    multipart = negotiate_bulk(request)
    if tag_path == "7FE00010":
        part_type, parts = _pixel_parts(instance)
        if not multipart and part_type != OCTET_STREAM:
            raise not_acceptable(_("Compressed pixel data is sent as multipart/related frames."))
    else:
        data = _element_bytes(instance, tag_path)
        part_type, parts = OCTET_STREAM, iter([OutPart(OCTET_STREAM, [data])])
    audit_read(request, instance, "study.bulk", tag=tag_path)
    if not multipart:
        part = next(parts)
        return streaming(StreamingHttpResponse(part.chunks, content_type=OCTET_STREAM))
    return multipart_response(parts, part_type=part_type)
