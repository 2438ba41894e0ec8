"""What one tick produced (``TickResult``) and every outcome it can have (``TickStatus``).

Its own module so that the audit record (``publishing.audit``) and the tick that
produces it (``publishing.tick``) both read it without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from scaling.models import PublicationStatus


class TickStatus(StrEnum):
    """Every outcome of a tick; the first two are also what the audit row records."""

    PUBLISHED = PublicationStatus.PUBLISHED.value
    FAILED = PublicationStatus.FAILED.value
    ALREADY_CLAIMED = "already-claimed"
    EXPIRED = "expired"
    DRY_RUN = "dry-run"


@dataclass
class TickResult:
    slot_start: datetime
    published: bool
    value: int | None
    source: str | None
    status: TickStatus
    error: str = ""
    duration_ms: float = 0.0
    uploaded: int | None = None
    processing: int | None = None
    oldest_waiting_seconds: float | None = None
    recovered: int | None = None  # videos whose lease expired; None: recovery did not run
    # The group's instances holding a live lease / protected; None: the reconciler did not run.
    busy_instances: int | None = None
    protected_instances: int | None = None
    # The group as the reconciler read it (InService count, DesiredCapacity); None: not read.
    # Recorded only: AWS publishes GroupInServiceInstances / GroupDesiredCapacity itself.
    in_service_instances: int | None = None
    desired_capacity: int | None = None
    audit: str = ""  # recorded | spooled | none
    spool_drained: int = 0
    fleet: str = "video"  # scaling.fleets: whose backlog this is
    fleet_ms: float = 0.0  # this fleet's own part of the tick: claim, measure, reconcile

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["slot_start"] = self.slot_start.isoformat()
        return data
