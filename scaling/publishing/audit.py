"""The audit trail of the publisher: one ``MetricPublication`` row per fleet and slot.

Invariant 5: no record is lost because the database was down. A tick writes
its own row first; when the database does not answer the row waits in the
spool (Redis, else a local file) and a later tick drains it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from scaling.conf import ScalingSettings
from scaling.database import connection_drop
from scaling.deadline import DeadlineExceeded, deadline
from scaling.models import MetricPublication, SlotClaim
from scaling.publishing.outcome import TickResult
from scaling.publishing.slots import record_timeout_seconds
from scaling.state import state_store_get

logger = logging.getLogger("scaling.publishing")

SPOOL_DRAIN_LIMIT = 200


def audit_record_build(result: TickResult, *, conf: ScalingSettings) -> dict[str, Any]:
    return {
        "fleet": conf.fleet,
        "slot_start": result.slot_start.isoformat(),
        "interval_seconds": conf.interval,
        "value": result.value,
        "source": result.source or "",
        "status": str(result.status),
        "error": result.error[:4000],
        "duration_ms": result.duration_ms,
        "uploaded_count": result.uploaded,
        "processing_count": result.processing,
        "oldest_waiting_seconds": result.oldest_waiting_seconds,
        "recovered_count": result.recovered,
        "busy_instances": result.busy_instances,
        "protected_instances": result.protected_instances,
        "in_service_instances": result.in_service_instances,
        "desired_capacity": result.desired_capacity,
        "asg_name": conf.asg_name,
        "spooled": False,
    }


def tick_audit_record(
    record: dict[str, Any], *, conf: ScalingSettings, database_answered: bool, drain: bool = True
) -> tuple[str, int]:
    """Record one fleet's outcome of a tick; answer how ("recorded" or "spooled") and how
    many spooled rows were drained after it (``drain``: the slot's last record drains)."""
    store = state_store_get()
    record_by = time.monotonic() + record_timeout_seconds(conf.interval)
    try:
        if not database_answered:
            raise DatabaseError("database was unavailable for this tick")
        # This tick's own row first: draining older rows is optional work.
        with deadline(record_timeout_seconds(conf.interval), "the database"):
            publication_record_write(record)
    except (DatabaseError, DeadlineExceeded) as exc:
        connection_drop()
        record["spooled"] = True
        store.spool_push(record)
        logger.info(
            "Audit record spooled | fleet=%s slot=%s reason=%s",
            record["fleet"],
            record["slot_start"],
            exc,
        )
        return "spooled", 0
    drained = 0
    if not drain:
        return "recorded", 0
    try:
        # Whatever time is left: each spooled row is removed only after it is
        # written, so a drain cut short loses nothing and repeats nothing.
        with deadline(max(0.05, record_by - time.monotonic()), "the database"):
            drained = store.spool_drain(publication_record_write, SPOOL_DRAIN_LIMIT)
            publication_prune(retention_days=conf.retention_days)
            slot_claims_prune(retention_days=conf.retention_days)
    except (DatabaseError, DeadlineExceeded) as exc:
        connection_drop()
        logger.info("Spool drain cut short | slot=%s reason=%s", record["slot_start"], exc)
    return "recorded", drained


def publication_record_write(record: dict[str, Any]) -> None:
    """Write one audit record; a second record for the same slot is ignored."""
    fields = dict(record)
    fields["slot_start"] = datetime.fromisoformat(fields["slot_start"])
    try:
        with transaction.atomic():
            MetricPublication.objects.create(**fields)
    except IntegrityError:
        logger.info(
            "Audit record for fleet %s slot %s already written",
            fields.get("fleet", "video"),
            record["slot_start"],
        )


def publication_prune(*, retention_days: int) -> int:
    cutoff = timezone.now() - timedelta(days=retention_days)
    deleted, _ = MetricPublication.objects.filter(slot_start__lt=cutoff).delete()
    return deleted


def slot_claims_prune(*, retention_days: int) -> int:
    """Slot claim rows go with the audit rows of their slots."""
    cutoff = timezone.now() - timedelta(days=retention_days)
    deleted, _ = SlotClaim.objects.filter(slot_start__lt=cutoff).delete()
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
