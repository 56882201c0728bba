"""Dashboard JSON and exports under /api/dashboard/ (named, signed-in only)."""

from django.urls import path

from regional_cloud.dashboard.api import DashboardExportView, DashboardSectionView
from regional_cloud.dashboard.selectors import SECTIONS

urlpatterns = [
    *(
        path(
            f"{section}/",
            DashboardSectionView.as_view(section=section),
            name=f"api-dashboard-{section}",
        )
        for section in SECTIONS
    ),
    path(
        "<str:section>/export/<str:fmt>/",
        DashboardExportView.as_view(),
        name="api-dashboard-export",
    ),
]
