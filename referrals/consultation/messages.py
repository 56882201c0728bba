"""The room's transcript: every message gets the next sequence number before anyone hears it.

``message_post`` stores a text, a snapshot, an annotation or a presenter
change. The number comes from ``Consultation.last_seq`` under the row's lock,
in the same transaction as the row: no gaps, no duplicates, and commits in
sequence order. A resend with the same ``client_msg_id`` returns the first
row. Snapshots (PNG data URLs up to 2 MB) go to the archive store under
``consultation/<uuid>/<seq>.png``; the message keeps the key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from referrals.consultation.models import (
    OPEN_STATES,
    Annotation,
    Consultation,
    ConsultationMessage,
)
from referrals.rules import ReferralError
from studies.archive import get_store
from studies.models import Instance

MAX_TEXT = 4000
MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024
PNG_PREFIX = "data:image/png;base64,"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ConsultationError(ReferralError):
    """A consultation write the rules refuse (400, 403 or 409, with a code)."""


@dataclass(frozen=True)
class Posted:
    message: ConsultationMessage
    created: bool


def message_post(
    *,
    consultation: Consultation,
    actor: Any,
    client_msg_id: str,
    kind: str,
    text: str = "",
    payload: dict[str, Any] | None = None,
    snapshot_data_url: str = "",
    annotation: dict[str, Any] | None = None,
) -> Posted:
    """Store one message of the room with the next sequence number; idempotent per client id.

    A text, a snapshot (``snapshot_data_url``: a PNG data URL up to 2 MB, kept
    in the archive store), an annotation (``annotation``: kind, study, series,
    sop, frame, points, text, value, unit) or a presenter change. Raise
    ``ConsultationError`` when the room is closed or the content is refused.
    """
    client_msg_id = clean_client_id(client_msg_id)
    if kind == ConsultationMessage.Kind.TEXT:
        return _post_text(consultation, actor, client_msg_id, text)
    existing = _existing(consultation, client_msg_id, actor)
    if existing is not None:
        return Posted(existing, created=False)
    png = _decode_png(snapshot_data_url) if kind == ConsultationMessage.Kind.SNAPSHOT else b""
    clean = _check_content(consultation, kind, text, annotation)
    try:
        with transaction.atomic():
            seq = next_seq(consultation)
            key = ""
            if png:
                key = f"consultation/{consultation.uuid}/{seq}.png"
                get_store().put(key, io.BytesIO(png), size=len(png), overwrite=True)
            message = ConsultationMessage.objects.create(
                consultation=consultation,
                seq=seq,
                client_msg_id=client_msg_id,
                kind=kind,
                author=actor,
                text=text.strip()[:MAX_TEXT],
                payload=payload or clean.get("payload") or {},
                snapshot_key=key,
            )
            if kind == ConsultationMessage.Kind.ANNOTATION:
                Annotation.objects.create(
                    consultation=consultation, message=message, author=actor, **clean["fields"]
                )
            elif kind == ConsultationMessage.Kind.PRESENTER:
                Consultation.objects.filter(pk=consultation.pk).update(
                    presenter=actor if message.payload.get("on") else None
                )
    except IntegrityError:
        # The same client id raced in from another connection; the first one stands.
        found = _existing(consultation, client_msg_id, actor)
        if found is None:
            raise
        return Posted(found, created=False)
    return Posted(message, created=True)


def _post_text(consultation: Consultation, actor: Any, client_msg_id: str, text: str) -> Posted:
    """Store a text in one statement: the number is taken and the row written in one commit.

    Texts are most of what a room says; one round trip and one commit keep a busy
    room's row lock short. A resend fails the unique (room, client id) constraint,
    which rolls the number back with it, and the first row is returned.
    """
    body = text_body(text)
    now = timezone.now()
    if connection.vendor != "postgresql":
        # SQLite (the embedded default) has no UPDATE inside WITH: two statements.
        return _post_text_two_statements(consultation, actor, client_msg_id, body)
    sql, params = text_insert(consultation.pk, actor.pk, client_msg_id, body, now)
    # One statement is one transaction in autocommit mode; inside a caller's
    # transaction a savepoint keeps a refused resend from breaking it.
    guard = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    try:
        with guard, connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    except IntegrityError:
        row = None
    if row is None:
        # A resend (the first row stands), or a room that closed meanwhile.
        found = _existing(consultation, client_msg_id, actor)
        if found is None:
            raise ConsultationError(
                _("This consultation is closed."), status=409, code="consultation_closed"
            )
        return Posted(found, created=False)
    return text_posted(consultation, actor, client_msg_id, body, now, row)


def _post_text_two_statements(
    consultation: Consultation, actor: Any, client_msg_id: str, body: str
) -> Posted:
    existing = _existing(consultation, client_msg_id, actor)
    if existing is not None:
        return Posted(existing, created=False)
    with transaction.atomic():
        message = ConsultationMessage.objects.create(
            consultation=consultation,
            seq=next_seq(consultation),
            client_msg_id=client_msg_id,
            kind=ConsultationMessage.Kind.TEXT,
            author=actor,
            text=body,
        )
    return Posted(message, created=True)


def text_body(text: str) -> str:
    """Return the text a message stores; refuse an empty one."""
    body = text.strip()[:MAX_TEXT]
    if not body:
        raise ConsultationError(_("The message is empty."), code="empty")
    return body


def clean_client_id(client_msg_id: str) -> str:
    """Return the browser's message id as stored; refuse a message without one."""
    cleaned = (client_msg_id or "").strip()[:64]
    if not cleaned:
        raise ConsultationError(_("A message needs an id."), code="no_client_id")
    return cleaned


