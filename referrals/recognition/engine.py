"""Whether a prior study is recognizable at an institution, and why — in words.

The checks follow the order a doctor reads them: who issued it (alliance,
level, HR mark and its validity on the study date), how old it is against the
modality's validity window, and its quality-control result. Every rule is the
region's data (``RecognitionRule``, ``ModalityWindow``); a region without a rule
is judged by the seed defaults. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from hospitals.models import HRScope, Institution, Region
from referrals.recognition_models import (
    DEFAULT_WINDOWS,
    ExamPrice,
    QualityStatus,
    RecognitionRule,
)
from studies.models import Study

HR_RANK = {HRScope.NONE: 0, HRScope.CITY: 1, HRScope.PROVINCE: 2, HRScope.NATIONAL: 3}


@dataclass(frozen=True)
class Check:
    """One reason: its code, whether it holds, and a sentence for the doctor."""

    code: str
    passed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "passed": self.passed, "message": self.message}


@dataclass(frozen=True)
class Evaluation:
    recognizable: bool
    checks: list[Check]
    on: dt.date

    @property
    def summary(self) -> str:
        if self.recognizable:
            return _("Recognizable: the images can be used instead of repeating the exam.")
        return _("Not recognizable under this region's rules.")

    def failed_codes(self) -> list[str]:
        return [check.code for check in self.checks if not check.passed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "recognizable": self.recognizable,
            "summary": self.summary,
            "on": self.on.isoformat(),
            "checks": [check.as_dict() for check in self.checks],
        }

    def snapshot(self) -> dict[str, Any]:
        """Return what is kept with a decision: codes only, no sentences."""
        return {
            "recognizable": self.recognizable,
            "failed": self.failed_codes(),
            "on": self.on.isoformat(),
        }


@dataclass(frozen=True)
class EffectiveRule:
    """A region's rule as read, or the seed defaults when it has none yet."""

    same_level: bool = True
    lower_accepts_higher: bool = True
    within_alliance: bool = True
    required_hr_scope: str = HRScope.CITY
    unknown_quality_passes: bool = False
    windows: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_WINDOWS))


def effective_rule(region: Region | int) -> EffectiveRule:
    region_id = region if isinstance(region, int) else region.pk
    rule = RecognitionRule.objects.filter(region_id=region_id).first()
    if rule is None:
        return EffectiveRule()
    return EffectiveRule(
        same_level=rule.same_level,
        lower_accepts_higher=rule.lower_accepts_higher,
        within_alliance=rule.within_alliance,
        required_hr_scope=rule.required_hr_scope,
        unknown_quality_passes=rule.unknown_quality_passes,
        windows=dict(rule.windows.values_list("modality", "validity_days")),
    )


def study_day(study: Study) -> dt.date | None:
    """Return the Study Date (DA, YYYYMMDD) as a date, or None when absent or malformed."""
    try:
        return dt.datetime.strptime(study.study_date, "%Y%m%d").date()  # noqa: DTZ007 - a date
    except ValueError:
        return None


def _day(day: dt.date) -> str:
    return date_format(day, "DATE_FORMAT")


def evaluate_recognition(
    study: Study, institution: Institution, *, on: dt.date | None = None
) -> Evaluation:
    """Return whether ``study`` is recognizable at ``institution`` on day ``on``, and why."""
    on = on or timezone.localdate()
    issuer = study.origin
    if issuer.pk == institution.pk:
        own = Check(
            "own_study",
            False,
            _("This study was made at your own institution; recognition is between institutions."),
        )
        return Evaluation(False, [own], on)
    rule = effective_rule(institution.region_id)
    day = study_day(study)
    checks = [
        *_issuer_checks(rule, issuer, institution, day),
        _window_check(rule, study, day, on),
        _quality_check(rule, study),
    ]
    return Evaluation(all(check.passed for check in checks), checks, on)


def _shared_alliance(issuer: Institution, institution: Institution) -> str | None:
    shared = issuer.alliances.filter(pk__in=institution.alliances.values("pk")).first()
    return shared.name if shared else None


def _issuer_checks(
    rule: EffectiveRule, issuer: Institution, institution: Institution, day: dt.date | None
) -> list[Check]:
    names = {"issuer": issuer.name, "here": institution.name}
    alliance = _shared_alliance(issuer, institution) if rule.within_alliance else None
    if alliance:
        return [
            Check(
                "alliance",
                True,
                _(
                    "%(issuer)s and %(here)s both belong to %(alliance)s, whose members "
                    "recognize each other's results."
                )
                % {**names, "alliance": alliance},
            )
        ]
    return [_level_check(rule, issuer, institution, names), _hr_check(rule, issuer, day)]


