"""Writes of mutual recognition: a doctor's decision, a repeat exam's link, a QC result.

Only a doctor at another institution than the study's origin, who may see the
study, decides; every write is audited with references only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from hospitals.models import Institution, Region, Role, Tier
from hospitals.selectors import active_memberships, user_roles_at
from referrals.models import Referral
from referrals.recognition.engine import evaluate_recognition, exam_price
from referrals.recognition_models import (
    DEFAULT_WINDOWS,
    OTHER_TEXT_MAX,
    ModalityWindow,
    QualityStatus,
    RecognitionDecision,
    RecognitionRule,
    RepeatReason,
)
from referrals.rules import ReferralError
from regional_cloud.audit import audit
from regional_cloud.permissions import filter_by_permission
from studies.models import Study

DOCTOR_ROLES = frozenset({Role.CLINIC_DOCTOR, Role.SPECIALIST})
Decision = RecognitionDecision.Decision


class RecognitionError(ReferralError):
    """A recognition write the rules refuse; ``status`` is 400, 403 or 409."""


def _can_view(user: Any, study: Study) -> bool:
    return filter_by_permission(
        Study.objects.filter(pk=study.pk), user, "studies.view_study"
    ).exists()


def _same_person(study: Study) -> Q:
    patient = study.patient
    same = Q(patient=patient)
    if patient.person_id:
        same |= Q(patient__person_id=patient.person_id)
    return same


def deciding_institutions(user: Any, study: Study) -> QuerySet[Institution]:
    """Return the institutions where ``user`` may decide on ``study`` (doctor, not the origin)."""
    ids = (
        active_memberships(user)
        .filter(role__in=DOCTOR_ROLES)
        .exclude(institution_id=study.origin_id)
        .values("institution_id")
    )
    return Institution.objects.filter(pk__in=ids).order_by("-tier", "code")


@transaction.atomic
def recognition_decide(
    *,
    study: Study,
    actor: Any,
    institution: Institution,
    decision: str,
    reasons: Iterable[str] = (),
    other_text: str = "",
    repeat_study: Study | None = None,
    referral: Referral | None = None,
    on: dt.date | None = None,
) -> RecognitionDecision:
    """Record 互认 or 不互认 on ``study`` for ``institution``; return the decision."""
    if institution.pk == study.origin_id:
        raise RecognitionError(
            _("Recognition is decided at another institution than the one that made the study."),
            status=403,
            code="own_study",
        )
    if not user_roles_at(actor, institution) & DOCTOR_ROLES:
        raise RecognitionError(
            _("Only a doctor of %(institution)s may decide recognition there.")
            % {"institution": institution.name},
            status=403,
            code="forbidden",
        )
    if not _can_view(actor, study):
        raise RecognitionError(
            _("You may not see this study."), status=403, code="study_not_visible"
        )
    codes = _check_reasons(decision, list(reasons), other_text.strip())
    evaluation = evaluate_recognition(study, institution, on=on)
    if decision == Decision.RECOGNIZED:
        if not evaluation.recognizable:
            raise RecognitionError(
                _("This study is not recognizable under the region's rules: record 不互认."),
                code="not_recognizable",
            )
        if repeat_study is not None:
            raise RecognitionError(
                _("A recognized study needs no repeat exam."), code="repeat_with_recognized"
            )
    if repeat_study is not None:
        _check_repeat(actor, study, repeat_study)
    if (
        referral is not None
        and not filter_by_permission(
            Referral.objects.filter(pk=referral.pk), actor, "referrals.view_referral"
        ).exists()
    ):
        raise RecognitionError(_("No referral you may see has this id."), code="referral")
    saving = exam_price(institution.region_id, study) if decision == Decision.RECOGNIZED else None
    made = RecognitionDecision.objects.create(
        study=study,
        decided_by=actor,
        institution=institution,
        referral=referral,
        decision=decision,
        reasons=codes,
        other_text=other_text.strip(),
        repeat_study=repeat_study,
        saving_yuan=saving,
        evaluation=evaluation.snapshot(),
        decided_at=timezone.now(),
    )
    audit(
        action="recognition.decide",
        actor=actor,
        institution=institution,
        object_type="recognition_decision",
        object_id=made.uuid,
        study_uid=study.study_instance_uid,
        patient_ref=study.patient.uuid,
        detail={
            "decision": decision,
            "reasons": codes,
            "recognizable": evaluation.recognizable,
            "saving_yuan": str(saving) if saving is not None else None,
            "repeat_study_uid": repeat_study.study_instance_uid if repeat_study else None,
            "referral": str(referral.uuid) if referral else None,
        },
    )
    return made


def _check_reasons(decision: str, reasons: list[str], other_text: str) -> list[str]:
    if decision not in Decision.values:
        raise RecognitionError(_("The decision is recognized or not_recognized."), code="decision")
    unknown = [code for code in reasons if code not in RepeatReason.values]
    if unknown:
        raise RecognitionError(
            _("Unknown reason code: %(codes)s.") % {"codes": ", ".join(unknown)}, code="reason"
        )
    if len(other_text) > OTHER_TEXT_MAX:
        raise RecognitionError(
            _("The other reason is at most %(max)s characters.") % {"max": OTHER_TEXT_MAX},
            code="other_too_long",
        )
    codes = [code for code in RepeatReason.values if code in set(reasons)]  # canonical order
    if decision == Decision.RECOGNIZED:
        if codes or other_text:
            raise RecognitionError(
                _("A recognized study takes no reason for repeating it."),
                code="reason_with_recognized",
            )
        return []
    if not codes:
        raise RecognitionError(
            _("Not recognizing a study needs at least one coded reason."), code="reason_missing"
        )
    if RepeatReason.OTHER in codes and not other_text:
        raise RecognitionError(_("The reason Other needs a few words."), code="other_without_text")
    if other_text and RepeatReason.OTHER not in codes:
        raise RecognitionError(
            _("Free text goes with the reason Other."), code="text_without_other"
        )
    return codes


def _check_repeat(actor: Any, prior: Study, repeat: Study) -> None:
    if repeat.pk == prior.pk:
        raise RecognitionError(_("A study cannot be its own repeat."), code="repeat_is_prior")
    if not _can_view(actor, repeat):
        raise RecognitionError(_("No study you may see has this UID."), code="repeat_not_visible")
    if not Study.objects.filter(pk=repeat.pk).filter(_same_person(prior)).exists():
        raise RecognitionError(
            _("The repeat exam must be of the same patient."), code="repeat_other_patient"
        )


@transaction.atomic
def recognition_link_repeat(
    *, decision: RecognitionDecision, repeat_study: Study, actor: Any
) -> RecognitionDecision:
    """Link the exam done anyway to a 不互认 decision of the actor's institution."""
    decision = RecognitionDecision.objects.select_for_update().get(pk=decision.pk)
    if not user_roles_at(actor, decision.institution) & DOCTOR_ROLES:
        raise RecognitionError(
            _("Only a doctor of the deciding institution may link a repeat exam."),
            status=403,
            code="forbidden",
        )
    if decision.decision != Decision.NOT_RECOGNIZED:
        raise RecognitionError(
            _("Only a study that was not recognized has a repeat exam."),
            status=409,
            code="repeat_with_recognized",
        )
    _check_repeat(actor, decision.study, repeat_study)
    decision.repeat_study = repeat_study
    decision.save(update_fields=["repeat_study"])
    audit(
        action="recognition.link_repeat",
        actor=actor,
        institution=decision.institution,
        object_type="recognition_decision",
        object_id=decision.uuid,
        study_uid=decision.study.study_instance_uid,
        patient_ref=decision.study.patient.uuid,
        detail={"repeat_study_uid": repeat_study.study_instance_uid},
    )
    return decision


