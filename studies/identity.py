"""Linking a hospital's patient to a regional person: only ever on purpose.

Two hospitals' patients are the same person when their national ID numbers
hash alike, or when a person (a doctor with both records in front of them)
confirms it — never because their PatientIDs happen to be equal.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from regional_cloud.audit import audit
from studies.models import Patient, RegionalPerson


class IdentityError(ValueError):
    pass


def national_id_hash(national_id: str) -> str:
    """Return the keyed hash of a normalised resident ID number (never stored in clear)."""
    normalised = national_id.strip().upper().replace(" ", "")
    if len(normalised) != 18 or not normalised[:17].isdigit():
        raise IdentityError(_("A resident ID number has 18 characters."))
    key = hashlib.sha256(("national-id:" + settings.SECRET_KEY).encode()).digest()
    return hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def patient_link_by_national_id(
    *, patient: Patient, national_id: str, actor: Any
) -> RegionalPerson:
    """Link ``patient`` to the region's person with this national ID (created if new)."""
    digest = national_id_hash(national_id)
    region_id = patient.issuer.region_id
    person, _created = RegionalPerson.objects.get_or_create(
        region_id=region_id, national_id_hash=digest
    )
    if patient.person_id and patient.person_id != person.pk:
        raise IdentityError(_("This patient is already linked to another person."))
    _link(patient, person, Patient.LinkMethod.NATIONAL_ID, actor)
    return person


@transaction.atomic
def patient_link_confirm(*, patient: Patient, other: Patient, actor: Any) -> RegionalPerson:
    """Record a person's confirmation that two institutions' patients are one person."""
    if patient.pk == other.pk:
        raise IdentityError(_("A patient cannot be linked to themself."))
    if patient.issuer.region_id != other.issuer.region_id:
        raise IdentityError(_("Patients of different regions cannot be linked."))
    persons = {p for p in (patient.person, other.person) if p is not None}
    if len(persons) > 1:
        raise IdentityError(_("The two patients are already linked to different persons."))
    person = (
        persons.pop()
        if persons
        else RegionalPerson.objects.create(region_id=patient.issuer.region_id)
    )
    for record in (patient, other):
        _link(record, person, Patient.LinkMethod.CONFIRMED, actor)
    return person


def _link(patient: Patient, person: RegionalPerson, method: str, actor: Any) -> None:
    if patient.person_id == person.pk:
        return
    patient.person = person
    patient.link_method = method
    patient.linked_at = timezone.now()
    patient.save(update_fields=["person", "link_method", "linked_at"])
    audit(
        action="patient.link",
        actor=actor,
        institution=patient.issuer,
        object_type="patient",
        object_id=patient.uuid,
        patient_ref=patient.uuid,
        detail={"person": str(person.uuid), "method": method},
    )
