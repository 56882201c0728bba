"""Tell the right people when a referral moves: stored, live on their page, and onward.

Registered on ``referrals.services.AFTER_TRANSITION`` (after commit). Delivery
goes through ``regional_cloud.notifications.notify``, which pushes to the
browser and to any SMS/WeChat channel a deployment adds. Titles name no
patient (they may reach a lock screen or an SMS); the body names the
institutions only, and the link opens the referral, where access is checked.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from hospitals.models import Institution, Role
from hospitals.services import institution_role_group
from referrals.models import Referral
from regional_cloud.notifications import notify

TITLES = {
    "submitted": gettext_lazy("New referral from %(from)s"),
    "accepted": gettext_lazy("Referral accepted by %(to)s"),
    "rejected": gettext_lazy("Referral rejected by %(to)s"),
    "scheduled": gettext_lazy("Referral appointment set by %(to)s"),
    "arrived": gettext_lazy("Referred patient arrived at %(to)s"),
    "completed": gettext_lazy("Referral completed by %(to)s"),
    "cancelled": gettext_lazy("Referral from %(from)s cancelled"),
    "expired": gettext_lazy("Referral to %(to)s expired unanswered"),
}
URGENT_PREFIX = {
    "urgent": gettext_lazy("Urgent: "),
    "emergency": gettext_lazy("Emergency: "),
}


def _members(institution: Institution, role: str) -> list[Any]:
    group = institution_role_group(institution, role)
    return list(group.user_set.filter(is_active=True).order_by("pk"))


def receiving_people(referral: Referral) -> list[Any]:
    """Return who answers at the receiving side: the assigned specialist, or the role's members.

    An upward referral goes to the specialists, a downward one to the clinic's
    doctors; if nobody holds that role there, every answering role is told.
    """
    if referral.assigned_specialist_id:
        return [referral.assigned_specialist]
    role = Role.SPECIALIST if referral.direction == Referral.Direction.UP else Role.CLINIC_DOCTOR
    people = _members(referral.to_institution, role)
    if not people:
        other = Role.CLINIC_DOCTOR if role == Role.SPECIALIST else Role.SPECIALIST
        people = _members(referral.to_institution, other)
    return people


def recipients_for(referral: Referral, kind: str) -> list[Any]:
    if kind == "submitted":
        return receiving_people(referral)
    if kind == "cancelled":
        if referral.accepted_by_id:
            return [referral.accepted_by]
        return receiving_people(referral) if referral.submitted_at else []
    if kind in TITLES:
        return [referral.created_by]
    return []


def on_transition(referral: Referral, kind: str) -> None:
    """Notify the people a transition concerns (called after commit)."""
    referral = Referral.objects.select_related(
        "from_institution", "to_institution", "created_by", "accepted_by", "assigned_specialist"
    ).get(pk=referral.pk)
    recipients = recipients_for(referral, kind)
    if not recipients:
        return
    names = {"from": referral.from_institution.name, "to": referral.to_institution.name}
    # Stored once for every reader: in the region's language, as the other notifications are.
    with translation.override(settings.LANGUAGE_CODE):
        title = str(URGENT_PREFIX.get(referral.urgency, "")) + str(TITLES[kind]) % names
        body = _("%(direction)s referral, %(from)s → %(to)s: %(state)s.") % {
            **names,
            "direction": referral.get_direction_display(),
            "state": referral.get_state_display(),
        }
    notify(
        recipients=recipients,
        kind=f"referral_{kind}",
        title=title,
        body=body,
        url=reverse("referral_detail", args=[referral.uuid]),
    )
