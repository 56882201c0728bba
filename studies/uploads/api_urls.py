"""Routes of the upload API, included under /api/uploads/ by regional_cloud.api_urls."""

from django.urls import path

from studies.uploads.api import (
    UploadChunkView,
    UploadCompleteView,
    UploadDetailView,
    UploadListView,
)

urlpatterns = [
    path("", UploadListView.as_view(), name="api-upload-list"),
    path("<uuid:upload_uuid>/", UploadDetailView.as_view(), name="api-upload-detail"),
    path(
        "<uuid:upload_uuid>/chunks/<int:index>",
        UploadChunkView.as_view(),
        name="api-upload-chunk",
    ),
    path("<uuid:upload_uuid>/complete", UploadCompleteView.as_view(), name="api-upload-complete"),
]
