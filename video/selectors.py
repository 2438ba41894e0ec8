"""Reads of the video table that the autoscaler depends on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min
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


def video_backlog_get() -> Backlog:
    """Count the backlog by status, and find the oldest UPLOADED video.

    Two queries, both answered from the partial index ``video_backlog_idx``:
    a GROUP BY over backlog rows only, and a MIN over UPLOADED rows only.
    """
    rows = (
        Video.objects.filter(status__in=BACKLOG_STATUSES)
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
    )
    counts = {row["status"]: row["n"] for row in rows}
    oldest = (
        Video.objects.filter(status=VideoStatus.UPLOADED)
        .order_by()
        .aggregate(oldest=Min("status_changed_at"))["oldest"]
    )
    return Backlog(
        uploaded=counts.get(VideoStatus.UPLOADED, 0),
        processing=counts.get(VideoStatus.PROCESSING, 0),
        oldest_uploaded_at=oldest,
        measured_at=timezone.now(),
    )
