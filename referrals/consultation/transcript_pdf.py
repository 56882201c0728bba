"""The consultation as a PDF: who took part, the question, every message in order, the
annotations, and the signed conclusion with its seal.

Chinese renders with reportlab's built-in CID font ``STSong-Light`` (as the
report PDFs do), so no font file ships. Snapshots are printed as images from
the archive store. Times are in the hub's time zone.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from referrals.consultation import signing
from referrals.consultation.models import (
    Annotation,
    Consultation,
    ConsultationMessage,
    Participant,
)
from studies.archive import ArchiveError, get_store

FONT = "STSong-Light"
MARGIN = 18 * mm
SNAPSHOT_WIDTH = 80 * mm

EVENTS = {
    "requested": gettext_lazy("requested the consultation"),
    "accepted": gettext_lazy("accepted"),
    "declined": gettext_lazy("declined"),
    "invited": gettext_lazy("invited another consultant"),
    "started": gettext_lazy("started the session"),
    "concluded": gettext_lazy("signed the conclusion"),
    "cancelled": gettext_lazy("cancelled the consultation"),
}


def _register_font() -> None:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _style(name: str, size: float, **kwargs: Any) -> ParagraphStyle:
    return ParagraphStyle(
        name, fontName=FONT, fontSize=size, leading=size * 1.45, wordWrap="CJK", **kwargs
    )


def _text(value: str) -> str:
    return escape(value or "").replace("\n", "<br/>")


def _name(user: Any) -> str:
    if user is None:
        return _("System")
    return str(user.get_full_name() or user.get_username())


def _time(value: Any) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _line(message: ConsultationMessage) -> str:
    """Return what one message says, as it reads in the transcript."""
    Kind = ConsultationMessage.Kind
    payload = message.payload or {}
    if message.kind == Kind.SYSTEM:
        return str(EVENTS.get(payload.get("event", ""), payload.get("event", "")))
    if message.kind == Kind.PRESENTER:
        return _("presents their view") if payload.get("on") else _("stopped presenting")
    if message.kind == Kind.ANNOTATION:
        label = dict(Annotation.Kind.choices).get(payload.get("kind", ""), "")
        detail = f"{label}: {payload.get('text') or ''}".rstrip(": ")
        if payload.get("value") is not None:
            detail += f" {payload['value']:.1f} {payload.get('unit', '')}"
        return _("annotated image %(sop)s (%(detail)s)") % {
            "sop": payload.get("sop", ""),
            "detail": detail.strip(),
        }
    if message.kind == Kind.SNAPSHOT:
        return (_("snapshot") + (f": {message.text}" if message.text else "")).strip()
    return message.text


def _snapshot(message: ConsultationMessage) -> Image | None:
    try:
        with get_store().open(message.snapshot_key) as stream:
            data = io.BytesIO(stream.read())
    except (ArchiveError, OSError):
        return None
    image = Image(data)
    scale = min(1.0, SNAPSHOT_WIDTH / image.imageWidth)
    image.drawWidth, image.drawHeight = image.imageWidth * scale, image.imageHeight * scale
    image.hAlign = "LEFT"
    return image


def transcript_pdf(
    consultation: Consultation,
    participants: Iterable[Participant],
    annotations: Iterable[Annotation],
) -> bytes:
    """Return the PDF of the consultation's whole transcript and its conclusion."""
    _register_font()
    title = _style("title", 16, spaceAfter=6)
    heading = _style("heading", 12, spaceBefore=10, spaceAfter=4)
    body = _style("body", 10)
    small = _style("small", 8, textColor=colors.HexColor("#555555"))
    story: list[Any] = [
        Paragraph(_text(_("Teleconsultation transcript")), title),
        Paragraph(
            _text(
                _("Consultation %(uuid)s · %(state)s")
                % {"uuid": consultation.uuid, "state": consultation.get_state_display()}
            ),
            small,
        ),
        Paragraph(
            _text(
                _("Requested by %(name)s, %(institution)s, %(time)s")
                % {
                    "name": _name(consultation.requested_by),
                    "institution": consultation.institution.name,
                    "time": _time(consultation.created_at),
                }
            ),
            body,
        ),
    ]
    if consultation.question:
        story += [Paragraph(_text(_("Clinical question")), heading)]
        story += [Paragraph(_text(consultation.question), body)]
    story.append(Paragraph(_text(_("Participants")), heading))
    rows = [[_("Name"), _("Institution"), _("Role"), _("Status")]]
    for p in participants:
        role = p.get_role_display() + (
            f" ({_('lead')})" if p.user_id == consultation.lead_id else ""
        )
        rows.append([_name(p.user), p.institution.name, role, p.get_status_display()])
    table = Table([[Paragraph(_text(str(c)), body) for c in row] for row in rows], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#999999")),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef3f2")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story.append(table)
    story.append(Paragraph(_text(_("Transcript")), heading))
    for message in consultation.messages.select_related("author").order_by("seq"):
        story.append(
            Paragraph(
                f"<font size=8 color='#555555'>#{message.seq} {_time(message.created_at)}</font> "
                f"<b>{_text(_name(message.author))}</b>: {_text(_line(message))}",
                body,
            )
        )
        if message.snapshot_key:
            image = _snapshot(message)
            if image is not None:
                story += [image, Spacer(1, 2 * mm)]
    shapes = list(annotations)
    if shapes:
        story.append(Paragraph(_text(_("Annotations")), heading))
        for a in shapes:
            points = ", ".join(f"({p['x']:.0f}, {p['y']:.0f})" for p in a.points)
            story.append(
                Paragraph(
                    _text(
                        f"{a.get_kind_display()} · {_name(a.author)} · {a.sop_instance_uid} "
                        f"· {points} {a.text}"
                    ),
                    body,
                )
            )
    story.append(Paragraph(_text(_("Conclusion")), heading))
    if consultation.concluded_at:
        story += [
            Paragraph(_text(consultation.conclusion), body),
            Spacer(1, 3 * mm),
            Paragraph(
                _text(
                    _("Signed by %(name)s on %(time)s")
                    % {
                        "name": _name(consultation.concluded_by),
                        "time": _time(consultation.concluded_at),
                    }
                ),
                body,
            ),
            Paragraph(
                _text(
                    _("Content SHA-256 %(hash)s · seal %(state)s")
                    % {
                        "hash": consultation.content_sha256,
                        "state": _("valid") if signing.verify(consultation) else _("INVALID"),
                    }
                ),
                small,
            ),
        ]
    else:
        story.append(Paragraph(_text(_("Not concluded.")), body))
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
        title=str(_("Teleconsultation transcript")),
        invariant=True,
    )
    document.build(story)
    return buffer.getvalue()
