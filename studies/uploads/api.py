"""``/api/uploads/``: resumable chunked uploads, the web page's way into the archive.

1. ``POST /api/uploads/`` with the file's name and size (and SHA-256 if known):
   a new session with its chunk size.
2. ``PUT /api/uploads/<uuid>/chunks/<n>`` with the chunk's bytes and their
   SHA-256 in ``X-Chunk-SHA256``, in any order, several at once, again after a
   dropped connection (the same bytes again are fine; other bytes are 409).
3. ``GET /api/uploads/<uuid>/`` says which chunks are present, to resume.
4. ``POST /api/uploads/<uuid>/complete`` stores the file (or each entry of a
   zip) and answers a result per file.

Only people who may send studies for an institution may upload; the studies'
origin is the institution the session was opened for.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from regional_cloud.audit import client_ip
from studies.ingest import Sender
from studies.models import UploadSession
from studies.senders import NoSendingInstitution, sender_for, sending_institutions
from studies.uploads.errors import UploadRefused
from studies.uploads.selectors import upload_for_user, upload_status
from studies.uploads.services import upload_chunk_put, upload_complete, upload_create

CHUNK_SHA256_HEADER = "X-Chunk-SHA256"


class MaySendStudies(permissions.BasePermission):
    """The caller sends studies for at least one institution."""

    message = gettext_lazy("Your account may not send studies for any institution.")

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and sending_institutions(user))


def session_sender(request: Request, session: UploadSession) -> Sender:
    """Return the sender for a session: its institution, if the caller still sends for it."""
    if session.institution_id not in {i.pk for i in sending_institutions(request.user)}:
        raise PermissionDenied(_("You may no longer send studies for this upload's institution."))
    return Sender(
        user=request.user, institution=session.institution, ip=client_ip(cast(HttpRequest, request))
    )


class UploadErrorsAsResponses:
    """Answer a refused upload with its status, code and reason."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, UploadRefused):
            return Response(exc.as_dict(), status=exc.status)
        if isinstance(exc, NoSendingInstitution):
            exc = PermissionDenied(str(exc))
        return super().handle_exception(exc)  # type: ignore[misc]


class UploadCreateInput(serializers.Serializer[Any]):
    file_name = serializers.CharField(max_length=1000, help_text="The file's name, or its path.")
    size = serializers.IntegerField(min_value=1, help_text="The file's size in bytes.")
    sha256 = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$",
        required=False,
        allow_blank=True,
        help_text="The whole file's SHA-256, if known; checked on completion.",
    )


class UploadResultOutput(serializers.Serializer[Any]):
    name = serializers.CharField()
    outcome = serializers.ChoiceField(choices=["stored", "already_stored", "refused"])
    code = serializers.CharField()
    reason = serializers.CharField()
    study_instance_uid = serializers.CharField()
    sop_instance_uid = serializers.CharField()


class UploadSummaryOutput(serializers.Serializer[Any]):
    stored = serializers.IntegerField()
    already_stored = serializers.IntegerField()
    refused = serializers.IntegerField()


class UploadCompleteOutput(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["file", "zip"])
    sha256 = serializers.CharField()
    results = UploadResultOutput(many=True)
    summary = UploadSummaryOutput()
    study_instance_uids = serializers.ListField(child=serializers.CharField())


