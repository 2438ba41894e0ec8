"""Reads of the video table that the autoscaler depends on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, QuerySet
from django.utils import timezone

from video.models import BACKLOG_STATUSES, Video, VideoStatus


@dataclass(frozen=True)
class Backlog:
    uploaded: int
    processing: int
    oldest_uploaded_at: datetime | None
    measured_at: datetime

    @property
    def total(self) -> int:
        return self.uploaded + self.processing

    @property
    def oldest_waiting_seconds(self) -> float | None:
        if self.oldest_uploaded_at is None:
            return None
        return max(0.0, (self.measured_at - self.oldest_uploaded_at).total_seconds())


def backlog_counts_qs() -> QuerySet[Any, Any]:
    """Rows ``{"status": ..., "n": ...}`` for the backlog statuses that have videos.

    A GROUP BY over the backlog rows only: its WHERE matches the condition of
    the partial index ``video_backlog_idx``, so the planner can answer it from
    that index without reading the rest of the table.
    """
    return (
        Video.objects.filter(status__in=BACKLOG_STATUSES)
        .order_by()
        .values("status")
        .annotate(n=Count("*"))
    )


def oldest_uploaded_qs() -> QuerySet[Video, datetime]:
    """At most one value: the earliest ``status_changed_at`` of an UPLOADED video.

    Written as ORDER BY ... LIMIT 1 rather than an aggregate so the exact
    query can be EXPLAINed; it reads the first entry of ``video_backlog_idx``.
    """
    return (
        Video.objects.filter(status=VideoStatus.UPLOADED)
        .order_by("status_changed_at")
        .values_list("status_changed_at", flat=True)[:1]
    )


def video_backlog_get() -> Backlog:
    """Count the backlog by status, and find the oldest UPLOADED video.

    Two queries, both answered from the partial index ``video_backlog_idx``.
    """
    counts = {row["status"]: row["n"] for row in backlog_counts_qs()}
    oldest = next(iter(oldest_uploaded_qs()), None)
    return Backlog(
        uploaded=counts.get(VideoStatus.UPLOADED, 0),
        processing=counts.get(VideoStatus.PROCESSING, 0),
        oldest_uploaded_at=oldest,
        measured_at=timezone.now(),
    )
