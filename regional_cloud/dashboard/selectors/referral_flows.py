"""Referrals up and down: counts, acceptance, time to accept, who refers to whom."""

from __future__ import annotations

from typing import Any

from django.db.models import Sum
from django.utils.translation import gettext as _

from hospitals.models import Institution
from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.privacy import Suppressor, is_shown
from regional_cloud.dashboard.scope import Filters
from regional_cloud.dashboard.selectors.common import (
    _by_period,
    _either,
    _in_periods,
    _in_range,
    _institutions,
    _ints,
    _line,
    _total,
    column,
    institution_label,
    kpi,
    periods,
)

# --- referrals -----------------------------------------------------------------------------


def _flow_rows(filters: Filters) -> list[dict[str, Any]]:
    return list(
        _in_range(rollup.DailyReferralFlow.objects, filters)
        .filter(_either(filters, "from_institution_id", "to_institution_id"))
        .values("from_institution_id", "to_institution_id", "direction")
        .annotate(
            submitted=Sum("submitted"),
            accepted=Sum("accepted"),
            rejected=Sum("rejected"),
            expired=Sum("expired"),
            minutes=Sum("minutes_to_accept_sum"),
        )
        .order_by("direction", "-submitted", "from_institution_id", "to_institution_id")
    )


def flows(
    rows: list[dict[str, Any]], names: dict[int, Institution], sup: Suppressor
) -> dict[str, list[dict[str, Any]]]:
    """Return the links per direction for a flow diagram; hidden links are left out."""
    result: dict[str, list[dict[str, Any]]] = {"up": [], "down": []}
    for direction in result:
        links = [r for r in rows if r["direction"] == direction]
        line = _line(sup, [r["submitted"] for r in links])
        for row, shown in zip(links, line.shown, strict=True):
            if is_shown(shown) and shown:
                result[direction].append(
                    {
                        "source": institution_label(names[row["from_institution_id"]]),
                        "target": institution_label(names[row["to_institution_id"]]),
                        "value": shown,
                    }
                )
    return result


def referrals_section(filters: Filters, sup: Suppressor) -> dict[str, Any]:
    names = _institutions(filters)
    rows = _flow_rows(filters)
    up = sum(r["submitted"] for r in rows if r["direction"] == "up")
    down = sum(r["submitted"] for r in rows if r["direction"] == "down")
    accepted = sum(r["accepted"] for r in rows)
    decided = accepted + sum(r["rejected"] + r["expired"] for r in rows)
    minutes = sum(r["minutes"] or 0 for r in rows)

    days = list(
        _in_periods(rollup.DailyReferralFlow.objects, filters)
        .filter(_either(filters, "from_institution_id", "to_institution_id"))
        .values("day", "direction")
        .annotate(submitted=Sum("submitted"))
    )
    up_days = _by_period([d for d in days if d["direction"] == "up"], filters, "submitted")
    down_days = _by_period([d for d in days if d["direction"] == "down"], filters, "submitted")
    up_line = _line(sup, _ints(up_days["submitted"]))
    down_line = _line(sup, _ints(down_days["submitted"]))
    link_lines = {
        direction: _line(sup, [r["submitted"] for r in rows if r["direction"] == direction])
        for direction in ("up", "down")
    }
    shown_link = {direction: iter(line.shown) for direction, line in link_lines.items()}
    table_rows = []
    for row in rows:
        shown = next(shown_link[row["direction"]])
        if row["from_institution_id"] not in names or row["to_institution_id"] not in names:
            continue
        table_rows.append(
            {
                "from": institution_label(names[row["from_institution_id"]]),
                "to": institution_label(names[row["to_institution_id"]]),
                "direction": _("Up") if row["direction"] == "up" else _("Down"),
                "submitted": shown,
                "acceptance": sup.rate(
                    row["accepted"],
                    row["accepted"] + row["rejected"] + row["expired"],
                    shown=shown,
                ),
                "hours_to_accept": sup.mean(
                    (row["minutes"] or 0) / 60, row["accepted"], shown=shown
                ),
            }
        )
    return {
        "section": "referrals",
        "kpis": [
            kpi("up", _("Referred up"), _total(sup, up, up_line, link_lines["up"]), kind="count"),
            kpi(
                "down",
                _("Referred down"),
                _total(sup, down, down_line, link_lines["down"]),
                kind="count",
            ),
            kpi("accepted", _("Accepted"), sup.cell(accepted), kind="count"),
            kpi("acceptance", _("Acceptance rate"), sup.rate(accepted, decided), "%"),
            kpi(
                "hours_to_accept",
                _("Mean time to accept"),
                sup.mean(minutes / 60, accepted, shown=sup.cell(accepted)),
                _("h"),
            ),
        ],
        "trend": {
            "periods": [p.isoformat() for p in periods(filters)],
            "series": [
                {"key": "up", "label": _("Referred up"), "values": up_line.shown},
                {"key": "down", "label": _("Referred down"), "values": down_line.shown},
            ],
        },
        "flows": flows(rows, names, sup),
        "tables": [
            {
                "key": "flows",
                "title": _("Who refers to whom"),
                "columns": [
                    column("from", _("From"), "text"),
                    column("to", _("To"), "text"),
                    column("direction", _("Direction"), "text"),
                    column("submitted", _("Referrals")),
                    column("acceptance", _("Accepted (%)"), "number"),
                    column("hours_to_accept", _("Mean hours to accept"), "number"),
                ],
                "rows": table_rows,
            }
        ],
    }