class UploadOutput(serializers.Serializer[Any]):
    uuid = serializers.UUIDField()
    file_name = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    chunk_size = serializers.IntegerField()
    chunk_count = serializers.IntegerField()
    received = serializers.ListField(child=serializers.IntegerField())
    received_bytes = serializers.IntegerField()
    missing = serializers.ListField(child=serializers.IntegerField())
    state = serializers.ChoiceField(choices=UploadSession.State.choices)
    institution = serializers.UUIDField()
    result = serializers.JSONField(
        help_text="UploadCompleteOutput once complete; {error} if failed."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class UploadChunkOutput(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when these bytes were already here.")


class UploadErrorOutput(serializers.Serializer[Any]):
    code = serializers.CharField()
    reason = serializers.CharField()


ERRORS = {
    400: OpenApiResponse(UploadErrorOutput, description="Refused; nothing was kept."),
    403: OpenApiResponse(description="The caller may not send studies."),
    404: OpenApiResponse(description="No upload of yours with this UUID."),
    409: OpenApiResponse(
        UploadErrorOutput, description="Conflict: see code (missing chunks, busy)."
    ),
}


class UploadListView(UploadErrorsAsResponses, APIView):
    """Start an upload."""

    permission_classes = [MaySendStudies]

    @extend_schema(
        request=UploadCreateInput,
        responses={201: UploadOutput, 400: ERRORS[400], 403: ERRORS[403]},
        parameters=[
            OpenApiParameter(
                "X-Institution",
                OpenApiTypes.UUID,
                OpenApiParameter.HEADER,
                description="The institution to send for, if the caller sends for several.",
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = UploadCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        sender = sender_for(cast(HttpRequest, request))
        session = upload_create(
            sender=sender,
            file_name=data.validated_data["file_name"],
            size=data.validated_data["size"],
            sha256=data.validated_data.get("sha256", ""),
        )
        return Response(upload_status(session), status=status.HTTP_201_CREATED)


class UploadDetailView(UploadErrorsAsResponses, APIView):
    """Which chunks of an upload are present, its state and its result."""

    permission_classes = [MaySendStudies]

    @extend_schema(responses={200: UploadOutput, 403: ERRORS[403], 404: ERRORS[404]})
    def get(self, request: Request, upload_uuid: UUID) -> Response:
        return Response(upload_status(upload_for_user(request.user, upload_uuid)))


class UploadChunkView(UploadErrorsAsResponses, APIView):
    """Send one chunk: its bytes as the body, their SHA-256 in X-Chunk-SHA256."""

    permission_classes = [MaySendStudies]
    parser_classes: list[Any] = []

    @extend_schema(
        request={"application/octet-stream": OpenApiTypes.BINARY},
        responses={201: UploadChunkOutput, 200: UploadChunkOutput, **ERRORS},
        parameters=[
            OpenApiParameter(
                CHUNK_SHA256_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="The chunk's SHA-256, 64 hexadecimal digits.",
            )
        ],
    )
    def put(self, request: Request, upload_uuid: UUID, index: int) -> Response:
        session = upload_for_user(request.user, upload_uuid)
        data = _read_body(request, limit=session.chunk_size)
        created = upload_chunk_put(
            session=session,
            index=index,
            data=data,
            sha256=request.headers.get(CHUNK_SHA256_HEADER, ""),
        )
        return Response(
            {"index": index, "created": created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class UploadCompleteView(UploadErrorsAsResponses, APIView):
    """Store the uploaded file (or each entry of a zip) and answer a result per file."""

    permission_classes = [MaySendStudies]

    @extend_schema(request=None, responses={200: UploadCompleteOutput, **ERRORS})
    def post(self, request: Request, upload_uuid: UUID) -> Response:
        session = upload_for_user(request.user, upload_uuid)
        result = upload_complete(session=session, sender=session_sender(request, session))
        return Response(result)


def _read_body(request: Request, *, limit: int) -> bytes:
    """Return the request body, refusing one longer than ``limit`` without reading it all."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise UploadRefused(
            "bad_chunk_size", _("A chunk holds 1 to %(size)s bytes.") % {"size": limit}
        )
    stream = request.stream
    if stream is None:
        return b""
    parts: list[bytes] = []
    size = 0
    while piece := stream.read(min(1024 * 1024, limit + 1 - size)):
        parts.append(piece)
        size += len(piece)
        if size > limit:
            raise UploadRefused(
                "bad_chunk_size", _("A chunk holds 1 to %(size)s bytes.") % {"size": limit}
            )
    return b"".join(parts)
