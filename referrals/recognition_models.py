"""Result mutual recognition (检查结果互认): the region's rules as data, and the decisions.

National rules (国卫医发〔2022〕6号) leave the details to provinces and regions:
validity windows per modality, which levels recognize which, what HR scope an
issuer needs. Each region keeps them in ``RecognitionRule`` (edited by its
regional admin in the admin site), prices in ``ExamPrice``. A doctor's verdict
on one prior study is a ``RecognitionDecision``; the bureau counts them.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hospitals.models import HRScope, Institution, Region
from studies.models import Study

# Seed values for a new region; afterwards they are the region's data.
DEFAULT_WINDOWS: dict[str, int] = {
    "CT": 180,
    "MR": 180,
    "DX": 90,
    "DR": 90,
    "CR": 90,
    "US": 30,
    "ECG": 30,
}
OTHER_TEXT_MAX = 200


class RecognitionRule(models.Model):
    """One region's recognition rules."""

    region = models.OneToOneField(
        Region, on_delete=models.CASCADE, related_name="recognition_rule", verbose_name=_("region")
    )
    same_level = models.BooleanField(
        _("same-level institutions recognize each other"), default=True
    )
    lower_accepts_higher = models.BooleanField(
        _("lower levels accept higher levels' results"), default=True
    )
    within_alliance = models.BooleanField(
        _("members of one medical alliance or community recognize each other"), default=True
    )
    # Outside a shared alliance the issuer must carry at least this HR mark,
    # valid on the study date.
    required_hr_scope = models.CharField(
        _("HR scope required across alliances"),
        max_length=16,
        choices=HRScope.choices,
        default=HRScope.CITY,
        blank=True,
    )
    unknown_quality_passes = models.BooleanField(
        _("a study without a quality-control result counts as passed"), default=False
    )
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        verbose_name = _("recognition rule")
        verbose_name_plural = _("recognition rules")

    def __str__(self) -> str:
        return str(self.region)


class ModalityWindow(models.Model):
    """How long a modality's images stay recognizable in one region."""

    rule = models.ForeignKey(RecognitionRule, on_delete=models.CASCADE, related_name="windows")
    modality = models.CharField(_("modality"), max_length=16)  # (0008,0060) code
    validity_days = models.PositiveIntegerField(_("valid for (days)"))

    class Meta:
        verbose_name = _("validity window")
        verbose_name_plural = _("validity windows")
        ordering = ["modality"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "modality"], name="window_unique_modality")
        ]

    def __str__(self) -> str:
        return f"{self.modality} {self.validity_days}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.modality = self.modality.strip().upper()
        super().save(*args, **kwargs)


class ExamPrice(models.Model):
    """What an exam costs the patient in one region, to count what recognition saves."""

    region = models.ForeignKey(
        Region, on_delete=models.CASCADE, related_name="exam_prices", verbose_name=_("region")
    )
    modality = models.CharField(_("modality"), max_length=16)
    # Blank: the price for any body part without a price of its own.
    body_part = models.CharField(_("body part"), max_length=16, blank=True)
    price_yuan = models.DecimalField(
        _("price (yuan)"),
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
    )

    class Meta:
        verbose_name = _("exam price")
        verbose_name_plural = _("exam prices")
        ordering = ["region_id", "modality", "body_part"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "modality", "body_part"], name="price_unique_exam"
            )
        ]

    def __str__(self) -> str:
        return f"{self.modality} {self.body_part or '*'} ¥{self.price_yuan}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.modality = self.modality.strip().upper()
        self.body_part = self.body_part.strip().upper()
        super().save(*args, **kwargs)


class QualityStatus(models.Model):
    """A study's quality-control result, set by its origin or a QC reviewer."""

    class Status(models.TextChoices):
        UNKNOWN = "unknown", _("Quality control not assessed")
        PASSED = "passed", _("Quality control passed")
        FAILED = "failed", _("Quality control failed")

    study = models.OneToOneField(Study, on_delete=models.CASCADE, related_name="quality")
    status = models.CharField(
        _("quality control"), max_length=16, choices=Status.choices, default=Status.UNKNOWN
    )
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True
    )
    set_by_institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    set_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("quality status")
        verbose_name_plural = _("quality statuses")

    def __str__(self) -> str:
        return f"{self.study_id} {self.status}"


class RepeatReason(models.TextChoices):
    """Why a prior study was not recognized and the exam repeated (DOMAIN.md)."""

    CONDITION_CHANGED = "condition_changed", _("The condition has changed")
    VALUES_CHANGE_QUICKLY = "values_change_quickly", _("The values change quickly")
    BEFORE_SURGERY = "before_surgery", _("Before surgery or transfusion")
    EMERGENCY = "emergency", _("Emergency")
    LEGAL_APPRAISAL = "legal_appraisal", _("Legal or disability appraisal")
    PATIENT_ASKS = "patient_asks", _("The patient asks for it")
    ISSUER_FAILED_QC = "issuer_failed_qc", _("The issuer failed quality assessment")
    TOO_OLD = "too_old", _("Too much time has passed")
    OTHER = "other", _("Other")


class RecognitionDecision(models.Model):
    """A doctor's 互认 / 不互认 on one prior study from another institution."""

    class Decision(models.TextChoices):
        RECOGNIZED = "recognized", _("Recognized (互认)")
        NOT_RECOGNIZED = "not_recognized", _("Not recognized (不互认)")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="recognition_decisions")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="recognition_decisions"
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="recognition_decisions"
    )
    # The referral the decision was taken for, when there was one.
    referral = models.ForeignKey(
        "referrals.Referral",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="recognition_decisions",
    )
    decision = models.CharField(_("decision"), max_length=16, choices=Decision.choices)
    reasons = models.JSONField(_("reasons"), default=list, blank=True)  # RepeatReason codes
    other_text = models.CharField(_("other reason"), max_length=OTHER_TEXT_MAX, blank=True)
    # The exam done anyway, linked to this prior.
    repeat_study = models.ForeignKey(
        Study,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="repeat_of_decisions",
    )
    saving_yuan = models.DecimalField(
        _("saving (yuan)"), max_digits=10, decimal_places=2, null=True, blank=True
    )
    # What the rules said when the doctor decided (codes only), for the bureau.
    evaluation: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    decided_at = models.DateTimeField(_("decided at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("recognition decision")
        verbose_name_plural = _("recognition decisions")
        ordering = ["-decided_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(repeat_study=models.F("study")),
                name="decision_repeat_not_prior",
            )
        ]

    def __str__(self) -> str:
        return str(self.uuid)

    def reason_labels(self) -> list[str]:
        labels = dict(RepeatReason.choices)
        return [str(labels.get(code, code)) for code in self.reasons]
