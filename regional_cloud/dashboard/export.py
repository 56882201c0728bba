"""CSV and Excel files of what one dashboard view shows: its KPIs and its tables.

The files are written from the same suppressed data the page draws, so a
hidden cell is the marker ("<5") in the file too, never its number.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.utils.translation import gettext as _
from openpyxl import Workbook

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _value(value: Any) -> Any:
    return "" if value is None else value


def _tables(section: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """Return ``(title, header, rows)`` for the KPIs and every table of a section."""
    kpis = [[k["label"], _value(k["value"]), k.get("unit", "")] for k in section.get("kpis", [])]
    found = [(_("Summary"), [_("Indicator"), _("Value"), _("Unit")], kpis)]
    for table in section.get("tables", []):
        header = [c["label"] for c in table["columns"]]
        rows = [[_value(row.get(c["key"])) for c in table["columns"]] for row in table["rows"]]
        found.append((table["title"], header, rows))
    return found


def _filter_lines(filters: dict[str, str]) -> list[list[str]]:
    return [[key, value] for key, value in filters.items()]


def to_csv(section: dict[str, Any], filters: dict[str, str]) -> bytes:
    """Return the section as UTF-8 CSV with a BOM (Excel then reads the Chinese right)."""
    out = io.StringIO()
    writer = csv.writer(out)
    for line in _filter_lines(filters):
        writer.writerow(line)
    for title, header, rows in _tables(section):
        writer.writerow([])
        writer.writerow([title])
        writer.writerow(header)
        writer.writerows(rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _sheet_title(title: str, used: set[str]) -> str:
    # Excel: at most 31 characters, none of []:*?/\ , unique in the workbook.
    clean = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "Sheet"
    name, n = clean, 2
    while name in used:
        name, n = f"{clean[:26]} {n}", n + 1
    used.add(name)
    return name


def to_xlsx(section: dict[str, Any], filters: dict[str, str]) -> bytes:
    """Return the section as an Excel workbook, one sheet per table."""
    book = Workbook()
    used: set[str] = set()
    first = True
    for title, header, rows in _tables(section):
        sheet = book.active if first else book.create_sheet()
        first = False
        sheet.title = _sheet_title(title, used)
        if title == _("Summary"):
            for line in _filter_lines(filters):
                sheet.append(line)
            sheet.append([])
        sheet.append(header)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
