"""How DICOM values read to a person: names, ages, sexes, dates."""

from __future__ import annotations

import re
from datetime import date

from django.utils.translation import gettext as _

CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def person_name(pn: str) -> str:
    """Return a Person Name (PS3.5 6.2) as people write it.

    The ideographic group is preferred when present (``Wang^Xiaodong=王^小东``);
    Chinese components are joined without a space, others with one.
    """
    groups = [g for g in (pn or "").split("=") if g.strip("^ ")]
    if not groups:
        return ""
    chosen = next((g for g in groups if CJK.search(g)), groups[0])
    parts = [p.strip() for p in chosen.split("^") if p.strip()]
    # PN order is family^given^middle^prefix^suffix; a Chinese name is family + given.
    return ("" if CJK.search(chosen) else " ").join(parts)


def dicom_date(value: str) -> date | None:
    """Return a DA value (YYYYMMDD) as a date, or None."""
    text = (value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def patient_age(birth_date: str, on: str | date | None) -> str:
    """Return the age on the study date: years, or months for an infant."""
    born = dicom_date(birth_date)
    day = dicom_date(on) if isinstance(on, str) else on
    if born is None or day is None or day < born:
        return ""
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    if years >= 1:
        return _("%(years)s y") % {"years": years}
    months = (day.year - born.year) * 12 + day.month - born.month - (day.day < born.day)
    return _("%(months)s mo") % {"months": max(months, 0)}


def sex_label(value: str) -> str:
    """Return Patient's Sex (0010,0040) in words."""
    return {"M": _("Male"), "F": _("Female"), "O": _("Other")}.get((value or "").upper(), "")


def date_label(value: str) -> str:
    """Return a DA value as YYYY-MM-DD (or as it is when it is no date)."""
    day = dicom_date(value)
    return day.isoformat() if day else (value or "")
