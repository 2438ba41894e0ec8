"""Step 1 of a tick: claim the slot, so that one tick of an environment publishes it
however many beats and workers run (DESIGN.md invariant 2), whichever store answers.

Redis (SET NX) is the fast path: a refusal there ends a duplicate tick without a
database query. The database row (``SlotClaim``, a unique key) is the authority
whenever the database answers: a tick publishes only if it inserted the row.

    Redis     database   the tick
    granted   inserted   publishes
    granted   conflict   stops: already claimed (by a tick that found Redis down)
    granted   down       publishes on Redis's word alone (the SQS fallback needs it)
    refused   (not asked) stops: already claimed
    down      inserted   publishes: the row alone decided
    down      conflict   stops: already claimed
    down      down       fails: no claim store answered, nothing is published
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, IntegrityError, transaction

from scaling.conf import ScalingSettings
from scaling.database import connection_drop
from scaling.deadline import DeadlineExceeded, deadline
from scaling.errors import error_one_line
from scaling.models import SlotClaim
from scaling.publishing.slots import slot_claim_key
from scaling.state import StateStore, StateUnavailable


@dataclass(frozen=True)
class ClaimOutcome:
    granted: bool
    by: str = ""  # who granted it: "redis+db", "db", "redis"; "" when not granted
    redis_error: str = ""  # Redis did not answer
    database_error: str = ""  # the database did not answer (the tick goes on to SQS)

    @property
    def failed(self) -> bool:
        """Not granted because no store answered (not because another tick holds it)."""
        return not self.granted and bool(self.redis_error and self.database_error)


def slot_claim(
    *,
    conf: ScalingSettings,
    slot: datetime,
    store: StateStore,
    timeout_seconds: float,
    database_down: str = "",
) -> ClaimOutcome:
    """Claim the slot for ``conf``'s fleet (its key names the fleet's group).
    ``database_down``: why the database is not asked at all (it failed earlier in
    this tick, for another fleet): the claim goes as if it had not answered."""
    key = slot_claim_key(conf, slot)
    redis_error = ""
    try:
        if not store.slot_claim(key, ttl_seconds=conf.interval * 10):
            return ClaimOutcome(granted=False)
    except StateUnavailable as exc:
        redis_error = str(exc)
    try:
        if database_down:
            raise DatabaseError(database_down)
        with deadline(timeout_seconds, "the database"):
            inserted = claim_row_insert(key=key, slot=slot, redis_answered=not redis_error)
    except (DatabaseError, DeadlineExceeded) as exc:
        if not database_down:
            connection_drop()  # it may be half-way through a hung query
        database_error = error_one_line(exc)
        if redis_error:
            return ClaimOutcome(False, redis_error=redis_error, database_error=database_error)
        return ClaimOutcome(True, by="redis", database_error=database_error)
    if not inserted:
        return ClaimOutcome(False, redis_error=redis_error)
    return ClaimOutcome(True, by="db" if redis_error else "redis+db", redis_error=redis_error)


def claim_row_insert(*, key: str, slot: datetime, redis_answered: bool) -> bool:
    """Insert the slot's row; False when another tick's row is already there."""
    try:
        with transaction.atomic():
            SlotClaim.objects.create(key=key, slot_start=slot, redis_answered=redis_answered)
    except IntegrityError:
        return False
    return True
