"""One tick of the publisher: claim the slot, measure, publish, record (DESIGN.md steps 1-4).

Each step lives in its own module of this package; this one strings them
together and decides what the tick's outcome is (``TickStatus``).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.utils import timezone

from scaling.conf import ScalingSettings, scaling_settings
from scaling.fleet.reconcile import fleet_reconcile, fleet_timeout_seconds
from scaling.metric_spec import metric_spec_get
from scaling.models import PublicationSource
from scaling.publishing.audit import audit_record_build, tick_audit_record
from scaling.publishing.backlog import (
    BacklogUnavailable,
    backlog_measure_db,
    backlog_measure_sqs,
)
from scaling.publishing.claim import ClaimOutcome, slot_claim
from scaling.publishing.cloudwatch import MetricPublishError, metric_publish
from scaling.publishing.outcome import TickResult, TickStatus
from scaling.publishing.recovery import lease_recovery_run
from scaling.publishing.slots import (
    SOFT_LIMIT_MARGIN,
    db_timeout_seconds,
    record_timeout_seconds,
    slot_start_get,
    tick_budget_seconds,
)
from scaling.state import state_store_get

logger = logging.getLogger("scaling.publishing")

PUBLISH_TASK_NAME = "scaling.tasks.publish_backlog_metric"


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
            status=TickStatus.EXPIRED,
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

    claim: ClaimOutcome | None = None
    if not dry_run:
        claim = slot_claim(
            conf=conf,
            slot=slot,
            store=store,
            timeout_seconds=left(db_timeout_seconds(conf.interval)),
        )
        if claim.failed:
            # Neither Redis nor the database can say that no other tick holds the
            # slot: publishing could count it twice, so skip it (and record why).
            result = TickResult(
                slot_start=slot,
                published=False,
                value=None,
                source=None,
                status=TickStatus.FAILED,
                error=(
                    f"no slot claim store answered; redis: {claim.redis_error}; "
                    f"database: {claim.database_error}"
                ),
            )
            return _finish(result, conf=conf, started=started, dry_run=dry_run)
        if not claim.granted:
            logger.info("BacklogCount slot already claimed | slot=%s", slot.isoformat())
            return TickResult(
                slot_start=slot,
                published=False,
                value=None,
                source=None,
                status=TickStatus.ALREADY_CLAIMED,
                audit="none",
            )
        if claim.redis_error:
            logger.info(
                "BacklogCount slot claimed in the database, Redis did not answer | slot=%s "
                "redis=%s",
                slot.isoformat(),
                claim.redis_error,
            )

    errors: list[str] = []
    fleet_notes: list[str] = []  # after the publication's own errors: they come first
    result = TickResult(
        slot_start=slot, published=False, value=None, source=None, status=TickStatus.FAILED
    )
    try:
        if claim is not None and claim.database_error:
            # It just failed to answer the claim: its time is better left to SQS.
            raise BacklogUnavailable(f"{claim.database_error} (at the slot claim)")
        backlog = backlog_measure_db(timeout_seconds=left(db_timeout_seconds(conf.interval)))
        result.value = backlog.total
        result.source = PublicationSource.DB
        result.uploaded = backlog.waiting
        result.processing = backlog.in_progress
        result.oldest_waiting_seconds = backlog.oldest_waiting_seconds
    except BacklogUnavailable as exc:
        errors.append(f"database: {exc}")
        try:
            result.value = backlog_measure_sqs(queue_url=conf.sqs_queue_url, timeout_seconds=left())
            result.source = PublicationSource.SQS
        except BacklogUnavailable as sqs_exc:
            errors.append(f"sqs: {sqs_exc}")

    if not dry_run:
        recovery = lease_recovery_run(
            store=store,
            database_answered=result.source == PublicationSource.DB,
            now=time.time(),
            timeout_seconds=left(db_timeout_seconds(conf.interval)),
        )
        result.recovered = recovery.recovered
        if recovery.note and result.source == PublicationSource.DB:
            errors.append(recovery.note)
        # Instance protection and lifecycle actions, from the leases just measured.
        fleet = fleet_reconcile(
            store=store,
            database_answered=result.source == PublicationSource.DB,
            now=time.time(),
            timeout_seconds=left(fleet_timeout_seconds(conf.interval)),
        )
        result.busy_instances, result.protected_instances = fleet.busy, fleet.protected
        result.in_service_instances, result.desired_capacity = fleet.in_service, fleet.desired
        if fleet.note and result.source == PublicationSource.DB:
            fleet_notes.append(fleet.note)

    if result.value is None:
        # Invariant 1: nothing measured, nothing published. No datapoint keeps
        # target tracking in INSUFFICIENT_DATA instead of scaling in on a fake 0.
        result.status = TickStatus.FAILED
        result.error = "no source answered; " + "; ".join(errors)
        return _finish(result, conf=conf, started=started, dry_run=dry_run)

    if dry_run:
        result.status = TickStatus.DRY_RUN
        result.error = "; ".join(errors)
        return _finish(result, conf=conf, started=started, dry_run=dry_run)

    try:
        metric_publish(
            spec=metric_spec_get(conf=conf),
            timestamp=slot,
            backlog=result.value,
            oldest_age_seconds=result.oldest_waiting_seconds,
            recovered=result.recovered,
            busy_instances=result.busy_instances,
            protected_instances=result.protected_instances,
            timeout_seconds=left(),
        )
    except MetricPublishError as exc:
        errors.append(f"cloudwatch: {exc}"[:1000])
        result.status = TickStatus.FAILED
        result.error = "; ".join(errors + fleet_notes)
        return _finish(result, conf=conf, started=started, dry_run=dry_run)

    result.published = True
    result.status = TickStatus.PUBLISHED
    result.error = "; ".join(errors + fleet_notes)  # e.g. why the database was skipped
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
        status=TickStatus.FAILED,
        error="the tick ran out of time in its slot (soft time limit)",
        duration_ms=float((conf.interval - SOFT_LIMIT_MARGIN) * 1000),
    )
    record = audit_record_build(result, conf=conf)
    record["spooled"] = True
    # Under a second to the hard limit: a local file, no network.
    state_store_get().spool_push_local(record)
    logger.warning(
        "BacklogCount metric NOT published | slot=%s reason=%s",
        slot_start.isoformat(),
        result.error,
    )


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
    result.audit, result.spool_drained = tick_audit_record(
        audit_record_build(result, conf=conf),
        conf=conf,
        database_answered=result.source == PublicationSource.DB,
    )
    return result
