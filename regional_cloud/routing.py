"""WebSocket routes of every app (the top layer gathers them)."""

from typing import Any

websocket_urlpatterns: list[Any] = []
