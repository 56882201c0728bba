"""How referral events read to a person, shared by the pages and the API."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

EVENT_LABELS = {
    "created": _("Created"),
    "submitted": _("Submitted"),
    "accepted": _("Accepted"),
    "rejected": _("Rejected"),
    "scheduled": _("Appointment set"),
    "arrived": _("Patient arrived"),
    "completed": _("Completed"),
    "cancelled": _("Cancelled"),
    "expired": _("Expired: not answered in time"),
    "consultation_concluded": _("Consultation concluded"),
}


def event_label(kind: str) -> str:
    return str(EVENT_LABELS.get(kind, kind))
