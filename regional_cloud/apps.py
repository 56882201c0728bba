from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RegionalCloudConfig(AppConfig):
    name = "regional_cloud"
    verbose_name = _("Regional Imaging Cloud")
