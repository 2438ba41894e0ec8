"""Side effects of the publisher: one tick, the audit trail, the beat entry."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from scaling.conf import ScalingSettings, scaling_settings
from scaling.deadline import DeadlineExceeded, deadline
from scaling.metric_spec import metric_spec_get
from scaling.models import MetricPublication, PublicationSource, PublicationStatus
from scaling.publishing.backlog import (
    BacklogUnavailable,
    backlog_measure_db,
    backlog_measure_sqs,
    connection_drop,
)
from scaling.publishing.claims import StateUnavailable, state_store_get
from scaling.publishing.cloudwatch import MetricPublishError, metric_publish

logger = logging.getLogger("scaling.publishing")

PUBLISH_TASK_NAME = "scaling.tasks.publish_backlog_metric"
SCHEDULE_NAME = "Publish video BacklogCount"
SPOOL_DRAIN_LIMIT = 200


def slot_start_get(*, at: datetime, interval: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval, tz=UTC)


def db_timeout_seconds(interval: int) -> float:
    # Leave most of the slot for the SQS fallback and the publish retries.
    return min(3.0, interval * 0.25)


def record_timeout_seconds(interval: int) -> float:
    return min(2.0, interval * 0.15)


SOFT_LIMIT_MARGIN = 2  # the task's soft time limit is interval - 2 s
SPOOL_RESERVE_SECONDS = 1.5  # a spool push: Redis with short timeouts, else a local file


def tick_budget_seconds(interval: int) -> float:
    """How long measuring and publishing may take, so that the whole tick, audit
    record or spool push included, ends before the task's soft time limit."""
    return (
        interval
        - SOFT_LIMIT_MARGIN
        - record_timeout_seconds(interval)
        - SPOOL_RESERVE_SECONDS
        - 0.5
    )


@dataclass
class TickResult:
    slot_start: datetime
    published: bool
    value: int | None
    source: str | None
    status: str  # published | failed | already-claimed | dry-run
    error: str = ""
    duration_ms: float = 0.0
    uploaded: int | None = None
    processing: int | None = None
    oldest_waiting_seconds: float | None = None
    audit: str = ""  # recorded | spooled | none
    spool_drained: int = 0

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["slot_start"] = self.slot_start.isoformat()
        return data


def backlog_tick(
    *, now: datetime | None = None, slot_start: datetime | None = None, dry_run: bool = False
) -> TickResult:
    """Measure the backlog and publish it once for this slot (see DESIGN.md, steps 1-4)."""
    conf = scaling_settings()
    started = time.monotonic()
    now = now or timezone.now()
    slot = slot_start or slot_start_get(at=now, interval=conf.interval)
    store = state_store_get()

    if slot_start is not None and now >= slot + timedelta(seconds=conf.interval):
        # Invariant 3: a tick that waited past its slot never publishes.
        logger.warning("BacklogCount tick expired | slot=%s", slot.isoformat())
        return TickResult(
            slot_start=slot,
            published=False,
            value=None,
            source=None,
            status="expired",
            audit="none",
        )

    if not dry_run:
        try:
            claimed = store.slot_claim(_slot_key(conf, slot), ttl_seconds=conf.interval * 10)
        except StateUnavailable as exc:
            # Without the claim store two workers could both publish: skip this slot.
            result = TickResult(
                slot_start=slot,
                published=False,
                value=None,
                source=None,
                status=PublicationStatus.FAILED,
                error=f"slot claim store unreachable ({exc})",
            )
            return _finish(result, conf=conf, started=started, dry_run=dry_run)
        if not claimed:
            logger.info("BacklogCount slot already claimed | slot=%s", slot.isoformat())
            return TickResult(
                slot_start=slot,
                published=False,
                value=None,
                source=None,
                status="already-claimed",
                audit="none",
            )

    # Every step below gets what is left of the budget, never more: the tick
    # ends inside its slot whatever hangs.
    budget_end = started + tick_budget_seconds(conf.interval)
    if slot_start is not None:
        slot_end = (slot + timedelta(seconds=conf.interval) - now).total_seconds()
        budget_end = min(budget_end, started + slot_end - record_timeout_seconds(conf.interval))

    def left(cap: float | None = None) -> float:
        remaining = max(0.05, budget_end - time.monotonic())
        return remaining if cap is None else min(cap, remaining)

    errors: list[str] = []
    result = TickResult(slot_start=slot, published=False, value=None, source=None, status="")
    try:
        backlog = backlog_measure_db(timeout_seconds=left(db_timeout_seconds(conf.interval)))
        result.value = backlog.total
        result.source = PublicationSource.DB
        result.uploaded = backlog.uploaded
        result.processing = backlog.processing
        result.oldest_waiting_seconds = backlog.oldest_waiting_seconds
    except BacklogUnavailable as exc:
        errors.append(f"database: {exc}")
        try:
            result.value = backlog_measure_sqs(queue_url=conf.sqs_queue_url, timeout_seconds=left())
            result.source = PublicationSource.SQS
        except BacklogUnavailable as sqs_exc:
            errors.append(f"sqs: {sqs_exc}")

    if result.value is None:
        # Invariant 1: nothing measured, nothing published. No datapoint keeps
        # target tracking in INSUFFICIENT_DATA instead of scaling in on a fake 0.
        result.status = PublicationStatus.FAILED
        result.error = "no source answered; " + "; ".join(errors)
        return _finish(result, conf=conf, started=started, dry_run=dry_run)

    if dry_run:
        result.status = "dry-run"
        result.error = "; ".join(errors)
        return _finish(result, conf=conf, started=started, dry_run=dry_run)

    try:
        metric_publish(
            spec=metric_spec_get(conf=conf),
            timestamp=slot,
            backlog=result.value,
            oldest_age_seconds=result.oldest_waiting_seconds,
            timeout_seconds=left(),
        )
    except MetricPublishError as exc:
        errors.append(f"cloudwatch: {exc}"[:1000])
        result.status = PublicationStatus.FAILED
        result.error = "; ".join(errors)
        return _finish(result, conf=conf, started=started, dry_run=dry_run)

    result.published = True
    result.status = PublicationStatus.PUBLISHED
    result.error = "; ".join(errors)  # e.g. why the database was skipped for SQS
    return _finish(result, conf=conf, started=started, dry_run=dry_run)


