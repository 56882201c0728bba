"""The archive's models, one module per concern."""

from studies.models.index import (
    Instance,
    Patient,
    RegionalPerson,
    Series,
    Study,
    StudyGroupObjectPermission,
    StudyUserObjectPermission,
)

__all__ = [
    "Instance",
    "Patient",
    "RegionalPerson",
    "Series",
    "Study",
    "StudyGroupObjectPermission",
    "StudyUserObjectPermission",
]
from studies.models.access import StudyGrant  # noqa: F401
from studies.models.edge import EdgeStudy  # noqa: F401
from studies.models.reading import ReadingTask, Report, ReportTemplate, RoutingRule  # noqa: F401
from studies.models.uploads import UploadChunk, UploadSession  # noqa: F401
