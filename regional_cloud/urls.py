"""Top-level URLs: pages, the API, DICOMweb, admin and language switching."""

from django.contrib import admin
from django.urls import include, path

from studies.edge_views import edge_ledger_page
from studies.viewer_views import viewer_page

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/", include("regional_cloud.api_urls")),
    path("dicom-web/", include("studies.dicomweb.urls")),
    path("edges/<uuid:edge_uuid>/", edge_ledger_page, name="edge_ledger"),
    path("viewer/<str:study_uid>/", viewer_page, name="viewer"),
    path("upload/", include("studies.upload_urls")),
    path("", include("studies.reading_views")),
    path("", include("referrals.urls")),
    path("", include("referrals.consultation.urls")),
    path("", include("hospitals.urls")),
    path("dashboard/", include("regional_cloud.dashboard.urls")),
]
