"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Production serves WebSockets from here (daphne) and HTTP through gunicorn
(``regional_cloud.wsgi``); the demo serves both from here. Streaming responses
are streamed under ASGI too (``regional_cloud.streaming``).
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "regional_cloud.settings")
django.setup(set_prefix=False)  # what get_asgi_application() does, for our handler

from regional_cloud.streaming import StreamingASGIHandler  # noqa: E402 - needs Django set up

django_asgi_app = StreamingASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from regional_cloud.routing import websocket_urlpatterns  # noqa: E402
from regional_cloud.warmup import load_url_configuration  # noqa: E402

load_url_configuration()  # at the server's start, not in its first request

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
