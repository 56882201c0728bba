"""Forms of the referral and patient pages. They validate input; the services write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from hospitals.models import Institution
from referrals.models import Referral, Urgency
from referrals.selectors import Target
from studies.models import Study


class _Form(forms.Form):
    # Labels sit above their fields: no colon (it would be ASCII in Chinese text).
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class TargetSelect(forms.Select):
    """Options carry their direction and whether they need a skip reason, for the page's JS."""

    def __init__(self, *args: Any, targets: dict[str, tuple[str, bool]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.targets = targets

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        if str(value) in self.targets:
            direction, needs_skip = self.targets[str(value)]
            option["attrs"]["data-direction"] = direction
            if needs_skip:
                option["attrs"]["data-needs-skip"] = "1"
        return option


def study_label(study: Study) -> str:
    day = study.study_date
    day = f"{day[:4]}-{day[4:6]}-{day[6:]}" if len(day) == 8 else day
    parts = [day, "/".join(study.modalities), study.study_description, study.origin.name]
    return " · ".join(p for p in parts if p)


class ReferralForm(_Form):
    direction = forms.ChoiceField(
        label=_("Direction"),
        choices=Referral.Direction.choices,
        widget=forms.RadioSelect,
        initial=Referral.Direction.UP,
    )
    to_institution = forms.ChoiceField(label=_("Refer to"))
    urgency = forms.ChoiceField(label=_("Urgency"), choices=Urgency.choices, initial="routine")
    studies = forms.MultipleChoiceField(
        label=_("Attach studies"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The receiving side can open them once it accepts."),
    )
    clinical_question = forms.CharField(
        label=_("Clinical question"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )
    skip_reason = forms.CharField(
        label=_("Reason for skipping a level"),
        required=False,
        max_length=200,
        help_text=_("Needed when the referral goes past the next level."),
    )
    treatment_summary = forms.CharField(
        label=_("Treatment summary"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=4000,
    )
    follow_up_plan = forms.CharField(
        label=_("Follow-up plan"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        max_length=4000,
    )

    def __init__(
        self,
        *args: Any,
        targets: dict[str, list[Target]],
        studies: list[Study],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.institutions: dict[str, Institution] = {}
        groups: list[tuple[str, list[tuple[str, str]]]] = []
        meta: dict[str, tuple[str, bool]] = {}
        labels = dict(Referral.Direction.choices)
        for direction, found in targets.items():
            options = []
            for target in found:
                key = str(target.institution.uuid)
                self.institutions[key] = target.institution
                meta[key] = (direction, target.needs_skip_reason)
                options.append((key, target.institution.name))
            if options:
                groups.append((str(labels[direction]), options))
        field = self.fields["to_institution"]
        field.choices = [("", "—"), *groups]  # type: ignore[attr-defined]
        field.widget = TargetSelect(targets=meta)
        field.widget.choices = field.choices  # type: ignore[attr-defined]
        self.study_choices = {s.study_instance_uid: s for s in studies}
        self.fields["studies"].choices = [  # type: ignore[attr-defined]
            (uid, study_label(s)) for uid, s in self.study_choices.items()
        ]

    def clean_to_institution(self) -> Institution:
        return self.institutions[self.cleaned_data["to_institution"]]

    def clean_studies(self) -> list[Study]:
        return [self.study_choices[uid] for uid in self.cleaned_data["studies"]]


class RejectForm(_Form):
    reason = forms.CharField(label=_("Reason for rejection"), max_length=200)


class CancelForm(_Form):
    reason = forms.CharField(label=_("Reason for cancelling"), max_length=200)


class ScheduleForm(_Form):
    when = forms.DateTimeField(
        label=_("Appointment"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"],
    )


class CompleteForm(_Form):
    note = forms.CharField(label=_("Note"), required=False, max_length=500)


class NationalIdForm(_Form):
    national_id = forms.CharField(
        label=_("Resident ID number (身份证号)"),
        max_length=32,
        help_text=_("Only a keyed hash is kept; the number itself is never stored."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class ConfirmMatchForm(_Form):
    other = forms.ChoiceField(label=_("The same person at another institution"))

    def __init__(self, *args: Any, candidates: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.candidates = {str(p.uuid): p for p in candidates}
        self.fields["other"].choices = [  # type: ignore[attr-defined]
            ("", "—"),
            *(
                (key, f"{p.patient_name.replace('^', '')} · {p.patient_id} · {p.issuer.name}")
                for key, p in self.candidates.items()
            ),
        ]

    def clean_other(self) -> Any:
        return self.candidates[self.cleaned_data["other"]]
