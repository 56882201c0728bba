"""Periodic housekeeping of referrals (Celery beat; see CELERY_BEAT_SCHEDULE in settings).

The tasks take no arguments and no patient data; both are idempotent, so a
repeated or overlapping run does no harm (rows are locked one by one).
"""

from __future__ import annotations

from celery import shared_task

from referrals.services import referrals_expire_due
from studies.access import study_access_revoke_due


@shared_task(name="referrals.tasks.expire_referrals")
def expire_referrals() -> int:
    """Expire submitted referrals nobody answered in time; return how many."""
    return referrals_expire_due()


@shared_task(name="referrals.tasks.revoke_due_grants")
def revoke_due_grants() -> int:
    """End study access whose grace period is over (closed referrals); return how many."""
    return study_access_revoke_due()
