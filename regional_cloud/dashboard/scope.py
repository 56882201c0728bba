"""Who may see which dashboard, and the filters of one request.

A bureau analyst or a regional admin sees their whole region; an
institution admin sees their own institution only (the same pages, the
institution fixed). Nobody else sees a dashboard. An institution outside the
caller's scope is answered 404, never 403, so its existence is not confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

from hospitals.models import Institution, Region, Role, Tier
from hospitals.selectors import active_memberships

REGION_ROLES = (Role.BUREAU_ANALYST, Role.REGIONAL_ADMIN)
GRANULARITIES = ("day", "week", "month")
DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366


@dataclass(frozen=True)
class Scope:
    """What one user may see: a region, and within it everything or one institution."""

    region: Region
    own_institution: Institution | None  # set for an institution admin: their only view

    @property
    def region_wide(self) -> bool:
        return self.own_institution is None


def dashboard_scope(user: Any) -> Scope:
    """Return the user's dashboard scope, or raise PermissionDenied (403)."""
    memberships = list(active_memberships(user))
    for membership in memberships:
        if membership.role in REGION_ROLES:
            return Scope(region=membership.institution.region, own_institution=None)
    for membership in memberships:
        if membership.role == Role.INSTITUTION_ADMIN:
            institution = membership.institution
            return Scope(region=institution.region, own_institution=institution)
    raise PermissionDenied(_("Dashboards are for the health bureau and institution admins."))


def may_see_dashboard(user: Any) -> bool:
    try:
        dashboard_scope(user)
    except PermissionDenied:
        return False
    return True


@dataclass(frozen=True)
class Filters:
    region_id: int
    start: date
    end: date  # inclusive
    institution: Institution | None = None
    tier: str = ""
    modality: str = ""
    granularity: str = "day"
    # The institutions every figure is restricted to (ids), from the above and the scope.
    institution_ids: frozenset[int] = field(default_factory=frozenset)
    # True when those are every institution the rollup rows can name (the whole region,
    # and no other region in the database): the readers then leave the restriction out.
    every_institution: bool = False

    def as_query(self) -> dict[str, str]:
        """Return the filters as query parameters (for links and exports)."""
        query = {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "granularity": self.granularity,
        }
        if self.institution is not None:
            query["institution"] = str(self.institution.uuid)
        if self.tier:
            query["tier"] = self.tier
        if self.modality:
            query["modality"] = self.modality
        return query


class FilterError(ValueError):
    pass


def _date(raw: str | None, default: date, name: str) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as error:
        raise FilterError(_("%(name)s: expected a date as YYYY-MM-DD") % {"name": name}) from error


def parse_filters(scope: Scope, params: QueryDict | dict[str, str], **fixed: Any) -> Filters:
    """Return the request's filters inside ``scope``; raise FilterError or Http404.

    ``fixed`` overrides parameters (the institution of a drill-down page's URL).
    """
    values = {key: params.get(key) for key in ("from", "to", "institution", "tier", "modality")}
    values.update(fixed)
    today = timezone.localdate()
    end = _date(values["to"], today, "to")
    start = _date(values["from"], end - timedelta(days=DEFAULT_DAYS - 1), "from")
    if start > end:
        raise FilterError(_("The start date is after the end date."))
    if (end - start).days > MAX_DAYS:
        raise FilterError(_("Choose at most three years."))
    granularity = params.get("granularity") or "day"
    if granularity not in GRANULARITIES:
        raise FilterError(_("granularity: day, week or month"))
    tier = values["tier"] or ""
    if tier and tier not in Tier.values:
        raise FilterError(_("Unknown tier."))
    modality = (values["modality"] or "").strip().upper()[:16]
    if modality and not modality.isalnum():
        raise FilterError(_("modality: a DICOM modality such as CT"))

    institutions = Institution.objects.filter(region=scope.region)
    institution = scope.own_institution
    raw_institution = values["institution"]
    if raw_institution:
        try:
            chosen = institutions.get(uuid=raw_institution)
        except (Institution.DoesNotExist, ValueError, TypeError) as error:
            raise Http404 from error
        if institution is not None and chosen.pk != institution.pk:
            raise Http404
        institution = chosen
    if institution is not None:
        institutions = institutions.filter(pk=institution.pk)
    if tier:
        institutions = institutions.filter(tier=tier)
    every_institution = (
        institution is None and not tier and not Region.objects.exclude(pk=scope.region.pk).exists()
    )
    return Filters(
        region_id=scope.region.pk,
        start=start,
        end=end,
        institution=institution,
        tier=tier,
        modality=modality,
        granularity=granularity,
        institution_ids=frozenset(institutions.values_list("pk", flat=True)),
        every_institution=every_institution,
    )
