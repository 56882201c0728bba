"""The edge ledger: what each edge node holds, and how much of it the hub confirms.

The edge agent reports the studies it sees (UID, its Orthanc id, how many
instances); the hub fills ``instances_confirmed`` from its own index, so
"confirmed" never rests on the edge's word. Rows carry UIDs and counts only:
no patient data.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hospitals.models import EdgeNode


class EdgeStudy(models.Model):
    """One study as one edge node holds it, against what the hub has indexed."""

    class State(models.TextChoices):
        PENDING = "pending", _("Waiting")
        CONFIRMED = "confirmed", _("Confirmed")
        FAILED = "failed", _("Failed")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    edge_node = models.ForeignKey(EdgeNode, on_delete=models.CASCADE, related_name="studies")
    study_instance_uid = models.CharField(max_length=64)  # (0020,000D)
    # Orthanc's SHA-1 based resource id: tells the edge's operator which study it is.
    orthanc_study_id = models.CharField(max_length=64, blank=True)
    instances_at_edge = models.PositiveIntegerField(_("instances at the edge"), default=0)
    instances_confirmed = models.PositiveIntegerField(_("instances in the hub"), default=0)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    # A short code from the agent or the hub (e.g. "duplicate_sop_instance"): never PHI.
    last_error = models.CharField(_("last error"), max_length=64, blank=True)
    first_seen_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_reported_at = models.DateTimeField(_("last reported"), default=timezone.now)
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)

    class Meta:
        verbose_name = _("study at an edge")
        verbose_name_plural = _("studies at edges")
        constraints = [
            models.UniqueConstraint(
                fields=["edge_node", "study_instance_uid"], name="edge_study_unique_uid"
            )
        ]
        indexes = [
            models.Index(fields=["edge_node", "state", "-first_seen_at"], name="edge_study_state"),
            models.Index(fields=["study_instance_uid"], name="edge_study_uid"),
        ]

    def __str__(self) -> str:
        return f"{self.edge_node_id}:{self.study_instance_uid}"
