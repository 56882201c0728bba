"""Forms of the consultation pages: requesting one, cancelling, concluding."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from referrals.consultation.selectors import consultant_candidates


class UserChoiceMixin:
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.get_full_name() or obj.get_username())


class UserMultipleChoiceField(UserChoiceMixin, forms.ModelMultipleChoiceField):
    pass


class UserChoiceField(UserChoiceMixin, forms.ModelChoiceField):
    pass


class RequestForm(forms.Form):
    consultants = UserMultipleChoiceField(
        label=_("Consultants"),
        queryset=None,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Doctors of your region, at any of its institutions."),
    )
    lead = UserChoiceField(
        label=_("Lead consultant"),
        queryset=None,
        required=False,
        help_text=_("Writes and signs the conclusion; the first consultant if left empty."),
    )
    question = forms.CharField(
        label=_("Clinical question"), widget=forms.Textarea(attrs={"rows": 3}), max_length=4000
    )
    scheduled_for = forms.DateTimeField(
        label=_("Time"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text=_("Leave empty for an immediate consultation."),
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        candidates = consultant_candidates(user)
        self.fields["consultants"].queryset = candidates  # type: ignore[attr-defined]
        self.fields["lead"].queryset = candidates  # type: ignore[attr-defined]


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason for cancelling"), max_length=200)


class ConcludeForm(forms.Form):
    conclusion = forms.CharField(
        label=_("Conclusion"), widget=forms.Textarea(attrs={"rows": 6}), max_length=20000
    )
