"""Settings of the second project: what a host adds to use ``scaling`` (see README).

The environment it reads is the test's: LECTUREHALL_DATABASE_URL (postgres://... or
sqlite:///...), LECTUREHALL_VAR (a writable directory), LECTUREHALL_ASG_NAME, and
boto3's own AWS_ENDPOINT_URL / credentials.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LECTUREHALL_VAR") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _database(url: str) -> dict[str, object]:
    if not url or url.startswith("sqlite:"):
        name = urlsplit(url).path or str(VAR_DIR / "lecturehall.sqlite3")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DEBUG = True
SECRET_KEY = "lecturehall-tests-only"
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",  # scaling's beat entry lives in its tables
    "lectures",
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

ROOT_URLCONF = "lecturehall.urls"
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

DATABASES = {"default": _database(os.environ.get("LECTUREHALL_DATABASE_URL", ""))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_BEAT_SCHEDULER = "scaling.publishing.beat:ResilientDatabaseScheduler"

# scaling: the backlog port, the state store, the metric and the group.
SCALING_BACKLOG_SOURCE = "lectures.backlog.EncodeBacklog"
SCALING_STATE_URL = f"file://{VAR_DIR / 'scaling-state'}"  # Redis in production
SCALING_NAMESPACE = "LectureHall/Encoding"
SCALING_METRIC_NAME = "EncodeBacklog"
SCALING_WORKER_TYPE = "Encoder"
SCALING_ASG_NAME = os.environ.get("LECTUREHALL_ASG_NAME", "lecturehall-encoders")
SCALING_PUBLISH_INTERVAL_SECONDS = 60
AWS_REGION = "eu-west-1"
AWS_ENDPOINT_URL = os.environ.get("AWS_ENDPOINT_URL") or None
INTERNAL_API_KEYS = ["lecturehall-internal-key-for-tests"]
