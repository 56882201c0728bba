"""Keep the rollup tables current (Celery beat; see CELERY_BEAT_SCHEDULE in settings).

Both tasks take no arguments and are idempotent: a refresh recomputes whole
days, so a repeated or overlapping run writes the same rows.
"""

from __future__ import annotations

from celery import shared_task

from regional_cloud.dashboard.rollups import refresh_recent


@shared_task(name="dashboard.refresh_recent")
def refresh_recent_rollups() -> int:
    """Recompute today and yesterday; return how many rollup rows were written."""
    return sum(result.rows for result in refresh_recent(days=2))


@shared_task(name="dashboard.refresh_weeks")
def refresh_recent_weeks() -> int:
    """Recompute the last five weeks: catches late facts about older events (a critical
    result seen days after it was signed, a referral closed long after it was sent)."""
    return sum(result.rows for result in refresh_recent(days=35))
