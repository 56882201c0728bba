"""Live worklist updates: after commit, tell the worklists that hold a row that it changed.

A message carries the reading task's UUID and what happened — never patient
data: the page fetches the row through the API, where the permission filter
applies. A worklist group is one per reading institution (its specialists) and
one per user (studies shared with that user alone).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from hospitals.models import InstitutionGroup, Role
from studies.models import StudyGroupObjectPermission, StudyUserObjectPermission

logger = logging.getLogger(__name__)

REPORT_CODENAME = "report_study"


def worklist_group(institution_uuid: object) -> str:
    """Return the Channels group of one reading institution's worklist."""
    return f"worklist.{institution_uuid}"


def worklist_user_group(user_id: object) -> str:
    """Return the Channels group of the studies shared with one user."""
    return f"worklist.user.{user_id}"


def worklist_audience(study_id: int, reading_institution_uuid: object) -> set[str]:
    """Return the groups of everyone who may report the study, and its reading pool."""
    groups = StudyGroupObjectPermission.objects.filter(
        content_object_id=study_id, permission__codename=REPORT_CODENAME
    ).values("group_id")
    institutions = InstitutionGroup.objects.filter(
        group_id__in=groups, role=Role.SPECIALIST
    ).values_list("institution__uuid", flat=True)
    users = StudyUserObjectPermission.objects.filter(
        content_object_id=study_id, permission__codename=REPORT_CODENAME
    ).values_list("user_id", flat=True)
    audience = {worklist_group(reading_institution_uuid)}
    audience.update(worklist_group(uuid) for uuid in institutions)
    audience.update(worklist_user_group(user_id) for user_id in users)
    return audience


def worklist_changed(task: Any, event: str) -> None:
    """Announce, once the transaction commits, that ``task``'s row changed."""
    study_id = task.study_id
    task_uuid = str(task.uuid)
    institution_uuid = task.reading_institution.uuid
    transaction.on_commit(lambda: _send(study_id, institution_uuid, task_uuid, event))


def _send(study_id: int, institution_uuid: object, task_uuid: str, event: str) -> None:
    message = {"type": "worklist.changed", "task": task_uuid, "event": event}
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        for group in sorted(worklist_audience(study_id, institution_uuid)):
            async_to_sync(layer.group_send)(group, message)
    except Exception:
        # A live update is a convenience: the worklist is right on the next load anyway.
        logger.exception("worklist update for task %s could not be sent", task_uuid)
