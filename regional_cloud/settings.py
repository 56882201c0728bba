"""Settings, read from the environment.

With no variables set this is the embedded default: SQLite, a local-folder
archive, the in-memory channel layer and eager tasks — it needs nothing but
Python. Production is chosen by DATABASE_URL, ARCHIVE_URL and REDIS_URL. See
the configuration table in README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from regional_cloud.env import (
    env_bool,
    env_int,
    env_list,
    env_str,
    env_time_zone,
    parse_archive_url,
    parse_database_url,
    parse_redis_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY: required when DEBUG is off (a long random string, or SECRET_KEY_FILE "
            "naming a file that holds one)"
        )
    SECRET_KEY = "insecure-debug-only-key"  # noqa: S105 - only ever with DEBUG on

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Public address of the hub, used in links printed on reports and given to edges.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "channels",
    "regional_cloud",
    "hospitals",
    "studies",
    "referrals",
    "regional_cloud.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "regional_cloud.dashboard.middleware.BureauAggregatesOnlyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "regional_cloud.urls"
WSGI_APPLICATION = "regional_cloud.wsgi.application"
ASGI_APPLICATION = "regional_cloud.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "hospitals.context_processors.navigation",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": parse_database_url(DATABASE_URL)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the embedded database lives here
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "demo.sqlite3",
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Archive ------------------------------------------------------------------
ARCHIVE_URL = env_str("ARCHIVE_URL", f"file://{VAR_DIR / 'archive'}")
ARCHIVE = parse_archive_url(ARCHIVE_URL)
# Largest STOW-RS request body the hub accepts; larger ones get 413.
STOW_MAX_BYTES = env_int("STOW_MAX_BYTES", 4 * 1024**3, minimum=1)

# --- Redis: channel layer and task broker -------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    parse_redis_url(REDIS_URL)
    CHANNEL_LAYERS = {
        "default": {
            # The list-based layer: it works from synchronous code on any thread
            # (on_commit pushes, tasks). The pub/sub layer fans out faster at high
            # message rates (benchmarks/consult_bench.py) but broke live worklist
            # pushes sent with async_to_sync from worker threads, so only the
            # consultation rooms use it (below). Live pushes are best effort either way:
            # what must not be lost is in the database.
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
        },
        # Consultation rooms only: their fan-out (referrals/consultation/fanout.py)
        # publishes each event once on this Redis and each server hands it to its own
        # sockets directly; the rooms' consumers have no channel of their own.
        "consultation": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "max_connections": 1000}]},
        },
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
# Eager without Redis (the embedded default); tests also run tasks eagerly with Redis.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
# Periodic work (celery beat). The demo without a beat runs `manage.py referral_housekeeping`.
CELERY_BEAT_SCHEDULE = {
    "expire-referrals": {"task": "referrals.tasks.expire_referrals", "schedule": 60.0},
    "revoke-due-grants": {"task": "referrals.tasks.revoke_due_grants", "schedule": 300.0},
    "uploads-cleanup": {"task": "studies.uploads.cleanup", "schedule": 3600.0},
    "reading-expire-claims": {"task": "studies.reading.expire_claims", "schedule": 60.0},
    "reading-archive-reports": {
        "task": "studies.reading.archive_pending_reports",
        "schedule": 60.0,
    },
    "dashboard-refresh-recent": {"task": "dashboard.refresh_recent", "schedule": 300.0},
    "dashboard-refresh-weeks": {"task": "dashboard.refresh_weeks", "schedule": 86400.0},
}
# Task modules autodiscovery does not find (it looks only at <app>.tasks).
CELERY_IMPORTS = ["studies.uploads.tasks", "studies.reading.tasks"]

# --- Auth and permissions -----------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous object permissions at all
GUARDIAN_RAISE_403 = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

REST_FRAMEWORK = {
    # Token first: DRF answers a failed authentication with the first class's
    # challenge, so a bad or revoked token gets 401 + WWW-Authenticate, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hospitals.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Regional Imaging Cloud API",
    "DESCRIPTION": "区域影像云: the network, the archive, referrals and recognition.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page loads Swagger UI / Redoc from our static files: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No online validator badge: it would send the schema's address to swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Language and time --------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env_time_zone("TIME_ZONE", "Asia/Shanghai")

# --- Static files: everything served by the product, never a CDN ---------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # the demo serves straight from static/ without collectstatic

# --- Logging: never patient data (see regional_cloud/audit.py for who read what) --
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL: expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {LOG_LEVEL!r}"
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django logs request lines with URLs; ours carry UIDs, never names.
        "django.request": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        # pydicom logs element values (names included) when it meets odd data.
        "pydicom": {"level": "CRITICAL", "propagate": False},
    },
}

# --- Product knobs ------------------------------------------------------------
# How long a reader's claim on a study holds before others may take it.
READING_CLAIM_MINUTES = env_int("READING_CLAIM_MINUTES", 30, minimum=1)
# Demo password shared by every demo account (README lists the accounts).
DEMO_PASSWORD = env_str("DEMO_PASSWORD", "demo-pass-2026")

# STUN/TURN servers for the consultation room's audio and video: the JSON list an
# RTCPeerConnection takes, e.g. [{"urls": "turn:turn.example.cn:3478", "username": "u",
# "credential": "p"}]. Empty: peers on one network only (media is always peer to peer).
try:
    WEBRTC_ICE_SERVERS = json.loads(env_str("WEBRTC_ICE_SERVERS", "[]") or "[]")
except ValueError as _error:
    raise ImproperlyConfigured(f"WEBRTC_ICE_SERVERS: not valid JSON ({_error})") from None
if not isinstance(WEBRTC_ICE_SERVERS, list) or not all(
    isinstance(server, dict) and "urls" in server for server in WEBRTC_ICE_SERVERS
):
    raise ImproperlyConfigured('WEBRTC_ICE_SERVERS: expected a JSON list of {"urls": ...} objects')
