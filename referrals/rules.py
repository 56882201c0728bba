"""The network's referral rules and the region's timing policy, as plain functions."""

from __future__ import annotations

from datetime import timedelta

from django.utils.translation import gettext as _

from hospitals.models import Institution, Tier
from referrals.models import (
    DEFAULT_ANSWER_WITHIN,
    DEFAULT_GRACE_HOURS,
    DEFAULT_LOOKBACK_DAYS,
    Referral,
    ReferralPolicy,
)


class ReferralError(Exception):
    """A referral write the rules refuse. ``status`` is 400 (bad request) or 409 (state)."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def check_route(
    *,
    direction: str,
    from_institution: Institution,
    to_institution: Institution,
    skip_reason: str,
    treatment_summary: str,
    follow_up_plan: str,
) -> None:
    """Raise ``ReferralError`` unless the network allows this referral."""
    if from_institution.pk == to_institution.pk:
        raise ReferralError(_("An institution cannot refer to itself."), code="to_itself")
    if from_institution.region_id != to_institution.region_id:
        raise ReferralError(_("Referrals stay inside the region."), code="other_region")
    if Tier.HEALTH_BUREAU in (from_institution.tier, to_institution.tier):
        raise ReferralError(_("A health bureau neither sends nor receives referrals."))
    if not to_institution.is_active:
        raise ReferralError(_("The receiving institution is not active."))
    step = to_institution.level - from_institution.level
    if direction == Referral.Direction.UP:
        _check_up(from_institution, to_institution, step, skip_reason)
    elif direction == Referral.Direction.DOWN:
        if step >= 0:
            raise ReferralError(
                _("A downward referral goes to a lower level (a clinic cannot refer down)."),
                code="not_down",
            )
        if not treatment_summary.strip() or not follow_up_plan.strip():
            raise ReferralError(
                _("A downward referral carries the treatment summary and a follow-up plan."),
                code="down_without_plan",
            )
    else:
        raise ReferralError(_("Direction must be up or down."))


def _check_up(
    from_institution: Institution, to_institution: Institution, step: int, skip_reason: str
) -> None:
    if step <= 0:
        raise ReferralError(_("An upward referral goes to a higher level."), code="not_up")
    if (
        from_institution.tier == Tier.TOWNSHIP_CLINIC
        and to_institution.tier == Tier.COUNTY_HOSPITAL
    ) and from_institution.hub_id != to_institution.pk:
        raise ReferralError(
            _("A clinic refers up to its own county hospital, or higher."),
            code="not_own_county",
        )
    if step > 1 and not skip_reason.strip():
        raise ReferralError(_("Skipping a level needs a reason."), code="skip_without_reason")


def policy_for(referral: Referral) -> tuple[timedelta, int, int]:
    """Return (answer within, look-back days, grace hours) for this referral's urgency."""
    policy = ReferralPolicy.objects.filter(
        region_id=referral.from_institution.region_id, urgency=referral.urgency
    ).first()
    if policy is None:
        return (
            DEFAULT_ANSWER_WITHIN[referral.urgency],  # type: ignore[index]
            DEFAULT_LOOKBACK_DAYS,
            DEFAULT_GRACE_HOURS,
        )
    return (
        timedelta(minutes=policy.answer_within_minutes),
        policy.lookback_days,
        policy.grace_hours,
    )
