"""The network: regions, institutions, the people in them and their edge nodes."""

from __future__ import annotations

import uuid
from datetime import date

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Region(models.Model):
    """A county or a city whose institutions form one network (one hub archive)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    # Cells of a dashboard smaller than this are suppressed (k-anonymity).
    min_cell_size = models.PositiveSmallIntegerField(_("smallest shown count"), default=5)

    class Meta:
        verbose_name = _("region")
        verbose_name_plural = _("regions")

    def __str__(self) -> str:
        return self.name


class Tier(models.TextChoices):
    TOWNSHIP_CLINIC = "clinic", _("Township clinic")
    COUNTY_HOSPITAL = "county", _("County hospital")
    REFERRAL_CENTRE = "centre", _("Referral centre")
    HEALTH_BUREAU = "bureau", _("Health bureau")


# Higher number, higher level: referral "up" goes to a larger level.
TIER_LEVEL = {
    Tier.TOWNSHIP_CLINIC: 1,
    Tier.COUNTY_HOSPITAL: 2,
    Tier.REFERRAL_CENTRE: 3,
    Tier.HEALTH_BUREAU: 0,
}


class Grade(models.TextChoices):
    FIRST = "1", _("Grade I")
    SECOND = "2", _("Grade II")
    THIRD = "3", _("Grade III")
    NONE = "", _("Ungraded")


class HRScope(models.TextChoices):
    """How widely an institution's results carry the HR (mutual recognition) mark."""

    NONE = "", _("No HR mark")
    CITY = "city", _("City HR")
    PROVINCE = "province", _("Provincial HR")
    NATIONAL = "national", _("National HR")


class Alliance(models.Model):
    """A 医共体 (county medical community) or 医联体 (medical alliance)."""

    class Kind(models.TextChoices):
        COMMUNITY = "community", _("County medical community")
        ALLIANCE = "alliance", _("Medical alliance")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="alliances")
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)

    class Meta:
        verbose_name = _("alliance")
        verbose_name_plural = _("alliances")
        constraints = [
            models.UniqueConstraint(fields=["region", "name"], name="alliance_unique_name")
        ]

    def __str__(self) -> str:
        return self.name


class Institution(models.Model):
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="institutions")
    code = models.SlugField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    tier = models.CharField(_("tier"), max_length=16, choices=Tier.choices)
    grade = models.CharField(_("grade"), max_length=1, choices=Grade.choices, blank=True)
    # The institution whose radiologists read for this one (a clinic's county hospital).
    hub = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="served",
        verbose_name=_("reading hub"),
    )
    alliances = models.ManyToManyField(Alliance, blank=True, related_name="members")
    hr_scope = models.CharField(
        _("HR recognition scope"), max_length=16, choices=HRScope.choices, blank=True
    )
    hr_valid_from = models.DateField(_("qualification valid from"), null=True, blank=True)
    hr_valid_until = models.DateField(_("qualification valid until"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("institution")
        verbose_name_plural = _("institutions")
        ordering = ["region_id", "tier", "code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(hr_valid_until__isnull=True)
                | models.Q(hr_valid_from__isnull=True)
                | models.Q(hr_valid_until__gte=models.F("hr_valid_from")),
                name="institution_hr_validity_ordered",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def level(self) -> int:
        return TIER_LEVEL[Tier(self.tier)]

    def hr_valid_on(self, day: date) -> bool:
        """Return whether the HR qualification covers ``day``."""
        if not self.hr_scope:
            return False
        if self.hr_valid_from and day < self.hr_valid_from:
            return False
        return not (self.hr_valid_until and day > self.hr_valid_until)


class Role(models.TextChoices):
    CLINIC_DOCTOR = "clinic_doctor", _("Clinic doctor")
    SPECIALIST = "specialist", _("Radiologist / specialist")
    TECHNICIAN = "technician", _("Technician")
    BUREAU_ANALYST = "bureau_analyst", _("Bureau analyst")
    INSTITUTION_ADMIN = "institution_admin", _("Institution admin")
    REGIONAL_ADMIN = "regional_admin", _("Regional admin")
    # The service identity an edge node's token authenticates as.
    EDGE = "edge", _("Edge node")


# Roles whose members may see patient data of their institution.
CLINICAL_ROLES = frozenset({Role.CLINIC_DOCTOR, Role.SPECIALIST, Role.TECHNICIAN})


class Membership(models.Model):
    """A user's role at an institution. One user may hold several."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "institution", "role"], name="membership_unique_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.institution} ({self.get_role_display()})"


class InstitutionGroup(models.Model):
    """The auth group holding every active member of one institution in one role.

    Object permissions are granted to these groups, so a new member sees what the
    role sees the moment they join, and losing the role ends it.
    """

    institution = models.ForeignKey(
        Institution, on_delete=models.CASCADE, related_name="role_groups"
    )
    role = models.CharField(max_length=32, choices=Role.choices)
    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="institution_role")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["institution", "role"], name="group_unique_role")
        ]

    def __str__(self) -> str:
        return self.group.name


class EdgeNode(models.Model):
    """An Orthanc at an institution that pushes its studies to the hub."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    institution = models.ForeignKey(
        Institution, on_delete=models.PROTECT, related_name="edge_nodes"
    )
    name = models.CharField(_("name"), max_length=100)
    # The user the edge's token authenticates as (role EDGE at the institution).
    service_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="edge_node"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(_("token prefix"), max_length=12)
    token_rotated_at = models.DateTimeField(_("token issued at"), default=timezone.now)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Health, reported by the edge agent's heartbeat.
    last_contact_at = models.DateTimeField(_("last contact"), null=True, blank=True)
    backlog = models.PositiveIntegerField(_("studies waiting"), default=0)
    lag_seconds = models.PositiveIntegerField(_("lag (s)"), default=0)
    agent_version = models.CharField(max_length=32, blank=True)
    # Not a column: set when the edge's token is read (hospitals.authentication),
    # whether its service identity may send for the edge's institution.
    sends_for_institution: bool

    class Meta:
        verbose_name = _("edge node")
        verbose_name_plural = _("edge nodes")
        constraints = [
            models.UniqueConstraint(fields=["institution", "name"], name="edge_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.institution} / {self.name}"


class ApiToken(models.Model):
    """A personal API token: only its SHA-256 is kept; the token is shown once."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(_("name"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.token_prefix}…)"
