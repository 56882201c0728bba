"""Run the referral housekeeping once: for cron, or for a demo without Celery beat."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from referrals.tasks import expire_referrals, revoke_due_grants


class Command(BaseCommand):
    help = "Expire unanswered referrals and revoke study access whose grace period is over."

    def handle(self, *args: Any, **options: Any) -> None:
        expired = expire_referrals()
        revoked = revoke_due_grants()
        self.stdout.write(f"referrals expired: {expired}; study grants revoked: {revoked}")
