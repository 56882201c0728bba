"""Pages of browser uploads, included under /upload/ by regional_cloud.urls."""

from django.urls import path

from studies import upload_views

urlpatterns = [
    path("", upload_views.upload_page, name="upload"),
    path("photo/", upload_views.photo_page, name="upload_photo"),
]
