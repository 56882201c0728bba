"""The edge ledger on the hub: record what an edge reports, confirm it from the index.

An edge says which studies it holds and how many instances each has; how many
of them the hub holds is counted here, from the hub's own index (instances of
that study whose origin is the edge's institution). The edge agent deletes a
study from its Orthanc only when this ledger calls it confirmed, so the count
must never come from the edge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone

from hospitals.models import EdgeNode
from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent
from studies.models import EdgeStudy, Instance

# Error codes are short slugs chosen by the agent ("duplicate_sop_instance",
# "http_413"): anything else is refused, so no free text (and no PHI) gets in.
ERROR_CODE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,63}")
MAX_REPORTS = 1000


class LedgerError(ValueError):
    pass


@dataclass(frozen=True)
class StudyReport:
    """What an edge says it holds of one study."""

    study_instance_uid: str
    orthanc_study_id: str
    instances_at_edge: int
    error: str = ""


def confirmed_counts(*, edge_node: EdgeNode, study_uids: Iterable[str]) -> dict[str, int]:
    """Return per study UID how many of its instances the hub holds from the edge's institution."""
    rows = (
        Instance.objects.filter(
            study__study_instance_uid__in=list(study_uids),
            study__origin_id=edge_node.institution_id,
        )
        .values("study__study_instance_uid")
        .annotate(n=Count("id"))
    )
    return {row["study__study_instance_uid"]: row["n"] for row in rows}


def _judge(row: EdgeStudy, *, error: str, now: datetime) -> None:
    """Set the row's state: failed on an error, else confirmed once the hub holds every instance.

    An error wins over the counts: after a 0x0111 the hub may hold as many
    instances under those UIDs as the edge has, but one of them is another
    object, so the edge's copy is not safe anywhere but at the edge.
    """
    if error:
        row.state = EdgeStudy.State.FAILED
        row.last_error = error
        row.confirmed_at = None
    elif row.instances_at_edge > 0 and row.instances_confirmed >= row.instances_at_edge:
        row.state = EdgeStudy.State.CONFIRMED
        row.last_error = ""
        if row.confirmed_at is None:
            row.confirmed_at = now
    else:
        row.state = EdgeStudy.State.PENDING
        row.confirmed_at = None


@transaction.atomic
def edge_studies_report(*, edge_node: EdgeNode, reports: list[StudyReport]) -> list[EdgeStudy]:
    """Record an edge's report of the studies it holds; return the ledger rows, judged.

    Idempotent: reporting the same thing twice changes nothing but the time of
    the last report. State changes (confirmed, failed) are audited.
    """
    if len(reports) > MAX_REPORTS:
        raise LedgerError(f"at most {MAX_REPORTS} studies per report")
    for report in reports:
        if report.error and not ERROR_CODE.fullmatch(report.error):
            raise LedgerError("an error must be a short code (letters, digits, _ . : -)")
    # The last word on a study wins when a report names it twice.
    latest = {report.study_instance_uid: report for report in reports}
    counts = confirmed_counts(edge_node=edge_node, study_uids=latest)
    now = timezone.now()
    rows: dict[str, EdgeStudy] = {}
    for uid, report in sorted(latest.items()):
        row, _created = EdgeStudy.objects.select_for_update().get_or_create(
            edge_node=edge_node,
            study_instance_uid=uid,
            defaults={"first_seen_at": now, "last_reported_at": now},
        )
        before = row.state
        row.orthanc_study_id = report.orthanc_study_id
        row.instances_at_edge = report.instances_at_edge
        row.instances_confirmed = counts.get(uid, 0)
        row.last_reported_at = now
        _judge(row, error=report.error, now=now)
        row.save()
        if row.state != before and row.state != EdgeStudy.State.PENDING:
            _audit_state(edge_node, row)
        rows[uid] = row
    return [rows[report.study_instance_uid] for report in latest.values()]


def _audit_state(edge_node: EdgeNode, row: EdgeStudy) -> None:
    failed = row.state == EdgeStudy.State.FAILED
    audit(
        action="edge.study_failed" if failed else "edge.study_confirmed",
        actor=edge_node.service_user,
        institution=edge_node.institution,
        object_type="edge_study",
        object_id=row.uuid,
        study_uid=row.study_instance_uid,
        outcome=AuditEvent.Outcome.FAILED if failed else AuditEvent.Outcome.SUCCESS,
        detail={
            "edge_node": str(edge_node.uuid),
            "instances_at_edge": row.instances_at_edge,
            "instances_confirmed": row.instances_confirmed,
            "error": row.last_error,
        },
    )


def edge_ledger(*, edge_node: EdgeNode, state: str = "") -> QuerySet[EdgeStudy]:
    """Return the edge's ledger, newest first; the caller has checked access to the edge."""
    rows = EdgeStudy.objects.filter(edge_node=edge_node)
    if state:
        rows = rows.filter(state=state)
    return rows.order_by("-first_seen_at", "-id")


def edge_ledger_summary(*, edge_node: EdgeNode) -> dict[str, Any]:
    """Return the ledger's totals: studies per state and instances at the edge vs in the hub."""
    per_state = dict(
        EdgeStudy.objects.filter(edge_node=edge_node)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    sums = EdgeStudy.objects.filter(edge_node=edge_node).aggregate(
        at_edge=Sum("instances_at_edge"), confirmed=Sum("instances_confirmed")
    )
    return {
        "studies": sum(per_state.values()),
        "pending": per_state.get(EdgeStudy.State.PENDING, 0),
        "confirmed": per_state.get(EdgeStudy.State.CONFIRMED, 0),
        "failed": per_state.get(EdgeStudy.State.FAILED, 0),
        "instances_at_edge": sums["at_edge"] or 0,
        "instances_confirmed": sums["confirmed"] or 0,
    }
