"""One tick of the publisher: for every fleet, claim the slot, measure, publish,
record (DESIGN.md steps 1-4, "Adopting it": several fleets).

Each step lives in its own module of this package; this one strings them
together and decides each fleet's outcome (``TickStatus``).

Every fleet is on its own: its own slot claim (its key names its group), its own
share of the slot's time (a source that hangs costs its fleet, not the others),
its own fallback and its own failure (invariant 1 per fleet). The fleets run one
after another in this thread (the deadline that interrupts a hung database call
works only in the main thread); each gets an equal share of what is left (at least
a second, or half of what is left), so time one does not use goes to the next. A
database that fails for one fleet is not asked again in the same tick: the fleets
after it go straight to their fallback. Then the
datapoints go out grouped by namespace, one PutMetricData per namespace, and one
audit row per fleet.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from scaling.conf import scaling_settings
from scaling.fleet.reconcile import fleet_reconcile, fleet_timeout_seconds
from scaling.fleets import Fleet, fleet_get, fleets_get
from scaling.models import PublicationSource
from scaling.policy.pause import PAUSE_CHECK_SECONDS, pause_expire
from scaling.publishing.audit import audit_record_build, tick_audit_record
from scaling.publishing.fleet_step import (
    FleetTick,
    SlotShared,
    fleet_datums_publish,
    fleet_measure,
)
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


@dataclass
class SlotResult:
    """Every fleet's outcome of one tick, in configured order."""

    slot_start: datetime
    results: list[TickResult] = field(default_factory=list)
    duration_ms: float = 0.0

    def result_for(self, name: str | None = None) -> TickResult:
        """The named fleet's result (None: ``video``, else the first)."""
        if name is None:
            name = next((r.fleet for r in self.results if r.fleet == "video"), None)
        for result in self.results:
            if name is None or result.fleet == name:
                return result
        raise KeyError(name)

    def as_json(self) -> dict[str, Any]:
        """The default fleet's keys at the top, as before fleets; every fleet in ``fleets``."""
        data: dict[str, Any] = self.result_for().as_json() if self.results else {}
        data["fleets"] = [r.as_json() for r in self.results]
        return data


def backlog_tick(
    *,
    now: datetime | None = None,
    slot_start: datetime | None = None,
    dry_run: bool = False,
    fleet: str | None = None,
) -> TickResult:
    """Tick every fleet (``fleet``: that one alone); answer for ``fleet`` or the default."""
    fleets = [fleet_get(fleet)] if fleet else None
    return slot_tick(now=now, slot_start=slot_start, dry_run=dry_run, fleets=fleets).result_for(
        fleet
    )


def slot_tick(
    *,
    now: datetime | None = None,
    slot_start: datetime | None = None,
    dry_run: bool = False,
    fleets: list[Fleet] | None = None,
) -> SlotResult:
    """Measure every fleet's backlog and publish it once for this slot."""
    base = scaling_settings()
    fleets = fleets if fleets is not None else fleets_get()
    started = time.monotonic()
    now = now or timezone.now()
    interval = base.interval
    slot = slot_start or slot_start_get(at=now, interval=interval)
    outcome = SlotResult(slot_start=slot)

    if slot_start is not None and now >= slot + timedelta(seconds=interval):
        # Invariant 3: a tick that waited past its slot never publishes.
        logger.warning("BacklogCount tick expired | slot=%s", slot.isoformat())
        outcome.results = [
            TickResult(
                slot_start=slot,
                published=False,
                value=None,
                source=None,
                status=TickStatus.EXPIRED,
                audit="none",
                fleet=f.name,
            )
            for f in fleets
        ]
        return outcome

    # Every step below gets what is left of the budget, never more: the tick
    # ends inside its slot whatever hangs.
    budget_end = started + tick_budget_seconds(interval)
    if slot_start is not None:
        slot_end = (slot + timedelta(seconds=interval) - now).total_seconds()
        budget_end = min(budget_end, started + slot_end - record_timeout_seconds(interval))
    # Kept for the PutMetricData calls after every fleet is measured.
    publish_reserve = min(3.0, interval * 0.15)
    store = state_store_get()
    ticks = [
        FleetTick(
            fleet=f,
            conf=f.conf(base),
            result=TickResult(
                slot_start=slot,
                published=False,
                value=None,
                source=None,
                status=TickStatus.FAILED,
                fleet=f.name,
            ),
        )
        for f in fleets
    ]
    shared = SlotShared()
    recovery_ran = False
    for index, tick in enumerate(ticks):
        fleet_started = time.monotonic()
        available = budget_end - publish_reserve - fleet_started
        # An equal share of what is left, but never under a second (or half of what
        # is left): at 10 s slots and 20 fleets a fair share is 150 ms, too short for
        # a first call on a fresh TLS connection; one hung fleet still leaves the
        # others at least half.
        share = max(available / (len(ticks) - index), min(1.0, available / 2))
        fleet_end = fleet_started + max(0.05, share)

        def left(cap: float | None = None, end: float = fleet_end) -> float:
            remaining = max(0.05, end - time.monotonic())
            return remaining if cap is None else min(cap, remaining)

        fleet_measure(tick, slot=slot, store=store, left=left, dry_run=dry_run, shared=shared)
        if tick.done or dry_run or not tick.fleet.leases:
            tick.result.duration_ms = round((time.monotonic() - fleet_started) * 1000, 3)
            continue
        answered = tick.result.source == PublicationSource.DB
        if not recovery_ran:
            # One port: its leases are recovered once a slot, whichever fleet asks.
            recovery_ran = True
            recovery = lease_recovery_run(
                store=store,
                database_answered=answered,
                now=time.time(),
                timeout_seconds=left(db_timeout_seconds(interval)),
            )
            tick.result.recovered = recovery.recovered
            if recovery.note and answered:
                tick.errors.append(recovery.note)
        # Instance protection and lifecycle actions, from the leases just measured.
        reconciled = fleet_reconcile(
            store=store,
            database_answered=answered,
            now=time.time(),
            timeout_seconds=left(fleet_timeout_seconds(interval)),
            conf=tick.conf,
        )
        tick.result.busy_instances, tick.result.protected_instances = (
            reconciled.busy,
            reconciled.protected,
        )
        tick.result.in_service_instances = reconciled.in_service
        tick.result.desired_capacity = reconciled.desired
        if reconciled.note and answered:
            tick.notes.append(reconciled.note)
        tick.result.duration_ms = round((time.monotonic() - fleet_started) * 1000, 3)

    if not dry_run:
        fleet_datums_publish(ticks, slot=slot, end=budget_end)
    elapsed = round((time.monotonic() - started) * 1000, 3)
    for tick in ticks:
        # The audit row's duration is the tick's, claim to publish (DESIGN.md); the
        # fleet's own part of it (claim, measure, reconcile) is in ``fleet_ms``.
        tick.result.fleet_ms = tick.result.duration_ms
        tick.result.duration_ms = elapsed
        _settle(tick, dry_run=dry_run)
    recorded = [t for t in ticks if t.record and not dry_run]
    for position, tick in enumerate(recorded):
        _record(tick, drain=position == len(recorded) - 1, shared=shared)
    if not dry_run and not shared.database_down:
        # A scale-in pause whose time is up ends (scaling.policy.pause): within what is
        # left of the slot before the soft limit, a few seconds at most; never raises.
        until_soft = (slot - now).total_seconds() + interval - SOFT_LIMIT_MARGIN + started
        pause_expire(now=now, seconds=min(PAUSE_CHECK_SECONDS, until_soft - time.monotonic()))
    outcome.results = [t.result for t in ticks]
    outcome.duration_ms = round((time.monotonic() - started) * 1000, 3)
    return outcome


