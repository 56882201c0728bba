import warnings

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class StudiesConfig(AppConfig):
    name = "studies"
    verbose_name = _("Archive")

    def ready(self) -> None:
        import pydicom.config

        # pydicom's warnings quote element values, which may be patient data:
        # they must never reach a log. Validation is ours (studies/dicom_parse.py).
        pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
        warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")

        from studies.ingest import AFTER_INGEST
        from studies.reading.routing import route_after_ingest

        # A stored study goes to its reading pool's worklist (idempotent).
        if route_after_ingest not in AFTER_INGEST:
            AFTER_INGEST.append(route_after_ingest)
