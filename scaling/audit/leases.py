"""Video work in progress as the status shows it: what each instance holds, and
the last videos whose worker was lost (read from the video app's selectors)."""

from __future__ import annotations

from dataclasses import dataclass

from video.selectors import (
    InstanceLeases,
    Recovery,
    video_recoveries_recent,
    videos_processing_by_instance,
)

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


def leases_read() -> Leases:
    return Leases(
        instances=[InstanceWork.of(row) for row in videos_processing_by_instance()],
        recoveries=[RecoveryRow.of(r) for r in video_recoveries_recent(RECENT_RECOVERIES)],
    )
