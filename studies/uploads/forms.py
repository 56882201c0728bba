"""The photo form: a JPEG/PNG of a film or an ECG strip and who the patient is."""

from __future__ import annotations

import unicodedata
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from hospitals.models import Institution
from studies.uploads.sc import PhotoDetails, PhotoKind

SEX_CHOICES = [("", _("Unknown")), ("F", _("Female")), ("M", _("Male")), ("O", _("Other"))]


def _no_control(value: str) -> bool:
    return not any(unicodedata.category(ch).startswith("C") for ch in value)


class PhotoForm(forms.Form):
    photo = forms.FileField(
        label=_("Photo"),
        help_text=_("A JPEG or PNG photo. Only the image is kept, not where or how it was taken."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png"}),
    )
    kind = forms.ChoiceField(
        label=_("What the photo shows"),
        choices=PhotoKind.choices,
        initial=PhotoKind.FILM,
        widget=forms.RadioSelect,
    )
    patient_name = forms.CharField(label=_("Patient's name"), max_length=64)
    patient_id = forms.CharField(
        label=_("Patient ID"),
        max_length=64,
        help_text=_("The ID your clinic uses for this patient."),
    )
    patient_sex = forms.ChoiceField(label=_("Sex"), choices=SEX_CHOICES, required=False)
    patient_birth_date = forms.DateField(
        label=_("Birth date"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    description = forms.CharField(
        label=_("Description"),
        max_length=64,
        required=False,
        help_text=_("For example: chest film, 12-lead ECG."),
    )
    accession_number = forms.CharField(label=_("Accession number"), max_length=16, required=False)

    def __init__(self, *args: Any, institutions: list[Institution], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.institutions = institutions
        if len(institutions) > 1:
            self.fields["institution"] = forms.ChoiceField(
                label=_("Send for"),
                choices=[(str(i.uuid), i.name) for i in institutions],
            )
            self.order_fields(["institution"])

    def clean_patient_name(self) -> str:
        value = " ".join(self.cleaned_data["patient_name"].split())
        # Backslash separates values and "=" name representations in a Person Name (PS3.5 6.2).
        if "\\" in value or "=" in value or not _no_control(value):
            raise forms.ValidationError(_("The name may not contain \\ or =."))
        return value

    def clean_patient_id(self) -> str:
        value = self.cleaned_data["patient_id"].strip()
        if "\\" in value or not _no_control(value):
            raise forms.ValidationError(_("The ID may not contain \\."))
        return value

    def clean_patient_birth_date(self) -> Any:
        value = self.cleaned_data.get("patient_birth_date")
        if value and value > timezone.localdate():
            raise forms.ValidationError(_("The birth date is in the future."))
        return value

    def clean_description(self) -> str:
        value = " ".join(self.cleaned_data.get("description", "").split())
        if "\\" in value:
            raise forms.ValidationError(_("The description may not contain \\."))
        return value

    def clean_accession_number(self) -> str:
        value = self.cleaned_data.get("accession_number", "").strip()
        if "\\" in value or not _no_control(value):
            raise forms.ValidationError(_("The accession number may not contain \\."))
        return value

    def institution(self) -> Institution:
        if len(self.institutions) == 1:
            return self.institutions[0]
        chosen = self.cleaned_data["institution"]
        return next(i for i in self.institutions if str(i.uuid) == chosen)

    def details(self) -> PhotoDetails:
        data = self.cleaned_data
        return PhotoDetails(
            patient_name=data["patient_name"],
            patient_id=data["patient_id"],
            patient_sex=data.get("patient_sex", ""),
            patient_birth_date=data.get("patient_birth_date"),
            kind=data["kind"],
            description=data.get("description", ""),
            accession_number=data.get("accession_number", ""),
        )