def text_posted(
    consultation: Consultation,
    actor: Any,
    client_msg_id: str,
    body: str,
    now: Any,
    row: tuple[int, int] | Any,
) -> Posted:
    """Return the just-stored text (``row``: its id and number) without reading it back."""
    message = ConsultationMessage(
        id=row[0],
        consultation=consultation,
        seq=row[1],
        client_msg_id=client_msg_id,
        kind=ConsultationMessage.Kind.TEXT,
        author=actor,
        text=body,
        payload={},
        created_at=now,
    )
    return Posted(message, created=True)


ROOMS_TABLE, MESSAGES_TABLE = Consultation._meta.db_table, ConsultationMessage._meta.db_table
TEXT_INSERT_SQL = (
    f"WITH taken AS (UPDATE {ROOMS_TABLE} SET last_seq = last_seq + 1 "  # noqa: S608
    "WHERE id = %s AND state = ANY(%s) RETURNING last_seq) "
    f"INSERT INTO {MESSAGES_TABLE} (consultation_id, seq, client_msg_id, kind, author_id, "
    "text, payload, snapshot_key, created_at) "
    "SELECT %s, last_seq, %s, %s, %s, %s, '{}', '', %s FROM taken RETURNING id, seq"
)


def open_states() -> list[str]:
    return [str(state) for state in OPEN_STATES]


def text_insert(
    room_id: int, author_id: int, client_msg_id: str, body: str, now: Any
) -> tuple[str, list[Any]]:
    """Return the one statement that numbers and stores a text, and its parameters.

    No row back: the room is not open (any more). A unique violation: a resend.
    Shared by this module and ``loop_store`` (the same statement from the event loop).
    """
    params = [
        room_id,
        open_states(),
        room_id,
        client_msg_id,
        ConsultationMessage.Kind.TEXT.value,
        author_id,
        body,
        now,
    ]
    return TEXT_INSERT_SQL, params


def _existing(consultation: Consultation, client_msg_id: str, actor: Any) -> Any:
    found = (
        ConsultationMessage.objects.filter(consultation=consultation, client_msg_id=client_msg_id)
        .select_related("author")
        .first()
    )
    if found is not None and found.author_id != getattr(actor, "pk", None):
        raise ConsultationError(_("This message id is taken."), status=409, code="id_taken")
    return found


