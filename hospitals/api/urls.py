"""Routes of the network API, included under /api/ by regional_cloud.api_urls."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from hospitals.api.account import ApiTokenViewSet, MeView
from hospitals.api.edge_nodes import EdgeNodeViewSet
from hospitals.api.institutions import InstitutionViewSet
from hospitals.api.memberships import MembershipViewSet

router = SimpleRouter()
router.register("institutions", InstitutionViewSet, basename="api-institution")
router.register("memberships", MembershipViewSet, basename="api-membership")
router.register("edge-nodes", EdgeNodeViewSet, basename="api-edge-node")
router.register("tokens", ApiTokenViewSet, basename="api-token")

urlpatterns = [
    path("me/", MeView.as_view(), name="api-me"),
    *router.urls,
]
