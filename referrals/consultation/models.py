"""Live teleconsultation (远程会诊): doctors of several institutions on the same images.

A ``Consultation`` is requested from a referral or a study and has
``Participant`` rows (the requesting doctor and one or more consultants).
Everything said in its room is a ``ConsultationMessage`` with a per-room
sequence number, stored before anyone is told about it; ``Annotation`` rows
keep the shapes drawn on an image, keyed by study, SOP instance and
consultation. Presence and WebRTC signalling are never stored.

Snapshots (PNG captures of the viewer) live in the archive store under
``consultation/<uuid>/<seq>.png``; the message keeps the key, not the bytes.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from hospitals.models import Institution
from referrals.models import Referral
from studies.models import Patient, Study


class Consultation(models.Model):
    class State(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        SCHEDULED = "scheduled", _("Scheduled")
        LIVE = "live", _("Live")
        CONCLUDED = "concluded", _("Concluded")
        CANCELLED = "cancelled", _("Cancelled")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    referral = models.ForeignKey(
        Referral,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="consultations",
    )
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="consultations")
    studies = models.ManyToManyField(Study, related_name="consultations")
    institution = models.ForeignKey(
        Institution,
        on_delete=models.PROTECT,
        related_name="consultations_requested",
        verbose_name=_("requesting institution"),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="consultations_requested"
    )
    lead = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="consultations_led",
        verbose_name=_("lead consultant"),
    )
    question = models.TextField(_("clinical question"), blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.REQUESTED, db_index=True
    )
    # None: as soon as the consultants have accepted ("immediate").
    scheduled_for = models.DateTimeField(_("scheduled for"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    cancellation_reason = models.CharField(_("reason for cancelling"), max_length=200, blank=True)
    # The last sequence number given to a message of this room; allocated under a row lock.
    last_seq = models.PositiveBigIntegerField(default=0)
    # Who the others' viewers follow; None when nobody presents.
    presenter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    conclusion = models.TextField(_("conclusion"), blank=True)
    concluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="consultations_concluded",
    )
    concluded_at = models.DateTimeField(null=True, blank=True)
    content_sha256 = models.CharField(max_length=64, blank=True)
    signature = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = _("consultation")
        verbose_name_plural = _("consultations")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return str(self.uuid)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


OPEN_STATES = frozenset(
    {
        Consultation.State.REQUESTED,
        Consultation.State.SCHEDULED,
        Consultation.State.LIVE,
    }
)


class Participant(models.Model):
    class Role(models.TextChoices):
        REQUESTER = "requester", _("Requesting doctor")
        CONSULTANT = "consultant", _("Consultant")

    class Status(models.TextChoices):
        INVITED = "invited", _("Invited")
        ACCEPTED = "accepted", _("Accepted")
        DECLINED = "declined", _("Declined")

    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="participants"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="consultation_seats"
    )
    # Where the participant works, as chosen when invited (users may work at several).
    institution = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.INVITED
    )
    invited_at = models.DateTimeField(default=timezone.now)
    responded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["invited_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["consultation", "user"], name="consultation_participant_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.consultation_id} {self.user_id} {self.status}"


class ConsultationMessage(models.Model):
    """One thing said or done in the room, in the room's order (``seq``)."""

    class Kind(models.TextChoices):
        TEXT = "text", _("Message")
        SNAPSHOT = "snapshot", _("Snapshot")
        ANNOTATION = "annotation", _("Annotation")
        PRESENTER = "presenter", _("Presenter changed")
        SYSTEM = "system", _("Event")

    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveBigIntegerField()
    # Chosen by the sending browser: a resend after a dropped line finds the first row.
    client_msg_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    text = models.TextField(blank=True)
    # Kind-specific data (an annotation's shape, a system event's code); never patient names.
    payload = models.JSONField(default=dict, blank=True)
    snapshot_key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["consultation_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["consultation", "seq"], name="consultation_msg_seq"),
            models.UniqueConstraint(
                fields=["consultation", "client_msg_id"], name="consultation_msg_client_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consultation_id}#{self.seq}"


class Annotation(models.Model):
    """A shape drawn on one image during a consultation, shown to everyone in the room.

    Points are in image coordinates (columns, rows; PS3.3 C.10.5.1.2's pixel
    space), so the shape stays on its anatomy whatever each viewer's zoom.
    """

    class Kind(models.TextChoices):
        ARROW = "arrow", _("Arrow")
        LENGTH = "length", _("Length")
        TEXT = "text", _("Text")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="annotations"
    )
    message = models.OneToOneField(
        ConsultationMessage, on_delete=models.CASCADE, related_name="annotation"
    )
    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="annotations")
    study_instance_uid = models.CharField(max_length=64)
    series_instance_uid = models.CharField(max_length=64)
    sop_instance_uid = models.CharField(max_length=64)
    frame_number = models.PositiveIntegerField(default=1)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    points = models.JSONField(default=list)
    text = models.CharField(max_length=500, blank=True)
    # For a length: the value the author's viewer computed from the pixel spacing.
    value = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=8, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["study_instance_uid", "sop_instance_uid"], name="annotation_image")
        ]

    def __str__(self) -> str:
        return f"{self.kind} on {self.sop_instance_uid}"


class ConsultationUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Consultation, on_delete=models.CASCADE)


class ConsultationGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Consultation, on_delete=models.CASCADE)
