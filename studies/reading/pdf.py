"""The report as a PDF: the reading institution's header, the patient and study, the
findings and impression, the critical mark, the signer, the HR mark and a link to the images.

Chinese renders with reportlab's built-in CID font ``STSong-Light`` (Adobe's
Song font metrics; viewers supply the glyphs), so no font file ships with the
product. Output is invariant (no creation time, fixed document id): the same
report gives the same bytes, which keeps storing it in the archive idempotent.
The PDF is written in the region's language (LANGUAGE_CODE), whoever asks.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    HRFlowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from reportlab.platypus.flowables import Flowable

from hospitals.models import HRScope
from studies.models import Report
from studies.reading.display import date_label, dicom_date, patient_age, person_name, sex_label
from studies.reading.links import report_path, viewer_url

FONT = "STSong-Light"
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm
CRITICAL_RED = colors.HexColor("#b42318")


def _register_font() -> None:
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))


def _style(name: str, size: float, **kwargs: object) -> ParagraphStyle:
    return ParagraphStyle(
        name, fontName=FONT, fontSize=size, leading=size * 1.45, wordWrap="CJK", **kwargs
    )


def _text(value: str) -> str:
    """Return plain text as Paragraph markup: escaped, line breaks kept."""
    return escape(value or "").replace("\n", "<br/>")


@dataclass(frozen=True)
class HRMark:
    scope_label: str


def hr_mark(report: Report) -> HRMark | None:
    """Return the HR recognition mark of the study's images, if the origin's
    qualification covers the study date (DOMAIN: what is recognized are the images)."""
    origin = report.study.origin
    day = dicom_date(report.study.study_date) or timezone.localdate(report.study.received_at)
    if not origin.hr_valid_on(day):
        return None
    return HRMark(scope_label=str(HRScope(origin.hr_scope).label))


class _HRBadge(Flowable):
    """A boxed "HR" with its scope, as the recognition mark is printed on results."""

    def __init__(self, mark: HRMark) -> None:
        super().__init__()
        self.mark = mark
        self.width = 34 * mm
        self.height = 14 * mm

    def draw(self) -> None:
        canvas = self.canv
        canvas.setStrokeColor(colors.HexColor("#0b4f4a"))
        canvas.setFillColor(colors.HexColor("#0b4f4a"))
        canvas.setLineWidth(1.2)
        canvas.roundRect(0, 0, self.width, self.height, 2 * mm, stroke=1, fill=0)
        canvas.setFont("Helvetica-Bold", 15)
        canvas.drawString(3 * mm, 4.3 * mm, "HR")
        canvas.setFont(FONT, 9)
        canvas.drawString(13 * mm, 5 * mm, self.mark.scope_label)


def _addenda_for(report: Report) -> tuple[Report, list[Report]]:
    """Return the report the document is about and its final addenda up to ``report``."""
    root = report.amends if report.amends_id else report
    assert root is not None
    addenda = root.addenda.filter(state=Report.State.FINAL).select_related("author", "signed_by")
    if report.amends_id and report.signed_at:
        addenda = addenda.filter(signed_at__lte=report.signed_at)
    elif report.amends_id:
        addenda = addenda.none()
    return root, list(addenda.order_by("signed_at", "id"))


def render_report_pdf(report: Report, *, with_later_addenda: bool = True) -> bytes:
    """Return the PDF of ``report`` (an addendum renders its report with the addenda so far).

    ``with_later_addenda=False`` renders a report as it was when signed (the archive copy).
    """
    _register_font()
    with translation.override(settings.LANGUAGE_CODE):
        root, addenda = _addenda_for(report)
        if not with_later_addenda and not report.amends_id:
            addenda = []
        buffer = io.BytesIO()
        doc = SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN,
            bottomMargin=MARGIN + 8 * mm,
            title=_("Imaging report"),
            author=root.task.reading_institution.name,
            creator="Regional Imaging Cloud",
            invariant=1,
            lang=settings.LANGUAGE_CODE,
        )
        story = _story(root, addenda)
        footer = _footer(root)
        doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _story(report: Report, addenda: list[Report]) -> list[Flowable]:
    study = report.study
    patient = study.patient
    title = _style("title", 17, alignment=TA_CENTER, spaceAfter=2)
    subtitle = _style("subtitle", 12, alignment=TA_CENTER, textColor=colors.HexColor("#364152"))
    head = _style("head", 11.5, spaceBefore=8, spaceAfter=3, textColor=colors.HexColor("#0c2f45"))
    body = _style("body", 10.5)
    small = _style("small", 8.5, textColor=colors.HexColor("#5f6b7a"))
    label = _style("label", 9.5, textColor=colors.HexColor("#5f6b7a"))

    heading = [
        Paragraph(_text(report.task.reading_institution.name), title),
        Paragraph(_text(_("Imaging report")), subtitle),
    ]
    mark = hr_mark(report)
    header = Table(
        [[heading, _HRBadge(mark) if mark else ""]],
        colWidths=[PAGE_WIDTH - 2 * MARGIN - 38 * mm, 38 * mm],
    )
    header.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                ("LEFTPADDING", (0, 0), (-1, -1), 0),
                ("RIGHTPADDING", (0, 0), (-1, -1), 0),
            ]
        )
    )
    story: list[Flowable] = [header, Spacer(1, 3 * mm)]
    story.append(HRFlowable(width="100%", thickness=1.2, color=colors.HexColor("#0c2f45")))

    def cell(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(_text(text), style)

    facts = [
        (
            _("Patient's name"),
            person_name(patient.patient_name),
            _("Patient ID"),
            patient.patient_id,
        ),
        (
            _("Sex"),
            sex_label(patient.patient_sex),
            _("Age"),
            patient_age(patient.patient_birth_date, study.study_date),
        ),
        (
            _("Referred by"),
            study.origin.name,
            _("Referring physician"),
            person_name(study.referring_physician_name),
        ),
        (
            _("Modality"),
            # Not the report's own objects (PDF, SR): printing them would change the PDF.
            "/".join(m for m in study.modalities if m not in ("DOC", "SR")),
            _("Study date"),
            date_label(study.study_date),
        ),
        (_("Examination"), study.study_description, _("Accession"), study.accession_number),
    ]
    table = Table(
        [[cell(a, label), cell(b), cell(c, label), cell(d)] for a, b, c, d in facts],
        colWidths=[24 * mm, 58 * mm, 30 * mm, None],
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 2),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
    )
    story += [Spacer(1, 2 * mm), table, Spacer(1, 1 * mm)]
    story.append(HRFlowable(width="100%", thickness=0.5, color=colors.HexColor("#d9e0e7")))
    story += _content(report, head, body)
    story += _signature(report, small)
    for addendum in addenda:
        story.append(Spacer(1, 4 * mm))
        story.append(HRFlowable(width="100%", thickness=0.8, color=colors.HexColor("#0c2f45")))
        story.append(Paragraph(_text(_("Addendum")), head))
        story += _content(addendum, head, body)
        story += _signature(addendum, small)
    return story


def _content(report: Report, head: ParagraphStyle, body: ParagraphStyle) -> list[Flowable]:
    parts: list[Flowable] = []
    if report.critical:
        critical = _style("critical", 12, textColor=colors.white, backColor=CRITICAL_RED)
        critical.borderPadding = (2 * mm, 2 * mm, 2 * mm, 2 * mm)
        parts += [
            Spacer(1, 3 * mm),
            Paragraph(_text(_("Critical result")), critical),
            Spacer(1, 2 * mm),
        ]
    parts += [
        Paragraph(_text(_("Findings")), head),
        Paragraph(_text(report.findings) or "—", body),
        KeepTogether(
            [Paragraph(_text(_("Impression")), head), Paragraph(_text(report.impression), body)]
        ),
    ]
    return parts


def _when(moment: object) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""  # type: ignore[arg-type]


def _name(user: object) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()  # type: ignore[attr-defined]


def _signature(report: Report, small: ParagraphStyle) -> list[Flowable]:
    sign = _style("sign", 10.5)
    if report.state == Report.State.FINAL:
        line = _("Reported by %(author)s, signed by %(signer)s at %(time)s") % {
            "author": _name(report.author),
            "signer": _name(report.signed_by),
            "time": _when(report.signed_at),
        }
        seal = _("Content SHA-256 %(hash)s") % {"hash": report.content_sha256}
    else:
        line = _("Reported by %(author)s: %(state)s, not signed") % {
            "author": _name(report.author),
            "state": report.get_state_display(),
        }
        seal = ""
    parts: list[Flowable] = [Spacer(1, 4 * mm), Paragraph(_text(line), sign)]
    if seal:
        parts.append(Paragraph(_text(seal), small))
    return parts


def _footer(report: Report) -> Callable[[Canvas, SimpleDocTemplate], None]:
    study_uid = report.study.study_instance_uid
    images = _("Images: %(url)s") % {"url": viewer_url(study_uid)}
    check = _("This report online: %(url)s") % {
        "url": f"{settings.SITE_URL}{report_path(report.uuid)}"
    }
    watermark = "" if report.state == Report.State.FINAL else report.get_state_display()

    def draw(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        if watermark:
            canvas.setFillColor(colors.Color(0.75, 0.75, 0.75, alpha=0.35))
            canvas.setFont(FONT, 60)
            canvas.translate(PAGE_WIDTH / 2, PAGE_HEIGHT / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, watermark)
            canvas.rotate(-35)
            canvas.translate(-PAGE_WIDTH / 2, -PAGE_HEIGHT / 2)
        canvas.setFillColor(colors.HexColor("#5f6b7a"))
        canvas.setStrokeColor(colors.HexColor("#d9e0e7"))
        canvas.line(MARGIN, MARGIN + 6 * mm, PAGE_WIDTH - MARGIN, MARGIN + 6 * mm)
        canvas.setFont(FONT, 8)
        canvas.drawString(MARGIN, MARGIN + 2 * mm, images)
        canvas.drawString(MARGIN, MARGIN - 2 * mm, check)
        canvas.drawRightString(PAGE_WIDTH - MARGIN, MARGIN + 2 * mm, str(doc.page))
        canvas.restoreState()

    return draw
