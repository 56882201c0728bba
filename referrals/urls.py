"""Pages of referrals (/referrals/) and the patient index (/patients/)."""

from django.urls import path

from referrals import views

ACTIONS = ["submit", "accept", "reject", "schedule", "arrive", "complete", "cancel"]

urlpatterns = [
    path("referrals/", views.referral_list, name="referral_list"),
    path("referrals/new/", views.referral_create, name="referral_create"),
    path("referrals/<uuid:referral_uuid>/", views.referral_detail, name="referral_detail"),
    *[
        path(
            f"referrals/<uuid:referral_uuid>/{action}/",
            views.referral_act,
            {"action": action},
            name=f"referral_{action}",
        )
        for action in ACTIONS
    ],
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/<uuid:patient_uuid>/", views.patient_detail, name="patient_detail"),
    path("patients/<uuid:patient_uuid>/link/", views.patient_link, name="patient_link"),
]
