"""Writes of browser uploads: start a session, take a chunk, complete it, clean up.

A session is one file. Its chunks go to the archive store under
``uploads/<uuid>/<index>`` (several stateless web processes serve one upload),
a row per chunk records its length and SHA-256. Completion claims the session,
streams the chunks back into one file, verifies it, and hands it (or every
entry of a zip) to the one ingest pipeline. Chunks are deleted once the
session completes or fails; what a crash leaves behind, ``uploads_cleanup``
removes after the expiry.

Completion talks to the archive and runs the ingest's own transactions, so it
is not one transaction: its steps each are, and the session's state says
where it stands.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import uuid
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent
from studies.archive import ArchiveConflictError, ArchiveError, get_store
from studies.ingest import InstanceResult, Outcome, ReceivedFile, Sender, instances_ingest
from studies.models import UploadChunk, UploadSession
from studies.uploads import conf
from studies.uploads.assembly import Assembled, assemble, iter_members, looks_like_zip, open_zip
from studies.uploads.errors import UploadRefused

logger = logging.getLogger(__name__)

SHA256_RE = re.compile(r"[0-9a-f]{64}")
UPLOADS_PREFIX = "uploads/"


def clean_file_name(name: str) -> str:
    """Return the client's name (a relative path for folders) without control characters."""
    printable = "".join(ch for ch in name if ch.isprintable()).strip().replace("\\", "/")
    return printable[-255:] or "upload"


@transaction.atomic
def upload_create(*, sender: Sender, file_name: str, size: int, sha256: str = "") -> UploadSession:
    """Open an upload session for one file of ``size`` bytes sent for the sender's institution."""
    if size <= 0:
        raise UploadRefused("empty", _("The file is empty."))
    if size > conf.max_file_bytes():
        raise UploadRefused(
            "too_large",
            _("The file is larger than this hub accepts (%(limit)s bytes).")
            % {"limit": conf.max_file_bytes()},
            status=413,
        )
    sha256 = (sha256 or "").strip().lower()
    if sha256 and not SHA256_RE.fullmatch(sha256):
        raise UploadRefused("bad_sha256", _("The SHA-256 must be 64 hexadecimal digits."))
    session = UploadSession.objects.create(
        user=sender.user,
        institution=sender.institution,
        file_name=clean_file_name(file_name),
        size=size,
        sha256=sha256,
        chunk_size=conf.chunk_size(),
    )
    audit(
        action="upload.start",
        actor=sender.user,
        institution=sender.institution,
        object_type="upload",
        object_id=session.uuid,
        ip=sender.ip,
        detail={"size": size, "chunks": session.chunk_count},
    )
    return session


def upload_chunk_put(*, session: UploadSession, index: int, data: bytes, sha256: str) -> bool:
    """Store chunk ``index``; return True if it is new, False if the same bytes were there.

    Raise ``UploadRefused``: 400 for a chunk out of range, too long, or not matching
    its SHA-256 (damaged on the way: send it again); 409 for other bytes than an
    earlier chunk at this index, or a session that no longer takes chunks.
    """
    if session.state != UploadSession.State.OPEN:
        raise _not_open(session)
    if not 0 <= index < session.chunk_count:
        raise UploadRefused(
            "bad_chunk_index",
            _("This file has chunks 0 to %(last)s.") % {"last": session.chunk_count - 1},
        )
    if not data or len(data) > session.chunk_size:
        raise UploadRefused(
            "bad_chunk_size",
            _("A chunk holds 1 to %(size)s bytes.") % {"size": session.chunk_size},
        )
    digest = hashlib.sha256(data).hexdigest()
    if digest != (sha256 or "").strip().lower():
        raise UploadRefused(
            "chunk_damaged", _("The chunk's SHA-256 does not match: it was damaged. Send it again.")
        )
    existing = UploadChunk.objects.filter(session=session, index=index).first()
    if existing is not None:
        return _same_chunk(existing, digest)
    key = session.chunk_key(index)
    store = get_store()
    try:
        store.put(key, io.BytesIO(data), size=len(data), sha256=digest)
    except ArchiveConflictError as exc:
        # A concurrent request put other bytes at this index first.
        raise _chunk_conflict() from exc
    except ArchiveError as exc:
        logger.warning("upload %s: chunk %s not stored: %s", session.uuid, index, exc)
        raise UploadRefused(
            "archive_unavailable",
            _("The archive could not store the chunk. Try again later."),
            status=503,
        ) from exc
    try:
        with transaction.atomic():
            locked = UploadSession.objects.select_for_update().get(pk=session.pk)
            if locked.state != UploadSession.State.OPEN:
                store.delete(key)  # no row points at it, and none ever will
                raise _not_open(locked)
            UploadChunk.objects.create(session=locked, index=index, size=len(data), sha256=digest)
            locked.updated_at = timezone.now()
            locked.save(update_fields=["updated_at"])
    except IntegrityError:
        # The same index arrived twice at once; the store already kept the bytes equal.
        return _same_chunk(UploadChunk.objects.get(session=session, index=index), digest)
    return True


