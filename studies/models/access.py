"""Why someone may see a study: one row per grant, so revoking one reason keeps the others.

Guardian's permission rows answer "may this user see it?" fast; they carry no
reason and no count. A study may be visible to the county's radiologists
because it was routed to them *and* because a referral shared it; closing the
referral must not end the routing grant. The ledger below records every
reason, and the permission row exists while at least one active grant does.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone

from studies.models.index import Study


class StudyGrant(models.Model):
    class Source(models.TextChoices):
        ORIGIN = "origin", "origin"
        ROUTING = "routing", "routing"
        REFERRAL = "referral", "referral"
        CONSULTATION = "consultation", "consultation"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="grants")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True
    )
    codename = models.CharField(max_length=64)  # "view_study", "report_study"
    source = models.CharField(max_length=16, choices=Source.choices)
    source_ref = models.CharField(max_length=64, blank=True)  # e.g. the referral's UUID
    granted_at = models.DateTimeField(default=timezone.now)
    # Set when the reason ends; the permission goes once this time has passed.
    revoke_after = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(group__isnull=False, user__isnull=True)
                | models.Q(group__isnull=True, user__isnull=False),
                name="grant_one_grantee",
            ),
        ]
        indexes = [models.Index(fields=["source", "source_ref"], name="grant_source")]

    def __str__(self) -> str:
        return f"{self.codename} on {self.study_id} ({self.source})"
