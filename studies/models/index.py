"""The archive's index: patients, studies, series and instances.

Attribute names follow DICOM PS3.3 (C.7.1.1 Patient, C.7.2.1 General Study,
C.7.3.1 General Series, C.12.1 SOP Common). Every instance's bytes live in
the archive store under ``archive_key``; the index never holds pixel data.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from hospitals.models import Institution, Region


class RegionalPerson(models.Model):
    """One human being across the region, to which issuer-local patients are linked.

    A link is made only by a deliberate act: a national ID hash match, or a
    person's confirmation — never because two hospitals use the same PatientID.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="persons")
    # HMAC-SHA256 of the normalised national ID (see studies/identity.py); never the ID.
    national_id_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("regional person")
        verbose_name_plural = _("regional persons")
        constraints = [
            models.UniqueConstraint(
                fields=["region", "national_id_hash"],
                condition=~models.Q(national_id_hash=""),
                name="person_unique_national_id",
            )
        ]

    def __str__(self) -> str:
        return str(self.uuid)


class Patient(models.Model):
    """A patient as one institution knows them: (issuer, PatientID) — PS3.3 C.7.1.1."""

    class LinkMethod(models.TextChoices):
        NONE = "", _("Not linked")
        NATIONAL_ID = "national_id", _("National ID match")
        CONFIRMED = "confirmed", _("Confirmed by a person")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    issuer = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="patients")
    patient_id = models.CharField(_("Patient ID"), max_length=64)  # (0010,0020) LO
    patient_name = models.CharField(_("Patient's name"), max_length=324, blank=True)  # PN
    patient_sex = models.CharField(_("sex"), max_length=16, blank=True)  # (0010,0040)
    patient_birth_date = models.CharField(_("birth date"), max_length=8, blank=True)  # DA
    national_id_hash = models.CharField(max_length=64, blank=True, db_index=True)
    person = models.ForeignKey(
        RegionalPerson,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="patients",
    )
    link_method = models.CharField(max_length=16, choices=LinkMethod.choices, blank=True)
    linked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("patient")
        verbose_name_plural = _("patients")
        constraints = [
            models.UniqueConstraint(fields=["issuer", "patient_id"], name="patient_unique_id")
        ]
        # QIDO-RS matches PatientID across issuers; the unique index above leads with issuer.
        indexes = [models.Index(fields=["patient_id"], name="patient_id_lookup")]

    def __str__(self) -> str:
        return str(self.uuid)


class Study(models.Model):
    """PS3.3 C.7.2.1 General Study, plus what the network needs to know of it."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study_instance_uid = models.CharField(max_length=64, unique=True)  # (0020,000D)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    # The authenticated sender's institution — never read from tags in the file.
    origin = models.ForeignKey(Institution, on_delete=models.PROTECT, related_name="studies")
    accession_number = models.CharField(max_length=16, blank=True, db_index=True)  # SH
    study_id = models.CharField(max_length=16, blank=True)  # (0020,0010)
    study_date = models.CharField(max_length=8, blank=True, db_index=True)  # DA
    study_time = models.CharField(max_length=16, blank=True)  # TM
    study_description = models.CharField(max_length=64, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    modalities_in_study = models.CharField(max_length=64, blank=True)  # "CT\\SR"
    number_of_series = models.PositiveIntegerField(default=0)
    number_of_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    # Study-level attributes as DICOM JSON (PS3.18 F.2), answered by QIDO without reading objects.
    metadata: models.JSONField[Any, Any] = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("study")
        verbose_name_plural = _("studies")
        # Object permissions: view_study opens images; report_study writes reports on it.
        permissions = [("report_study", "Can report the study")]
        indexes = [models.Index(fields=["origin", "-received_at"], name="study_origin_recent")]

    def __str__(self) -> str:
        return self.study_instance_uid

    @property
    def modalities(self) -> list[str]:
        return [m for m in self.modalities_in_study.split("\\") if m]


class Series(models.Model):
    """PS3.3 C.7.3.1 General Series."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64, unique=True)  # (0020,000E)
    modality = models.CharField(max_length=16, db_index=True)  # (0008,0060)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=64, blank=True)
    body_part_examined = models.CharField(max_length=16, blank=True)
    number_of_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    metadata: models.JSONField[Any, Any] = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("series")
        verbose_name_plural = _("series")

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    """PS3.3 C.12.1 SOP Common: one stored object, verified by size and SHA-256."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="instances")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64, unique=True)  # (0008,0018)
    sop_class_uid = models.CharField(max_length=64)  # (0008,0016)
    instance_number = models.IntegerField(null=True, blank=True)  # (0020,0013)
    transfer_syntax_uid = models.CharField(max_length=64)  # (0002,0010)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    archive_key = models.CharField(max_length=300, unique=True)
    # Where the pixel data value starts inside the object, for frame reads by range.
    pixel_data_offset = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    # Instance attributes as DICOM JSON without bulk data (PS3.18 F.2).
    metadata: models.JSONField[Any, Any] = models.JSONField(default=dict)

    class Meta:
        verbose_name = _("instance")
        verbose_name_plural = _("instances")
        indexes = [models.Index(fields=["series", "instance_number"], name="instance_order")]

    def __str__(self) -> str:
        return self.sop_instance_uid


class StudyUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Study, on_delete=models.CASCADE)


class StudyGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Study, on_delete=models.CASCADE)