def quality_reviewer_institutions(user: Any, study: Study) -> QuerySet[Institution]:
    """Return the institutions through which ``user`` may set ``study``'s QC result.

    The origin's clinical staff assess their own study; the region's referral
    centre does quality control for the network (DOMAIN.md), so its specialists may too.
    """
    memberships = active_memberships(user)
    origin = memberships.filter(
        institution_id=study.origin_id,
        role__in=[Role.CLINIC_DOCTOR, Role.SPECIALIST, Role.TECHNICIAN],
    ).values("institution_id")
    centre = memberships.filter(
        role=Role.SPECIALIST,
        institution__tier=Tier.REFERRAL_CENTRE,
        institution__region_id=study.origin.region_id,
    ).values("institution_id")
    return Institution.objects.filter(Q(pk__in=origin) | Q(pk__in=centre))


@transaction.atomic
def study_quality_set(*, study: Study, status: str, actor: Any, note: str = "") -> QualityStatus:
    """Set ``study``'s quality-control result (origin staff or the region's QC centre)."""
    if status not in QualityStatus.Status.values:
        raise RecognitionError(_("Unknown quality-control status."), code="quality_status")
    if not _can_view(actor, study):
        raise RecognitionError(
            _("You may not see this study."), status=403, code="study_not_visible"
        )
    institution = quality_reviewer_institutions(actor, study).first()
    if institution is None:
        raise RecognitionError(
            _("Only the study's institution or the region's quality-control centre sets this."),
            status=403,
            code="forbidden",
        )
    quality, _created = QualityStatus.objects.select_for_update().get_or_create(study=study)
    before = quality.status if not _created else ""
    quality.status = status
    quality.set_by = actor
    quality.set_by_institution = institution
    quality.set_at = timezone.now()
    quality.note = note.strip()[:200]
    quality.save()
    audit(
        action="study.quality_set",
        actor=actor,
        institution=institution,
        object_type="study",
        object_id=study.uuid,
        study_uid=study.study_instance_uid,
        patient_ref=study.patient.uuid,
        detail={"from": before, "to": status},
    )
    return quality


@transaction.atomic
def recognition_rule_seed(*, region: Region) -> RecognitionRule:
    """Give ``region`` the default rule and windows if it has none (idempotent)."""
    rule, created = RecognitionRule.objects.get_or_create(region=region)
    if created:
        ModalityWindow.objects.bulk_create(
            ModalityWindow(rule=rule, modality=modality, validity_days=days)
            for modality, days in DEFAULT_WINDOWS.items()
        )
    return rule
