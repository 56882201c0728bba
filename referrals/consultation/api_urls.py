"""Routes of the consultation API, included under /api/."""

from django.urls import path

from referrals.consultation import api

urlpatterns = [
    path("consultations/", api.ConsultationListView.as_view(), name="api-consultation-list"),
    path(
        "consultations/<uuid:uuid>/",
        api.ConsultationDetailView.as_view(),
        name="api-consultation-detail",
    ),
    path(
        "consultations/<uuid:uuid>/accept/",
        api.ConsultationAcceptView.as_view(),
        name="api-consultation-accept",
    ),
    path(
        "consultations/<uuid:uuid>/decline/",
        api.ConsultationDeclineView.as_view(),
        name="api-consultation-decline",
    ),
    path(
        "consultations/<uuid:uuid>/cancel/",
        api.ConsultationCancelView.as_view(),
        name="api-consultation-cancel",
    ),
    path(
        "consultations/<uuid:uuid>/conclude/",
        api.ConsultationConcludeView.as_view(),
        name="api-consultation-conclude",
    ),
    path(
        "consultations/<uuid:uuid>/messages/",
        api.ConsultationMessagesView.as_view(),
        name="api-consultation-messages",
    ),
    path(
        "consultations/<uuid:uuid>/annotations/",
        api.ConsultationAnnotationsView.as_view(),
        name="api-consultation-annotations",
    ),
    path(
        "patients/<uuid:uuid>/consultations/",
        api.PatientConsultationsView.as_view(),
        name="api-patient-consultations",
    ),
]
