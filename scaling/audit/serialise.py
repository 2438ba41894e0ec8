"""The backlog and a publication as the audit surfaces show them: one mapping for all.

``scaling_status`` (through ``scaling.audit.status``) and the internal endpoint
(``scaling.views``) both show these; the endpoint's key names
(``backlog_count``, ``age_seconds``, ...) are its published contract, so they
are built here from the same fields rather than renamed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from scaling.models import MetricPublication
from scaling.port import Backlog


@dataclass(frozen=True)
class BacklogCounts:
    total: int
    uploaded: int
    processing: int
    oldest_waiting_seconds: float | None


@dataclass(frozen=True)
class PublicationSummary:
    # Field order is the endpoint's key order (its JSON is not sorted).
    value: int | None
    source: str | None
    status: str
    slot_start: str  # ISO 8601
    # The group as the reconciler read it in that slot; null when it was not read.
    in_service_instances: int | None
    desired_capacity: int | None


@dataclass(frozen=True)
class PublicationRow(PublicationSummary):
    """A publication as ``scaling_status`` lists it: the summary and its error."""

    error: str


def backlog_counts(backlog: Backlog) -> BacklogCounts:
    return BacklogCounts(
        total=backlog.total,
        uploaded=backlog.waiting,
        processing=backlog.in_progress,
        oldest_waiting_seconds=backlog.oldest_waiting_seconds,
    )


def publication_summary(publication: MetricPublication) -> PublicationSummary:
    return PublicationSummary(
        value=publication.value,
        # An empty source means "none" (a failed slot); null says so in JSON.
        source=publication.source or None,
        status=publication.status,
        slot_start=publication.slot_start.isoformat(),
        in_service_instances=publication.in_service_instances,
        desired_capacity=publication.desired_capacity,
    )


def publication_row(publication: MetricPublication) -> PublicationRow:
    return PublicationRow(**asdict(publication_summary(publication)), error=publication.error)


def publication_answer(publication: MetricPublication | None, *, now: datetime) -> Any:
    """The endpoint's ``last_publication``: the summary and its age, or None."""
    if publication is None:
        return None
    age = round((now - publication.slot_start).total_seconds(), 3)
    return {**asdict(publication_summary(publication)), "age_seconds": age}


def backlog_answer(
    backlog: Backlog, publication: MetricPublication | None, *, now: datetime
) -> dict[str, Any]:
    """The endpoint's whole answer: the backlog now and the latest publication."""
    counts = backlog_counts(backlog)
    oldest = counts.oldest_waiting_seconds
    return {
        "backlog_count": counts.total,
        "uploaded": counts.uploaded,
        "processing": counts.processing,
        "oldest_waiting_seconds": None if oldest is None else round(oldest, 3),
        "measured_at": backlog.measured_at.isoformat(),
        "last_publication": publication_answer(publication, now=now),
    }


def queue_answer(
    *, visible: int, in_flight: int, publication: MetricPublication | None, now: datetime
) -> dict[str, Any]:
    """The endpoint's answer for a fleet measured by its SQS queue: the same keys, read
    from the queue's depth (waiting = visible messages, in progress = in flight; the
    queue knows no ages, so ``oldest_waiting_seconds`` is null)."""
    return {
        "backlog_count": visible + in_flight,
        "uploaded": visible,
        "processing": in_flight,
        "oldest_waiting_seconds": None,
        "measured_at": now.isoformat(),
        "last_publication": publication_answer(publication, now=now),
    }