def _settle(tick: FleetTick, *, dry_run: bool) -> None:
    """The fleet's final status and error text."""
    result = tick.result
    if tick.done:
        return
    if result.value is None:
        # Invariant 1: nothing measured, nothing published. No datapoint keeps
        # target tracking in INSUFFICIENT_DATA instead of scaling in on a fake 0.
        result.status = TickStatus.FAILED
        result.error = "no source answered; " + "; ".join(tick.errors)
    elif dry_run:
        result.status = TickStatus.DRY_RUN
        result.error = "; ".join(tick.errors)
        result.audit = "none"
    elif result.published:
        result.status = TickStatus.PUBLISHED
        result.error = "; ".join(tick.errors + tick.notes)  # e.g. why the database was skipped
    else:
        result.status = TickStatus.FAILED
        result.error = "; ".join(tick.errors + tick.notes)
    _log(tick, dry_run=dry_run)


def _log(tick: FleetTick, *, dry_run: bool) -> None:
    result, name = tick.result, tick.fleet.name
    slot = result.slot_start.isoformat()
    if result.published:
        logger.info(
            "BacklogCount metric published | fleet=%s backlog=%s source=%s slot=%s",
            name,
            result.value,
            result.source,
            slot,
        )
    elif dry_run:
        logger.info(
            "BacklogCount dry run | fleet=%s backlog=%s source=%s slot=%s",
            name,
            result.value,
            result.source,
            slot,
        )
    else:
        logger.warning(
            "BacklogCount metric NOT published | fleet=%s slot=%s reason=%s",
            name,
            slot,
            result.error,
        )


def _record(tick: FleetTick, *, drain: bool, shared: SlotShared) -> None:
    """The fleet's audit row: written while the database answers this tick (whatever
    the fleet's source), spooled once it has not (then the rest go straight to the
    spool: one database wait a tick, not one a fleet)."""
    result = tick.result
    if tick.done and result.status == TickStatus.FAILED:
        _log(tick, dry_run=False)  # the claim failed: said here, it had no _settle line
    result.audit, result.spool_drained = tick_audit_record(
        audit_record_build(result, conf=tick.conf),
        conf=tick.conf,
        database_answered=not shared.database_down,
        drain=drain,
    )
    if result.audit == "spooled" and not shared.database_down:
        shared.database_down = "the database did not take an audit row"


def tick_timeout_record(*, slot_start: datetime) -> None:
    """Spool a failed record for every fleet of a tick the soft time limit stopped (no
    database call: there is no time left for one). A record already written for the
    fleet's slot wins."""
    base = scaling_settings()
    for fleet in fleets_get():
        conf = fleet.conf(base)
        result = TickResult(
            slot_start=slot_start,
            published=False,
            value=None,
            source=None,
            status=TickStatus.FAILED,
            error="the tick ran out of time in its slot (soft time limit)",
            duration_ms=float((conf.interval - SOFT_LIMIT_MARGIN) * 1000),
            fleet=fleet.name,
        )
        record = audit_record_build(result, conf=conf)
        record["spooled"] = True
        # Under a second to the hard limit: a local file, no network.
        state_store_get().spool_push_local(record)
    logger.warning(
        "BacklogCount metric NOT published | slot=%s reason=%s",
        slot_start.isoformat(),
        "the tick ran out of time in its slot (soft time limit)",
    )
