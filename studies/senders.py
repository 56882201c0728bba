"""Which institution a caller sends studies for (the origin is never a DICOM tag)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _

from hospitals.models import Institution, Role
from regional_cloud.audit import client_ip
from studies.ingest import Sender

SENDING_ROLES = (Role.EDGE, Role.CLINIC_DOCTOR, Role.TECHNICIAN, Role.SPECIALIST)


class NoSendingInstitution(Exception):
    pass


def sending_institutions(user: Any) -> list[Institution]:
    return list(
        Institution.objects.filter(
            memberships__user=user,
            memberships__role__in=SENDING_ROLES,
            memberships__is_active=True,
            is_active=True,
        )
        .distinct()
        .order_by("code")
    )


def sender_for(request: HttpRequest) -> Sender:
    """Return the sender of this request, or raise ``NoSendingInstitution``.

    A user sending for several institutions names one with ``?institution=<uuid>``.
    """
    institutions = sending_institutions(request.user)
    if not institutions:
        raise NoSendingInstitution(_("Your account may not send studies for any institution."))
    chosen = request.GET.get("institution") or request.headers.get("X-Institution", "")
    if chosen:
        matching = [i for i in institutions if str(i.uuid) == chosen]
        if not matching:
            raise NoSendingInstitution(_("You may not send studies for that institution."))
        institution = matching[0]
    elif len(institutions) == 1:
        institution = institutions[0]
    else:
        raise NoSendingInstitution(
            _("You send for several institutions: name one with ?institution=<uuid>.")
        )
    return Sender(user=request.user, institution=institution, ip=client_ip(request))
