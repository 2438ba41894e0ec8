"""Celery beat scheduler that keeps ticking through a database or a broker outage.

django-celery-beat's DatabaseScheduler reads its schedule from the database;
a failed full re-read raises out of ``tick`` and a hung query blocks it, and
either stops the ticks exactly when the SQS fallback is needed. This subclass
keeps the last schedule it read when the database fails, bounds every
database call with a deadline, and aligns the publisher's entry to slot
boundaries: one dispatch per slot, carrying its slot and expiring at its end.

When the broker does not take the tick within a short deadline, beat runs the
tick itself, inside the slot; the slot claim (``publishing.claim``, a database
row when Redis is down) keeps it to one publication however many beats do so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from celery import schedules
from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, InterfaceError, close_old_connections, connection, transaction
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from scaling.conf import scaling_settings
from scaling.deadline import DeadlineExceeded, deadline
from scaling.errors import error_one_line
from scaling.publishing.audit import SPOOL_DRAIN_LIMIT, publication_record_write
from scaling.publishing.slots import broker_send_timeout_seconds, slot_start_get
from scaling.publishing.tick import PUBLISH_TASK_NAME, slot_tick, tick_timeout_record
from scaling.state import state_store_get

logger = logging.getLogger("scaling.publishing.beat")

DB_CALL_TIMEOUT_SECONDS = 2.0
# Dispatch this far into a slot: clocks of beat and worker hosts may differ a little.
SLOT_OFFSET_SECONDS = 0.5
# A worker that lost the broker retries with pauses of 2, 4, ... up to 30 s (kombu).
WORKER_RECONNECT_SECONDS = 30


def _database_unavailable(what: str, exc: BaseException) -> None:
    text = " ".join(str(exc).split())[:300]
    logger.warning("Beat %s: database unavailable (%s: %s)", what, type(exc).__name__, text)
    with contextlib.suppress(Exception):
        connection.close()


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
    _broker_failed_at: float | None = None  # when a send last failed (monotonic)

    def all_as_schedule(self) -> dict[str, Any]:
        try:
            with deadline(DB_CALL_TIMEOUT_SECONDS, "the database"):
                return super().all_as_schedule()
        except (DatabaseError, InterfaceError, DeadlineExceeded) as exc:
            if self._schedule is None:
                raise
            _database_unavailable("keeps its last schedule", exc)
            return self._schedule

    def schedule_changed(self) -> bool:
        # The parent's version, with a deadline and a one-line warning instead
        # of a traceback every few seconds while the database is down.
        try:
            with deadline(DB_CALL_TIMEOUT_SECONDS, "the database"):
                close_old_connections()
                with contextlib.suppress(transaction.TransactionManagementError):
                    transaction.commit()  # see the parent: REPEATABLE-READ hides changes
                last: Any = getattr(self, "_last_timestamp", None)
                ts: Any = self.Changes.last_change()
        except (DatabaseError, InterfaceError, DeadlineExceeded) as exc:
            _database_unavailable("skipped a schedule check", exc)
            return False
        try:
            return bool(ts and ts > (last or ts))
        finally:
            self._last_timestamp = ts

    def sync(self) -> None:
        # Run times are written when the database answers; until then they stay dirty.
        failed: set[str] = set()
        try:
            with deadline(DB_CALL_TIMEOUT_SECONDS, "the database"):
                close_old_connections()
                while self._dirty:
                    name = self._dirty.pop()
                    try:
                        self._schedule[name].save()
                    except (KeyError, TypeError, ObjectDoesNotExist):
                        failed.add(name)
                    except (DatabaseError, InterfaceError, DeadlineExceeded):
                        failed.add(name)
                        raise
        except (DatabaseError, InterfaceError, DeadlineExceeded) as exc:
            _database_unavailable("will write run times later", exc)
            return
        finally:
            self._dirty |= failed
        self._local_spool_drain()

    def _local_spool_drain(self) -> None:
        """Write the records beat's own ticks spooled to a local file (Redis down as well
        as the database): no worker reads this host's files (invariant 5)."""
        try:
            with deadline(DB_CALL_TIMEOUT_SECONDS, "the database"):
                drained = state_store_get().spool_drain_local(
                    publication_record_write, SPOOL_DRAIN_LIMIT
                )
        except (DatabaseError, InterfaceError, DeadlineExceeded) as exc:
            _database_unavailable("left its local audit spool for later", exc)
            return
        except (OSError, ValueError) as exc:
            logger.warning("Beat could not read its local audit spool (%s)", error_one_line(exc))
            return
        if drained:
            logger.info("Beat wrote %d audit records from its local spool", drained)

    @cached_property
    def producer(self) -> Any:
        # Lazy: it connects on the first send, inside that send's deadline. The
        # parent's connects here, outside any handler, retrying up to
        # broker_connection_max_retries times: a broker down when beat starts
        # would hold beat for minutes, then stop it.
        return self.Producer(self.connection, auto_declare=False)

    def apply_async(
        self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if advance:
            entry = self.reserve(entry)
        if entry.task != PUBLISH_TASK_NAME:
            return super().apply_async(entry, producer=producer, advance=False, **kwargs)
        interval = scaling_settings().interval
        slot = slot_start_get(
            at=datetime.now(UTC) - timedelta(seconds=SLOT_OFFSET_SECONDS), interval=interval
        )
        entry.kwargs = {**(entry.kwargs or {}), "slot_start": slot.timestamp()}
        entry.options = {**(entry.options or {}), "expires": slot + timedelta(seconds=interval)}
        try:
            # A refused connection fails in under a second (kombu's publish retries);
            # a broker that accepts and never answers would hold beat ~20 s.
            with deadline(broker_send_timeout_seconds(interval), "the broker"):
                sent = self._publish_send(entry, producer)
        except Exception as exc:  # whatever the cause, the broker did not take the tick
            self._broker_forget()
            self._broker_failed_at = time.monotonic()
            logger.warning(
                "Beat could not send the tick (%s); running it here | slot=%s",
                error_one_line(exc, limit=300, first_line=True),
                slot.isoformat(),
            )
            self._tick_inline(slot=slot, interval=interval)
            return None
        else:
            if self._broker_failed_at is not None:
                since = time.monotonic() - self._broker_failed_at
                if since < WORKER_RECONNECT_SECONDS + interval:
                    # The broker is back, but a worker retries its connection with a
                    # growing pause (up to 30 s): until one is surely back, beat runs the
                    # tick as well. The slot claim lets only one of them publish.
                    logger.info(
                        "Beat runs the tick as well: the broker is back, workers may still "
                        "be reconnecting | slot=%s",
                        slot.isoformat(),
                    )
                    self._tick_inline(slot=slot, interval=interval)
                else:
                    self._broker_failed_at = None
            return sent
        finally:
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()

    def _publish_send(self, entry: Any, producer: Any) -> Any:
        # The parent's send without its sync: a database call inside the broker's
        # deadline would count against the broker.
        headers = {**(entry.options.get("headers") or {}), "celery_beat_task": True}
        options = {**entry.options, "headers": headers}
        args, kwargs = list(entry.args or ()), dict(entry.kwargs)
        task = self.app.tasks.get(entry.task)
        if task is None:  # beat need not import the task's module
            return self.send_task(entry.task, args, kwargs, producer=producer, **options)
        return task.apply_async(args, kwargs, producer=producer, **options)

    def _broker_forget(self) -> None:
        """Drop the broker connection; the next send opens a new one."""
        self.__dict__.pop("producer", None)
        broker = self.__dict__.pop("connection", None)
        if broker is not None:
            with contextlib.suppress(Exception), deadline(0.5, "the broker"):
                broker.release()

    def _tick_inline(self, *, slot: datetime, interval: int) -> None:
        # The tick bounds each of its steps by the slot; this deadline is the last resort
        # a worker's soft time limit is: beat must be free for the next slot.
        slot_left = (slot + timedelta(seconds=interval) - datetime.now(UTC)).total_seconds()
        try:
            with deadline(max(0.05, slot_left), "the slot"):
                slot_tick(slot_start=slot)  # every fleet, as the task does
        except DeadlineExceeded:
            tick_timeout_record(slot_start=slot)
        except Exception:
            logger.exception("Beat's own tick failed | slot=%s", slot.isoformat())
