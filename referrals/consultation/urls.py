"""Pages of consultations (/consultations/), included by the top-level URLs."""

from django.urls import path

from referrals.consultation import views

ACTIONS = ["accept", "decline", "cancel", "conclude"]

urlpatterns = [
    path("consultations/", views.consultation_list, name="consultation_list"),
    path("consultations/new/", views.consultation_create, name="consultation_create"),
    path(
        "consultations/<uuid:consultation_uuid>/",
        views.consultation_detail,
        name="consultation_detail",
    ),
    path(
        "consultations/<uuid:consultation_uuid>/room/",
        views.consultation_room,
        name="consultation_room",
    ),
    path(
        "consultations/<uuid:consultation_uuid>/transcript.pdf",
        views.consultation_transcript,
        name="consultation_transcript",
    ),
    path(
        "consultations/<uuid:consultation_uuid>/snapshots/<int:seq>.png",
        views.consultation_snapshot,
        name="consultation_snapshot",
    ),
    *[
        path(
            f"consultations/<uuid:consultation_uuid>/{action}/",
            views.consultation_act,
            {"action": action},
            name=f"consultation_{action}",
        )
        for action in ACTIONS
    ],
]