def next_seq(consultation: Consultation, *, any_state: bool = False) -> int:
    """Take the room's next sequence number; the row stays locked until commit.

    One statement: the UPDATE takes the row lock, so concurrent senders of
    the room queue here and commit in sequence order.
    """
    states = [str(s) for s in (Consultation.State if any_state else OPEN_STATES)]
    # IN (...), not = ANY(...): the embedded default runs on SQLite.
    marks = ", ".join(["%s"] * len(states))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Consultation._meta.db_table} SET last_seq = last_seq + 1 "  # noqa: S608
            f"WHERE id = %s AND state IN ({marks}) RETURNING last_seq",
            [consultation.pk, *states],
        )
        row = cursor.fetchone()
    if row is None:
        raise ConsultationError(
            _("This consultation is closed."), status=409, code="consultation_closed"
        )
    return int(row[0])


def _decode_png(data_url: str) -> bytes:
    if not data_url.startswith(PNG_PREFIX):
        raise ConsultationError(_("A snapshot must be a PNG image."), code="snapshot_not_png")
    encoded = data_url[len(PNG_PREFIX) :]
    if len(encoded) > (MAX_SNAPSHOT_BYTES * 4) // 3 + 4:
        raise ConsultationError(_("The snapshot is larger than 2 MB."), code="snapshot_too_large")
    try:
        png = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ConsultationError(
            _("A snapshot must be a PNG image."), code="snapshot_not_png"
        ) from (error)
    if len(png) > MAX_SNAPSHOT_BYTES:
        raise ConsultationError(_("The snapshot is larger than 2 MB."), code="snapshot_too_large")
    if not png.startswith(PNG_MAGIC):
        raise ConsultationError(_("A snapshot must be a PNG image."), code="snapshot_not_png")
    return png


def _check_content(
    consultation: Consultation, kind: str, text: str, annotation: dict[str, Any] | None
) -> dict[str, Any]:
    Kind = ConsultationMessage.Kind
    if kind == Kind.TEXT and not text.strip():
        raise ConsultationError(_("The message is empty."), code="empty")
    if kind == Kind.ANNOTATION:
        return _check_annotation(consultation, annotation or {})
    if kind not in {Kind.TEXT, Kind.SNAPSHOT, Kind.PRESENTER}:
        raise ConsultationError(_("Unknown kind of message."), code="bad_kind")
    return {}


def _check_annotation(consultation: Consultation, data: dict[str, Any]) -> dict[str, Any]:
    """Validate an annotation: one of the consultation's images, a known shape, sane points."""
    kind = str(data.get("kind", ""))
    points_in = data.get("points")
    need = {"arrow": 2, "length": 2, "text": 1}.get(kind)
    bad = ConsultationError(_("This annotation is not valid."), code="bad_annotation")
    if need is None or not isinstance(points_in, list) or len(points_in) != need:
        raise bad
    try:
        points = [{"x": float(p["x"]), "y": float(p["y"])} for p in points_in]
        frame = int(data.get("frame") or 1)
        value = None if data.get("value") is None else float(data["value"])
    except (KeyError, TypeError, ValueError) as error:
        raise bad from error
    if any(abs(c) > 1e5 for p in points for c in p.values()) or frame < 1:
        raise bad
    note = str(data.get("text") or "").strip()[:500]
    if kind == "text" and not note:
        raise bad
    instance = (
        Instance.objects.filter(
            study__in=consultation.studies.all(),
            study__study_instance_uid=str(data.get("study", "")),
            series__series_instance_uid=str(data.get("series", "")),
            sop_instance_uid=str(data.get("sop", "")),
        )
        .select_related("study")
        .first()
    )
    if instance is None:
        raise ConsultationError(
            _("Annotations go on this consultation's images only."), code="foreign_image"
        )
    fields = {
        "study": instance.study,
        "study_instance_uid": instance.study.study_instance_uid,
        "series_instance_uid": str(data["series"]),
        "sop_instance_uid": instance.sop_instance_uid,
        "frame_number": frame,
        "kind": kind,
        "points": points,
        "text": note,
        "value": value,
        "unit": str(data.get("unit") or "")[:8],
    }
    payload = {
        k: fields[k] for k in ("kind", "points", "text", "value", "unit", "frame_number")
    } | {
        "study": fields["study_instance_uid"],
        "series": fields["series_instance_uid"],
        "sop": fields["sop_instance_uid"],
    }
    return {"fields": fields, "payload": payload}
