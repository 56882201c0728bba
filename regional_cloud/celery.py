"""The Celery app. In the embedded default (no REDIS_URL) tasks run eagerly."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "regional_cloud.settings")

app = Celery("regional_cloud")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
