"""Celery beat scheduler that keeps ticking through a database outage.

django-celery-beat's DatabaseScheduler reads its schedule from the database;
a failed full re-read raises out of ``tick`` and a hung query blocks it, and
either stops the ticks exactly when the SQS fallback is needed. This subclass
keeps the last schedule it read when the database fails, bounds every
database call with a deadline, and aligns the publisher's entry to slot
boundaries: one dispatch per slot, carrying its slot and expiring at its end.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import schedules
from django.db import DatabaseError, InterfaceError
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from scaling.conf import scaling_settings
from scaling.deadline import DeadlineExceeded, deadline
from scaling.services import PUBLISH_TASK_NAME, slot_start_get

logger = logging.getLogger("scaling.beat")

DB_CALL_TIMEOUT_SECONDS = 3.0
# Dispatch this far into a slot: clocks of beat and worker hosts may differ a little.
SLOT_OFFSET_SECONDS = 0.5


class SlotAlignedEntry(ModelEntry):
    def is_due(self) -> schedules.schedstate:
        if self.task != PUBLISH_TASK_NAME or not self.model.enabled:
            return super().is_due()
        interval = scaling_settings().interval
        now = datetime.now(UTC)
        current = slot_start_get(at=now - timedelta(seconds=SLOT_OFFSET_SECONDS), interval=interval)
        last = self.last_run_at
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        last_slot = (
            slot_start_get(at=last - timedelta(seconds=SLOT_OFFSET_SECONDS), interval=interval)
            if last
            else None
        )
        next_due = current + timedelta(seconds=interval + SLOT_OFFSET_SECONDS)
        wait = max(0.1, (next_due - now).total_seconds())
        if last_slot is None or current > last_slot:
            return schedules.schedstate(True, wait)
        return schedules.schedstate(False, wait)


class ResilientDatabaseScheduler(DatabaseScheduler):
    Entry = SlotAlignedEntry

    def all_as_schedule(self) -> dict[str, Any]:
        try:
            with deadline(DB_CALL_TIMEOUT_SECONDS, "the database"):
                return super().all_as_schedule()
        except (DatabaseError, InterfaceError, DeadlineExceeded) as exc:
            if self._schedule is None:
                raise
            logger.warning("Beat keeps its last schedule: database unavailable (%s)", exc)
            return self._schedule

    def schedule_changed(self) -> bool:
        try:
            with deadline(DB_CALL_TIMEOUT_SECONDS, "the database"):
                return bool(super().schedule_changed())
        except DeadlineExceeded as exc:
            logger.warning("Beat skipped a schedule check: %s", exc)
            return False

    def sync(self) -> None:
        try:
            with deadline(DB_CALL_TIMEOUT_SECONDS, "the database"):
                super().sync()
        except DeadlineExceeded as exc:
            logger.warning("Beat will write run times later: %s", exc)

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if advance:
            entry = self.reserve(entry)
        if entry.task == PUBLISH_TASK_NAME:
            interval = scaling_settings().interval
            slot = slot_start_get(
                at=datetime.now(UTC) - timedelta(seconds=SLOT_OFFSET_SECONDS), interval=interval
            )
            entry.kwargs = {**(entry.kwargs or {}), "slot_start": slot.timestamp()}
            entry.options = {
                **(entry.options or {}),
                "expires": slot + timedelta(seconds=interval),
            }
        return super().apply_async(entry, producer=producer, advance=False, **kwargs)
