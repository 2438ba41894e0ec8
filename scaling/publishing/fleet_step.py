"""One fleet's part of a tick: claim its slot, measure its backlog (with its fallback),
and the slot's PutMetricData calls grouped by namespace (``publishing.tick`` runs them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scaling.conf import ScalingSettings
from scaling.fleets import Fleet
from scaling.metric_spec import metric_spec_get
from scaling.models import PublicationSource
from scaling.publishing.backlog import (
    BacklogUnavailable,
    backlog_measure_db,
    backlog_measure_sqs,
)
from scaling.publishing.claim import slot_claim
from scaling.publishing.cloudwatch import (
    DATUMS_PER_CALL,
    MetricPublishError,
    datums_publish,
    metric_datums_build,
)
from scaling.publishing.outcome import TickResult, TickStatus
from scaling.publishing.slots import db_timeout_seconds
from scaling.state import StateStore

logger = logging.getLogger("scaling.publishing")


@dataclass
class FleetTick:
    """One fleet's work in progress inside the tick."""

    fleet: Fleet
    conf: ScalingSettings
    result: TickResult
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the reconciler's; after the errors
    done: bool = False  # its outcome is final (not claimed, claim failed, nothing measured)
    record: bool = True  # whether it writes an audit row


@dataclass
class SlotShared:
    """What one fleet learns for the others in the same tick."""

    database_down: str = ""  # why the database is not asked again this tick


def fleet_measure(
    tick: FleetTick,
    *,
    slot: datetime,
    store: StateStore,
    left: Callable[..., float],
    dry_run: bool,
    shared: SlotShared,
) -> None:
    """Claim the fleet's slot and measure its backlog (with its fallback)."""
    conf, result, fleet = tick.conf, tick.result, tick.fleet
    interval = conf.interval
    database_error = ""
    if not dry_run:
        claim = slot_claim(
            conf=conf,
            slot=slot,
            store=store,
            timeout_seconds=left(db_timeout_seconds(interval)),
            database_down=shared.database_down,
        )
        if claim.failed and not shared.database_down:
            shared.database_down = f"{claim.database_error} (at the slot claim)"
        if claim.failed:
            # Neither Redis nor the database can say that no other tick holds the
            # slot: publishing could count it twice, so skip it (and record why).
            result.error = (
                f"no slot claim store answered; redis: {claim.redis_error}; "
                f"database: {claim.database_error}"
            )
            tick.done = True
            return
        if not claim.granted:
            logger.info(
                "BacklogCount slot already claimed | fleet=%s slot=%s", fleet.name, slot.isoformat()
            )
            result.status = TickStatus.ALREADY_CLAIMED
            result.audit = "none"
            tick.done, tick.record = True, False
            return
        if claim.redis_error:
            logger.info(
                "BacklogCount slot claimed in the database, Redis did not answer | fleet=%s "
                "slot=%s redis=%s",
                fleet.name,
                slot.isoformat(),
                claim.redis_error,
            )
        if claim.database_error:
            database_error = claim.database_error
            if not shared.database_down:
                shared.database_down = f"{claim.database_error} (at the slot claim)"

    if fleet.source == "sqs":
        try:
            result.value = backlog_measure_sqs(queue_url=fleet.queue_url, timeout_seconds=left())
            result.source = PublicationSource.SQS
        except BacklogUnavailable as exc:
            tick.errors.append(f"sqs: {exc}")
        return
    try:
        if database_error or shared.database_down:
            # It just failed to answer: its time is better left to SQS.
            reason = shared.database_down or f"{database_error} (at the slot claim)"
            raise BacklogUnavailable(reason)
        backlog = backlog_measure_db(timeout_seconds=left(db_timeout_seconds(interval)))
        result.value = backlog.total
        result.source = PublicationSource.DB
        result.uploaded = backlog.waiting
        result.processing = backlog.in_progress
        result.oldest_waiting_seconds = backlog.oldest_waiting_seconds
    except BacklogUnavailable as exc:
        if not shared.database_down:
            shared.database_down = str(exc)
        tick.errors.append(f"database: {exc}")
        try:
            result.value = backlog_measure_sqs(
                queue_url=fleet.fallback_queue_url, timeout_seconds=left()
            )
            result.source = PublicationSource.SQS
        except BacklogUnavailable as sqs_exc:
            tick.errors.append(f"sqs: {sqs_exc}")


def fleet_datums_publish(ticks: list[FleetTick], *, slot: datetime, end: float) -> None:
    """One PutMetricData per namespace for every fleet that measured something."""
    by_namespace: dict[str, list[tuple[FleetTick, list[dict[str, Any]]]]] = {}
    for tick in ticks:
        r = tick.result
        if tick.done or r.value is None:
            continue
        spec = metric_spec_get(conf=tick.conf)
        datums = metric_datums_build(
            spec=spec,
            timestamp=slot,
            backlog=r.value,
            oldest_age_seconds=r.oldest_waiting_seconds,
            recovered=r.recovered,
            busy_instances=r.busy_instances,
            protected_instances=r.protected_instances,
        )
        by_namespace.setdefault(spec.namespace, []).append((tick, datums))
    # A fleet's datums stay in one call, so each call's fleets share its outcome.
    calls: list[tuple[str, list[tuple[FleetTick, list[dict[str, Any]]]]]] = []
    for namespace, entries in by_namespace.items():
        batch: list[tuple[FleetTick, list[dict[str, Any]]]] = []
        for entry in entries:
            if batch and sum(len(d) for _, d in batch) + len(entry[1]) > DATUMS_PER_CALL:
                calls.append((namespace, batch))
                batch = []
            batch.append(entry)
        calls.append((namespace, batch))
    for position, (namespace, batch) in enumerate(calls):
        # An equal share of what is left for each call still to go.
        timeout = max(0.05, (end - time.monotonic()) / (len(calls) - position))
        try:
            datums_publish(
                namespace=namespace,
                datums=[d for _, datums in batch for d in datums],
                timeout_seconds=timeout,
            )
        except MetricPublishError as exc:
            for tick, _ in batch:
                tick.errors.append(f"cloudwatch: {exc}"[:1000])
            continue
        for tick, _ in batch:
            tick.result.published = True
