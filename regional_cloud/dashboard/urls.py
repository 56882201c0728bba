"""Dashboard pages under /dashboard/."""

from django.urls import path

from regional_cloud.dashboard import views

urlpatterns = [
    path("", views.dashboard_page, name="dashboard"),
    path("at-a-glance/", views.network_page, name="dashboard_network"),
    path(
        "institutions/<uuid:institution_uuid>/",
        views.institution_page,
        name="dashboard_institution",
    ),
]
