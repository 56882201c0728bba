"""Load at a server process's start what Django would otherwise load in its first request.

Django imports the URL configuration, and with it every view module (pydicom,
NumPy, Pillow, reportlab…), when the first request arrives: ~0.4 s that some
user's first click after each restart would wait for, once per worker process.
"""

from django.urls import get_resolver


def load_url_configuration() -> None:
    """Import the URL configuration and every view module it names."""
    get_resolver().url_patterns  # noqa: B018 - the access is what loads them
