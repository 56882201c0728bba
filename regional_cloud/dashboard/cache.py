"""Computed dashboard sections, kept until the rollup tables change.

A section's data depend only on the filters, the caller's scope (the
institutions they may see), the region's k, the language of the labels and
the rollup rows. The rows change only when a refresh rewrites a table, and
every refresh stamps ``RollupState.refreshed_at``: the newest stamp is part of
the key, so a refresh makes every older entry unreachable at once (they expire
after ``DASHBOARD_CACHE_SECONDS``). A bureau that opens the same view twice,
or several analysts who open the default view, compute it once per refresh.

Not cached: the network section (edge health moves with the clock and the
heartbeats, not with the rollups). Institution and specialist names come with
the cached data: a renamed institution shows its new name after the next
refresh (within five minutes with the task worker).

``DASHBOARD_CACHE_SECONDS`` (setting, else environment; default 600, 0 turns
the cache off) — the benchmark turns it off to time the computation itself.
The cache is Django's default cache: per process unless ``CACHES`` names a
shared one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max, Min
from django.utils import translation

from regional_cloud.dashboard.models import RollupState
from regional_cloud.dashboard.scope import Filters
from regional_cloud.env import env_int

UNCACHED_SECTIONS = frozenset({"network"})
DEFAULT_SECONDS = 600


def cache_seconds() -> int:
    configured = getattr(settings, "DASHBOARD_CACHE_SECONDS", None)
    if configured is not None:
        return int(configured)
    return env_int("DASHBOARD_CACHE_SECONDS", DEFAULT_SECONDS)


@dataclass(frozen=True)
class RollupVersion:
    oldest: datetime | None  # shown as "data as of": the table refreshed longest ago
    newest: datetime | None  # changes with every refresh of any table

    @property
    def tag(self) -> str:
        return self.newest.isoformat() if self.newest else "never"


def rollup_version() -> RollupVersion:
    states = RollupState.objects.aggregate(oldest=Min("refreshed_at"), newest=Max("refreshed_at"))
    return RollupVersion(oldest=states["oldest"], newest=states["newest"])


def section_key(section: str, filters: Filters, k: int, version: RollupVersion) -> str:
    parts = [
        section,
        filters.region_id,
        filters.as_query(),
        sorted(filters.institution_ids),
        k,
        translation.get_language(),
        version.tag,
    ]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return f"dashboard:section:{digest}"


def cached_section(
    section: str,
    filters: Filters,
    k: int,
    version: RollupVersion,
    compute: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Return ``compute()``'s data, from the cache when this exact view was computed since
    the last refresh. The caller gets its own copy to add to."""
    seconds = cache_seconds()
    if seconds <= 0 or section in UNCACHED_SECTIONS:
        return compute()
    key = section_key(section, filters, k, version)
    data: dict[str, Any] | None = cache.get(key)
    if data is None:
        data = compute()
        cache.set(key, data, seconds)
    return dict(data)
