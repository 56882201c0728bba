"""Forms of the network pages. They validate input; the services do the writing."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from hospitals.models import EdgeNode, Institution, Role


class LoginForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": _(
            "Wrong username or password. Please try again; both are case-sensitive."
        ),
        "inactive": _("This account is disabled. Please ask your institution admin."),
    }


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    # Labels sit above their fields: no colon (it would be ASCII in Chinese text).
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class MemberAddForm(forms.Form):
    """Add a person to an institution: a new account, or an existing one by username."""

    NEW = "new"
    EXISTING = "existing"

    account = forms.ChoiceField(
        label=_("Account"),
        choices=[(NEW, _("Create a new account")), (EXISTING, _("Add an existing account"))],
        initial=NEW,
        widget=forms.RadioSelect,
    )
    username = forms.CharField(label=_("Username"), max_length=150)
    full_name = forms.CharField(
        label=_("Full name"),
        max_length=150,
        required=False,
        help_text=_("Needed for a new account."),
    )
    password = forms.CharField(
        label=_("Initial password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Needed for a new account. Tell it to the person privately."),
    )
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args: Any, roles: list[tuple[str, Any]], **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        role_field = self.fields["role"]
        assert isinstance(role_field, forms.ChoiceField)
        role_field.choices = roles
        self.existing_user: Any = None

    def clean_username(self) -> str:
        return str(self.cleaned_data["username"]).strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        username = cleaned.get("username")
        if not username:
            return cleaned
        user_model = get_user_model()
        if cleaned.get("account") == self.EXISTING:
            user = user_model.objects.filter(username=username, is_active=True).first()
            # Edge service users are machine identities; they never get a person's role.
            if user is None or EdgeNode.objects.filter(service_user=user).exists():
                self.add_error("username", _("No active account has this username."))
            else:
                self.existing_user = user
            return cleaned
        if user_model.objects.filter(username__iexact=username).exists():
            self.add_error("username", _("This username is already taken."))
        if not cleaned.get("full_name"):
            self.add_error("full_name", _("Enter the person's name."))
        password = cleaned.get("password")
        if not password:
            self.add_error("password", _("Enter an initial password."))
        else:
            candidate = user_model(username=username, first_name=cleaned.get("full_name") or "")
            try:
                password_validation.validate_password(password, candidate)
            except forms.ValidationError as error:
                self.add_error("password", error)
        return cleaned


class EdgeNodeCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("For example: radiology Orthanc, building 2."),
    )

    def __init__(self, *args: Any, institution: Institution, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.institution = institution

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if EdgeNode.objects.filter(institution=self.institution, name=name).exists():
            raise forms.ValidationError(_("This institution already has an edge node so named."))
        return name


def role_choices(roles: list[str]) -> list[tuple[str, Any]]:
    """Return (value, label) pairs for ``roles`` in the order of ``Role``."""
    return [(value, label) for value, label in Role.choices if value in roles]
