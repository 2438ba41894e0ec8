from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from scaling.conf import scaling_settings
from scaling.publishing.slots import SOFT_LIMIT_MARGIN, slot_start_get
from scaling.publishing.tick import PUBLISH_TASK_NAME, slot_tick, tick_timeout_record

_INTERVAL = scaling_settings().interval


@shared_task(
    name=PUBLISH_TASK_NAME,
    ignore_result=True,
    # Below the interval, so a tick never runs into the next slot.
    soft_time_limit=_INTERVAL - SOFT_LIMIT_MARGIN,
    time_limit=_INTERVAL - 1,
    # No task-level retry: it would publish outside the slot. Inside the tick,
    # PutMetricData is retried only where nothing can have been stored
    # (scaling.publishing.cloudwatch); botocore's own retries are off for it.
    max_retries=0,
)
def publish_backlog_metric(slot_start: float | None = None) -> dict[str, Any]:
    slot = datetime.fromtimestamp(slot_start, tz=UTC) if slot_start is not None else None
    try:
        # Every fleet's outcome: the default fleet's keys at the top, all in ``fleets``.
        return slot_tick(slot_start=slot).as_json()
    except SoftTimeLimitExceeded:
        # The tick's own budget should end it first; this is the last resort.
        slot = slot or slot_start_get(at=datetime.now(UTC), interval=_INTERVAL)
        tick_timeout_record(slot_start=slot)
        return {"published": False, "status": "failed", "slot_start": slot.isoformat()}
