"""Everything under /api/: each app's routes plus the OpenAPI schema and its docs page.

The schema and the docs need a signed-in user like the rest of the API: the
docs page sends a browser to the login page, the schema answers 401/403. The
docs are Swagger UI from drf-spectacular-sidecar, served from /static/; there is
no Redoc page because spectacular's Redoc template loads Google Fonts.
"""

from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import IsAuthenticated

from studies.edge_api import EdgeLedgerReportView, EdgeLedgerView

urlpatterns = [
    path("dashboard/", include("regional_cloud.dashboard.api_urls")),
    path("edge-nodes/ledger/", EdgeLedgerReportView.as_view(), name="api-edge-ledger-report"),
    path("edge-nodes/<uuid:uuid>/ledger/", EdgeLedgerView.as_view(), name="api-edge-ledger"),
    path("uploads/", include("studies.uploads.api_urls")),
    path("", include("studies.reading_api")),
    path("", include("referrals.consultation.api_urls")),
    path("", include("referrals.api.urls")),
    path("", include("hospitals.api.urls")),
    path(
        "schema/",
        SpectacularAPIView.as_view(permission_classes=[IsAuthenticated]),
        name="api-schema",
    ),
    path(
        "docs/",
        login_required(
            SpectacularSwaggerView.as_view(
                url_name="api-schema", permission_classes=[IsAuthenticated]
            )
        ),
        name="api-docs",
    ),
]
