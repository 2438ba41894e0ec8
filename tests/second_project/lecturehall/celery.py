"""The project's Celery app: beat reads its schedule from the database (scaling's entry)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lecturehall.settings")

app = Celery("lecturehall")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
