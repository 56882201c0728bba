"""Tiered referral (分级诊疗): a patient and their images sent up or down the network."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from hospitals.models import Institution, Region
from studies.models import Patient, Study


class Urgency(models.TextChoices):
    ROUTINE = "routine", _("Routine")
    URGENT = "urgent", _("Urgent")
    EMERGENCY = "emergency", _("Emergency")


# Used when a region has set no policy for an urgency.
DEFAULT_ANSWER_WITHIN = {
    Urgency.EMERGENCY: timedelta(minutes=30),
    Urgency.URGENT: timedelta(hours=24),
    Urgency.ROUTINE: timedelta(hours=72),
}
DEFAULT_LOOKBACK_DAYS = 365
DEFAULT_GRACE_HOURS = 72


class ReferralPolicy(models.Model):
    """A region's timing rules for one urgency: data the regional admin edits."""

    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="referral_policies")
    urgency = models.CharField(_("urgency"), max_length=16, choices=Urgency.choices)
    answer_within_minutes = models.PositiveIntegerField(_("answer within (minutes)"))
    # How far back the receiving side may see the patient's prior studies.
    lookback_days = models.PositiveIntegerField(_("prior studies look-back (days)"), default=365)
    # How long access lasts after the referral closes.
    grace_hours = models.PositiveIntegerField(_("access after closing (hours)"), default=72)

    class Meta:
        verbose_name = _("referral policy")
        verbose_name_plural = _("referral policies")
        constraints = [
            models.UniqueConstraint(fields=["region", "urgency"], name="policy_unique_urgency")
        ]

    def __str__(self) -> str:
        return f"{self.region} {self.get_urgency_display()}"


class Referral(models.Model):
    class Direction(models.TextChoices):
        UP = "up", _("Up (to a higher level)")
        DOWN = "down", _("Down (back for follow-up)")

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Submitted")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")
        SCHEDULED = "scheduled", _("Scheduled")
        ARRIVED = "arrived", _("Arrived")
        COMPLETED = "completed", _("Completed")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="referrals")
    studies = models.ManyToManyField(Study, blank=True, related_name="referrals")
    direction = models.CharField(_("direction"), max_length=8, choices=Direction.choices)
    urgency = models.CharField(
        _("urgency"), max_length=16, choices=Urgency.choices, default=Urgency.ROUTINE
    )
    from_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="referrals_sent"
    )
    to_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="referrals_received"
    )
    assigned_specialist = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="referrals_assigned",
    )
    clinical_question = models.TextField(_("clinical question"), blank=True)
    skip_reason = models.CharField(_("reason for skipping a level"), max_length=200, blank=True)
    treatment_summary = models.TextField(_("treatment summary"), blank=True)
    follow_up_plan = models.TextField(_("follow-up plan"), blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.DRAFT, db_index=True
    )
    rejection_reason = models.CharField(_("reason for rejection"), max_length=200, blank=True)
    cancellation_reason = models.CharField(_("reason for cancelling"), max_length=200, blank=True)
    scheduled_for = models.DateTimeField(_("appointment"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="referrals_created"
    )
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    answer_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="referrals_accepted",
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(from_institution=models.F("to_institution")),
                name="referral_not_to_itself",
            )
        ]

    def __str__(self) -> str:
        return str(self.uuid)

    @property
    def is_open(self) -> bool:
        return self.state not in CLOSED_STATES


CLOSED_STATES = frozenset(
    {
        Referral.State.REJECTED,
        Referral.State.COMPLETED,
        Referral.State.CANCELLED,
        Referral.State.EXPIRED,
    }
)


class ReferralEvent(models.Model):
    """One line of a referral's timeline: who did what, when."""

    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    kind = models.CharField(max_length=32)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16, blank=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.referral_id} {self.kind}"


class ReferralUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Referral, on_delete=models.CASCADE)


class ReferralGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Referral, on_delete=models.CASCADE)


# Mutual recognition lives in its own module; imported here so Django finds its models.
from referrals.recognition_models import (  # noqa: E402
    ExamPrice,
    ModalityWindow,
    QualityStatus,
    RecognitionDecision,
    RecognitionRule,
    RepeatReason,
)

__all__ = [
    "CLOSED_STATES",
    "ExamPrice",
    "ModalityWindow",
    "QualityStatus",
    "RecognitionDecision",
    "RecognitionRule",
    "Referral",
    "ReferralEvent",
    "ReferralGroupObjectPermission",
    "ReferralPolicy",
    "ReferralUserObjectPermission",
    "RepeatReason",
    "Urgency",
]
import referrals.consultation.models  # noqa: E402, F401 - so Django finds the consultation models
