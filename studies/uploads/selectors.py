"""Reads of upload sessions: a user sees only their own."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django.http import Http404

from studies.models import UploadSession


def uploads_of(user: Any) -> QuerySet[UploadSession]:
    if user is None or not user.is_authenticated:
        return UploadSession.objects.none()
    return UploadSession.objects.filter(user=user)


def upload_for_user(user: Any, upload_uuid: UUID | str) -> UploadSession:
    """Return the user's session with this UUID; anybody else's reads as absent (404)."""
    session = uploads_of(user).select_related("institution").filter(uuid=upload_uuid).first()
    if session is None:
        raise Http404
    return session


def received_indexes(session: UploadSession) -> list[int]:
    return list(session.chunks.order_by("index").values_list("index", flat=True))


def upload_status(session: UploadSession) -> dict[str, Any]:
    """Return what a client needs to resume: the chunks present, the state, the result."""
    received = received_indexes(session)
    present = set(received)
    return {
        "uuid": str(session.uuid),
        "file_name": session.file_name,
        "size": session.size,
        "sha256": session.sha256,
        "chunk_size": session.chunk_size,
        "chunk_count": session.chunk_count,
        "received": received,
        "received_bytes": sum(session.chunks.values_list("size", flat=True)),
        "missing": [i for i in range(session.chunk_count) if i not in present][:1000],
        "state": session.state,
        "institution": str(session.institution.uuid),
        "result": session.result,
        "created_at": session.created_at.isoformat(),
        "updated_at": session.updated_at.isoformat(),
    }
