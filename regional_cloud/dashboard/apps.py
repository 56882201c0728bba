from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DashboardConfig(AppConfig):
    name = "regional_cloud.dashboard"
    label = "dashboard"
    verbose_name = _("Dashboards")

    def ready(self) -> None:
        # The demo's simulated edges beat while the demo is in use (regional_cloud/demo).
        from django.core.signals import request_started

        from regional_cloud.demo.network import beat_simulated_edges_on_request

        request_started.connect(beat_simulated_edges_on_request, dispatch_uid="demo-edges-beat")
