"""Django settings: the one place that reads the environment.

With no environment at all the project runs on embedded defaults (an SQLite
file and a filesystem Celery transport under ``var/``). Production sets
``DEBUG=false`` and must then provide ``SECRET_KEY`` and ``ALLOWED_HOSTS``.
The parsing rules are in ``academy/envparse.py``, each refusal one sentence.
Values that need more than parsing (the scaling settings) are kept as given
and validated by the ``scaling`` system checks, so a bad value is reported as
a sentence at start-up rather than as a traceback here.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured
from kombu.transport import TRANSPORT_ALIASES

from academy import defaults, envparse

django_stubs_ext.monkeypatch()  # lets ModelAdmin[Video] etc. be subscripted at run time

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ACADEMY_VAR_DIR") or BASE_DIR / "var")


def _env_bool(name: str, default: bool) -> bool:
    return envparse.env_bool_parse(name, os.environ.get(name), default=default)


def _env_int(name: str, default: int, minimum: int) -> int:
    return envparse.env_int_parse(name, os.environ.get(name), default=default, minimum=minimum)


def _env_list(name: str) -> list[str]:
    return envparse.env_list_parse(os.environ.get(name))


def _directory_make(path: Path, *, setting: str, fix: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{setting}: directory {str(path)!r} cannot be made ({exc.strerror}): {fix}."
        ) from None


_VAR_DIR_FIX = "set ACADEMY_VAR_DIR to a directory this user can write"


DEBUG = _env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: DEBUG is off, so set SECRET_KEY to a long random string."
        )
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS is not set: DEBUG is off, so set ALLOWED_HOSTS to the "
            "comma-separated host names this API answers to."
        )
    ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "video",
    "scaling",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "academy.urls"
WSGI_APPLICATION = "academy.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database. A short connect timeout matters: the publisher falls back to SQS
# when the database is down, and it has to find out within its slot.
# 0 would mean "wait forever" to libpq, so 1 is the least accepted.
DATABASE_CONNECT_TIMEOUT = _env_int("DATABASE_CONNECT_TIMEOUT", 3, minimum=1)
if not os.environ.get("DATABASE_URL") and not DEBUG:
    # An empty embedded SQLite file would measure a backlog of 0 (invariant 9).
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: DEBUG is off, so set DATABASE_URL to the production "
        "database (postgres://user:password@host:5432/name), never an embedded SQLite file."
    )
_database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'academy.sqlite3'}"
try:
    _database = dj_database_url.parse(_database_url, conn_max_age=0)
except Exception as exc:  # dj-database-url raises several types for one mistake
    raise ImproperlyConfigured(
        f"DATABASE_URL is not a valid database URL ({exc}): use e.g. "
        "postgres://user:password@host:5432/name."
    ) from exc
if _database["ENGINE"] == "django.db.backends.postgresql":
    _database.setdefault("OPTIONS", {})
    _database["OPTIONS"].setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    _database["OPTIONS"].setdefault("options", "-c statement_timeout=5000")
elif _database["ENGINE"] == "django.db.backends.sqlite3":
    if os.environ.get("DATABASE_URL"):
        _directory_make(
            Path(str(_database["NAME"])).parent,
            setting="DATABASE_URL",
            fix="set DATABASE_URL to a file in a directory this user can write",
        )
    else:
        _directory_make(VAR_DIR, setting="ACADEMY_VAR_DIR", fix=_VAR_DIR_FIX)
    _database.setdefault("OPTIONS", {})
    _database["OPTIONS"].setdefault("timeout", 5)
DATABASES = {"default": _database}
if os.environ.get("DATABASE_TEST_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DATABASE_TEST_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or VAR_DIR / "static")

# Security: on by default when DEBUG is off; TLS ends at the proxy in front.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/internal/"]

# Celery. With no broker configured, a filesystem transport under var/ lets a
# worker and beat talk across processes without any server.
CELERY_BROKER_URL = envparse.broker_url_parse(
    os.environ.get("CELERY_BROKER_URL"), transports=frozenset(TRANSPORT_ALIASES)
)
if not DEBUG:
    envparse.production_shared_check(
        "CELERY_BROKER_URL",
        os.environ.get("CELERY_BROKER_URL"),
        example="redis://host:6379/0",
        why="beat and the workers on other hosts would never meet",
    )
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "celery-queue"
    _directory_make(_queue_dir / "processed", setting="ACADEMY_VAR_DIR", fix=_VAR_DIR_FIX)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir / "processed"),
        # kombu's default is ./control, a folder in whatever directory the process started in.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 3,
        "socket_timeout": 5,
        "visibility_timeout": 3600,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SOFT_TIME_LIMIT = 50
CELERY_TASK_TIME_LIMIT = 55
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "scaling.publishing.beat:ResilientDatabaseScheduler"

# State the publisher needs while the database is down (slot claims, the audit
# spool). Redis in production; a directory under var/ on embedded defaults.
SCALING_STATE_URL = os.environ.get("SCALING_STATE_URL") or (
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else f"file://{VAR_DIR / 'scaling-state'}"
)
if not DEBUG:
    envparse.production_shared_check(
        "SCALING_STATE_URL",
        SCALING_STATE_URL,
        example="redis://host:6379/0, or unset with a Redis broker",
        why="two hosts would each claim every slot and publish it twice",
    )

# AWS. boto3 reads AWS_ENDPOINT_URL and credentials from the environment itself.
AWS_REGION = envparse.aws_region_parse(
    "AWS_REGION" if os.environ.get("AWS_REGION") else "AWS_DEFAULT_REGION",
    os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or defaults.AWS_REGION,
)
AWS_ENDPOINT_URL = envparse.aws_endpoint_parse(os.environ.get("AWS_ENDPOINT_URL"))

# Scaling: kept as strings here, parsed and checked by scaling.conf / checks.
SCALING_NAMESPACE = os.environ.get("SCALING_NAMESPACE", defaults.SCALING_NAMESPACE)
SCALING_METRIC_NAME = os.environ.get("SCALING_METRIC_NAME", defaults.SCALING_METRIC_NAME)
SCALING_WORKER_TYPE = os.environ.get("SCALING_WORKER_TYPE", defaults.SCALING_WORKER_TYPE)
SCALING_ASG_NAME = os.environ.get("SCALING_ASG_NAME", defaults.SCALING_ASG_NAME)
SCALING_SQS_QUEUE_URL = os.environ.get("SCALING_SQS_QUEUE_URL", "")
SCALING_PUBLISH_INTERVAL_SECONDS = os.environ.get(
    "SCALING_PUBLISH_INTERVAL_SECONDS", str(defaults.SCALING_PUBLISH_INTERVAL_SECONDS)
)
SCALING_AUDIT_RETENTION_DAYS = os.environ.get("SCALING_AUDIT_RETENTION_DAYS", "30")
# The worker fleets one publisher serves, as a JSON list (scaling.fleets; .env.example).
# Unset: one fleet, "video", from the SCALING_* settings above.
SCALING_FLEETS = os.environ.get("SCALING_FLEETS", "")
# The backlog port (scaling.port): this project's implementation is the video app's.
SCALING_BACKLOG_SOURCE = os.environ.get(
    "SCALING_BACKLOG_SOURCE", "video.backlog.VideoBacklogSource"
).strip()

# --- Video workers: leases and the worker API (issue 11) -----------------------
# Worker API keys (X-Worker-Key), comma-separated for rotation; never the audit key.
# Their length and their separation from INTERNAL_API_KEY are checked by video.checks.
WORKER_API_KEYS = envparse.env_list_parse(os.environ.get("WORKER_API_KEY"))
# Kept as strings here, parsed by video.conf and checked by video.checks.
VIDEO_LEASE_SECONDS = os.environ.get("VIDEO_LEASE_SECONDS", "120")
VIDEO_MAX_ATTEMPTS = os.environ.get("VIDEO_MAX_ATTEMPTS", "3")
VIDEO_WORKER_JOB = os.environ.get("VIDEO_WORKER_JOB", "video.worker.jobs.hold_job")
# Only the stand-in job reads it: how long it holds each video (video_worker checks it).
VIDEO_WORKER_HOLD_SECONDS = os.environ.get("VIDEO_WORKER_HOLD_SECONDS", "5")
# --- end of the video worker settings -------------------------------------------

# Internal API keys, comma-separated for rotation. The old name is still read.
# Their length is the scaling app's rule, checked by scaling.E008.
INTERNAL_API_KEYS = envparse.env_list_parse(
    os.environ.get("INTERNAL_API_KEY") or os.environ.get("LAMBDA_INTERNAL_API_KEY")
)

LOG_LEVEL = envparse.log_level_parse(os.environ.get("LOG_LEVEL"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
