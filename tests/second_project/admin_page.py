"""Run with the project's python from this folder: what the project sees, as one JSON line.

The scaling admin changelist and the internal backlog endpoint as a signed-in
superuser and a key holder would get them, the beat entry ``migrate`` made, the
Celery task beat sends, and where ``scaling`` was imported from.
"""

import importlib.util
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lecturehall.settings")


def main() -> None:
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils.module_loading import import_string
    from django_celery_beat.models import PeriodicTask

    import scaling

    user, _ = get_user_model().objects.get_or_create(
        username="hall-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    admin_page = client.get("/admin/scaling/metricpublication/")
    backlog = Client().get(
        "/api/v1/internal/video/backlog-count/",
        headers={"X-Internal-Key": settings.INTERNAL_API_KEYS[0]},
    )
    app = import_string("lecturehall.celery.app")  # the project's Celery app
    app.loader.import_default_modules()
    seen = {
        "admin_status": admin_page.status_code,
        "backlog_status": backlog.status_code,
        "backlog": backlog.json() if backlog.status_code == 200 else None,
        "beat_tasks": sorted(PeriodicTask.objects.values_list("task", flat=True)),
        "celery_has_task": "scaling.tasks.publish_backlog_metric" in app.tasks,
        "scaling_file": scaling.__file__,
        "sys_path": sys.path,
        "importable": {
            name: importlib.util.find_spec(name) is not None
            for name in ("video", "academy", "devstack", "tests")
        },
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
