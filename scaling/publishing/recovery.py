"""Lease recovery, once per slot: videos whose worker stopped renewing go back to
the queue (or to FAILED after the most attempts), so that work nobody is doing
stops counting as backlog (DESIGN.md invariant 7).

A database outage stops every renewal, so right after one every lease looks
expired. Recovery therefore runs only once the database has answered every
tick for a whole lease period: the workers have had a full lease to renew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import DatabaseError

from scaling.database import connection_drop
from scaling.deadline import DeadlineExceeded, deadline
from scaling.errors import error_one_line
from scaling.port import lease_hooks
from scaling.state import StateStore

logger = logging.getLogger("scaling.publishing")


@dataclass(frozen=True)
class RecoveryOutcome:
    recovered: int | None  # None: recovery did not run this slot
    note: str = ""


def lease_recovery_run(
    *, store: StateStore, database_answered: bool, now: float, timeout_seconds: float
) -> RecoveryOutcome:
    up_since = store.database_up_since(healthy=database_answered, now=now)
    hooks = lease_hooks()
    if hooks is None:
        return RecoveryOutcome(None)  # the host's workers hold no leases: nothing to recover
    if not database_answered:
        return RecoveryOutcome(None, "recovery skipped: the database did not answer")
    lease = hooks.lease_seconds()
    if up_since is None or now - up_since < lease:
        # Not an error: the workers are still being given their full lease.
        return RecoveryOutcome(None)
    try:
        with deadline(timeout_seconds, "the database"):
            recovered = hooks.leases_recover_expired()
    except (DatabaseError, DeadlineExceeded) as exc:
        connection_drop()
        store.database_up_since(healthy=False, now=now)
        return RecoveryOutcome(None, f"recovery: {error_one_line(exc)}")
    return RecoveryOutcome(recovered)
