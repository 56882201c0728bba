"""Which institution a caller sends studies for (the origin is never a DICOM tag)."""

from __future__ import annotations

import functools
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _

from hospitals.models import EdgeNode, Institution, Membership, Role
from regional_cloud import sql_rows
from regional_cloud.audit import client_ip
from studies.ingest import Sender

SENDING_ROLES = (Role.EDGE, Role.CLINIC_DOCTOR, Role.TECHNICIAN, Role.SPECIALIST)


class NoSendingInstitution(Exception):
    pass


def sending_institutions(user: Any) -> list[Institution]:
    """Return the active institutions ``user`` may send studies for, by code."""
    # Written out: every STOW-RS request asks, and compiling the ORM's version of
    # this join cost more than PostgreSQL's answer (benchmarks/README.md).
    with sql_rows.planned_cursor() as cursor:
        cursor.execute(_sending_sql(), [user.pk, [str(role) for role in SENDING_ROLES]])
        return [sql_rows.from_row(Institution, row) for row in cursor.fetchall()]


@functools.cache
def _sending_sql() -> str:
    return (
        f"SELECT {sql_rows.columns(Institution, 'i')} FROM {Institution._meta.db_table} i "  # noqa: S608 - names from the models
        "WHERE i.is_active AND EXISTS (SELECT 1 "
        f"FROM {Membership._meta.db_table} m WHERE m.institution_id = i.id "
        "AND m.user_id = %s AND m.role = ANY(%s) AND m.is_active) ORDER BY i.code"
    )


def sender_for(request: HttpRequest) -> Sender:
    """Return the sender of this request, or raise ``NoSendingInstitution``.

    A user sending for several institutions names one with ``?institution=<uuid>``.
    An edge node's token sends for the edge's institution, read with the token.
    """
    edge = getattr(request, "auth", None)
    if isinstance(edge, EdgeNode) and hasattr(edge, "sends_for_institution"):
        institutions = [edge.institution] if edge.sends_for_institution else []
    else:
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