def _same_chunk(existing: UploadChunk, digest: str) -> bool:
    if existing.sha256 != digest:
        raise _chunk_conflict()
    return False


def _chunk_conflict() -> UploadRefused:
    return UploadRefused(
        "chunk_conflict",
        _("Other bytes were already received for this chunk: the file changed. Start again."),
        status=409,
    )


def _not_open(session: UploadSession) -> UploadRefused:
    return UploadRefused(
        "not_open",
        _("This upload no longer takes chunks (it is %(state)s).")
        % {"state": session.get_state_display()},
        status=409,
        state=session.state,
    )


def upload_complete(*, session: UploadSession, sender: Sender) -> dict[str, Any]:
    """Assemble, verify and ingest the file; return its result (the stored one if done before).

    Raise ``UploadRefused``: 409 while chunks are missing (``missing`` lists them)
    or another request is completing it; 400 for a wrong size, SHA-256 or zip,
    after which the session has failed and its chunks are gone.
    """
    claimed, chunks = _claim(session)
    if claimed.state == UploadSession.State.COMPLETE:
        return claimed.result
    try:
        assembled = assemble(claimed, chunks)
    except UploadRefused as exc:
        _fail(claimed, exc, sender)
        raise
    except ArchiveError as exc:
        _reopen(claimed)
        logger.warning("upload %s: chunks unreadable: %s", claimed.uuid, exc)
        raise UploadRefused(
            "archive_unavailable",
            _("The archive could not be read. Try completing the upload again later."),
            status=503,
        ) from exc
    except BaseException:
        _reopen(claimed)
        raise
    try:
        result = _ingest(claimed, assembled, sender)
    except UploadRefused as exc:
        _fail(claimed, exc, sender)
        raise
    except BaseException:
        _reopen(claimed)
        raise
    finally:
        assembled.close()
    claimed.state = UploadSession.State.COMPLETE
    claimed.result = result
    claimed.updated_at = timezone.now()
    claimed.save(update_fields=["state", "result", "updated_at"])
    audit(
        action="upload.complete",
        actor=sender.user,
        institution=sender.institution,
        object_type="upload",
        object_id=claimed.uuid,
        ip=sender.ip,
        detail={"kind": result["kind"], **result["summary"]},
    )
    _delete_chunks(claimed)
    return result


def _claim(session: UploadSession) -> tuple[UploadSession, list[UploadChunk]]:
    """Lock the session and move it to ASSEMBLING, so one request completes it."""
    with transaction.atomic():
        locked = UploadSession.objects.select_for_update().get(pk=session.pk)
        if locked.state == UploadSession.State.COMPLETE:
            return locked, []
        abandoned = locked.updated_at < timezone.now() - conf.assembly_timeout()
        if locked.state == UploadSession.State.ASSEMBLING and not abandoned:
            raise UploadRefused(
                "busy",
                _("The file is being stored; ask for its state in a moment."),
                status=409,
                state=locked.state,
            )
        if locked.state == UploadSession.State.FAILED:
            error = locked.result.get("error", {})
            raise UploadRefused(
                error.get("code", "failed"),
                error.get("reason", _("This upload failed; upload the file again.")),
                state=locked.state,
            )
        chunks = list(locked.chunks.order_by("index"))
        missing = sorted(set(range(locked.chunk_count)) - {chunk.index for chunk in chunks})
        if missing:
            raise UploadRefused(
                "missing_chunks",
                _("%(count)s chunks of the file have not arrived yet.") % {"count": len(missing)},
                status=409,
                missing=missing[:1000],
            )
        locked.state = UploadSession.State.ASSEMBLING
        locked.updated_at = timezone.now()
        locked.save(update_fields=["state", "updated_at"])
    return locked, chunks


