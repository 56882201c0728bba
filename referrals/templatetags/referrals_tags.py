"""Template filters for DICOM values on the referral and patient pages."""

from __future__ import annotations

from django import template
from django.utils import timezone

from referrals import display
from studies.models import Patient
from studies.reading.display import date_label, patient_age, person_name, sex_label

register = template.Library()


@register.filter
def pn(value: str) -> str:
    """Return a Person Name as people write it (张^三 → 张三)."""
    return person_name(value)


@register.filter
def da(value: str) -> str:
    """Return a DA value as YYYY-MM-DD."""
    return date_label(value)


@register.filter
def sex(value: str) -> str:
    return sex_label(value)


@register.filter
def age(birth_date: str) -> str:
    """Return the age today from a DA birth date."""
    return patient_age(birth_date, timezone.localdate())


@register.filter
def event_label(kind: str) -> str:
    """Return a referral event's kind in words."""
    return display.event_label(kind)


@register.filter
def patient_line(patient: Patient) -> str:
    """Return "PatientID · sex · age", leaving out what is unknown."""
    parts = [patient.patient_id, sex_label(patient.patient_sex), age(patient.patient_birth_date)]
    return " · ".join(p for p in parts if p)
