from django.contrib.auth import views as auth_views
from django.urls import path

from hospitals import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("network/", views.institution_list, name="institution_list"),
    path("network/<uuid:institution_uuid>/", views.institution_detail, name="institution_detail"),
    path("network/<uuid:institution_uuid>/members/", views.members, name="members"),
    path("network/<uuid:institution_uuid>/members/add/", views.member_add, name="member_add"),
    path(
        "network/<uuid:institution_uuid>/members/<uuid:membership_uuid>/revoke/",
        views.member_revoke,
        name="member_revoke",
    ),
    path("network/<uuid:institution_uuid>/edges/new/", views.edge_create, name="edge_create"),
    path("network/edges/<uuid:edge_uuid>/rotate/", views.edge_rotate, name="edge_rotate"),
]
