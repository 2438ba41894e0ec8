"""The last slots, one row each, as ``scaling_status`` shows them (text and ``--json``).

The same series as the admin's chart: the published backlog and the group as the
reconciler read it (in service, desired, busy, protected). A row per slot of the
current interval's grid, counted back from now, so a slot with no audit record
shows as a gap ("no record"), never as a made-up zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from scaling.fleets import DEFAULT_FLEET
from scaling.models import MetricPublication
from scaling.selectors import publications_recent

DEFAULT_SLOTS = 12
MAX_SLOTS = 500


@dataclass(frozen=True)
class SlotRow:
    # Field names are the keys of ``scaling_status --json``'s ``slots``.
    slot_start: str  # ISO 8601, UTC
    recorded: bool  # False: no audit record for this slot (every value below is null)
    value: int | None  # the backlog measured (published when status is "published")
    source: str | None  # "db", "sqs", or null
    status: str | None  # "published", "failed", or null when not recorded
    in_service: int | None
    desired: int | None
    busy: int | None
    protected: int | None


def slots_count_parse(text: str) -> int:
    """``--slots``: a whole number from 1 to MAX_SLOTS; ValueError says what is wrong."""
    try:
        count = int(text.strip())
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_SLOTS:
        raise ValueError(f"--slots must be a whole number from 1 to {MAX_SLOTS}, not {text!r}")
    return count


def _slot_epoch(at: datetime, interval: int) -> int:
    epoch = int(at.timestamp())
    return epoch - epoch % interval


def _row(start: datetime, p: MetricPublication | None) -> SlotRow:
    if p is None:
        return SlotRow(start.isoformat(), False, None, None, None, None, None, None, None)
    return SlotRow(
        slot_start=p.slot_start.isoformat(),
        recorded=True,
        value=p.value,
        source=p.source or None,
        status=p.status,
        in_service=p.in_service_instances,
        desired=p.desired_capacity,
        busy=p.busy_instances,
        protected=p.protected_instances,
    )


def slot_rows_read(
    *, count: int, interval: int, now: datetime, fleet: str = DEFAULT_FLEET
) -> list[SlotRow]:
    """The fleet's last ``count`` slots of ``interval`` seconds up to the one ``now`` is in,
    oldest first. A record off the grid (the interval was changed) fills the slot it
    falls in; of two in one slot the newer one is shown."""
    newest = _slot_epoch(now, interval)
    starts = [newest - k * interval for k in range(count - 1, -1, -1)]
    since = datetime.fromtimestamp(starts[0], tz=UTC)
    found: dict[int, MetricPublication] = {}
    # Newest first; a shorter interval in the past can put more rows in the window.
    for p in publications_recent(since=since, limit=count * 6, fleet=fleet):
        found.setdefault(_slot_epoch(p.slot_start, interval), p)
    return [_row(datetime.fromtimestamp(s, tz=UTC), found.get(s)) for s in starts]