def _level_check(
    rule: EffectiveRule, issuer: Institution, institution: Institution, names: dict[str, str]
) -> Check:
    if issuer.level == institution.level:
        if rule.same_level:
            return Check(
                "level",
                True,
                _("%(issuer)s is at the same level as %(here)s; same-level results are recognized.")
                % names,
            )
        return Check(
            "level",
            False,
            _("This region does not recognize results between same-level institutions."),
        )
    if issuer.level > institution.level:
        if rule.lower_accepts_higher:
            return Check(
                "level",
                True,
                _("%(issuer)s is at a higher level than %(here)s; its results are accepted.")
                % names,
            )
        return Check(
            "level",
            False,
            _("This region does not have lower levels accept higher levels' results."),
        )
    return Check(
        "level",
        False,
        _(
            "%(issuer)s is at a lower level than %(here)s and the two share no medical "
            "alliance; a higher level does not recognize a lower level's results."
        )
        % names,
    )


def _hr_check(rule: EffectiveRule, issuer: Institution, day: dt.date | None) -> Check:
    required = rule.required_hr_scope
    if not required:
        return Check("hr", True, _("This region requires no HR mark."))
    required_label = str(HRScope(required).label)
    held = issuer.hr_scope or HRScope.NONE
    if HR_RANK.get(HRScope(held), 0) < HR_RANK[HRScope(required)]:
        if not issuer.hr_scope:
            message = _("%(issuer)s holds no HR mark; %(required)s or wider is required.")
        else:
            message = _("%(issuer)s holds %(held)s; %(required)s or wider is required.")
        return Check(
            "hr",
            False,
            message
            % {
                "issuer": issuer.name,
                "held": HRScope(held).label,
                "required": required_label,
            },
        )
    if day is None:
        return Check(
            "hr",
            False,
            _("The study has no date, so the HR qualification's validity cannot be checked."),
        )
    params = {"issuer": issuer.name, "held": HRScope(held).label, "day": _day(day)}
    if not issuer.hr_valid_on(day):
        return Check(
            "hr",
            False,
            _("%(issuer)s's %(held)s qualification was not valid on the study date, %(day)s.")
            % params,
        )
    return Check(
        "hr",
        True,
        _("%(issuer)s holds %(held)s, valid on the study date, %(day)s.") % params,
    )


def _window_check(rule: EffectiveRule, study: Study, day: dt.date | None, on: dt.date) -> Check:
    windows = {m: rule.windows[m] for m in study.modalities if m in rule.windows}
    if not windows:
        return Check(
            "window",
            False,
            _("This region sets no validity window for %(modalities)s, so it is not recognized.")
            % {"modalities": "/".join(study.modalities) or "?"},
        )
    if day is None:
        return Check("window", False, _("The study has no date, so its age is unknown."))
    modality, days = min(windows.items(), key=lambda item: item[1])
    age = max((on - day).days, 0)
    params = {"age": age, "modality": modality, "days": days}
    if age <= days:
        return Check(
            "window",
            True,
            _("The study is %(age)s days old; %(modality)s images stay valid for %(days)s days.")
            % params,
        )
    return Check(
        "window",
        False,
        _("The study is %(age)s days old; %(modality)s images are valid for only %(days)s days.")
        % params,
    )


def _quality_check(rule: EffectiveRule, study: Study) -> Check:
    status = (
        QualityStatus.objects.filter(study=study).values_list("status", flat=True).first()
        or QualityStatus.Status.UNKNOWN
    )
    if status == QualityStatus.Status.PASSED:
        return Check("quality", True, _("The study passed quality control."))
    if status == QualityStatus.Status.FAILED:
        return Check("quality", False, _("The study failed quality control."))
    if rule.unknown_quality_passes:
        return Check(
            "quality",
            True,
            _("The study has no quality-control result; this region counts that as passed."),
        )
    return Check(
        "quality",
        False,
        _("The study has no quality-control result; this region requires a passed one."),
    )


def exam_price(region: Region | int, study: Study) -> Decimal | None:
    """Return the price of repeating ``study`` in ``region``: its dearest priced modality.

    A body part's own price wins over the modality's general price; a study with
    no priced modality has no price (and its recognition saves nothing counted).
    """
    region_id = region if isinstance(region, int) else region.pk
    prices = {
        (p.modality, p.body_part): p.price_yuan
        for p in ExamPrice.objects.filter(region_id=region_id, modality__in=study.modalities)
    }
    if not prices:
        return None
    parts: dict[str, set[str]] = {}
    for modality, body_part in study.series.values_list("modality", "body_part_examined"):
        parts.setdefault(modality, set()).add((body_part or "").strip().upper())
    found: list[Decimal] = []
    for modality in study.modalities:
        specific = [
            prices[(modality, bp)] for bp in parts.get(modality, set()) if (modality, bp) in prices
        ]
        if specific:
            found.append(max(specific))
        elif (modality, "") in prices:
            found.append(prices[(modality, "")])
    return max(found) if found else None
