"""WebSocket routes of every app (the top layer gathers them)."""

from typing import Any

from django.urls import path

from referrals.consultation.consumers import ConsultationConsumer
from regional_cloud.notifications import NotificationConsumer
from studies.consumers import WorklistConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/worklist/", WorklistConsumer.as_asgi()),
    path("ws/notifications/", NotificationConsumer.as_asgi()),
    path("ws/consultations/<uuid:uuid>/", ConsultationConsumer.as_asgi()),
]
