"""The bureau's indicators, read from the rollup tables only (never the index).

Each ``*_section(filters, suppressor)`` returns one view as plain data — KPIs,
trends, tables, flows — that the JSON API sends, the charts draw and the
exports write, so the three can never disagree. Counts pass through
``privacy.Suppressor`` before they leave (see privacy.py for the rules).

Institution filters match either side of a two-sided figure: a referral
counts for the institution that sent it and the one that received it, a
report for the study's origin and its reading institution.
"""

from __future__ import annotations

from regional_cloud.dashboard import models as rollup
from regional_cloud.dashboard.scope import Filters
from regional_cloud.dashboard.selectors.common import _either, institution_label
from regional_cloud.dashboard.selectors.network import network_section
from regional_cloud.dashboard.selectors.recognition import recognition_section
from regional_cloud.dashboard.selectors.referral_flows import referrals_section
from regional_cloud.dashboard.selectors.turnaround import turnaround_section
from regional_cloud.dashboard.selectors.volume import volume_section

__all__ = ["SECTIONS", "institution_label", "modalities"]


SECTIONS = {
    "volume": volume_section,
    "turnaround": turnaround_section,
    "referrals": referrals_section,
    "recognition": recognition_section,
    "network": network_section,
}


def modalities(filters: Filters) -> list[str]:
    """Return the modalities seen in the region, for the filter's choices."""
    # The month table of storage: every modality of the day rows, none of "*", few rows.
    return list(
        rollup.MonthlyStorage.objects.filter(_either(filters, "institution_id"))
        .values_list("modality", flat=True)
        .distinct()
        .order_by("modality")
    )
