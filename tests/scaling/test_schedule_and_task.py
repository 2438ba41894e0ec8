from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scaling.models import MetricPublication
from scaling.publishing.audit import publication_prune
from scaling.publishing.beat import SLOT_OFFSET_SECONDS, SlotAlignedEntry
from scaling.publishing.schedule import SCHEDULE_NAME, schedule_ensure
from scaling.publishing.tick import PUBLISH_TASK_NAME
from scaling.tasks import publish_backlog_metric

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("interval", ["10", "30", "60"])
def test_schedule_ensure_is_idempotent_and_follows_the_interval(
    settings: Any, interval: str
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = interval

    schedule_ensure()
    task, created = schedule_ensure()

    assert created is False
    assert PeriodicTask.objects.filter(task=PUBLISH_TASK_NAME).count() == 1
    assert (task.name, task.interval.every, task.interval.period, task.expire_seconds) == (
        SCHEDULE_NAME,
        int(interval),
        "seconds",
        int(interval),
    )


def test_schedule_ensure_repairs_an_edited_entry(settings: Any) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = "30"
    task, _ = schedule_ensure()
    PeriodicTask.objects.filter(pk=task.pk).update(expire_seconds=3600)

    repaired, created = schedule_ensure()

    assert (created, repaired.expire_seconds) == (False, 30)


def test_task_is_named_and_limited_below_the_interval() -> None:
    assert publish_backlog_metric.name == "scaling.tasks.publish_backlog_metric"
    soft, hard = publish_backlog_metric.soft_time_limit, publish_backlog_metric.time_limit
    assert soft is not None
    assert hard is not None
    assert soft < hard <= 60
    assert publish_backlog_metric.max_retries == 0


def test_prune_removes_rows_older_than_retention_only() -> None:
    now = timezone.now()
    for days in (0, 29, 31, 90):
        MetricPublication.objects.create(
            slot_start=now - timedelta(days=days),
            interval_seconds=60,
            value=1,
            source="db",
            status="published",
            duration_ms=1.0,
            asg_name="g",
        )

    deleted = publication_prune(retention_days=30)

    assert deleted == 2
    assert MetricPublication.objects.count() == 2


class _Model:
    enabled = True


def _entry(last_run_at: datetime | None) -> SlotAlignedEntry:
    entry = SlotAlignedEntry.__new__(SlotAlignedEntry)
    entry.task = PUBLISH_TASK_NAME
    entry.model = _Model()
    entry.last_run_at = last_run_at
    return entry


@pytest.mark.parametrize(
    ("last_run_offset", "due"),
    [
        (None, True),  # never ran
        (0.0, False),  # ran in this slot already
        (-10.0, True),  # ran in the previous 10-second slot
    ],
)
def test_beat_entry_is_due_once_per_slot(
    settings: Any, monkeypatch: pytest.MonkeyPatch, last_run_offset: float | None, due: bool
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = "10"
    now = datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    monkeypatch.setattr("scaling.publishing.beat.datetime", _FrozenDatetime(now))
    last = None if last_run_offset is None else now + timedelta(seconds=last_run_offset)

    state = _entry(last).is_due()

    assert state.is_due is due
    # The next check is the next slot's start plus the offset.
    assert state.next == pytest.approx(10 - 3 + SLOT_OFFSET_SECONDS)


class _FrozenDatetime:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self, tz: Any = None) -> datetime:
        return self._now

    def fromtimestamp(self, *args: Any, **kwargs: Any) -> datetime:
        return datetime.fromtimestamp(*args, **kwargs)
