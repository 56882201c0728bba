"""STOW-RS (PS3.18 10.5): POST /dicom-web/studies[/{StudyInstanceUID}]."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from studies import failure
from studies.dicomweb.auth import dicomweb_view
from studies.dicomweb.urls_util import study_url
from studies.ingest import InstanceResult, Outcome, ReceivedFile, instances_ingest
from studies.multipart import MultipartError, MultipartReader, TooLarge, parse_content_type
from studies.senders import NoSendingInstitution, sender_for

DICOM_JSON = "application/dicom+json"


def error(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"error": reason}, status=status, content_type=DICOM_JSON)


@dicomweb_view
@require_POST
def stow(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    media_type, params = parse_content_type(request.headers.get("Content-Type", ""))
    if media_type != "multipart/related":
        return error(415, _('STOW-RS takes multipart/related; type="application/dicom".'))
    part_type = params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        return error(415, _("Only application/dicom parts are accepted (no JSON + bulk data)."))
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return error(400, _("Content-Length is not a number."))
    if declared > settings.STOW_MAX_BYTES:
        return error(413, _("The request is larger than this hub accepts."))
    try:
        sender = sender_for(request)
    except NoSendingInstitution as exc:
        return error(403, str(exc))
    try:
        reader = MultipartReader(
            request, params.get("boundary", ""), max_bytes=settings.STOW_MAX_BYTES
        )
        report = instances_ingest(
            files=_received_files(reader), sender=sender, expected_study_uid=study_uid
        )
    except MultipartError as exc:
        # Parts before the damage were stored and indexed? No: nothing is indexed
        # until the whole body was read, so a broken body leaves no rows.
        return error(400, _("Malformed multipart body: %(why)s.") % {"why": exc})
    except TooLarge:
        return error(413, _("The request is larger than this hub accepts."))
    return JsonResponse(
        stow_response(request, report.results),
        status=stow_status(report.results),
        content_type=DICOM_JSON,
    )


def _received_files(reader: MultipartReader) -> Iterator[ReceivedFile]:
    for part in reader.parts():
        try:
            if part.content_type not in ("", "application/dicom"):
                raise MultipartError(f"a part has Content-Type {part.content_type!r}")
            yield ReceivedFile(stream=part.stream, size=part.size, sha256=part.sha256)
        finally:
            part.close()


def stow_status(results: list[InstanceResult]) -> int:
    """Return the HTTP status for a STOW-RS response (PS3.18 Table 10.5.3-1)."""
    if not results:
        return 400
    refused = [r for r in results if r.outcome is Outcome.REFUSED]
    if not refused:
        return 200
    if len(refused) < len(results):
        return 202
    if any(r.failure_reason in failure.CONFLICTS for r in refused):
        return 409
    return 400


def stow_response(request: HttpRequest, results: list[InstanceResult]) -> dict[str, Any]:
    """Return the Store Instances Response Module (PS3.18 Table 10.5.3-2) as DICOM JSON."""
    body: dict[str, Any] = {}
    stored = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    studies = {r.study_instance_uid for r in stored}
    if len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [study_url(request, studies.pop())]}
    if stored:
        body["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": {"vr": "UI", "Value": [r.sop_class_uid]},
                    "00081155": {"vr": "UI", "Value": [r.sop_instance_uid]},
                    "00081190": {
                        "vr": "UR",
                        "Value": [study_url(request, r.study_instance_uid)],
                    },
                }
                for r in stored
            ],
        }
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [_failed_item(r) for r in failed]}
    return body


def _failed_item(result: InstanceResult) -> dict[str, Any]:
    item: dict[str, Any] = {"00081197": {"vr": "US", "Value": [result.failure_reason]}}
    if result.sop_class_uid:
        item["00081150"] = {"vr": "UI", "Value": [result.sop_class_uid]}
    if result.sop_instance_uid:
        item["00081155"] = {"vr": "UI", "Value": [result.sop_instance_uid]}
    # Error Comment: the reason in words, for the person reading the client's log.
    item["00000902"] = {"vr": "LO", "Value": [result.reason[:64]]}
    return item
