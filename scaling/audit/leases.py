"""Work in progress as the status shows it: what each instance holds, and the last
items whose worker was lost (read through the backlog source's lease hooks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scaling.port import LEASES_OFF, InstanceLeases, Recovery, lease_hooks

if TYPE_CHECKING:
    from scaling.fleets import Fleet

RECENT_RECOVERIES = 5


@dataclass(frozen=True)
class InstanceWork:
    instance_id: str
    processing: int
    live: int
    lease_expires_at: str | None

    @classmethod
    def of(cls, row: InstanceLeases) -> InstanceWork:
        expires = row.lease_expires_at.isoformat() if row.lease_expires_at else None
        return cls(row.instance_id, row.processing, row.live, expires)


@dataclass(frozen=True)
class RecoveryRow:
    video_id: int
    status: str
    attempts: int
    instance_id: str
    recovered_at: str

    @classmethod
    def of(cls, row: Recovery) -> RecoveryRow:
        return cls(
            row.video_id, row.status, row.attempts, row.instance_id, row.recovered_at.isoformat()
        )


@dataclass(frozen=True)
class Leases:
    instances: list[InstanceWork]
    recoveries: list[RecoveryRow]
    off: str = ""  # why there are no leases at all ("": the host's workers hold them)


def leases_read() -> Leases:
    hooks = lease_hooks()
    if hooks is None:
        return Leases(instances=[], recoveries=[], off=LEASES_OFF)
    return Leases(
        instances=[InstanceWork.of(row) for row in hooks.leases_by_instance()],
        recoveries=[RecoveryRow.of(r) for r in hooks.recoveries_recent(limit=RECENT_RECOVERIES)],
    )


def work_untracked(fleet: Fleet) -> bool:
    """The fleet's workers hold no leases while the port has lease hooks (an SQS fleet,
    or a port fleet configured without): the port's work in progress is not theirs, so
    no work by instance is shown and no drain hook is needed. A port without lease hooks
    is not this case: ``leases_read`` says so itself, as with one fleet."""
    if fleet.leases:
        return False
    if fleet.source != "port":
        return True
    try:
        return lease_hooks() is not None
    except Exception:  # a broken port is scaling.E009's to report
        return False
