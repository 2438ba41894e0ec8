"""The beat entry that drives the publisher, kept equal to the settings on migrate."""

from __future__ import annotations

from typing import Any

from scaling.conf import ScalingSettings, scaling_settings
from scaling.publishing.tick import PUBLISH_TASK_NAME

SCHEDULE_NAME = "Publish video BacklogCount"


def schedule_ensure(*, conf: ScalingSettings | None = None) -> tuple[Any, bool]:
    """Create or align the beat entry for the publisher (idempotent)."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    conf = conf or scaling_settings()
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=conf.interval, period=IntervalSchedule.SECONDS
    )
    defaults = {
        "task": PUBLISH_TASK_NAME,
        "interval": interval,
        # Expire before the next slot: a tick that waited longer is stale.
        "expire_seconds": conf.interval,
        "description": (
            "Publishes the video backlog to CloudWatch once per slot. The interval "
            "follows SCALING_PUBLISH_INTERVAL_SECONDS and is reset to it on migrate."
        ),
    }
    task, created = PeriodicTask.objects.get_or_create(name=SCHEDULE_NAME, defaults=defaults)
    if not created:
        changed = [k for k, v in defaults.items() if getattr(task, k) != v and k != "description"]
        if changed:
            for key in changed:
                setattr(task, key, defaults[key])
            task.save(update_fields=changed)
    return task, created


def schedule_ensure_on_migrate(**kwargs: Any) -> None:
    schedule_ensure()