def _ingest(session: UploadSession, assembled: Assembled, sender: Sender) -> dict[str, Any]:
    refused: list[InstanceResult] = []
    if looks_like_zip(assembled.stream):
        kind = "zip"
        archive, members = open_zip(assembled.stream)
        with archive:
            report = instances_ingest(files=iter_members(archive, members, refused), sender=sender)
    elif session.file_name.lower().endswith(".zip"):
        raise UploadRefused(
            "zip_unreadable", _("The zip file cannot be read: it is damaged or incomplete.")
        )
    else:
        kind = "file"
        received = ReceivedFile(
            stream=assembled.stream,
            size=assembled.size,
            sha256=assembled.sha256,
            name=session.file_name,
        )
        report = instances_ingest(files=[received], sender=sender)
    results = [result_dict(r) for r in report.results + refused]
    summary = {outcome.value: 0 for outcome in Outcome}
    for item in results:
        summary[item["outcome"]] += 1
    return {
        "kind": kind,
        "sha256": assembled.sha256,
        "results": results,
        "summary": summary,
        "study_instance_uids": sorted(report.study_uids),
    }


def result_dict(result: InstanceResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "outcome": result.outcome.value,
        "code": result.code,
        "reason": result.reason,
        "study_instance_uid": result.study_instance_uid,
        "sop_instance_uid": result.sop_instance_uid,
    }


def _fail(session: UploadSession, exc: UploadRefused, sender: Sender) -> None:
    session.state = UploadSession.State.FAILED
    session.result = {"error": exc.as_dict()}
    session.updated_at = timezone.now()
    session.save(update_fields=["state", "result", "updated_at"])
    audit(
        action="upload.failed",
        actor=sender.user,
        institution=sender.institution,
        object_type="upload",
        object_id=session.uuid,
        outcome=AuditEvent.Outcome.DENIED,
        ip=sender.ip,
        detail={"code": exc.code},
    )
    _delete_chunks(session)


def _reopen(session: UploadSession) -> None:
    """Give an upload back to its client after a failure that was not its fault."""
    UploadSession.objects.filter(pk=session.pk, state=UploadSession.State.ASSEMBLING).update(
        state=UploadSession.State.OPEN, updated_at=timezone.now()
    )


def _delete_chunks(session: UploadSession) -> None:
    """Delete the session's chunk objects, then their rows; a failure leaves them to cleanup."""
    store = get_store()
    try:
        for key in list(store.iter_keys(f"{UPLOADS_PREFIX}{session.uuid}/")):
            store.delete(key)
    except ArchiveError:
        logger.warning("upload %s: chunks not deleted; cleanup will retry", session.uuid)
        return
    UploadChunk.objects.filter(session=session).delete()


def uploads_cleanup(*, now: datetime | None = None) -> int:
    """Delete sessions idle longer than the expiry with their chunks; return how many.

    Also deletes chunk objects whose session row is gone. Keys are listed
    before the sessions are read: a session exists before any of its chunks,
    so a listed key without a session belongs to a deleted one.
    """
    cutoff = (now or timezone.now()) - conf.expiry()
    removed = 0
    for session in UploadSession.objects.filter(updated_at__lt=cutoff).iterator():
        _delete_chunks(session)
        session.delete()
        removed += 1
    store = get_store()
    listed: dict[str, list[str]] = {}
    for key in store.iter_keys(UPLOADS_PREFIX):
        listed.setdefault(key.split("/")[1], []).append(key)
    known = {
        str(value)
        for value in UploadSession.objects.filter(uuid__in=_valid_uuids(listed)).values_list(
            "uuid", flat=True
        )
    }
    orphans = 0
    for session_uuid, keys in listed.items():
        if session_uuid not in known:
            for key in keys:
                store.delete(key)
            orphans += 1
    if removed or orphans:
        audit(action="uploads.cleanup", detail={"expired": removed, "orphaned": orphans})
    return removed


def _valid_uuids(values: Any) -> list[str]:
    valid = []
    for value in values:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return valid
