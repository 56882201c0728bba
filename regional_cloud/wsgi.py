"""WSGI entry point: HTTP through Django under gunicorn, as production serves it.

gunicorn (``gthread`` workers, see ``regional_cloud/gunicorn.conf.py``) hands
Django the request body as a stream and sends a streaming response as it is
produced, so a gigabyte STOW-RS request or a whole series' WADO-RS answer is
never held in memory. WebSockets (``/ws/``) are served by daphne from
``regional_cloud.asgi``; a reverse proxy routes between the two (README.md,
"Deployment").
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "regional_cloud.settings")
application = get_wsgi_application()

from regional_cloud.warmup import load_url_configuration  # noqa: E402 - needs Django set up

# Each worker imports this module as it starts: its first request finds the views loaded.
load_url_configuration()
