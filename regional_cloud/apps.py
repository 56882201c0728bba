from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegionalCloudConfig(AppConfig):
    name = "regional_cloud"
    verbose_name = _("Regional Imaging Cloud")

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from regional_cloud.dbpool import guard_pooled_connection

        connection_created.connect(guard_pooled_connection, dispatch_uid="guard_pooled_connection")
