"""gunicorn settings for the hub's HTTP side: ``gunicorn -c regional_cloud/gunicorn.conf.py``.

Every value can be overridden on the command line or, as gunicorn reads it,
through ``GUNICORN_CMD_ARGS``; the sizes below also read the environment.

- ``gthread`` workers: each request gets a thread, so a slow client or a long
  STOW-RS upload occupies one thread, not a whole process, and the worker keeps
  answering its heartbeat while a request runs for minutes.
- WEB_CONCURRENCY processes (default: the CPU count) x GUNICORN_THREADS threads
  (default 8). Each process has its own database pool (DATABASE_URL's
  ``pool_max_size``, default 16): keep threads below it, and processes x pool
  below PostgreSQL's max_connections together with daphne and Celery.
"""

import gc
import multiprocessing
import os
from typing import Any

wsgi_app = "regional_cloud.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# gthread workers heartbeat from their main loop, so this bounds a stuck worker,
# not a long request.
timeout = 120
graceful_timeout = 60
keepalive = 5
# Behind the reverse proxy: trust its X-Forwarded-* from loopback only.
forwarded_allow_ips = "127.0.0.1,::1"
# No access log: query strings carry patient names (QIDO's PatientName=), and
# logs never carry patient data. Errors go to stderr.
accesslog = None
errorlog = "-"


def post_worker_init(worker: Any) -> None:
    """Move everything the worker loaded at start out of the garbage collector's sight.

    Django, the URL configuration and the views are ~190,000 long-lived objects
    that every full collection would walk again, in the middle of a request;
    frozen, they are never scanned. Requests' own garbage is collected as
    before.
    """
    gc.collect()
    gc.freeze()
