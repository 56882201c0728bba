"""Routing: which institution reads a study, decided once, right after ingest.

A region's ``RoutingRule`` rows come first (lowest order wins; empty conditions
match anything). With no match the default applies: a county hospital or a
referral centre reads its own studies (a county hospital's own CT goes to its
own radiologists); any other institution's studies go to its reading hub
(``Institution.hub``, a clinic's county hospital).

Routing creates the study's ``ReadingTask`` and grants the reading
institution's specialists ``view_study`` and ``report_study`` through the
access ledger (``studies.access``), which audits every grant. It is
idempotent: a study that has a task is left as it is, so a study that gains
instances later (or its own report, stored back as a DICOM object) is not
routed again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction

from hospitals.models import Institution, Role, Tier
from hospitals.services import institution_role_group
from regional_cloud import sql_rows
from regional_cloud.audit import audit
from regional_cloud.models import AuditEvent
from studies.access import REPORT, VIEW, study_access_grant
from studies.models import Instance, ReadingTask, RoutingRule, Study, StudyGrant
from studies.models.reading import PRIORITY_RANK, Priority
from studies.reading.events import worklist_changed

logger = logging.getLogger(__name__)

# Institutions of these tiers have radiologists of their own and read their own studies.
READING_TIERS = frozenset({Tier.COUNTY_HOSPITAL, Tier.REFERRAL_CENTRE})

# Series of these modalities carry no images to read (reports, key objects, states).
NON_IMAGE_MODALITIES = frozenset({"DOC", "SR", "KO", "PR", "REG", "SEG", "RWV"})

# Requested Procedure Priority (0040,1003), PS3.3 C.7.3.x / Table 10-9: STAT, HIGH,
# ROUTINE, MEDIUM, LOW. Only the first two ask for more than routine.
DICOM_PRIORITY = {"STAT": Priority.EMERGENCY, "HIGH": Priority.URGENT}
REQUESTED_PROCEDURE_PRIORITY = "00401003"
REQUEST_ATTRIBUTES_SEQUENCE = "00400275"


def default_reading_institution(origin: Institution) -> Institution | None:
    """Return who reads ``origin``'s studies when no rule says otherwise."""
    if origin.tier in READING_TIERS:
        return origin
    hub = origin.hub
    if hub is not None and hub.is_active:
        return hub
    return None


def rule_matches(
    rule: RoutingRule, *, origin: Institution, modalities: set[str], priority: str
) -> bool:
    """Return whether every condition ``rule`` sets holds for the study."""
    if rule.origin_id is not None and rule.origin_id != origin.pk:
        return False
    if rule.modality and rule.modality.upper() not in modalities:
        return False
    return not (rule.priority and rule.priority != priority)


def choose_reading_institution(
    *, origin: Institution, modalities: set[str], priority: str
) -> tuple[Institution | None, RoutingRule | None]:
    """Return the reading institution and the rule that chose it (None for the default)."""
    rules = (
        RoutingRule.objects.filter(
            region_id=origin.region_id, is_active=True, reading_institution__is_active=True
        )
        .select_related("reading_institution")
        .order_by("order", "id")
    )
    for rule in rules:
        if rule_matches(rule, origin=origin, modalities=modalities, priority=priority):
            return rule.reading_institution, rule
    return default_reading_institution(origin), None


def _priorities_in(metadata: dict[str, Any]) -> Iterable[str]:
    """Yield the Requested Procedure Priority values of one instance's DICOM JSON."""
    items = [metadata]
    items.extend(metadata.get(REQUEST_ATTRIBUTES_SEQUENCE, {}).get("Value", []) or [])
    for item in items:
        if not isinstance(item, dict):
            continue
        for value in item.get(REQUESTED_PROCEDURE_PRIORITY, {}).get("Value", []) or []:
            if isinstance(value, str):
                yield value.strip().upper()


def priority_from_dicom(study: Study, *, sample: int = 5) -> str:
    """Return the study's priority from its first instances' requested priority (or routine)."""
    found = Priority.ROUTINE
    for metadata in (
        Instance.objects.filter(study=study)
        .order_by("id")
        .values_list("metadata", flat=True)[:sample]
    ):
        for value in _priorities_in(metadata or {}):
            candidate = DICOM_PRIORITY.get(value, Priority.ROUTINE)
            if PRIORITY_RANK[candidate] < PRIORITY_RANK[found]:
                found = candidate
    return found


@transaction.atomic
def study_route(*, study_uid: str, actor: Any = None) -> ReadingTask | None:
    """Route a study to its reading pool (idempotent); return its task, or None if none fits."""
    study = (
        Study.objects.select_for_update(of=("self",))
        .select_related("origin", "origin__hub", "patient")
        .filter(study_instance_uid=study_uid)
        .first()
    )
    if study is None:
        return None
    existing = ReadingTask.objects.filter(study=study).first()
    if existing is not None:
        return existing
    modalities = {m.upper() for m in study.modalities} - NON_IMAGE_MODALITIES
    if not modalities:
        return None
    priority = priority_from_dicom(study)
    institution, rule = choose_reading_institution(
        origin=study.origin, modalities=modalities, priority=priority
    )
    if institution is None:
        audit(
            action="study.route",
            actor=actor,
            institution=study.origin,
            object_type="study",
            object_id=study.uuid,
            study_uid=study.study_instance_uid,
            patient_ref=study.patient.uuid,
            outcome=AuditEvent.Outcome.FAILED,
            detail={"reason": "no_reading_institution"},
        )
        return None
    task = ReadingTask.objects.create(
        study=study, reading_institution=institution, rule=rule, priority=priority
    )
    study_access_grant(
        study=study,
        grantee=institution_role_group(institution, Role.SPECIALIST),
        codenames=[VIEW, REPORT],
        source=StudyGrant.Source.ROUTING,
        source_ref=str(task.uuid),
        actor=actor,
    )
    audit(
        action="study.route",
        actor=actor,
        institution=institution,
        object_type="reading_task",
        object_id=task.uuid,
        study_uid=study.study_instance_uid,
        patient_ref=study.patient.uuid,
        detail={
            "origin": str(study.origin.uuid),
            "rule": str(rule.uuid) if rule else "",
            "priority": priority,
        },
    )
    worklist_changed(task, "routed")
    return task


def route_after_ingest(study_uids: list[str]) -> None:
    """The ``studies.ingest.AFTER_INGEST`` hook: route every study that has no task yet."""
    # Routing is decided once per study, but this hook runs after every ingest
    # request: one plain read skips the studies that have their task, instead of
    # a transaction that locks the study row (each instance of a 400-slice CT
    # sent one per request would otherwise pay a transaction and a commit here).
    routed = _routed(study_uids)
    for study_uid in study_uids:
        if study_uid in routed:
            continue
        try:
            study_route(study_uid=study_uid)
        except Exception:
            # One study's failure must not keep the others from their worklists.
            logger.exception("routing failed for study %s", study_uid)


def _routed(study_uids: list[str]) -> set[str]:
    """Return which of these studies have their reading task already."""
    # Written out: compiling it in the ORM cost more than running it, every request.
    with sql_rows.planned_cursor() as cursor:
        cursor.execute(
            f"SELECT s.study_instance_uid FROM {ReadingTask._meta.db_table} t "  # noqa: S608
            f"JOIN {Study._meta.db_table} s ON s.id = t.study_id "
            "WHERE s.study_instance_uid = ANY(%s)",
            [study_uids],
        )
        return {uid for (uid,) in cursor.fetchall()}
