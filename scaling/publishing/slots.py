"""Slot arithmetic: which slot a moment falls in, how long each step of a tick may
take, and the key that lets exactly one tick of an environment claim a slot."""

from __future__ import annotations

from datetime import UTC, datetime

from scaling.conf import ScalingSettings, environment_key

SOFT_LIMIT_MARGIN = 2  # the task's soft time limit is interval - 2 s
SPOOL_RESERVE_SECONDS = 1.5  # a spool push: Redis with short timeouts, else a local file


def slot_start_get(*, at: datetime, interval: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % interval, tz=UTC)


def db_timeout_seconds(interval: int) -> float:
    # Leave most of the slot for the SQS fallback and the publish retries.
    return min(3.0, interval * 0.25)


def broker_send_timeout_seconds(interval: int) -> float:
    # Beat's send of the tick: a broker that has not taken it by then is treated as
    # down and beat runs the tick itself, with most of the slot still ahead.
    return min(2.0, interval * 0.15)


def record_timeout_seconds(interval: int) -> float:
    return min(2.0, interval * 0.15)


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


def slot_claim_key(conf: ScalingSettings, slot: datetime, *, purpose: str = "publish") -> str:
    """One claim per environment, interval, slot and purpose (publish, recover, ...)."""
    return f"{purpose}:{environment_key(conf)}:{conf.interval}:{int(slot.timestamp())}"