def tick_timeout_record(*, slot_start: datetime) -> None:
    """Spool a failed record for a tick the soft time limit stopped (no database call:
    there is no time left for one). A record already written for the slot wins."""
    conf = scaling_settings()
    result = TickResult(
        slot_start=slot_start,
        published=False,
        value=None,
        source=None,
        status=PublicationStatus.FAILED,
        error="the tick ran out of time in its slot (soft time limit)",
        duration_ms=float((conf.interval - SOFT_LIMIT_MARGIN) * 1000),
    )
    record = _audit_record(result, conf=conf)
    record["spooled"] = True
    # Under a second to the hard limit: a local file, no network.
    state_store_get().spool_push_local(record)
    logger.warning(
        "BacklogCount metric NOT published | slot=%s reason=%s",
        slot_start.isoformat(),
        result.error,
    )


def _slot_key(conf: ScalingSettings, slot: datetime) -> str:
    return f"{conf.asg_name}:{conf.interval}:{int(slot.timestamp())}"


def _finish(
    result: TickResult, *, conf: ScalingSettings, started: float, dry_run: bool
) -> TickResult:
    result.duration_ms = round((time.monotonic() - started) * 1000, 3)
    if result.published:
        logger.info(
            "BacklogCount metric published | backlog=%s source=%s slot=%s",
            result.value,
            result.source,
            result.slot_start.isoformat(),
        )
    elif dry_run:
        logger.info(
            "BacklogCount dry run | backlog=%s source=%s slot=%s",
            result.value,
            result.source,
            result.slot_start.isoformat(),
        )
    else:
        logger.warning(
            "BacklogCount metric NOT published | slot=%s reason=%s",
            result.slot_start.isoformat(),
            result.error,
        )
    if dry_run:
        result.audit = "none"
        return result
    record = _audit_record(result, conf=conf)
    store = state_store_get()
    record_by = time.monotonic() + record_timeout_seconds(conf.interval)
    try:
        if result.source != PublicationSource.DB:
            raise DatabaseError("database was unavailable for this tick")
        # This tick's own row first: draining older rows is optional work.
        with deadline(record_timeout_seconds(conf.interval), "the database"):
            publication_record_write(record)
        result.audit = "recorded"
    except (DatabaseError, DeadlineExceeded) as exc:
        connection_drop()
        # Invariant 5: the audit row waits in the spool until the database is back.
        record["spooled"] = True
        store.spool_push(record)
        result.audit = "spooled"
        logger.info("Audit record spooled | slot=%s reason=%s", record["slot_start"], exc)
        return result
    try:
        # Whatever time is left: each spooled row is removed only after it is
        # written, so a drain cut short loses nothing and repeats nothing.
        with deadline(max(0.05, record_by - time.monotonic()), "the database"):
            result.spool_drained = store.spool_drain(publication_record_write, SPOOL_DRAIN_LIMIT)
            publication_prune(retention_days=conf.retention_days)
    except (DatabaseError, DeadlineExceeded) as exc:
        connection_drop()
        logger.info("Spool drain cut short | slot=%s reason=%s", record["slot_start"], exc)
    return result


def _audit_record(result: TickResult, *, conf: ScalingSettings) -> dict[str, Any]:
    return {
        "slot_start": result.slot_start.isoformat(),
        "interval_seconds": conf.interval,
        "value": result.value,
        "source": result.source or "",
        "status": result.status,
        "error": result.error[:4000],
        "duration_ms": result.duration_ms,
        "uploaded_count": result.uploaded,
        "processing_count": result.processing,
        "oldest_waiting_seconds": result.oldest_waiting_seconds,
        "asg_name": conf.asg_name,
        "spooled": False,
    }


def publication_record_write(record: dict[str, Any]) -> None:
    """Write one audit record; a second record for the same slot is ignored."""
    fields = dict(record)
    fields["slot_start"] = datetime.fromisoformat(fields["slot_start"])
    try:
        with transaction.atomic():
            MetricPublication.objects.create(**fields)
    except IntegrityError:
        logger.info("Audit record for slot %s already written", record["slot_start"])


def publication_prune(*, retention_days: int) -> int:
    cutoff = timezone.now() - timedelta(days=retention_days)
    deleted, _ = MetricPublication.objects.filter(slot_start__lt=cutoff).delete()
    return deleted


def spool_flush() -> int:
    """Write every spooled audit record now, whatever the tick limit (the tests use it)."""
    store = state_store_get()
    total = 0
    while True:
        written = store.spool_drain(publication_record_write, SPOOL_DRAIN_LIMIT)
        total += written
        if written < SPOOL_DRAIN_LIMIT:
            return total


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
