from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReferralsConfig(AppConfig):
    name = "referrals"
    verbose_name = _("Referral and recognition")

    def ready(self) -> None:
        from referrals.notify import on_transition
        from referrals.services import AFTER_TRANSITION

        # Every transition notifies the people it concerns, after commit (idempotent).
        if on_transition not in AFTER_TRANSITION:
            AFTER_TRANSITION.append(on_transition)
