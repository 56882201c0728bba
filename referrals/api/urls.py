"""Routes of the referral, patient-index and recognition API, included under /api/."""

from django.urls import path

from referrals.api import patients, recognition, referrals

urlpatterns = [
    path("referrals/", referrals.ReferralListView.as_view(), name="api-referral-list"),
    path(
        "referrals/targets/", referrals.ReferralTargetsView.as_view(), name="api-referral-targets"
    ),
    path(
        "referrals/<uuid:uuid>/",
        referrals.ReferralDetailView.as_view(),
        name="api-referral-detail",
    ),
    path(
        "referrals/<uuid:uuid>/events/",
        referrals.ReferralEventsView.as_view(),
        name="api-referral-events",
    ),
    path(
        "referrals/<uuid:uuid>/submit/",
        referrals.ReferralSubmitView.as_view(),
        name="api-referral-submit",
    ),
    path(
        "referrals/<uuid:uuid>/accept/",
        referrals.ReferralAcceptView.as_view(),
        name="api-referral-accept",
    ),
    path(
        "referrals/<uuid:uuid>/reject/",
        referrals.ReferralRejectView.as_view(),
        name="api-referral-reject",
    ),
    path(
        "referrals/<uuid:uuid>/schedule/",
        referrals.ReferralScheduleView.as_view(),
        name="api-referral-schedule",
    ),
    path(
        "referrals/<uuid:uuid>/arrive/",
        referrals.ReferralArriveView.as_view(),
        name="api-referral-arrive",
    ),
    path(
        "referrals/<uuid:uuid>/complete/",
        referrals.ReferralCompleteView.as_view(),
        name="api-referral-complete",
    ),
    path(
        "referrals/<uuid:uuid>/cancel/",
        referrals.ReferralCancelView.as_view(),
        name="api-referral-cancel",
    ),
    path("patients/", patients.PatientListView.as_view(), name="api-patient-list"),
    path("patients/<uuid:uuid>/", patients.PatientDetailView.as_view(), name="api-patient-detail"),
    path("patients/<uuid:uuid>/link/", patients.PatientLinkView.as_view(), name="api-patient-link"),
    path(
        "recognition/decisions/<uuid:uuid>/repeat/",
        recognition.RepeatView.as_view(),
        name="api-recognition-repeat",
    ),
    path(
        "recognition/<str:study_uid>/",
        recognition.RecognitionView.as_view(),
        name="api-recognition",
    ),
    path(
        "recognition/<str:study_uid>/quality/",
        recognition.QualityView.as_view(),
        name="api-recognition-quality",
    ),
]
