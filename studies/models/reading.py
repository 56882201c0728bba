"""Reading: where a study is read (routing rules, reading tasks) and what comes back (reports).

A study is routed once, after ingest, to one reading institution; the
``ReadingTask`` is its place on the worklists of that institution's
specialists (and of anyone later given ``studies.report_study`` on it). The
``Report`` goes draft → preliminary → final; a final report is never edited
in place — corrections are addenda, themselves reports that ``amends`` it.
Writes go through ``studies.reading.services``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hospitals.models import Institution, Region
from studies.models.index import Study


class Priority(models.TextChoices):
    """How soon a study must be read (the referral's urgency words)."""

    EMERGENCY = "emergency", _("Emergency")
    URGENT = "urgent", _("Urgent")
    ROUTINE = "routine", _("Routine")


# Lower reads first.
PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class RoutingRule(models.Model):
    """One line of a region's routing table: studies that match go to ``reading_institution``.

    Empty conditions match everything; the lowest ``order`` that matches wins.
    With no match a study goes to the default (see ``studies.reading.routing``).
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    region = models.ForeignKey(
        Region, on_delete=models.CASCADE, related_name="routing_rules", verbose_name=_("region")
    )
    order = models.PositiveIntegerField(_("order"), default=100)
    modality = models.CharField(
        _("modality"), max_length=16, blank=True, help_text=_("For example CT, MR, DX, US, ECG.")
    )
    origin = models.ForeignKey(
        Institution,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("from institution"),
    )
    priority = models.CharField(_("priority"), max_length=16, choices=Priority.choices, blank=True)
    reading_institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        related_name="routing_rules_reading",
        verbose_name=_("read by"),
    )
    is_active = models.BooleanField(_("active"), default=True)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")
        ordering = ["region_id", "order", "id"]

    def __str__(self) -> str:
        return f"{self.region} #{self.order} → {self.reading_institution}"


class ReadingTask(models.Model):
    """A study's place in a reading pool: priority, state and who is reading it now."""

    class Status(models.TextChoices):
        UNREAD = "unread", _("Unread")
        IN_PROGRESS = "in_progress", _("Being reported")
        FINAL = "final", _("Final")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="reading_task")
    reading_institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        related_name="reading_tasks",
        verbose_name=_("read by"),
    )
    # The rule that chose the institution; null when the default (the origin's hub) did.
    rule = models.ForeignKey(RoutingRule, on_delete=models.SET_NULL, null=True, blank=True)
    priority = models.CharField(
        _("priority"), max_length=16, choices=Priority.choices, default=Priority.ROUTINE
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.UNREAD, db_index=True
    )
    routed_at = models.DateTimeField(_("routed"), default=timezone.now)
    # The claim: one reader at a time. A claim past ``claim_expires_at`` counts as free.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("reading task")
        verbose_name_plural = _("reading tasks")
        indexes = [
            models.Index(
                fields=["reading_institution", "status", "routed_at"], name="task_pool_queue"
            )
        ]

    def __str__(self) -> str:
        return str(self.uuid)

    def claim_active(self, now: datetime | None = None) -> bool:
        """Return whether someone holds a claim that has not expired."""
        moment = now or timezone.now()
        return (
            self.claimed_by_id is not None
            and self.claim_expires_at is not None
            and self.claim_expires_at > moment
        )


class ReportTemplate(models.Model):
    """Normal text for a modality and body part, which the reader edits."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    modality = models.CharField(_("modality"), max_length=16, db_index=True)
    body_part = models.CharField(_("body part"), max_length=32, blank=True)
    name = models.CharField(_("name"), max_length=100)
    findings = models.TextField(_("findings"), blank=True)
    impression = models.TextField(_("impression"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("report template")
        verbose_name_plural = _("report templates")
        ordering = ["modality", "body_part", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["modality", "body_part", "name"], name="report_template_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name


class Report(models.Model):
    """A diagnostic report on a study, or an addendum to one (``amends``)."""

    class State(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PRELIMINARY = "preliminary", _("Preliminary")
        FINAL = "final", _("Final")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="reports")
    task = models.ForeignKey(ReadingTask, on_delete=models.PROTECT, related_name="reports")
    amends = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="addenda"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    template = models.ForeignKey(
        ReportTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.DRAFT, db_index=True
    )
    findings = models.TextField(_("findings"), blank=True)
    impression = models.TextField(_("impression"), blank=True)
    # 危急值: a finding the requesting doctor must hear of at once.
    critical = models.BooleanField(_("critical result"), default=False)
    critical_notified_at = models.DateTimeField(null=True, blank=True)
    critical_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)
    preliminary_at = models.DateTimeField(null=True, blank=True)
    # The signature binds signer, time and a hash of the content (studies.reading.signing).
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    signature = models.CharField(max_length=64, blank=True)
    # The Encapsulated PDF instance that carries this report in the archive.
    archived_sop_instance_uid = models.CharField(max_length=64, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["study"],
                condition=models.Q(amends__isnull=True),
                name="report_one_per_study",
            )
        ]

    def __str__(self) -> str:
        return str(self.uuid)

    @property
    def is_addendum(self) -> bool:
        return self.amends_id is not None

    @property
    def is_final(self) -> bool:
        return self.state == self.State.FINAL
